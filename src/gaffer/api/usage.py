"""``GET /api/v1/usage``: model calls summed by model, agent type or UTC day (member of the
project's organization; without ``project``, the caller's visible projects). The report is
:mod:`gaffer.manage.usage`', as ``gaffer usage`` prints it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import project_for, visible_projects
from gaffer.manage.usage import usage_report
from gaffer.store.models import Project

router = APIRouter(prefix="/usage", tags=["usage"])


class TotalsOut(BaseModel):
    """Sums over calls: token counts, ``cost_usd`` in USD (calls of an unpriced model count
    0 and are counted in ``unpriced_calls``)."""

    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tokens: int
    cost_usd: float
    unpriced_calls: int


class UsageOut(BaseModel):
    """Groups (largest cost first; days in date order) and the grand total."""

    by: str
    project: str | None
    since: str | None
    groups: list[TotalsOut]
    total: TotalsOut


@router.get("", response_model=UsageOut)
def usage(
    caller: CallerDep,
    svc: ServicesDep,
    project: str | None = Query(None, description="Only this project (name or id)."),
    since: datetime | None = Query(None, description="ISO 8601 (UTC when it names no zone)."),
    by: Literal["model", "agent", "day"] = Query("model"),
) -> JSONResponse:
    """What the model calls made through the gateway cost."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with svc.db.session() as session:
        project_ids = None
        project_id = None
        if project is not None:
            project_id = project_for(session, caller.principal, project, Role.MEMBER).id
        elif not caller.principal.is_superadmin:
            query = visible_projects(select(Project), caller.principal)
            project_ids = [p.id for p in session.scalars(query)]
        report = usage_report(
            session,
            by=by,
            project=project,
            project_id=project_id,
            since=since,
            project_ids=project_ids,
        )
        return as_given(report)
