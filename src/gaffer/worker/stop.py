"""SIGTERM in the worker: pass it to the engine's whole process tree, and let the engine finish.

A timeout, a cancel or a shutdown stops a worker with SIGTERM and a grace period
(``GAFFER_CANCEL_GRACE_S``) before SIGKILL. The grace is for the *engine*: an agent CLI may
want to save a transcript or kill its own children. Python's default action for SIGTERM would
end the worker at once, and its backend would then SIGKILL everything left, so the engine would
get milliseconds instead of the grace. So the worker:

* leads a process group of its own (the ``local`` backend already starts it so; in a container
  its parent is the init, which forwards SIGTERM to the worker only), and its engine and git
  subprocesses stay in that group;
* on the first SIGTERM, sends SIGTERM to that whole group (the engine's shell and everything it
  started) and goes on waiting for the engine, relaying its last output;
* then reports a failed result: work stopped half-way is never committed or pushed.

The backend's SIGKILL after the grace still ends whatever did not stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType


class StopSignal:
    """Whether the worker was asked to stop, set by its SIGTERM handler (see module docstring).

    Install once, early in the worker's main thread, with :meth:`install`.
    """

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        """Lead a process group (unless already leading one) and handle SIGTERM.

        ``setpgid`` fails with EPERM for a session leader, which already leads its group; any
        such failure leaves the worker where it is (the backend's group signal still works).
        """
        if os.getpgrp() != os.getpid():
            with contextlib.suppress(OSError):
                os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            return  # our own group-wide SIGTERM coming back, or the backend's again
        self.requested = True
        if os.getpgrp() == os.getpid():
            with contextlib.suppress(OSError):
                os.killpg(os.getpid(), signal.SIGTERM)
