"""The dispatcher: consumes the run queue, takes up each run job and sees its run through.

This module is the job intake (leases, the claim, the worker's start, re-attaching, the
dispatcher's start and stop); the parts it drives are modules of their own: the watch of a
running worker (:mod:`gaffer.dispatch.supervision`), the recording of a run's states and end
(:mod:`gaffer.dispatch.recorder`, with the outcome read from the worker's report in
:mod:`gaffer.dispatch.outcome`), the periodic repair (:mod:`gaffer.dispatch.repair`) and the
orphan sweep (:mod:`gaffer.dispatch.orphans`).

Slots: the BullMQ worker's ``concurrency`` is ``GAFFER_MAX_WORKERS``. BullMQ only takes a job
from the queue when a slot is free, so a job that arrives while every slot is busy waits in the
queue; it is never failed for lack of a slot.

For each job (:meth:`Dispatcher.process`):

1. Claim the run: compare-and-set QUEUED → STARTING. If the run is no longer QUEUED (it was
   canceled, or another dispatcher died while running it), act on that and finish the job.
2. Build the worker env (:func:`gaffer.dispatch.worker_env.build_worker_env`) and start the
   worker through the backend. If that fails (an infrastructure error), the run goes back to
   QUEUED and the job is failed so BullMQ retries it with backoff; on the last attempt, or at
   once when the backend says a retry cannot help (:class:`PermanentStartError`: the worker
   image cannot be had), the run becomes SYSTEM_FAILURE.
3. RUNNING: stream the worker's output into the run log, parse its report, and watch the
   deadline and the cancel request (:class:`gaffer.dispatch.supervision.WorkerSupervisor`). A
   timeout or cancel stops the worker (SIGTERM, grace, SIGKILL) and ends the run TIMED_OUT or
   CANCELED.
4. Record the exit (SUCCEEDED / FAILED, exit code, branch, commit, summary, error, and the
   outbox's GitHub writes: :meth:`gaffer.dispatch.recorder.RunRecorder.finish`), then clean up
   the worker: removing it only after its exit is recorded means a crash in between leaves a
   finished run and a leftover worker (which the orphan sweep removes), never a lost outcome.

When a job comes back whose run is already STARTING or RUNNING (the dispatcher running it died
and the job's lock lapsed), the backend re-attaches to the run's worker when it can (``docker``:
the container outlives its dispatcher): output from just after the last line the dead
dispatcher recorded (the log cursor written with each batch: every line once), the wait, and
the timeout counted from the run's ``started_at``. A worker that vanished makes
the run FAILED with the reason; a backend that cannot re-attach (``local``) stops what is left
and the run becomes SYSTEM_FAILURE.

The repair (:mod:`gaffer.dispatch.repair`) runs at start and every ``repair_interval_s``; the
orphan sweep (:mod:`gaffer.dispatch.orphans`) at start and every ``orphan_sweep_interval_s``.

On a graceful stop, runs still in progress are stopped, put back to QUEUED and their jobs
failed with a retry, so another (or the restarted) dispatcher runs them again. On a backend
whose workers outlive their dispatcher (``docker``), they are left running instead and their
jobs delayed by ``slot_wait_ms`` (no attempt used): the dispatcher that takes the job next
re-attaches, so a restart for a deploy loses no agent's work. Their leases are kept; they lapse
after ``lease_ms`` if no dispatcher takes over by then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import redis.asyncio as aioredis
import structlog
from bullmq import Job, Worker
from bullmq.custom_errors import DelayedError

from gaffer.backends.base import (
    Backend,
    LogCursor,
    PermanentStartError,
    WorkerHandle,
    WorkerLostError,
    WorkerNeverStartedError,
)
from gaffer.coordination.client import connect
from gaffer.coordination.job_readers import JobReaderError
from gaffer.coordination.leases import LeaseKeys, LeaseResult, RunLeases
from gaffer.dispatch.engine_secrets import GatewayAccess, engine_secret_env
from gaffer.dispatch.github_start import start_error, start_on_github, started_job
from gaffer.dispatch.orphans import OrphanSweeper
from gaffer.dispatch.outcome import Outcome
from gaffer.dispatch.recorder import RunFinishedHook, RunRecorder
from gaffer.dispatch.repair import RunRepair
from gaffer.dispatch.run_log import RunLogWriter
from gaffer.dispatch.supervision import WorkerDetachedError, WorkerSupervisor
from gaffer.dispatch.worker_env import build_worker_env
from gaffer.queue.jobs import JobData
from gaffer.queue.queues import JOB_ATTEMPTS, bullmq_options
from gaffer.runs.engine import IN_PROGRESS, RunEngine
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus, utcnow

__all__ = [
    "Dispatcher",
    "DispatcherStoppingError",
    "MustWaitForSlotError",
    "RunFinishedHook",
    "SpawnFailedError",
    "WorkerDetachedError",
]

log = structlog.get_logger(__name__)

MAX_STALLED_COUNT = 3
RUN_RETRY_DELAY_MS = 2000
"""Pause of the BullMQ worker loop after a Redis error, before it fetches again."""
OUTPUT_OVERLAP_S = 1
"""Only for a run recorded with no log cursor (by a gaffer from before cursors): its re-attached
worker's output starts this many seconds before the last line the dead dispatcher recorded
(lines are stamped when received, a little after they were written)."""


class SpawnFailedError(RuntimeError):
    """Starting a worker failed; BullMQ retries the job with backoff."""


class DispatcherStoppingError(RuntimeError):
    """The dispatcher stopped while the run was in progress; the job is retried."""


class MustWaitForSlotError(RuntimeError):
    """A run taken up without its leases turned out to have no worker (it never started), so
    it is QUEUED again and, like any newcomer, waits for the leases ``lease`` says it lacks."""

    def __init__(self, lease: LeaseResult) -> None:
        super().__init__(f"waiting for a slot: {lease.reason}")
        self.lease = lease


class Dispatcher:
    """Consumes the run queue with at most ``settings.max_workers`` workers at once."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis_url: str,
        backend: Backend,
        run_engine: RunEngine,
        *,
        box: SecretBox | None = None,
        gateway: GatewayAccess | None = None,
        on_run_finished: RunFinishedHook | None = None,
    ) -> None:
        self.settings = settings
        self.box = box
        self.gateway = gateway
        self.db = db
        self.redis_url = redis_url
        self.backend = backend
        self.run_engine = run_engine
        self.redis: aioredis.Redis = connect(redis_url)
        self._worker: Worker | None = None
        self._stopping = asyncio.Event()
        self._waiting_logged: set[str] = set()
        self.active: dict[str, WorkerHandle] = {}
        self.recorder = RunRecorder(db, self.redis, on_run_finished=on_run_finished)
        self.orphans = OrphanSweeper(
            settings, db, backend, busy=self.active.keys, fail_run=self.recorder.fail_orphaned
        )
        self.leases = RunLeases(
            self.redis,
            lease_ms=settings.lease_ms,
            project_cap=settings.max_runs_per_project_agent,
            global_cap=settings.global_max_workers,
        )
        self.supervisor = WorkerSupervisor(
            settings,
            self.redis,
            self.leases,
            stopping=self._stopping,
            reattachable=backend.reattachable,
            on_activity=self.recorder.report_activity,
        )
        self.repairs = RunRepair(
            settings,
            self.redis,
            backend,
            run_engine,
            self.recorder,
            busy=self.active.keys,
            waiting=self._waiting_logged,
        )

    async def start(self) -> None:
        """Check the backend, repair lost jobs, sweep orphaned workers, then start consuming
        the queue and the periodic sweeps. Raises the backend's :class:`BackendError`."""
        await self.backend.check()
        await self.repairs.repair()
        await self.orphans.start()
        self._worker = Worker(
            self.settings.queue_name,
            self.process,
            {
                **bullmq_options(self.redis_url),
                "concurrency": self.settings.max_workers,
                "lockDuration": self.settings.job_lock_ms,
                "stalledInterval": self.settings.stalled_interval_ms,
                "maxStalledCount": MAX_STALLED_COUNT,
                "runRetryDelay": RUN_RETRY_DELAY_MS,
            },
        )
        self.repairs.start()
        log.info(
            "dispatcher_started", backend=self.backend.name, max_workers=self.settings.max_workers
        )

    async def stop(self) -> None:
        """Stop taking jobs; runs in progress are stopped and re-queued for another dispatcher."""
        self._stopping.set()
        await self.repairs.stop()
        await self.orphans.stop()
        if self._worker is not None:
            await self._worker.close()
        await self.redis.aclose()
        log.info("dispatcher_stopped")

    # -- one job ------------------------------------------------------------------------------

    async def process(self, job: Job, token: str) -> dict[str, Any]:
        """BullMQ processor of one run job (see the module docstring).

        Returns the job's result: ``{"status": <final RunStatus>}`` when this call recorded
        how the run ended, or ``{"skipped": <reason>}`` when there was nothing to run (the run
        is missing, or already finished or canceled). Raises, for BullMQ:

        * :class:`DelayedError` after moving the job back to ``delayed`` (no attempt used): the
          run's leases are taken (it waits for a slot), or the dispatcher is stopping and left
          the worker running for the next dispatcher to re-attach;
        * :class:`SpawnFailedError`: the worker could not be started; the run is QUEUED again
          and BullMQ retries the job with backoff;
        * :class:`DispatcherStoppingError`: the dispatcher stopped the worker while stopping;
          the run is QUEUED again for the retry;
        * anything else (a database or Redis error): the attempt fails and BullMQ retries it;
          when the attempts are used up, the periodic repair ends the run SYSTEM_FAILURE.

        The run's leases are released whichever way it leaves, except when its worker is left
        running to be re-attached.
        """
        data = JobData.model_validate(job.data)
        keys = LeaseKeys.of(data.project_id, data.agent_type, data.task.work_item)
        lease = await self.leases.acquire(keys, data.run_id)
        if not lease.acquired:
            if await asyncio.to_thread(self.recorder.in_progress, data.run_id):
                # Its worker exists (a dead or stopped dispatcher's run, taken up again): it
                # is settled or re-attached now, not delayed behind the lapsed lock another run
                # took meanwhile, which would leave the worker unsupervised. It takes back its
                # slots, and the lock too unless that other run holds it: then a re-attached
                # worker is stopped at the first refresh (one run per work item), and a worker
                # that never started waits its turn (MustWaitForSlotError).
                await self.leases.refresh(keys, data.run_id)
                log.warning(
                    "run_taken_up_without_its_lease",
                    run_id=data.run_id,
                    reason=lease.reason,
                    detail=lease.detail,
                )
            else:
                await self._wait_for_slot(job, token, data, lease)
        detached = False
        try:
            return await self._run(job, data, keys)
        except WorkerDetachedError:
            # The run goes on in its worker: the next dispatcher to take the job re-attaches.
            detached = True
            await job.moveToDelayed(int(time.time() * 1000) + self.settings.slot_wait_ms, token)
            raise DelayedError() from None
        except MustWaitForSlotError as exc:
            await self._wait_for_slot(job, token, data, exc.lease)
        except (DelayedError, SpawnFailedError, DispatcherStoppingError):
            raise
        except Exception:
            log.exception("run_dispatch_failed", run_id=data.run_id)
            raise
        finally:
            # Whichever way the run left this dispatcher, its leases go with it (a detached
            # run keeps them, for the dispatcher that re-attaches).
            if not detached:
                await self.leases.release(keys, data.run_id)

    async def _wait_for_slot(
        self, job: Job, token: str, data: JobData, lease: LeaseResult
    ) -> NoReturn:
        """Put the job back for ``slot_wait_ms``: it waits, it is not failed (no attempt used)."""
        if data.run_id not in self._waiting_logged:
            self._waiting_logged.add(data.run_id)
            log.info(
                "run_waiting_for_slot",
                run_id=data.run_id,
                reason=lease.reason,
                detail=lease.detail,
            )
        await job.moveToDelayed(int(time.time() * 1000) + self.settings.slot_wait_ms, token)
        raise DelayedError()

    async def _run(self, job: Job, data: JobData, keys: LeaseKeys) -> dict[str, Any]:
        """Claim the run, start its worker, supervise it and record how it ended."""
        run_id = data.run_id
        self._waiting_logged.discard(run_id)
        claimed = await asyncio.to_thread(
            self.recorder.transition,
            run_id,
            [RunStatus.QUEUED],
            RunStatus.STARTING,
            started_at=utcnow(),
        )
        if not claimed:
            return await self._not_queued(job, data, keys)
        writer = RunLogWriter(self.db, run_id)
        await writer.write("system", f"dispatching to the {self.backend.name} backend")
        try:
            github = await start_on_github(self.db, self.box, self.redis, data)
            if github.refusal is not None:
                await writer.write("system", f"not started: {github.refusal}")
                await writer.flush()
                outcome = Outcome(RunStatus.CANCELED, error=github.refusal)
                await self.recorder.finish(data, outcome, from_statuses=[RunStatus.STARTING])
                return {"status": outcome.status.value}
            data = github.data
            secrets = await asyncio.to_thread(
                engine_secret_env, self.db, self.box, data, self.gateway
            )
            env = await build_worker_env(
                data,
                {**self.backend.base_env(data), **secrets, **github.env},
                settings=self.settings,
                redis=self.redis,
                worker_redis_url=self.settings.worker_redis_url
                or self.backend.worker_redis_url(self.redis_url),
            )
            handle = await self.backend.start(data, env)
        except Exception as exc:
            await writer.write("system", f"worker start failed: {exc}")
            await writer.flush()
            return await self._spawn_failed(job, data, start_error(exc))
        await writer.write("system", f"worker started ({handle.ref})")
        return await self._attend(handle, data, keys, writer, data.timeout_s, [RunStatus.STARTING])

    async def _attend(
        self,
        handle: WorkerHandle,
        data: JobData,
        keys: LeaseKeys,
        writer: RunLogWriter,
        timeout_s: float,
        from_statuses: Sequence[RunStatus],
    ) -> dict[str, Any]:
        """Mark the run RUNNING, supervise its worker for at most ``timeout_s`` more seconds,
        record the outcome, then clean the worker up (every path)."""
        run_id = data.run_id
        self.active[run_id] = handle
        outcome: Outcome | None = None
        detached = False
        try:
            await asyncio.to_thread(
                self.recorder.transition,
                run_id,
                from_statuses,
                RunStatus.RUNNING,
                worker_ref=handle.ref,
                writes_of=data if RunStatus.STARTING in from_statuses else None,
            )
            outcome = await self.supervisor.supervise(handle, data, writer, keys, timeout_s)
            await writer.flush()
            if outcome is not None:
                await self.recorder.finish(data, outcome)
        except WorkerDetachedError:
            detached = True
            raise
        finally:
            self.active.pop(run_id, None)
            try:
                await writer.flush()
            finally:
                # Even when the log cannot be written (the database is down), the worker's
                # process group or container must not outlive this attempt.
                await (handle.detach() if detached else handle.cleanup())
        if outcome is None:
            await asyncio.to_thread(
                self.recorder.transition, run_id, IN_PROGRESS, RunStatus.QUEUED, worker_ref=None
            )
            raise DispatcherStoppingError(f"dispatcher stopped while run {run_id} was running")
        return {"status": outcome.status.value}

    async def _not_queued(self, job: Job, data: JobData, keys: LeaseKeys) -> dict[str, Any]:
        """The run was not QUEUED when its job came up."""
        run = await asyncio.to_thread(self.recorder.load, data.run_id)
        if run is None:
            log.warning("run_missing_for_job", run_id=data.run_id)
            return {"skipped": "no such run"}
        status = RunStatus(run.status)
        if status in IN_PROGRESS:
            # A dispatcher died while running it (its job stalled and came back): from the
            # started job kept on its row (the GitHub context fetched at start).
            return await self._reattach(job, run, started_job(run.job_data, data), keys)
        log.info("run_job_skipped", run_id=run.id, status=str(status))
        return {"skipped": str(status)}

    async def _reattach(self, job: Job, run: Run, data: JobData, keys: LeaseKeys) -> dict[str, Any]:
        """Take over the worker of a run whose dispatcher died (see the module docstring)."""
        logs_from = LogCursor.parse(run.log_cursor)
        if logs_from is None:
            # Recorded by a gaffer that kept no cursor: from a little before the last line's
            # arrival (a line may be recorded twice, or lost if it arrived over
            # OUTPUT_OVERLAP_S late).
            last_output = await asyncio.to_thread(self.recorder.last_output_time, run.id)
            if last_output is not None:
                logs_from = LogCursor(int(last_output.timestamp()) - OUTPUT_OVERLAP_S, 0)
        try:
            handle = await self.backend.recover(run.id, run.worker_ref, logs_from=logs_from)
        except WorkerNeverStartedError as exc:
            # Its engine never ran: start the run from the beginning rather than fail it.
            log.warning("run_restarted_never_started", run_id=run.id, reason=str(exc))
            requeued = await asyncio.to_thread(
                self.recorder.transition, run.id, IN_PROGRESS, RunStatus.QUEUED, worker_ref=None
            )
            if not requeued:
                return {"skipped": "finished meanwhile"}
            note = RunLogWriter(self.db, run.id)
            await note.write("system", f"its worker never started ({exc}); starting it again")
            await note.flush()
            # Taken up without its leases, it starts only once it holds them.
            lease = await self.leases.acquire(keys, run.id)
            if not lease.acquired:
                raise MustWaitForSlotError(lease) from exc
            return await self._run(job, data, keys)
        except WorkerLostError as exc:
            outcome = Outcome(RunStatus.FAILED, error=str(exc))
            await self.recorder.finish(data, outcome, from_statuses=IN_PROGRESS)
            return {"status": outcome.status.value}
        if handle is None:
            outcome = Outcome(
                RunStatus.SYSTEM_FAILURE,
                error="the dispatcher running this run died; its worker was stopped",
            )
            await self.recorder.finish(data, outcome, from_statuses=IN_PROGRESS)
            return {"status": outcome.status.value}
        log.info("worker_reattached", run_id=run.id, worker_ref=handle.ref)
        writer = RunLogWriter(self.db, run.id)
        await writer.write("system", f"re-attached to the worker ({handle.ref})")
        elapsed = (utcnow() - run.started_at).total_seconds() if run.started_at else 0.0
        return await self._attend(handle, data, keys, writer, data.timeout_s - elapsed, IN_PROGRESS)

    async def _spawn_failed(self, job: Job, data: JobData, exc: Exception) -> dict[str, Any]:
        attempt = int(getattr(job, "attemptsMade", 0)) + 1
        log.error("worker_spawn_failed", run_id=data.run_id, attempt=attempt, error=str(exc))
        # A set-up error (no image, no right to create the worker's Redis user) fails the same
        # way on every retry: the run fails at once, with what to do.
        permanent = isinstance(exc, PermanentStartError | JobReaderError)
        if permanent or attempt >= JOB_ATTEMPTS:
            error = (
                str(exc)
                if permanent
                else f"worker could not be started after {attempt} attempts: {exc}"
            )
            outcome = Outcome(RunStatus.SYSTEM_FAILURE, error=error)
            await self.recorder.finish(data, outcome, from_statuses=[RunStatus.STARTING])
            return {"status": outcome.status.value}
        await asyncio.to_thread(
            self.recorder.transition, data.run_id, IN_PROGRESS, RunStatus.QUEUED, worker_ref=None
        )
        raise SpawnFailedError(str(exc)) from exc
