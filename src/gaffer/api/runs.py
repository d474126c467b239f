"""``/api/v1/runs``: list (filters, cursor pagination), show, start, retry, cancel, and the
burst buffer's edits of a waiting run (tags, metadata). All need the member role in the
organization of the run's project. Logs are in :mod:`gaffer.api.run_logs`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select

from gaffer.accounts import audit
from gaffer.accounts.errors import ConflictError, InvalidInputError
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import Caller, CallerDep, ServicesDep
from gaffer.api.pagination import decode_cursor, encode_cursor
from gaffer.api.scope import no_run, project_for, require_on_project, run_row_for
from gaffer.api.services import ApiServices
from gaffer.runs.engine import NewRun
from gaffer.runs.intake import Submission
from gaffer.runs.requests import AgentRequest
from gaffer.runs.views import run_detail, run_view
from gaffer.store.models import TERMINAL_STATUSES, Project, Run, RunStatus, new_id
from gaffer.store.projects import ProjectSnapshot

router = APIRouter(prefix="/runs", tags=["runs"])


class BufferOut(BaseModel):
    """Where a run that waits in the burst buffer stands."""

    state: str
    attempts: int
    cancelled: bool
    metadata_version: int


class RunOut(BaseModel):
    """A run: its row, or its burst buffer entry (status ``BUFFERED``, ``buffer`` set).
    Timestamps are ISO 8601 UTC; ``duration_s`` in seconds."""

    id: str
    project_id: str
    agent_type: str
    work_item: str
    pr_number: int | None
    head_sha: str | None
    trigger: str
    delivery_id: str | None
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    exit_code: int | None
    error: str | None
    branch: str | None
    commit: str | None
    summary: str | None
    batch_id: str | None
    batch_index: int | None
    tags: list[str]
    metadata: dict[str, Any] | None
    accepted_at: str | None
    buffer: BufferOut | None
    engine_usage: dict[str, Any] | None = None
    """What the engine's CLI itself reported (turns, tokens, cost_usd), summed over turns."""
    outputs: dict[str, Any] | None = None
    """The agent's validated output files by kind (review, reply, plan)."""
    usage: dict[str, Any] | None = None
    """The gateway's totals of the run's model calls (``GET /runs/{id}`` only)."""
    posted: list[dict[str, Any]] | None = None
    """The run's writes to GitHub and their state (``GET /runs/{id}`` only)."""


class RunPage(BaseModel):
    """A page of runs, newest first; pass ``next_cursor`` as ``cursor`` for the next one
    (None: this was the last)."""

    items: list[RunOut]
    next_cursor: str | None


class RunStart(BaseModel):
    """A manual run: one agent on one work item of a project (name or id)."""

    project: str = Field(min_length=1, max_length=200)
    agent_type: str = Field(min_length=1, max_length=64)
    work_item: str = Field(min_length=1, max_length=200)
    pr_number: int | None = Field(default=None, ge=1, le=2**31 - 1)
    head_sha: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{7,64}$")
    title: str = Field(default="", max_length=1000)
    body: str = Field(default="", max_length=100_000)


class SubmissionOut(BaseModel):
    """What a start or retry did: the runs made (``buffered``: held in the burst buffer) and
    why the others were not."""

    runs: list[str]
    skipped: list[str]
    buffered: bool
    buffer_reason: str = Field(description="Why the burst buffer held them (when buffered).")
    redis_down: bool = Field(description="A dispatch claim failed closed: Redis errored.")


class CancelOut(BaseModel):
    """A cancel's outcome: the run's status after it, and why."""

    id: str
    status: str
    message: str


class TagsIn(BaseModel):
    """Tags to append to a run that waits in the burst buffer."""

    tags: list[str] = Field(min_length=1, max_length=100)


class MetadataIn(BaseModel):
    """Metadata to set on a run that waits in the burst buffer, replacing ``version``."""

    metadata: dict[str, Any]
    version: int = Field(ge=0, le=2**31 - 1)


