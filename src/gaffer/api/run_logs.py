"""``GET /api/v1/runs/{id}/logs``: a run's log lines, or with ``follow=1`` a server-sent event
stream that ends when the run does.

Stream format (``text/event-stream``): each line is ``id: <line id>``, ``event: line``,
``data: <JSON of the line>``; when the run has finished and every line was sent,
``event: end`` with ``data: {"status": "<final status>"}``. A reconnecting client sends
``Last-Event-ID`` (or ``after``) to resume after the last line it got. A comment line is sent
every :data:`KEEPALIVE_S` seconds of silence so proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import no_run, require_on_project, run_row_for
from gaffer.api.services import ApiServices
from gaffer.runs.views import log_view
from gaffer.store.models import RunStatus
from gaffer.store.runs import read_logs

router = APIRouter(prefix="/runs", tags=["runs"])

POLL_S = 0.5
KEEPALIVE_S = 15.0
PAGE = 1000


class LogLineOut(BaseModel):
    """One log line: ``stream`` is ``worker``, ``engine`` or ``system``."""

    id: int
    ts: str | None
    stream: str
    message: str


class LogsOut(BaseModel):
    """Lines after ``after``, in order; ``next_after`` is the id to pass for the next ones."""

    run_id: str
    status: str
    lines: list[LogLineOut]
    next_after: int


def _read(
    svc: ApiServices, principal: Principal, run_id: str, after: int, limit: int
) -> tuple[str, RunStatus, list[dict[str, Any]]]:
    with svc.db.session() as session:
        run = run_row_for(session, principal, run_id)
        if run is None:
            raise no_run(run_id)
        require_on_project(session, principal, run.project_id, Role.MEMBER, f"run {run_id!r}")
        # The status first: the last lines are committed with (or before) the final status.
        status = RunStatus(run.status)
        lines = [log_view(line) for line in read_logs(session, run.id, after_id=after, limit=limit)]
        return run.id, status, lines


async def _events(
    svc: ApiServices, principal: Principal, run_id: str, after: int
) -> AsyncIterator[str]:
    quiet_since = time.monotonic()
    while True:
        run_id, status, lines = await asyncio.to_thread(_read, svc, principal, run_id, after, PAGE)
        for line in lines:
            after = line["id"]
            yield f"id: {after}\nevent: line\ndata: {json.dumps(line)}\n\n"
        if lines:
            quiet_since = time.monotonic()
            continue
        if status.terminal:
            yield f"event: end\ndata: {json.dumps({'status': str(status)})}\n\n"
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get(
    "/{run_id}/logs",
    response_model=LogsOut,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def run_logs(
    run_id: str,
    caller: CallerDep,
    svc: ServicesDep,
    after: int = Query(0, ge=0, le=2**63 - 1, description="Only lines with a larger id."),
    limit: int = Query(PAGE, ge=1, le=PAGE),
    follow: bool = Query(False, description="Stream server-sent events until the run ends."),
    last_event_id: str | None = Header(None, description="Resume a stream after this line."),
) -> Any:
    """A run's log lines (rows only: a run waiting in the burst buffer has none yet)."""
    if last_event_id and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    real_id, status, lines = await asyncio.to_thread(
        _read, svc, caller.principal, run_id, after, limit
    )
    if follow:
        return StreamingResponse(
            _events(svc, caller.principal, real_id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return {
        "run_id": real_id,
        "status": str(status),
        "lines": lines,
        "next_after": lines[-1]["id"] if lines else after,
    }
