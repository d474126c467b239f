"""The run queue: a BullMQ queue whose job ids are run ids.

Using the run id as the BullMQ job id makes ``add`` idempotent: re-adding the job of a run that
already has one is a no-op in BullMQ's ``addStandardJob`` script. That is what lets the repair
sweep re-add jobs blindly after a crash without ever duplicating a run.

Keys live under ``gaffer:<queue name>:`` (BullMQ prefix ``gaffer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from bullmq import Queue
from redis.exceptions import TimeoutError as RedisTimeoutError

from gaffer.queue.jobs import JobData

QUEUE_PREFIX = "gaffer"
JOB_ATTEMPTS = 5
"""Attempts of a job whose *spawn* fails (infrastructure errors); a failed run is not retried."""
JOB_BACKOFF_MS = 1000
"""First retry delay of a failed spawn, doubled at each attempt (BullMQ exponential backoff)."""

JOB_OPTIONS: dict[str, Any] = {
    "attempts": JOB_ATTEMPTS,
    "backoff": {"type": "exponential", "delay": JOB_BACKOFF_MS},
    "removeOnComplete": {"age": 24 * 3600, "count": 10_000},
    "removeOnFail": {"age": 7 * 24 * 3600},
}


BULLMQ_SOCKET_TIMEOUT_S = 30
"""Socket timeout of BullMQ's Redis connections. redis-py 8 defaults to 5 s, but BullMQ's worker
blocks in ``BZPOPMIN`` for up to 10 s waiting for the next delayed job: with the default, every
wait longer than 5 s times out and is retried with backoff, and a job retried after an 8 s
backoff was never picked up again (seen here: attempts 1-4 ran, the 5th never did)."""


QUEUE_CALL_TIMEOUT_S = 10.0
"""How long one queue call (add, state, remove, counts) may take, in seconds. BullMQ's client
retries a refused connection without end, so with its Redis gone an ``add`` would hang the
webhook request that made it (GitHub gives up after 10 s and retries) and hold its delivery
claim; after this long the call raises ``redis.exceptions.TimeoutError`` like any Redis error."""

T = TypeVar("T")


def bullmq_connection_url(redis_url: str) -> str:
    """``redis_url`` with ``socket_timeout`` set for BullMQ (unless the URL sets one)."""
    base, _, query_string = redis_url.partition("?")
    query = dict(parse_qsl(query_string))
    query.setdefault("socket_timeout", str(BULLMQ_SOCKET_TIMEOUT_S))
    return f"{base}?{urlencode(query)}"


def bullmq_options(redis_url: str) -> dict[str, Any]:
    """Connection options shared by the queue and the BullMQ worker."""
    return {"connection": bullmq_connection_url(redis_url), "prefix": QUEUE_PREFIX}


class RunQueue:
    """Adds, inspects and removes run jobs. Create one per process and :meth:`close` it."""

    def __init__(
        self, redis_url: str, name: str, *, call_timeout_s: float = QUEUE_CALL_TIMEOUT_S
    ) -> None:
        self.name = name
        self.call_timeout_s = call_timeout_s
        self._queue = Queue(name, bullmq_options(redis_url))

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """Await ``call`` for at most :attr:`call_timeout_s`; raises
        ``redis.exceptions.TimeoutError`` after that (see :data:`QUEUE_CALL_TIMEOUT_S`)."""
        try:
            return await asyncio.wait_for(call, timeout=self.call_timeout_s)
        except TimeoutError:
            raise RedisTimeoutError(
                f"the queue's Redis did not answer {what} within {self.call_timeout_s:g} s"
            ) from None

    async def add(self, job: JobData) -> None:
        """Enqueue ``job`` under its run id (a no-op if that job id already exists).
        Raises Redis errors, ``TimeoutError`` after :attr:`call_timeout_s`."""
        options = {**JOB_OPTIONS, "jobId": job.run_id}
        await self._call(
            "add", self._queue.add(job.agent_type, job.model_dump(mode="json"), options)
        )

    async def state(self, run_id: str) -> str:
        """BullMQ state of a run's job: ``waiting``, ``active``, ``delayed``, ``completed``,
        ``failed``, ..., or ``unknown`` when there is no such job. Raises like :meth:`add`."""
        return str(await self._call("getJobState", self._queue.getJobState(run_id)))

    async def remove(self, run_id: str) -> bool:
        """Remove a run's job unless a worker holds it. True if a job was removed. Raises like
        :meth:`add`."""
        return bool(await self._call("remove", self._queue.remove(run_id)) == 1)

    async def counts(self) -> dict[str, int]:
        """Jobs per state (``waiting``, ``active``, ``delayed``, ``completed``, ``failed``).
        Raises like :meth:`add`."""
        counts = await self._call(
            "getJobCounts",
            self._queue.getJobCounts("waiting", "active", "delayed", "completed", "failed"),
        )
        return {k: int(v) for k, v in counts.items()}

    async def close(self) -> None:
        """Close the queue's Redis connection."""
        await self._queue.close()
