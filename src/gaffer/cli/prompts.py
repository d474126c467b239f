"""Reading secrets for the CLI: from standard input or a hidden prompt, never from argv."""

from __future__ import annotations

import sys

import typer

from gaffer.cli.context import CliError


def read_secret(what: str, *, confirm: bool = False) -> str:
    """A secret (``what`` names it): the first line of standard input when it is not a
    terminal, else a hidden prompt (asked twice with ``confirm``). Raises :class:`CliError`
    for an empty one."""
    if sys.stdin.isatty():
        value = str(typer.prompt(what, hide_input=True, confirmation_prompt=confirm))
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise CliError(f"no {what.lower()} given (on standard input or at the prompt)")
    return value
