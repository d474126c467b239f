"""Stopping an agent CLI from what it prints: for CLIs whose own retries cannot be bounded.

opencode and aider retry a failing model call for about a minute and no setting shortens
that; both print a line at each failure. Their engines run the CLI through
:func:`pid_argv` (a ``/bin/sh`` that prints its pid, then becomes the CLI), hand every line to
:meth:`CliStopper.on_line` first, and call :meth:`CliStopper.stop` when the CLI has failed
often enough: SIGTERM, then SIGKILL :data:`STOP_GRACE_S` later if it is still there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Sequence

PID_PREFIX = "gaffer-engine-pid "
"""The first line the launching shell prints: the pid of the CLI process it becomes."""

STOP_GRACE_S = 5.0
"""How long the CLI has to exit after :meth:`CliStopper.stop`'s SIGTERM, before SIGKILL."""


def pid_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` run by ``/bin/sh``, which first prints :data:`PID_PREFIX` and its pid, then
    ``exec``\\ s ``argv`` (so the pid is the CLI's own)."""
    script = f'echo "{PID_PREFIX}$$"; exec "$0" "$@"'
    return ["/bin/sh", "-c", script, *argv]


class CliStopper:
    """Knows the CLI's pid (from the first line it printed) and can stop it.

    ``stopped`` is the reason given to :meth:`stop` (None: not stopped). :meth:`close` once the
    CLI has exited (cancels a pending SIGKILL).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.stopped: str | None = None
        self._killer: threading.Timer | None = None

    def on_line(self, line: str) -> bool:
        """True when ``line`` was the pid line (it is not the CLI's output)."""
        if self.pid is not None or not line.startswith(PID_PREFIX):
            return False
        with contextlib.suppress(ValueError):
            self.pid = int(line.removeprefix(PID_PREFIX))
        return True

    def stop(self, reason: str) -> None:
        """SIGTERM to the CLI, SIGKILL :data:`STOP_GRACE_S` later if it is still running.
        Only the first call counts."""
        if self.stopped is not None:
            return
        self.stopped = reason
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

        self._killer = threading.Timer(STOP_GRACE_S, kill)
        self._killer.daemon = True
        self._killer.start()

    def close(self) -> None:
        """The CLI has exited: cancel a pending SIGKILL (its pid may be reused)."""
        if self._killer is not None:
            self._killer.cancel()
