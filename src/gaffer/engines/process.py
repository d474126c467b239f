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
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gaffer.engines.base import EngineError, EngineUser, Invocation, cap_utf8
from gaffer.worker.events import Reporter

LOG_LINE_MAX_BYTES = 4096
"""The most of one engine event a run-log line keeps (UTF-8 bytes): a tool result can be a
whole file, and the log is for reading, not for replaying."""
LOG_TRUNCATION_MARK = " [cut]"

PROCESS_MARK_ENV = "GAFFER_ENGINE_PROCESS"
"""Set to a fresh id in the CLI's environment, and so inherited by every command the agent
runs: after the CLI exited (or was stopped), the processes still carrying it are killed
(:func:`kill_marked`). Claude Code and opencode start the agent's commands in sessions of
their own, out of the worker's process group, and do not stop them when they get SIGTERM:
without this, a
cancelled run's ``sleep 600`` (or a server the agent left running in the background) would
outlive the run on the ``local`` backend."""

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
    # O_NOFOLLOW: the worker may be root; a symlink an agent left in its HOME must not make
    # it write (or chown) a file elsewhere.
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
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


def kill_marked(mark: str, proc: Path = Path("/proc")) -> list[int]:
    """SIGKILL every process whose environment holds ``GAFFER_ENGINE_PROCESS=<mark>`` (those
    this process may read and signal), again until none is left (a dying command may have
    forked); returns their pids. See :data:`PROCESS_MARK_ENV`."""
    needle = f"{PROCESS_MARK_ENV}={mark}".encode()
    killed: list[int] = []
    for _ in range(10):
        found = []
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
        alive = []
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            alive.append(pid)
        if not alive:
            break
        killed += [pid for pid in alive if pid not in killed]
    return killed