@router.get("", response_model=RunPage)
def list_runs(
    caller: CallerDep,
    svc: ServicesDep,
    project: str | None = Query(None, description="Project name or id."),
    status: list[RunStatus] | None = Query(None, description="Only these statuses."),
    agent_type: str | None = Query(None),
    work_item: str | None = Query(None),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    limit: int = Query(50, ge=1, le=500),
) -> JSONResponse:
    """Runs of the caller's organizations, newest first."""
    query = select(Run).join(Project).order_by(Run.created_at.desc(), Run.id.desc())
    visible = caller.principal.visible_organizations()
    if visible is not None:
        query = query.where(Project.organization_id.in_(list(visible)))
    if status:
        query = query.where(Run.status.in_([s.value for s in status]))
    if agent_type:
        query = query.where(Run.agent_type == agent_type)
    if work_item:
        query = query.where(Run.work_item == work_item)
    if cursor:
        created_at, run_id = decode_cursor(cursor)
        query = query.where(
            or_(Run.created_at < created_at, and_(Run.created_at == created_at, Run.id < run_id))
        )
    with svc.db.session() as session:
        if project is not None:
            query = query.where(
                Run.project_id == project_for(session, caller.principal, project, Role.MEMBER).id
            )
        runs = list(session.scalars(query.limit(limit + 1)))
    more = len(runs) > limit
    runs = runs[:limit]
    return as_given(
        {
            "items": [run_view(r) for r in runs],
            "next_cursor": encode_cursor(runs[-1].created_at, runs[-1].id) if more else None,
        }
    )


async def visible_run(svc: ApiServices, principal: Principal, run_id: str) -> dict[str, Any]:
    """The view of a run the caller may read (row or buffer entry). Raises ``NotFoundError``
    (unknown, or another organization's)."""

    def row() -> dict[str, Any] | None:
        with svc.db.session() as session:
            found = run_row_for(session, principal, run_id)
            return run_detail(session, found) if found is not None else None

    view = await asyncio.to_thread(row)
    if view is None:
        from gaffer.store.runs import RunNotFoundError

        try:
            view = await svc.access.show(run_id)
        except RunNotFoundError:
            raise no_run(run_id) from None

    def check() -> None:
        with svc.db.session() as session:
            require_on_project(
                session, principal, view["project_id"], Role.MEMBER, f"run {run_id!r}"
            )

    await asyncio.to_thread(check)
    return view


