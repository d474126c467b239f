"""The backend interface: start a worker for a job, stream its output, wait, stop, clean up."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping

from gaffer.queue.jobs import JobData


class BackendError(RuntimeError):
    """A worker could not be started or controlled (an infrastructure failure, not a run's)."""


class WorkerHandle(ABC):
    """A started worker. ``ref`` identifies it across processes (pgid, container id)."""

    ref: str

    @abstractmethod
    def output(self) -> AsyncIterator[str]:
        """The worker's output (stdout and stderr merged), line by line, until it exits."""

    @abstractmethod
    async def wait(self) -> int:
        """Wait for the worker to exit; returns its exit code (negative: killed by signal N)."""

    @abstractmethod
    async def stop(self, grace_s: float) -> None:
        """SIGTERM the worker, then SIGKILL it after ``grace_s`` seconds if it still runs."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Release what the worker used (workspace, container). Called once, in every path."""


class Backend(ABC):
    """Starts workers of one kind."""

    name: str

    @abstractmethod
    def base_env(self, job: JobData) -> dict[str, str]:
        """Backend-specific env entries (PATH, HOME...) for the worker env builder."""

    def worker_redis_url(self, redis_url: str) -> str:
        """The URL a worker of this backend reaches the dispatcher's Redis at (a container
        sees a mounted socket or another host name). Default: the same URL."""
        return redis_url

    @abstractmethod
    async def start(self, job: JobData, env: Mapping[str, str]) -> WorkerHandle:
        """Start a worker for ``job`` with exactly ``env``. Raises :class:`BackendError`."""

    @abstractmethod
    async def recover(self, run_id: str, worker_ref: str | None) -> WorkerHandle | None:
        """After a dispatcher died: re-attach to the run's worker, or stop what is left of it
        and return None when re-attaching is impossible."""
