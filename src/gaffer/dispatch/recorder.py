"""Recording a run's state: the dispatcher's reads and writes of its run rows.

Every state change is a compare-and-set (:func:`gaffer.store.runs.transition`) in a session of
its own, so two dispatchers that took up the same run cannot both move it. A change that GitHub
is to hear about (the run started, the run finished) puts its GitHub writes in the outbox in the
same transaction (:func:`gaffer.dispatch.github_writes.enqueue_moment`): the writes exist if and
only if the state does.

:meth:`RunRecorder.finish` is the end of every run: the outcome's columns
(:meth:`gaffer.dispatch.outcome.Outcome.columns`), the run's stop keys cleared in Redis, a
``run_finished`` log event, and the post-completion hook (:data:`RunFinishedHook`, the
follow-ups of :mod:`gaffer.dispatch.followups`) when this call is the one that recorded it.

The synchronous methods use the database: call them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog
from sqlalchemy import select

from gaffer.coordination.cancel import cancel_key, stop_reason_key
from gaffer.dispatch.github_writes import enqueue_activity, enqueue_moment
from gaffer.dispatch.outcome import Outcome
from gaffer.queue.jobs import JobData
from gaffer.runs.engine import IN_PROGRESS
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus
from gaffer.store.runs import last_output_time, transition

log = structlog.get_logger(__name__)

RunFinishedHook = Callable[[JobData, RunStatus], Awaitable[object]]
"""Called once a run's final status is recorded (post-completion follow-ups)."""


class RunRecorder:
    """Reads and records the runs of one dispatcher in ``db``; ``redis`` holds their stop keys
    (:mod:`gaffer.coordination.cancel`). ``on_run_finished`` is awaited after a run's end is
    recorded; its exceptions are logged (``run_finished_hook_failed``), never raised."""

    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        *,
        on_run_finished: RunFinishedHook | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.on_run_finished = on_run_finished

    def transition(
        self,
        run_id: str,
        from_statuses: Sequence[RunStatus],
        to_status: RunStatus,
        writes_of: JobData | None = None,
        **fields: Any,
    ) -> bool:
        """:func:`transition` in a session of its own (call it in a thread). With
        ``writes_of``, the GitHub writes the new state calls for go to the outbox in the same
        transaction (:mod:`gaffer.dispatch.github_writes`).

        Returns True when the run was in one of ``from_statuses`` and is now ``to_status``
        (with ``fields`` set), False when it was not (nothing is written). Raises the
        database's SQLAlchemy errors."""
        with self.db.session() as session:
            moved = transition(
                session, run_id, from_statuses=from_statuses, to_status=to_status, **fields
            )
            if moved and writes_of is not None:
                enqueue_moment(session, writes_of, "finished" if to_status.terminal else "started")
            return moved

    async def report_activity(self, data: JobData, activity: str) -> None:
        """Put the engine's latest ``activity`` on the run's ack comment
        (:func:`gaffer.dispatch.github_writes.enqueue_activity`). A database error is logged
        (``run_activity_report_failed``), never raised: the run goes on."""

        def write() -> bool:
            with self.db.session() as session:
                return enqueue_activity(session, data, activity)

        try:
            if await asyncio.to_thread(write):
                log.info("run_activity_reported", run_id=data.run_id)
        except Exception:
            log.exception("run_activity_report_failed", run_id=data.run_id)

    async def finish(
        self,
        data: JobData,
        outcome: Outcome,
        from_statuses: Sequence[RunStatus] = (RunStatus.RUNNING,),
    ) -> None:
        """Record ``outcome`` as the end of the run of ``data`` if it is in one of
        ``from_statuses`` (with its ``finished`` GitHub writes), clear its stop keys, log
        ``run_finished`` (``recorded=False`` when the run had moved on meanwhile), and call the
        hook when this call recorded it. Raises the database's and Redis's errors."""
        run_id = data.run_id
        moved = await asyncio.to_thread(
            self.transition,
            run_id,
            from_statuses,
            outcome.status,
            writes_of=data,
            **outcome.columns(),
        )
        await self.redis.delete(cancel_key(run_id), stop_reason_key(run_id))
        log.info(
            "run_finished",
            run_id=run_id,
            status=outcome.status.value,
            exit_code=outcome.exit_code,
            error=outcome.error,
            recorded=moved,
        )
        if self.on_run_finished is not None and moved:
            try:
                await self.on_run_finished(data, outcome.status)
            except Exception:
                log.exception("run_finished_hook_failed", run_id=run_id)

    async def fail_orphaned(self, run_id: str, reason: str) -> None:
        """Record a live (STARTING or RUNNING) run as FAILED with ``reason``: the orphan
        sweep's ``fail_run`` (:class:`gaffer.dispatch.orphans.OrphanSweeper`). A missing run
        is ignored."""
        run = await asyncio.to_thread(self.load, run_id)
        if run is None:
            return
        data = JobData.model_validate(run.job_data)
        await self.finish(data, Outcome(RunStatus.FAILED, error=reason), from_statuses=IN_PROGRESS)

    def load(self, run_id: str) -> Run | None:
        """The run ``run_id`` as read (its session closed; attributes stay loaded), or None
        when there is none."""
        with self.db.session() as session:
            return session.get(Run, run_id)

    def in_progress(self, run_id: str) -> bool:
        """True when the run is STARTING or RUNNING (a worker may exist for it)."""
        with self.db.session() as session:
            status = session.scalar(select(Run.status).where(Run.id == run_id))
        return status in {s.value for s in IN_PROGRESS}

    def last_output_time(self, run_id: str) -> datetime | None:
        """When the last line of the worker's own output (any stream but ``system``) was
        recorded for the run, or None when there is none
        (:func:`gaffer.store.runs.last_output_time`)."""
        with self.db.session() as session:
            return last_output_time(session, run_id)

    def queued_among(self, run_ids: list[str]) -> set[str]:
        """Those of ``run_ids`` that are QUEUED."""
        with self.db.session() as session:
            return set(
                session.scalars(
                    select(Run.id).where(Run.id.in_(run_ids), Run.status == RunStatus.QUEUED)
                )
            )
