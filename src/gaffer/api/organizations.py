"""``/api/v1/organizations``: the caller's organizations; a superadmin creates them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from gaffer.accounts import audit
from gaffer.accounts.errors import ConflictError
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.store.models import Organization

router = APIRouter(prefix="/organizations", tags=["organizations"])


class OrganizationOut(BaseModel):
    """An organization and the caller's role in it."""

    id: str
    name: str
    created_at: str
    role: str | None


class OrganizationCreate(BaseModel):
    """A new organization."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")


@router.get("", response_model=list[OrganizationOut])
def list_organizations(caller: CallerDep, svc: ServicesDep) -> list[dict[str, Any]]:
    """The organizations the caller has a role in (every one for a superadmin), by name."""
    query = select(Organization).order_by(Organization.name)
    visible = caller.principal.visible_organizations()
    if visible is not None:
        query = query.where(Organization.id.in_(list(visible)))
    with svc.db.session() as session:
        return [
            {
                "id": o.id,
                "name": o.name,
                "created_at": o.created_at.isoformat(),
                "role": caller.principal.role_in(o.id),
            }
            for o in session.scalars(query)
        ]


@router.post("", response_model=OrganizationOut, status_code=201)
def create_organization(
    body: OrganizationCreate, caller: CallerDep, svc: ServicesDep
) -> dict[str, Any]:
    """Create an organization (superadmin)."""
    caller.principal.require_superadmin("creating an organization")
    with svc.db.session() as session:
        if session.scalar(select(Organization.id).where(Organization.name == body.name)):
            raise ConflictError(f"an organization named {body.name!r} already exists")
        org = Organization(name=body.name)
        session.add(org)
        session.flush()
        audit.record(
            session,
            caller.principal,
            "organization.create",
            target_type="organization",
            target_id=org.id,
            organization_id=org.id,
            change={"name": body.name},
            request_id=caller.request_id,
        )
        return {
            "id": org.id,
            "name": org.name,
            "created_at": org.created_at.isoformat(),
            "role": "superadmin",
        }
