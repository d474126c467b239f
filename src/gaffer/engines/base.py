"""The engine interface: play an agent on a checked-out repository."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gaffer.queue.jobs import JobData
from gaffer.worker.events import Reporter

SUMMARY_MAX_BYTES = 64 * 1024
"""The most of a summary a worker reports (UTF-8 bytes). The report is one JSON line, and the
dispatcher cuts lines at 1 MiB (``backends.lines.MAX_LINE_BYTES``): an uncapped summary (an
engine's last line can be any length) would break the result line and fail a run that succeeded."""

SUMMARY_TRUNCATION_MARK = " [summary truncated]"


def cap_utf8(text: str, max_bytes: int, mark: str) -> str:
    """``text`` cut so that its UTF-8 encoding, with ``mark`` appended, fits ``max_bytes``.

    The cut falls on a character boundary; text that fits is returned unchanged (no mark).
    """
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(mark.encode())
    return encoded[:room].decode(errors="ignore") + mark


ENGINE_USER_ENV = "GAFFER_ENGINE_USER"
"""Env var through which a backend asks the worker to run the engine as ``uid[:gid]``."""


@dataclass(frozen=True)
class EngineUser:
    """The unprivileged user (``uid``, ``gid``) an engine runs as, while the worker stays root.

    Why: an agent runs commands of its own choosing. As root beside the worker it could read
    the job from the environment of the container's init (``/proc/1/environ``: same user, so
    the kernel allows it) and connect to the dispatcher's Redis socket mounted for offloaded
    jobs. As another user it can do neither: ``/proc/<pid>/environ`` of another user's process
    needs ``CAP_SYS_PTRACE``, and the socket is ``0700`` root.
    """

    uid: int
    gid: int

    @classmethod
    def parse(cls, text: str) -> EngineUser:
        """``"1000:1000"`` or ``"1000"`` (gid = uid). Raises ``ValueError`` for anything else."""
        uid, _, gid = text.partition(":")
        return cls(int(uid), int(gid or uid))


class EngineError(RuntimeError):
    """The engine is misconfigured or could not be started (not: it ran and failed)."""


@dataclass(frozen=True)
class EngineResult:
    """How the engine ended: ``exit_code`` 0 is success; ``summary`` is one paragraph or None.

    :meth:`reported_summary` is the summary as the worker reports it, cut at
    :data:`SUMMARY_MAX_BYTES`.
    """

    exit_code: int
    summary: str | None = None

    def reported_summary(self) -> str | None:
        """The summary cut at :data:`SUMMARY_MAX_BYTES` UTF-8 bytes, or None."""
        if self.summary is None:
            return None
        return cap_utf8(self.summary, SUMMARY_MAX_BYTES, SUMMARY_TRUNCATION_MARK)


SHELL_SIGNAL_BASE = 128
"""A POSIX shell reports a child killed by signal N as exit status 128 + N."""


def describe_exit(engine: str, exit_code: int) -> str:
    """One line saying how an engine that did not succeed ended, for the run's error.

    ``exit_code`` is the engine process's return code as :mod:`subprocess` gives it: negative
    ``-N`` when signal N killed the process itself, or ``128 + N`` when a shell reports that
    signal N killed its child. A SIGKILL that gaffer did not send is almost always the kernel's
    out-of-memory killer choosing the engine (the biggest process in the worker's memory cgroup,
    while the worker survives), so the line says so; other signals are named.
    """
    number: int | None = None
    if exit_code < 0:
        number = -exit_code
    elif SHELL_SIGNAL_BASE < exit_code < SHELL_SIGNAL_BASE + 65:
        number = exit_code - SHELL_SIGNAL_BASE
    if number is None:
        return f"engine {engine} exited with code {exit_code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    line = f"engine {engine} killed by {name} (exit {exit_code})"
    if number == signal.SIGKILL:
        line += ", likely out of memory"
    return line


class Engine(Protocol):
    """An agent engine. ``run`` blocks until the engine exits.

    ``checkout`` is the engine's own clone, on the run's branch: the worker commits the files
    it leaves there (its ``.git`` is the engine's to use, and is never used by the worker);
    ``scratch`` a directory outside it for files that must not be committed (the task file,
    say). Output goes to ``reporter`` as ``log`` lines on the ``engine`` stream.
    """

    name: str

    def run(
        self,
        job: JobData,
        checkout: Path,
        scratch: Path,
        reporter: Reporter,
        user: EngineUser | None = None,
    ) -> EngineResult:
        """Run the engine (as ``user`` when given, with ``HOME`` in ``scratch``, both owned by
        that user); raises :class:`EngineError` when it cannot start."""
        ...
