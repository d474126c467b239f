"""The run engine: create a run (row, then queue job), cancel it, repair runs and jobs.

Creating a run writes the QUEUED row first and then adds the BullMQ job whose id is the run id.
A crash between the two leaves a QUEUED row without a job, which :meth:`RunEngine.repair`
re-adds from the row (``add`` with an existing job id is a no-op, so repair never duplicates).
The opposite order could leave a job without a row, which nothing could explain.

:meth:`RunEngine.repair` also ends runs left STARTING or RUNNING by a job that no dispatcher will
take up again (failed, completed or gone): they become SYSTEM_FAILURE instead of staying in
progress forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gaffer.agents.effective import effective_agent
from gaffer.coordination.cancel import cancel_key, request_cancel
from gaffer.coordination.leases import LeaseKeys, RunLeases
from gaffer.engines import DEFAULT_CREDENTIALS
from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec, branch_name
from gaffer.queue.queues import RunQueue
from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus, new_id, utcnow
from gaffer.store.projects import ProjectSnapshot
from gaffer.store.runs import get_run, runs_with_status, transition

log = structlog.get_logger(__name__)

CANCELABLE_BEFORE_START = (RunStatus.QUEUED,)
REPAIRABLE_JOB_STATES = ("unknown", "completed", "failed")
"""Job states in which no dispatcher will ever take the job up again."""
IN_PROGRESS = (RunStatus.STARTING, RunStatus.RUNNING)

AbandonedHook = Callable[[str, str | None], Awaitable[object]]
"""``on_abandoned(run_id, worker_ref)``: called by :meth:`RunEngine.repair` for a run it failed."""


class AgentNotConfiguredError(ValueError):
    """The project has no enabled config for the requested agent type."""


@dataclass(frozen=True)
class NewRun:
    """A run to create: the id it gets and the request it carries out.

    ``batch_id``/``batch_index``: the submission it came in and its place there (kept on the
    row). ``tags`` and ``metadata`` are carried to the row. ``idempotency_key``: a second
    request with the same key, while the first still waits in the burst buffer, gets the first
    one's run instead of a new one. ``accepted_at``: when the request was accepted, if earlier
    than the row (a run that waited in the burst buffer).
    """

    run_id: str
    request: AgentRequest
    batch_id: str | None = None
    batch_index: int | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    accepted_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        """The run columns this request sets, whatever the status (no ``job_data``)."""
        request = self.request
        return {
            "id": self.run_id,
            "project_id": request.project_id,
            "agent_type": request.agent_type,
            "work_item": request.work_item,
            "pr_number": request.pr_number,
            "head_sha": request.head_sha,
            "trigger": f"{request.provider}:{request.trigger}",
            "delivery_id": request.delivery_id,
            "batch_id": self.batch_id,
            "batch_index": self.batch_index,
            "tags": list(self.tags),
            "run_metadata": self.metadata,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: ``status`` is the run's status after the call; ``message`` says why."""

    run_id: str
    status: RunStatus
    message: str


def build_job(
    run_id: str, request: AgentRequest, project: ProjectSnapshot, settings: Settings
) -> JobData:
    """The job of a new run: the request, the project, and the agent's effective definition
    (package + project overrides). Raises :class:`AgentNotConfiguredError`."""
    agent = project.agents.get(request.agent_type)
    if agent is None:
        raise AgentNotConfiguredError(
            f"agent {request.agent_type!r} is not enabled on project {project.name!r}"
        )
    effective = effective_agent(
        request.agent_type,
        agent.engine,
        agent.overrides,
        default_credential=DEFAULT_CREDENTIALS.get(agent.engine),
    )
    return JobData(
        run_id=run_id,
        project_id=project.id,
        project_name=project.name,
        agent_type=request.agent_type,
        repository=RepositorySpec(
            full_name=project.repository,
            clone_url=project.clone_url,
            base_branch=project.base_branch,
        ),
        engine=EngineSpec(
            name=agent.engine,
            settings=agent.engine_settings,
            model=effective.model,
            base_url=effective.base_url,
            credential=effective.credential,
        ),
        agent=effective.spec,
        task=TaskSpec(
            agent_type=request.agent_type,
            repository=project.repository,
            work_item=request.work_item,
            title=request.title,
            body=request.body,
            url=request.url,
            pr_number=request.pr_number,
            head_sha=request.head_sha,
            trigger=request.trigger,
            provider=request.provider,
            delivery_id=request.delivery_id,
            head_branch=request.head_branch,
            base_branch=request.base_branch,
            head_repository=request.head_repository,
            comment_body=request.comment_body,
            comment_id=request.comment_id,
            review_id=request.review_id,
            context=dict(request.context),
        ),
        branch=branch_name(request.agent_type, request.work_item),
        bot_login=project.bot_login,
        timeout_s=settings.run_timeout_s,
        payload=request.payload,
    )


