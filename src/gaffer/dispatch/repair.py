"""The dispatcher's periodic repair of runs and jobs that a crash or an outage left behind.

A dispatcher repairs when it starts and every ``repair_interval_s`` (60 s):

* :meth:`gaffer.runs.engine.RunEngine.repair`: a QUEUED run without a job gets its job again; a
  STARTING or RUNNING run whose job is failed, completed or gone ends SYSTEM_FAILURE
  ("abandoned: ...") and releases its leases. For a backend whose workers do not outlive their
  dispatcher (``local``), what is left of such a run's worker (its process group and workspace)
  is stopped, unless this dispatcher is supervising it; a container is the orphan sweep's
  (:mod:`gaffer.dispatch.orphans`);
* with ``worker_redis_access == "scoped"``: the per-job Redis users whose job was read, or
  expired, are deleted (:func:`gaffer.coordination.job_readers.sweep_job_readers`);
* the runs logged as waiting for a slot (``run_waiting_for_slot``, logged once per run) that no
  longer wait are forgotten, so a run canceled while it waited does not stay in that set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gaffer.backends.base import Backend
from gaffer.coordination.job_readers import sweep_job_readers
from gaffer.dispatch.recorder import RunRecorder
from gaffer.runs.engine import RunEngine
from gaffer.settings import Settings

log = structlog.get_logger(__name__)


class RunRepair:
    """Repairs for one dispatcher (see the module docstring).

    ``busy()`` returns the ids of the runs the dispatcher is supervising; ``waiting`` is the
    dispatcher's set of run ids logged as waiting for a slot, pruned in place.
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        backend: Backend,
        run_engine: RunEngine,
        recorder: RunRecorder,
        *,
        busy: Callable[[], Collection[str]],
        waiting: set[str],
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.backend = backend
        self.run_engine = run_engine
        self.recorder = recorder
        self._busy = busy
        self._waiting_logged = waiting
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Repair every ``repair_interval_s`` in a background task (the first after one
        interval: the dispatcher repairs once itself before it starts consuming)."""
        self._task = asyncio.create_task(self._repair_forever())

    async def stop(self) -> None:
        """Cancel the periodic repair and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _repair_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.repair_interval_s)
            try:
                await self.repair()
            except Exception:
                log.exception("run_repair_failed")

    async def repair(self) -> None:
        """:meth:`RunEngine.repair`; a run it fails has what is left of its worker stopped
        (``local``: its process group and workspace; a container is the orphan sweep's).
        Then delete the per-job Redis users whose job was read (or expired), and forget the
        runs logged as waiting for a slot that no longer wait.

        Raises what :meth:`RunEngine.repair` and the database raise; a Redis error of the
        job-reader sweep is logged (``job_readers_sweep_failed``) and not raised."""

        async def stop_leftover(run_id: str, worker_ref: str | None) -> None:
            if not self.backend.reattachable and run_id not in self._busy():
                await self.backend.recover(run_id, worker_ref)

        await self.run_engine.repair(on_abandoned=stop_leftover)
        if self.settings.worker_redis_access == "scoped":
            try:
                swept = await sweep_job_readers(self.redis)
            except RedisError as exc:
                # Without ACL rights offloads fail too, and say what to do; runs whose job
                # fits inline go on.
                log.warning("job_readers_sweep_failed", error=str(exc))
            else:
                if swept:
                    log.info("job_readers_swept", users=swept)
        # A run canceled while it waited for a slot never comes back to clear its entry.
        waiting = list(self._waiting_logged)
        if waiting:
            queued = await asyncio.to_thread(self.recorder.queued_among, waiting)
            self._waiting_logged.difference_update(set(waiting) - queued)
