"""Running an agent CLI: as the engine user, in its checkout, its output streamed line by line.

Every CLI engine goes through :func:`run_cli`, so that how an engine process is started (user,
groups, working directory, stdin, merged output, decoding) is decided once. The engine module
only builds the command line and environment and parses the lines (:class:`LineParser`).
:func:`engine_log` writes one capped run-log line on the ``engine`` stream;
:func:`write_private` writes a config file in the engine's ``HOME`` that only the engine user
can read.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gaffer.engines.base import EngineError, EngineUser, Invocation, cap_utf8
from gaffer.worker.events import Reporter

LOG_LINE_MAX_BYTES = 4096
"""The most of one engine event a run-log line keeps (UTF-8 bytes): a tool result can be a
whole file, and the log is for reading, not for replaying."""
LOG_TRUNCATION_MARK = " [cut]"

LineParser = Callable[[str], None]
"""Called with each line the CLI prints (stdout and stderr merged), without its newline."""


def engine_log(reporter: Reporter, kind: str, text: str, tool: str | None = None) -> None:
    """One run-log line on the ``engine`` stream: ``"<kind>: <text>"`` or, for a tool call or
    result, ``"<kind> <tool>: <text>"``; cut at :data:`LOG_LINE_MAX_BYTES`.

    ``kind`` is ``assistant``, ``tool``, ``result``, ``error`` or ``output`` (a line the parser
    did not recognise).
    """
    head = f"{kind} {tool}: " if tool else f"{kind}: "
    line = head + " ".join(text.split()) if kind != "output" else head + text
    reporter.log(cap_utf8(line, LOG_LINE_MAX_BYTES, LOG_TRUNCATION_MARK), stream="engine")


def user_options(user: EngineUser | None) -> dict[str, object]:
    """:class:`subprocess.Popen` keyword arguments that run a process as ``user`` (no
    supplementary groups), or none."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def run_cli(
    argv: Sequence[str],
    invocation: Invocation,
    env: Mapping[str, str],
    on_line: LineParser,
    *,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Run ``argv`` to completion and return its exit code (``-N`` when signal N killed it).

    The process runs as ``invocation.user`` (when given) in ``cwd`` (default: the engine's
    checkout) with exactly ``env``; ``stdin`` is written to it and closed (None: no input, the
    CLI reads end of file). Its stdout and stderr are merged and decoded as UTF-8 (bad bytes
    replaced); each line goes to ``on_line``. Raises :class:`EngineError` when the executable
    cannot be started (not found, not executable).
    """
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd or invocation.checkout,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            **user_options(invocation.user),  # type: ignore[call-overload]
        )
    except OSError as exc:
        raise EngineError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    with process:
        if stdin is not None:
            assert process.stdin is not None
            try:
                process.stdin.write(stdin)
                process.stdin.close()
            except BrokenPipeError:
                pass  # the CLI exited before reading its input; its output says why
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        return int(process.wait())


def write_private(path: Path, text: str, invocation: Invocation) -> Path:
    """Write ``text`` to ``path`` (inside ``invocation.home``; parents created) readable only
    by its owner, the engine user, who also owns every directory created for it under the
    home; returns ``path``. For the CLIs' config files, which may hold an API key.

    Raises ValueError when ``path`` is not inside the engine's home.
    """
    home = invocation.home
    if not path.is_relative_to(home):
        raise ValueError(f"{path} is not inside the engine's home {home}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    user = invocation.user
    if user is not None:
        os.chown(path, user.uid, user.gid)
        directory = path.parent
        while directory != home and directory.is_relative_to(home):
            os.chown(directory, user.uid, user.gid)
            directory = directory.parent
    return path