class RunEngine:
    """Creates, cancels and repairs runs. One per process; share it between requests."""

    def __init__(
        self, settings: Settings, db: Database, queue: RunQueue, redis: aioredis.Redis
    ) -> None:
        self.settings = settings
        self.db = db
        self.queue = queue
        self.redis = redis
        self.leases = RunLeases(
            redis,
            lease_ms=settings.lease_ms,
            project_cap=settings.max_runs_per_project_agent,
            global_cap=settings.global_max_workers,
        )

    async def create_run(
        self, request: AgentRequest, project: ProjectSnapshot, *, run_id: str | None = None
    ) -> str:
        """Create one run for ``request`` (see :meth:`create_runs`); returns its id."""
        [created] = await self.create_runs(project, [NewRun(run_id or new_id(), request)])
        return created

    async def create_runs(
        self,
        project: ProjectSnapshot,
        runs: Sequence[NewRun],
        *,
        in_same_transaction: Callable[[Session], None] | None = None,
    ) -> list[str]:
        """Create runs: their QUEUED rows in one transaction, then their queue jobs.

        ``in_same_transaction`` may add the caller's own records to the transaction that writes
        the rows (ingest records the delivery there). Idempotent per run id: rows that already
        exist are kept, and adding an existing job is a no-op, so replaying a request after a
        crash or a lost answer never duplicates a run. Returns the run ids in order.
        Raises :class:`AgentNotConfiguredError`, and database or Redis errors; if the jobs
        cannot be added, the rows stay QUEUED and :meth:`repair` adds the jobs later.
        """
        jobs = [build_job(r.run_id, r.request, project, self.settings) for r in runs]
        await asyncio.to_thread(self._insert_rows, jobs, runs, in_same_transaction)
        for job, new in zip(jobs, runs, strict=True):
            await self.queue.add(job)
            log.info(
                "run_queued",
                run_id=job.run_id,
                project=project.name,
                agent=job.agent_type,
                work_item=job.task.work_item,
                trigger=new.request.trigger,
            )
        return [job.run_id for job in jobs]

    def _insert_rows(
        self,
        jobs: Sequence[JobData],
        runs: Sequence[NewRun],
        extra: Callable[[Session], None] | None,
    ) -> None:
        rows = [
            {
                **new.row(),
                "project_id": job.project_id,
                "status": RunStatus.QUEUED.value,
                "job_data": job.model_dump(mode="json"),
            }
            for job, new in zip(jobs, runs, strict=True)
        ]

        def with_writes(session: Session) -> None:
            if extra is not None:
                extra(session)
            # The GitHub ack, in the same transaction (imported here: githubkit costs seconds
            # to import, which no CLI command should pay for nothing).
            from gaffer.dispatch.github_writes import enqueue_queued

            enqueue_queued(session, jobs)

        self._insert_absent(rows, with_writes)

    def _insert_absent(
        self, rows: Sequence[dict[str, Any]], extra: Callable[[Session], None] | None = None
    ) -> set[str]:
        """Insert the rows whose id is not taken, in one transaction; returns the ids that
        already existed."""
        try:
            return self._insert_absent_once(rows, extra)
        except IntegrityError:
            # Another process inserted one of these ids between our read and our write: the
            # second try sees it and leaves it alone.
            return self._insert_absent_once(rows, extra)

    def _insert_absent_once(
        self, rows: Sequence[dict[str, Any]], extra: Callable[[Session], None] | None
    ) -> set[str]:
        with self.db.session() as session:
            ids = [row["id"] for row in rows]
            existing = set(session.scalars(select(Run.id).where(Run.id.in_(ids))))
            fresh = [row for row in rows if row["id"] not in existing]
            if fresh:
                session.execute(insert(Run), fresh)
            if extra is not None:
                extra(session)
        return existing

    async def record_unstarted(
        self, runs: Sequence[NewRun], status: RunStatus, error: str
    ) -> set[str]:
        """Write terminal rows (``CANCELED``, ``SYSTEM_FAILURE``) for runs that never got a job.

        ``status`` must be terminal; ``error`` says why. Rows whose id already exists are left
        alone; their ids are returned, so the caller can act on them (a cancel must still
        cancel a live run). ``job_data`` holds the request (``{"request": ...}``), since no
        job was built. Raises database errors.
        """
        if not status.terminal:
            raise ValueError(f"{status} is not a terminal status")
        now = utcnow()
        rows = [
            {
                **new.row(),
                "status": status.value,
                "error": error,
                "finished_at": now,
                "job_data": {"request": new.request.model_dump(mode="json")},
            }
            for new in runs
        ]
        existing = await asyncio.to_thread(self._insert_absent, rows)
        for new in runs:
            if new.run_id not in existing:
                log.info("run_recorded_unstarted", run_id=new.run_id, status=str(status))
        return existing

    async def cancel(self, run_id: str) -> CancelResult:
        """Cancel a run.

        A QUEUED run becomes CANCELED at once and its job is removed. A STARTING or RUNNING run
        gets a cancel request that its dispatcher acts on (the status then becomes CANCELED).
        A finished run is left alone. Raises :class:`gaffer.store.runs.RunNotFoundError`.
        """
        run_id, status = await asyncio.to_thread(self._status, run_id)
        if status.terminal:
            return CancelResult(run_id, status, f"run already finished ({status})")
        if status == RunStatus.QUEUED:
            won = await asyncio.to_thread(self._cancel_queued, run_id)
            if won:
                await self.queue.remove(run_id)
                log.info("run_canceled", run_id=run_id, while_status="QUEUED")
                return CancelResult(run_id, RunStatus.CANCELED, "canceled before it started")
            run_id, status = await asyncio.to_thread(self._status, run_id)
            if status.terminal:
                return CancelResult(run_id, status, f"run already finished ({status})")
        await request_cancel(self.redis, run_id)
        log.info("run_cancel_requested", run_id=run_id, while_status=str(status))
        return CancelResult(run_id, status, "cancel requested; the dispatcher will stop the worker")

    def _status(self, run_id: str) -> tuple[str, RunStatus]:
        with self.db.session() as session:
            run = get_run(session, run_id)
            return run.id, RunStatus(run.status)

    def _cancel_queued(self, run_id: str) -> bool:
        with self.db.session() as session:
            return transition(
                session,
                run_id,
                from_statuses=CANCELABLE_BEFORE_START,
                to_status=RunStatus.CANCELED,
                error="canceled before it started",
            )

    async def repair(self, *, on_abandoned: AbandonedHook | None = None) -> list[str]:
        """Reconcile runs with their queue jobs; returns the ids of the runs it acted on.

        * A QUEUED run whose job is missing gets it re-added. A job that is ``completed`` or
          ``failed`` while its run is still QUEUED (its final status was never written) is
          removed and added again.
        * A STARTING or RUNNING run whose job is ``failed``, ``completed`` or missing will never
          be finished by a dispatcher (an error after the claim used up the job's attempts, or
          the job stalled too often): it becomes SYSTEM_FAILURE with the reason, its leases are
          released and its cancel request dropped, then ``on_abandoned(run_id, worker_ref)`` is
          awaited (the dispatcher stops what is left of the worker). The move is conditional,
          so a run that finished meanwhile keeps its outcome. Runs whose job is active, waiting
          or delayed are left alone: a dispatcher is on them or will re-attach.
        """
        repaired = []
        for run_id, job_data in await asyncio.to_thread(self._runs_in, (RunStatus.QUEUED,)):
            state = await self.queue.state(run_id)
            if state not in REPAIRABLE_JOB_STATES:
                continue
            if state != "unknown":
                await self.queue.remove(run_id)
            await self.queue.add(JobData.model_validate(job_data))
            repaired.append(run_id)
            log.warning("run_job_repaired", run_id=run_id, job_state=state)
        for run_id, job_data in await asyncio.to_thread(self._runs_in, IN_PROGRESS):
            state = await self.queue.state(run_id)
            if state not in REPAIRABLE_JOB_STATES:
                continue
            if await self._fail_abandoned(run_id, job_data, state, on_abandoned):
                repaired.append(run_id)
        return repaired

    async def _fail_abandoned(
        self,
        run_id: str,
        job_data: dict[str, Any],
        state: str,
        on_abandoned: AbandonedHook | None,
    ) -> bool:
        job = "is missing" if state == "unknown" else f"is {state}"
        error = (
            f"abandoned: its queue job {job} while the run was in progress (a dispatch error"
            " used up its attempts, or its dispatcher died too often)"
        )
        moved, worker_ref = await asyncio.to_thread(self._mark_abandoned, run_id, error)
        if not moved:
            return False
        log.warning("run_abandoned", run_id=run_id, job_state=state, error=error)
        data = JobData.model_validate(job_data)
        keys = LeaseKeys.of(data.project_id, data.agent_type, data.task.work_item)
        await self.leases.release(keys, run_id)
        await self.redis.delete(cancel_key(run_id))
        if on_abandoned is not None:
            try:
                await on_abandoned(run_id, worker_ref)
            except Exception:
                log.exception("run_abandoned_hook_failed", run_id=run_id)
        return True

    def _mark_abandoned(self, run_id: str, error: str) -> tuple[bool, str | None]:
        with self.db.session() as session:
            moved = transition(
                session,
                run_id,
                from_statuses=IN_PROGRESS,
                to_status=RunStatus.SYSTEM_FAILURE,
                error=error,
            )
            run = session.get(Run, run_id) if moved else None
            return moved, run.worker_ref if run is not None else None

    def _runs_in(self, statuses: Sequence[RunStatus]) -> list[tuple[str, dict[str, Any]]]:
        with self.db.session() as session:
            return [(r.id, r.job_data) for r in runs_with_status(session, statuses)]