@router.get("/{run_id}", response_model=RunOut)
async def show_run(run_id: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """One run by id (or a unique prefix of 4+ characters), or by exact id while it waits in
    the burst buffer."""
    return as_given(await visible_run(svc, caller.principal, run_id))


async def _submit(
    svc: ApiServices,
    caller: Caller,
    project_name: str,
    request_fields: dict[str, Any],
    action: str,
    change: dict[str, Any],
) -> dict[str, Any]:
    def snapshot() -> ProjectSnapshot:
        with svc.db.session() as session:
            project = project_for(session, caller.principal, project_name, Role.MEMBER)
            return ProjectSnapshot.of(project, svc.box)

    project = await asyncio.to_thread(snapshot)
    if request_fields["agent_type"] not in project.agents:
        raise InvalidInputError(
            f"agent {request_fields['agent_type']!r} is not enabled on project {project.name!r}"
        )
    run_id = new_id()
    request = AgentRequest(project_id=project.id, provider="manual", **request_fields)
    recorded = False

    def record(session: Any, submission: Submission) -> None:
        nonlocal recorded
        recorded = True
        audit.record(
            session,
            caller.principal,
            action,
            target_type="run",
            target_id=run_id,
            organization_id=project.organization_id,
            change=change | {"runs": submission.run_ids},
            request_id=caller.request_id,
        )

    submission = await svc.intake.submit(
        project, [NewRun(run_id, request)], in_same_transaction=record
    )
    if submission.run_ids and not recorded:
        # Held in the burst buffer: no row yet, so the audit row is written on its own.
        def record_buffered() -> None:
            with svc.db.session() as session:
                record(session, submission)

        await asyncio.to_thread(record_buffered)
    return {
        "runs": submission.run_ids,
        "skipped": [reason for _, reason in submission.skipped],
        "buffered": submission.buffered,
        "buffer_reason": submission.buffer_reason,
        "redis_down": submission.redis_down,
    }


@router.post("", response_model=SubmissionOut)
async def start_run(body: RunStart, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Start a run by hand (a manual trigger), through the same dispatch claims and burst
    buffer gate as webhooks."""
    fields = body.model_dump(exclude={"project"}) | {"trigger": "manual"}
    return await _submit(svc, caller, body.project, fields, "run.start", body.model_dump())


@router.post("/{run_id}/retry", response_model=SubmissionOut)
async def retry_run(run_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Start a new run with the request of a finished one (409 while it is not finished)."""
    view = await visible_run(svc, caller.principal, run_id)
    if view["status"] not in {s.value for s in TERMINAL_STATUSES}:
        raise ConflictError(f"run {run_id} has not finished ({view['status']}); cancel it first")

    def task() -> dict[str, Any]:
        with svc.db.session() as session:
            run = session.get(Run, view["id"])
            assert run is not None
            return dict(run.job_data.get("task") or {})

    task_data = await asyncio.to_thread(task)
    fields = {
        "agent_type": view["agent_type"],
        "work_item": view["work_item"],
        "pr_number": view["pr_number"],
        "head_sha": view["head_sha"],
        "title": task_data.get("title", ""),
        "body": task_data.get("body", ""),
        "url": task_data.get("url"),
        "trigger": "retry",
    }
    return await _submit(
        svc, caller, view["project_id"], fields, "run.retry", {"retry_of": view["id"]}
    )


@router.post("/{run_id}/cancel", response_model=CancelOut)
async def cancel_run(run_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Cancel a run, buffered or not: at once if it has not started, else by stopping its
    worker (the answer's status is then still RUNNING)."""
    view = await visible_run(svc, caller.principal, run_id)
    result = await svc.access.cancel(view["id"])

    def record() -> str:
        with svc.db.session() as session:
            organization_id = require_on_project(
                session, caller.principal, view["project_id"], Role.MEMBER, f"run {run_id!r}"
            )
            audit.record(
                session,
                caller.principal,
                "run.cancel",
                target_type="run",
                target_id=result.run_id,
                organization_id=organization_id,
                change={"status": str(result.status), "message": result.message},
                request_id=caller.request_id,
            )
            return organization_id

    await asyncio.to_thread(record)
    return {"id": result.run_id, "status": str(result.status), "message": result.message}


@router.post("/{run_id}/tags", response_model=RunOut)
async def tag_run(run_id: str, body: TagsIn, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Append tags to a run that still waits in the burst buffer (409 afterwards)."""
    view = await visible_run(svc, caller.principal, run_id)
    result = await svc.access.add_tags(view["id"], body.tags, svc.settings.buffer_tag_cap)
    await asyncio.to_thread(_record_edit, svc, caller, view, "run.tag", {"tags": body.tags})
    return result


@router.put("/{run_id}/metadata", response_model=RunOut)
async def set_run_metadata(
    run_id: str, body: MetadataIn, caller: CallerDep, svc: ServicesDep
) -> dict[str, Any]:
    """Replace the metadata of a run that waits in the burst buffer if its
    ``buffer.metadata_version`` is ``version`` (409 otherwise)."""
    view = await visible_run(svc, caller.principal, run_id)
    result = await svc.access.set_metadata(view["id"], body.metadata, body.version)
    await asyncio.to_thread(
        _record_edit, svc, caller, view, "run.set_metadata", {"metadata": body.metadata}
    )
    return result


def _record_edit(
    svc: ApiServices, caller: Caller, view: dict[str, Any], action: str, change: dict[str, Any]
) -> None:
    with svc.db.session() as session:
        organization_id = session.scalar(
            select(Project.organization_id).where(Project.id == view["project_id"])
        )
        audit.record(
            session,
            caller.principal,
            action,
            target_type="run",
            target_id=view["id"],
            organization_id=organization_id,
            change=change,
            request_id=caller.request_id,
        )
