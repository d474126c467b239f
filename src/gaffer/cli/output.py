"""Printing for the CLI: Rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output has no terminal width; Rich would fold every table to 80 columns.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_PIPED_WIDTH)
err_console = Console(stderr=True)

STATUS_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "SYSTEM_FAILURE": "red",
    "TIMED_OUT": "yellow",
    "CANCELED": "yellow",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "QUEUED": "blue",
    "BUFFERED": "magenta",
}


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def styled_status(status: str) -> str:
    """``status`` with its Rich colour markup."""
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A Rich table with ``columns`` and ``rows`` (None cells print as ``-``)."""
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(*("-" if cell is None else str(cell) for cell in row))
    return result


def short(value: str | None, length: int = 12) -> str | None:
    """The first ``length`` characters of an id or SHA."""
    return value[:length] if value else value
