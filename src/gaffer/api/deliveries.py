"""``GET /api/v1/deliveries``: webhook deliveries of the caller's organizations' projects
(member). Deliveries no project was found for are the superadmin's alone."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import project_for
from gaffer.runs.views import delivery_view
from gaffer.store.models import Project, WebhookDelivery

router = APIRouter(prefix="/deliveries", tags=["deliveries"])


class DeliveryOut(BaseModel):
    """A webhook delivery: the answer given (``status_code``, ``decision``) and why."""

    id: int
    provider: str
    event: str | None
    action: str | None
    delivery_id: str | None
    project_id: str | None
    status_code: int
    decision: str
    reason: str
    run_ids: list[str]
    received_at: str | None


@router.get("", response_model=list[DeliveryOut])
def list_deliveries(
    caller: CallerDep,
    svc: ServicesDep,
    delivery_id: str | None = Query(None, description="This X-GitHub-Delivery id or a prefix."),
    project: str | None = Query(None, description="Project name or id."),
    limit: int = Query(50, ge=1, le=500),
) -> JSONResponse:
    """Deliveries, newest first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.delivery_id.startswith(delivery_id, autoescape=True))
    visible = caller.principal.visible_organizations()
    if visible is not None:
        query = query.where(
            WebhookDelivery.project_id.in_(
                select(Project.id).where(Project.organization_id.in_(list(visible)))
            )
        )
    with svc.db.session() as session:
        if project is not None:
            found = project_for(session, caller.principal, project, Role.MEMBER)
            query = query.where(WebhookDelivery.project_id == found.id)
        return as_given([delivery_view(d) for d in session.scalars(query)])
