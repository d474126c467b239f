"""``GET /api/v1/audit``: the audit log of the organizations the caller is admin of (every
row, installation-wide ones included, for a superadmin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gaffer.accounts.audit import AuditFilter, event_view, list_events
from gaffer.accounts.errors import ForbiddenError
from gaffer.accounts.roles import Role, at_least
from gaffer.api.deps import CallerDep, ServicesDep

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditOut(BaseModel):
    """One audit row: when, who (and through which token, ``via`` api or cli), what, on
    what, the change (secrets masked) and the request id."""

    id: int
    ts: str
    actor_type: str
    actor: str
    actor_user_id: str | None
    actor_token_id: str | None
    via: str
    action: str
    target_type: str
    target_id: str | None
    organization_id: str | None
    change: dict[str, Any]
    request_id: str | None


class AuditPage(BaseModel):
    """Rows newest first; pass ``next_before_id`` as ``before_id`` for older ones."""

    items: list[AuditOut]
    next_before_id: int | None


@router.get("", response_model=AuditPage)
def list_audit(
    caller: CallerDep,
    svc: ServicesDep,
    organization_id: str | None = Query(None),
    action: str | None = Query(None, description="An action, or a prefix ending in `.`."),
    actor: str | None = Query(None, description="An email, or a user or token id."),
    target_id: str | None = Query(None),
    since: datetime | None = Query(None, description="ISO 8601 with a timezone."),
    before_id: int | None = Query(None, ge=1, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Audit rows, newest first."""
    principal = caller.principal
    organizations: frozenset[str] | None = None
    if not principal.is_superadmin:
        visible = principal.visible_organizations() or frozenset()
        organizations = frozenset(o for o in visible if at_least(principal.role_in(o), Role.ADMIN))
        if not organizations:
            raise ForbiddenError("the audit log needs the admin role in an organization")
    if organization_id is not None:
        principal.require(organization_id, Role.ADMIN, f"organization {organization_id!r}")
    if since is not None and since.tzinfo is None:
        from gaffer.accounts.errors import InvalidInputError

        raise InvalidInputError("since needs a timezone (e.g. 2026-12-01T00:00:00Z)")
    where = AuditFilter(
        organizations=organizations,
        organization_id=organization_id,
        action=action,
        actor=actor,
        target_id=target_id,
        since=since,
        before_id=before_id,
        limit=limit,
    )
    with svc.db.session() as session:
        events = list_events(session, where)
    return {
        "items": [event_view(e) for e in events],
        "next_before_id": events[-1].id if len(events) == limit else None,
    }
