"""``/api/v1/projects``: list, show (member), create and update (admin of the organization)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gaffer.accounts import audit
from gaffer.accounts.errors import InvalidInputError
from gaffer.accounts.roles import Role
from gaffer.accounts.users import organization_of
from gaffer.agents import AgentType
from gaffer.api import project_images
from gaffer.api.answers import as_given
from gaffer.api.deps import Caller, CallerDep, ServicesDep
from gaffer.api.scope import project_for, visible_projects
from gaffer.api.services import ApiServices
from gaffer.engines import ENGINES
from gaffer.images.state import WorkerImageChange
from gaffer.runs.views import project_view
from gaffer.store.models import Project
from gaffer.store.projects import AgentSetup, create_project
from gaffer.triggers.github import default_agent_setups

router = APIRouter(prefix="/projects", tags=["projects"])


class AgentOut(BaseModel):
    """An agent of a project: enabled or not, its engine and the events that start it."""

    agent_type: str
    enabled: bool
    engine: str
    engine_settings: dict[str, Any]
    events: list[str]


class ProjectOut(BaseModel):
    """A project, without its webhook secret."""

    id: str
    name: str
    organization_id: str
    repository: str
    clone_url: str
    base_branch: str
    bot_login: str
    trigger_label: str
    created_at: str | None
    agents: list[AgentOut]
    worker_image: str | None = None
    worker_image_status: str | None = None
    worker_image_digest: str | None = None
    worker_image_error: str | None = None
    worker_image_registry_auth: bool = False


class ProjectCreated(ProjectOut):
    """A new project; ``webhook_secret`` is set (shown once) when it was generated."""

    webhook_secret: str | None
    warning: str | None = None
    """Set when the project was created but its worker image's validation could not be
    enqueued (``gaffer projects validate-image`` enqueues it again)."""


class ProjectCreate(BaseModel):
    """A new project. ``organization`` (name or id) must exist, unless a superadmin creates
    it; ``agents`` empty means every agent type; ``webhook_secret`` omitted: one is generated
    and shown once."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    repository: str = Field(pattern=r"^[^/\s]+/[^/\s]+$", max_length=300)
    clone_url: str = Field(min_length=1, max_length=2000)
    organization: str = Field(default="default", min_length=1, max_length=200)
    base_branch: str = Field(default="main", min_length=1, max_length=200)
    bot_login: str = Field(default="gaffer-bot", min_length=1, max_length=200)
    trigger_label: str = Field(default="gaffer", min_length=1, max_length=200)
    webhook_secret: str | None = Field(default=None, min_length=8, max_length=512)
    agents: list[str] = Field(default_factory=list, max_length=20)
    engine: str = "command"
    command: str | None = Field(default=None, max_length=10_000)
    worker_image: str | None = None


class ProjectUpdate(BaseModel):
    """Fields to change; those left out keep their value."""

    clone_url: str | None = Field(default=None, min_length=1, max_length=2000)
    base_branch: str | None = Field(default=None, min_length=1, max_length=200)
    bot_login: str | None = Field(default=None, min_length=1, max_length=200)
    trigger_label: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_secret: str | None = Field(default=None, min_length=8, max_length=512)
    worker_image: str | None = None
    clear_worker_image: bool = False


