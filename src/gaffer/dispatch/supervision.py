"""Supervision of a running worker: its output, its exit, and the reasons to stop it.

While a run is RUNNING, :meth:`WorkerSupervisor.supervise` streams the worker's output into the
run log (parsing the worker's report as it goes, :class:`gaffer.dispatch.outcome.WorkerReport`)
and, every ``TICK_S``, checks in this order:

1. the dispatcher is stopping: on a backend whose workers outlive their dispatcher
   (``docker``) the worker is left running (:class:`WorkerDetachedError`); otherwise it is
   stopped and the run is to be re-queued;
2. the run's work-item lease was lost to another run (refreshed every third of ``lease_ms``):
   stopped, SYSTEM_FAILURE, so that at most one run of an agent type works on a work item;
3. the deadline (``timeout_s``): stopped, TIMED_OUT;
4. the stall timeout (no engine output for ``stall_timeout_s``): stopped, TIMED_OUT;
5. a stop request (:mod:`gaffer.coordination.cancel`): stopped, CANCELED with the canceler's
   reason, or FAILED when gaffer asked with a stop reason of its own (a budget exceeded).

Beside the checks, every ``ack_activity_interval_s`` the engine's latest activity (the last
line on its ``engine`` stream), when it changed, goes to ``on_activity``: the run's ack comment
on GitHub says what the engine is doing
(:meth:`gaffer.dispatch.recorder.RunRecorder.report_activity`).

A stop is SIGTERM, ``cancel_grace_s``, then SIGKILL (the backend's :meth:`WorkerHandle.stop`).
A worker that exits on its own ends the run by its exit and report
(:func:`gaffer.dispatch.outcome.outcome_of_exit`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gaffer.backends.base import WorkerHandle
from gaffer.coordination.cancel import cancel_requested, stop_reason
from gaffer.coordination.leases import LeaseKeys, RunLeases
from gaffer.dispatch.outcome import Outcome, WorkerReport, outcome_of_exit
from gaffer.dispatch.run_log import RunLogWriter
from gaffer.queue.jobs import JobData
from gaffer.runs.supersede import cancel_reason
from gaffer.settings import Settings
from gaffer.store.models import RunStatus
from gaffer.worker.events import parse_line

log = structlog.get_logger(__name__)

TICK_S = 0.25
"""Seconds between two checks of a running worker (stop, lease, deadline, stall, cancel)."""


ActivityHook = Callable[[JobData, str], Awaitable[None]]
"""Called with a running run's job and its engine's latest activity line (never raises)."""


class WorkerDetachedError(RuntimeError):
    """The dispatcher stopped and left the run's worker running; the job is delayed."""


