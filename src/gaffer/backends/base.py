"""The backend interface: start a worker for a job, stream its output, wait, stop, clean up.

Besides starting workers, a backend offers the dispatcher a few hooks with safe defaults, so
dispatch code never asks which backend it has:

* :meth:`Backend.check`: can the backend work at all (is its engine reachable)? Called at start.
* :meth:`Backend.recover`: re-attach to a run's worker after its dispatcher died; a backend
  whose workers outlive their dispatcher says so with :attr:`Backend.reattachable`, and a
  stopping dispatcher then leaves them running (:meth:`WorkerHandle.detach`) for the next one.
* :meth:`Backend.list_workers` / :meth:`Backend.discard_worker`: what the orphan sweep
  (:mod:`gaffer.dispatch.orphans`) looks at and removes.
* :meth:`WorkerHandle.exit_reason`: how a worker died, when the exit code alone cannot say
  (an out-of-memory kill, reported by the engine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from gaffer.queue.jobs import JobData

RUN_ID_ENV = "GAFFER_RUN_ID"
"""Every worker's env carries its run id under this name (the local backend finds a run's
process group by it in ``/proc``; a person reading ``ps e`` sees whose worker it is)."""


class BackendError(RuntimeError):
    """A worker could not be started or controlled (an infrastructure failure, not a run's).

    The dispatcher retries a start that raised this, with backoff.
    """


class PermanentStartError(BackendError):
    """Starting can never succeed as things are (the worker image cannot be had, say).

    The dispatcher fails the run at once (SYSTEM_FAILURE, this message as the reason) instead of
    retrying: a retry would fail the same way, only later.
    """


class WorkerNeverStartedError(BackendError):
    """:meth:`Backend.recover` found that the run's worker never started (no container was
    created, or it was created and never started): its engine never ran, so the run can start
    again from the beginning instead of failing."""


class WorkerLostError(BackendError):
    """:meth:`Backend.recover` found that the run's worker is gone (its container vanished).

    The message says what was found; the dispatcher records it as the run's FAILED reason.
    """


@dataclass(frozen=True)
class LogCursor:
    """How far a worker's output has been recorded: the UNIX ``second`` of the engine's
    timestamp on the last line recorded, and how many ``lines`` of that second were recorded.

    It is stored with each log batch (``runs.log_cursor``) so that a dispatcher that
    re-attaches to a dead one's worker asks the engine for the output from that second and
    skips the lines already recorded: every line once, whatever the delay between the engine
    stamping a line and the dead dispatcher receiving it. Seconds, because Podman stamps log
    lines to the second (Docker to the nanosecond); a second's lines come back in order.
    """

    second: int
    lines: int

    def __str__(self) -> str:
        return f"{self.second}:{self.lines}"

    @classmethod
    def parse(cls, text: str | None) -> LogCursor | None:
        """The cursor written as ``<second>:<lines>``; None for None or anything else."""
        second, sep, lines = (text or "").partition(":")
        if not (sep and second.isdigit() and lines.isdigit()):
            return None
        return cls(int(second), int(lines))


@dataclass(frozen=True)
class WorkerInfo:
    """A worker the backend knows about, for the orphan sweep.

    ``ref`` is what :meth:`Backend.discard_worker` takes (a container id), ``name`` a readable
    name, ``run_id`` the run it was started for (None when it carries none), ``created_at`` an
    aware UTC time, ``running`` whether it still runs.
    """

    ref: str
    name: str
    run_id: str | None
    created_at: datetime
    running: bool


class WorkerHandle(ABC):
    """A started worker. ``ref`` identifies it across processes (pgid, container id)."""

    ref: str

    @abstractmethod
    def output(self) -> AsyncIterator[str]:
        """The worker's output (stdout and stderr merged), line by line, until it exits."""

    @abstractmethod
    async def wait(self) -> int:
        """Wait for the worker to exit; returns its exit code.

        A local process killed by signal N gives -N; a container killed by signal N gives
        128 + N (the container engines' convention, e.g. 137 for SIGKILL). Raises
        :class:`WorkerLostError` when the worker vanished (its container was removed) and
        :class:`BackendError` when the engine cannot be asked; the dispatcher lets either fail
        the job's attempt.
        """

    @abstractmethod
    async def stop(self, grace_s: float) -> None:
        """SIGTERM the worker, then SIGKILL it after ``grace_s`` seconds if it still runs."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Release what the worker used (workspace, container). Called once, in every path."""

    async def detach(self) -> None:
        """Stop following the worker and leave it running (a dispatcher shutting down, on a
        :attr:`Backend.reattachable` backend). Called instead of :meth:`cleanup`."""
        return None

    def log_cursor(self) -> LogCursor | None:
        """How far :meth:`output` has got, for the line it yielded last (None when the backend
        cannot resume output: its worker does not outlive its dispatcher)."""
        return None

    def exit_reason(self, exit_code: int) -> str | None:
        """Why the worker ended with ``exit_code`` when only the backend can tell (for example
        "killed: out of memory"), else None. Called after :meth:`wait` returned, and only
        for an exit gaffer did not cause (no timeout, cancel or shutdown stop)."""
        return None


class Backend(ABC):
    """Starts workers of one kind."""

    name: str
    reattachable: bool = False
    """True when a worker outlives its dispatcher and :meth:`recover` re-attaches to it."""

    async def check(self) -> None:
        """Raise :class:`BackendError` when this backend cannot start workers at all (its
        engine is unreachable). Called once when a dispatcher starts. Default: no check."""
        return None

    @abstractmethod
    def base_env(self, job: JobData) -> dict[str, str]:
        """Backend-specific env entries (PATH, HOME...) for the worker env builder."""

    def worker_redis_url(self, redis_url: str) -> str:
        """The URL a worker of this backend reaches the dispatcher's Redis at (a container
        sees a mounted socket or another host name). Default: the same URL."""
        return redis_url

    @abstractmethod
    async def start(self, job: JobData, env: Mapping[str, str]) -> WorkerHandle:
        """Start a worker for ``job`` with exactly ``env``.

        Raises :class:`BackendError` (retried) or :class:`PermanentStartError` (not retried).
        """

    @abstractmethod
    async def recover(
        self, run_id: str, worker_ref: str | None, *, logs_from: LogCursor | None = None
    ) -> WorkerHandle | None:
        """After a dispatcher died: re-attach to the run's worker, or stop what is left of it
        and return None when re-attaching is impossible.

        ``logs_from`` is how far the dead dispatcher recorded the output (None: nothing): a
        re-attached handle's :meth:`WorkerHandle.output` starts just after it. Raises
        :class:`WorkerLostError` when the backend can tell the worker vanished, and
        :class:`WorkerNeverStartedError` when it can tell the worker never started.
        """

    async def list_workers(self) -> list[WorkerInfo]:
        """Every worker of this installation that the backend can find, running or exited.
        Default: none (a backend that cannot enumerate its workers has no orphan sweep)."""
        return []

    async def discard_worker(self, ref: str, grace_s: float) -> None:
        """Stop a worker found by :meth:`list_workers` (SIGTERM, ``grace_s`` s, SIGKILL) and
        remove it. Gone already is fine. Raises :class:`BackendError`."""
        raise NotImplementedError(f"the {self.name} backend lists no workers to discard")