@router.get("", response_model=list[ProjectOut])
def list_projects(caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """The projects of the caller's organizations, by name."""
    query = (
        select(Project)
        .order_by(Project.name)
        .options(selectinload(Project.agents), selectinload(Project.triggers))
    )
    with svc.db.session() as session:
        found = session.scalars(visible_projects(query, caller.principal))
        return as_given([project_view(p) for p in found])


@router.get("/{name}", response_model=ProjectOut)
def show_project(name: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """One project (by name or id) with its agents and triggers."""
    with svc.db.session() as session:
        return as_given(project_view(project_for(session, caller.principal, name, Role.MEMBER)))


@router.post("", response_model=ProjectCreated, status_code=201)
async def create(body: ProjectCreate, caller: CallerDep, svc: ServicesDep) -> Any:
    """Create a project with its agents and triggers (admin of ``organization``; a
    ``worker_image`` needs the superadmin role)."""
    principal = caller.principal
    project_images.prepare(principal, body.worker_image, False)
    if body.engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {body.engine!r}")
    known = {a.value for a in AgentType}
    unknown = sorted(set(body.agents) - known)
    if unknown:
        raise InvalidInputError(f"unknown agent type(s): {', '.join(unknown)}")
    if body.engine == "command" and not body.command:
        raise InvalidInputError("the command engine needs a command")
    setups = default_agent_setups(
        body.engine, {"command": body.command} if body.command else {}, body.agents or None
    )
    secret = body.webhook_secret or secrets.token_hex(32)
    view, image_change = await asyncio.to_thread(_create, body, caller, svc, setups, secret)
    view["webhook_secret"] = secret if body.webhook_secret is None else None
    warning = await project_images.enqueue_warning(svc, image_change)
    if warning is not None:
        # Created: the generated secret must still reach the caller, so 201 with the warning.
        view["warning"] = warning
    return view


def _create(
    body: ProjectCreate,
    caller: Caller,
    svc: ApiServices,
    setups: list[AgentSetup],
    secret: str,
) -> tuple[dict[str, Any], WorkerImageChange | None]:
    """Create the project (and set its worker image) in one transaction; on a thread."""
    principal = caller.principal
    with svc.db.session() as session:
        if principal.is_superadmin:
            organization = body.organization
        else:
            org = organization_of(session, body.organization)
            principal.require(org.id, Role.ADMIN, f"organization {body.organization!r}")
            organization = org.name
        project = create_project(
            session,
            svc.box,
            name=body.name,
            repository=body.repository,
            clone_url=body.clone_url,
            webhook_secret=secret,
            bot_login=body.bot_login,
            base_branch=body.base_branch,
            trigger_label=body.trigger_label,
            organization=organization,
            agents=setups,
        )
        audit.record(
            session,
            principal,
            "project.create",
            target_type="project",
            target_id=project.id,
            organization_id=project.organization_id,
            change=body.model_dump(exclude={"webhook_secret"})
            | {"webhook_secret": body.webhook_secret and "set"},
            request_id=caller.request_id,
        )
        image_change = project_images.apply(
            session, principal, project, body.worker_image, False, caller.request_id
        )
        return project_view(project), image_change


@router.patch("/{name}", response_model=ProjectOut)
async def update(name: str, body: ProjectUpdate, caller: CallerDep, svc: ServicesDep) -> Any:
    """Change a project's settings (admin of its organization; ``worker_image`` and
    ``clear_worker_image`` need the superadmin role: :mod:`gaffer.api.project_images`)."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    worker_image = changes.pop("worker_image", None)
    clear = bool(changes.pop("clear_worker_image", False))
    view, image_change = await asyncio.to_thread(
        _update, name, changes, worker_image, clear, caller, svc
    )
    failed = await project_images.enqueue(svc, image_change)
    return failed if failed is not None else view


def _update(
    name: str,
    changes: dict[str, Any],
    worker_image: str | None,
    clear: bool,
    caller: Caller,
    svc: ApiServices,
) -> tuple[dict[str, Any], WorkerImageChange | None]:
    """Apply a PATCH in one transaction; on a thread."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        project_images.prepare(caller.principal, worker_image, clear)
        before = {k: getattr(project, k) for k in changes if k != "webhook_secret"}
        for field, value in changes.items():
            if field == "webhook_secret":
                project.webhook_secret_encrypted = svc.box.encrypt(value)
            else:
                setattr(project, field, value)
        session.flush()
        if changes:
            audit.record(
                session,
                caller.principal,
                "project.update",
                target_type="project",
                target_id=project.id,
                organization_id=project.organization_id,
                change={"before": before, "after": changes},
                request_id=caller.request_id,
            )
        image_change = project_images.apply(
            session, caller.principal, project, worker_image, clear, caller.request_id
        )
        return project_view(project), image_change