class WorkerSupervisor:
    """Watches the running workers of one dispatcher (see the module docstring).

    ``stopping`` is the dispatcher's stop flag; ``reattachable`` is the backend's
    :attr:`Backend.reattachable` (its workers outlive their dispatcher). ``leases`` are the
    dispatcher's :class:`RunLeases` on ``redis``, which also holds the stop requests.
    ``on_activity`` hears the engine's latest activity (see the module docstring).
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        leases: RunLeases,
        *,
        stopping: asyncio.Event,
        reattachable: bool,
        on_activity: ActivityHook | None = None,
    ) -> None:
        self.settings = settings
        self.on_activity = on_activity
        self.redis = redis
        self.leases = leases
        self._stopping = stopping
        self.reattachable = reattachable

    async def supervise(
        self,
        handle: WorkerHandle,
        data: JobData,
        writer: RunLogWriter,
        keys: LeaseKeys,
        timeout_s: float,
    ) -> Outcome | None:
        """Stream output and wait for the exit, a timeout (``timeout_s`` seconds from now), a
        cancel, a dispatcher stop, or the loss of the run's work-item lock to another run (its
        lease lapsed: the run is stopped and ends SYSTEM_FAILURE, so that at most one run of an
        agent type works on a work item).

        Returns the run's :class:`Outcome`, or None when the dispatcher is stopping (the run is
        to be re-queued); raises :class:`WorkerDetachedError` when it is stopping and leaves the
        worker running. Redis errors of the stop-request checks propagate.
        """
        report = WorkerReport()
        pump = asyncio.create_task(self._pump(handle, writer, report))
        exit_task = asyncio.create_task(handle.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        refresh_every = self.settings.lease_ms / 3000
        # The first refresh comes at the first tick: a re-attached run whose work item another
        # run took meanwhile is stopped at once, not a third of a lease later.
        next_refresh = loop.time()
        stopped_for: str | None = None
        lost_to = ""
        next_activity = loop.time() + self.settings.ack_activity_interval_s
        reported: str | None = None
        try:
            while not exit_task.done():
                await asyncio.wait({exit_task}, timeout=TICK_S)
                if exit_task.done():
                    break
                await writer.flush()
                taken_by: str | None = None
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + refresh_every
                    taken_by = await self._refresh(keys, data.run_id)
                if self._stopping.is_set() and self.reattachable:
                    await writer.write(
                        "system", "dispatcher stopping: the worker runs on, to be re-attached"
                    )
                    raise WorkerDetachedError(data.run_id)
                if self._stopping.is_set():
                    stopped_for = "stopping"
                elif taken_by is not None:
                    stopped_for = "lease lost"
                    lost_to = taken_by
                elif loop.time() >= deadline:
                    stopped_for = "timeout"
                elif report.stalled_for() >= self.settings.stall_timeout_s:
                    stopped_for = "stall"
                elif await cancel_requested(self.redis, [data.run_id]):
                    stopped_for = "cancel"
                if stopped_for:
                    await writer.write("system", f"stopping the worker ({stopped_for})")
                    await handle.stop(self.settings.cancel_grace_s)
                    break
                if self.on_activity is not None and loop.time() >= next_activity:
                    next_activity = loop.time() + self.settings.ack_activity_interval_s
                    if report.activity is not None and report.activity != reported:
                        reported = report.activity
                        await self.on_activity(data, reported)
            exit_code = await exit_task
            await pump
        finally:
            for task in (pump, exit_task):
                if not task.done():
                    task.cancel()
        if stopped_for == "stopping":
            return None
        if stopped_for == "timeout":
            return Outcome(RunStatus.TIMED_OUT, exit_code, f"timed out after {data.timeout_s:g} s")
        if stopped_for == "stall":
            stall = self.settings.stall_timeout_s
            return Outcome(
                RunStatus.TIMED_OUT, exit_code, f"stalled: no engine output for {stall:g} s"
            )
        if stopped_for == "cancel":
            reason = await stop_reason(self.redis, data.run_id)
            if reason is not None:
                # gaffer stopped it (a budget exceeded), not a user: the run failed.
                return Outcome(RunStatus.FAILED, exit_code, reason)
            why = await cancel_reason(self.redis, data.run_id) or "canceled while running"
            return Outcome(RunStatus.CANCELED, exit_code, why)
        if stopped_for == "lease lost":
            return Outcome(
                RunStatus.SYSTEM_FAILURE,
                exit_code,
                f"stopped: its work-item lease lapsed and run {lost_to} took the work item"
                " (one run of an agent type per work item at a time)",
            )
        outcome = outcome_of_exit(exit_code, report, handle.exit_reason(exit_code))
        if outcome.status is not RunStatus.SUCCEEDED:
            # The engine may fail on the refused call before the stop request is acted on:
            # the run failed for gaffer's reason (a budget exceeded), not the engine's.
            reason = await stop_reason(self.redis, data.run_id)
            if reason is not None:
                outcome.error = reason
        return outcome

    async def _pump(self, handle: WorkerHandle, writer: RunLogWriter, report: WorkerReport) -> None:
        async for line in handle.output():
            parsed = parse_line(line)
            report.note(parsed)
            cursor = handle.log_cursor()
            if parsed.event is None:
                await writer.write("worker", parsed.raw, cursor)
            elif parsed.event == "log":
                stream = str(parsed.fields.get("stream", "worker"))
                await writer.write(stream, str(parsed.fields.get("message", "")), cursor)
            else:
                details = " ".join(f"{k}={v}" for k, v in parsed.fields.items() if v is not None)
                await writer.write("worker", f"{parsed.event} {details}".rstrip(), cursor)

    async def _refresh(self, keys: LeaseKeys, run_id: str) -> str | None:
        """Refresh a running run's leases; returns the id of the run that took its work item
        (the run is then to be stopped), else None. A Redis error is logged and the run goes
        on: its leases last ``lease_ms`` and the next refresh may get through."""
        try:
            taken_by = await self.leases.refresh(keys, run_id)
        except RedisError as exc:
            log.warning("run_lease_refresh_failed", run_id=run_id, error=str(exc))
            return None
        if taken_by is not None:
            log.warning("run_lease_lost", run_id=run_id, lock=keys.lock, taken_by=taken_by)
        return taken_by
