"""``GET /api/v1/snapshots``: the warm-start snapshots of the caller's organizations' projects
(member), from the registry of this installation (``GAFFER_INSTANCE``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import project_for
from gaffer.snapshots import registry
from gaffer.snapshots.registry import snapshot_view
from gaffer.store.models import Project

router = APIRouter(prefix="/snapshots", tags=["snapshots"])


class SnapshotOut(BaseModel):
    """A snapshot image in the registry (see :func:`gaffer.snapshots.registry.snapshot_view`)."""

    id: str
    project_id: str
    kind: str
    work_item: str | None
    image: str
    image_id: str | None
    key: str | None
    size_bytes: int
    status: str
    source_run_id: str | None
    created_at: str
    last_used_at: str | None


@router.get("", response_model=list[SnapshotOut])
def list_snapshots(
    caller: CallerDep,
    svc: ServicesDep,
    project: str | None = Query(None, description="Project name or id."),
) -> JSONResponse:
    """Snapshots, oldest first."""
    with svc.db.session() as session:
        project_id = None
        if project is not None:
            project_id = project_for(session, caller.principal, project, Role.MEMBER).id
        rows = registry.list_rows(session, svc.settings.instance, project_id)
        visible = caller.principal.visible_organizations()
        if visible is not None:
            allowed = {
                p.id for p in session.query(Project).filter(Project.organization_id.in_(visible))
            }
            rows = [r for r in rows if r.project_id in allowed]
        views: list[dict[str, Any]] = [snapshot_view(r) for r in rows]
        return as_given(views)
