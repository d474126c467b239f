"""A project's worker image through ``/api/v1`` (issue 13; superadmin only).

``PATCH /api/v1/projects/{p}`` with ``worker_image`` or ``clear_worker_image`` (in
:mod:`gaffer.api.projects`) goes through :func:`prepare` and :func:`apply`, then :func:`enqueue`
after the commit; this module's own routes re-run a validation and set the registry
credentials. The set or clear and its audit row commit first; a validation that cannot be
enqueued afterwards answers 503 saying so (the change stays, audited).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from gaffer.accounts.errors import InvalidInputError
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.errors import error
from gaffer.api.scope import project_for
from gaffer.api.services import ApiServices
from gaffer.images import queue
from gaffer.images.queue import ValidationRequest
from gaffer.images.state import (
    WorkerImageChange,
    WorkerImageStatus,
    clear_worker_image,
    image_view,
    set_registry_auth,
    set_worker_image,
)
from gaffer.images.validator import InvalidImageReferenceError, parse_image_reference
from gaffer.store.models import Project

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/projects", tags=["projects"])


class RegistryAuthIn(BaseModel):
    """Registry credentials for pulling the project's worker image; ``username`` None
    removes them. Write-only: never shown again."""

    username: str | None = Field(default=None, min_length=1, max_length=500)
    password: str | None = Field(default=None, max_length=5000)


class WorkerImageOut(BaseModel):
    """A project's worker image and where its validation is."""

    worker_image: str | None
    worker_image_status: str | None
    worker_image_digest: str | None
    worker_image_error: str | None
    worker_image_registry_auth: bool


def prepare(principal: Principal, worker_image: str | None, clear: bool) -> None:
    """Check a PATCH's image fields before anything is written.

    Raises :class:`InvalidInputError` (400) for both at once or a malformed reference, and
    :class:`~gaffer.accounts.errors.ForbiddenError` (403) for a caller who is not superadmin.
    """
    if worker_image is not None and clear:
        raise InvalidInputError("worker_image and clear_worker_image exclude each other")
    if worker_image is None and not clear:
        return
    principal.require_superadmin("setting a project's worker image")
    if worker_image is not None:
        try:
            parse_image_reference(worker_image)
        except InvalidImageReferenceError as exc:
            raise InvalidInputError(str(exc)) from exc


def apply(
    session: Session,
    principal: Principal,
    project: Project,
    worker_image: str | None,
    clear: bool,
    request_id: str | None,
) -> WorkerImageChange | None:
    """Set or clear (checked by :func:`prepare`), audited in ``session``."""
    if worker_image is not None:
        return set_worker_image(session, principal, project, worker_image, request_id=request_id)
    if clear:
        return clear_worker_image(session, principal, project, request_id=request_id)
    return None


async def enqueue_warning(svc: ApiServices, change: WorkerImageChange | None) -> str | None:
    """Enqueue the validation a set needs (after the commit). None when done or not needed;
    else the message saying the change is kept but its validation could not be enqueued."""
    if change is None or not change.needs_validation or change.after is None:
        return None
    try:
        await queue.enqueue(svc.redis, ValidationRequest(change.project_id, change.after))
    except (RedisError, OSError) as exc:
        log.error("worker_image_enqueue_failed", project=change.project_name, error=str(exc))
        return (
            f"the worker image of {change.project_name!r} is set to {change.after} (pending), "
            f"but its validation could not be enqueued: {exc}; retry with "
            f"POST /api/v1/projects/{change.project_name}/validate-image"
        )
    return None


async def enqueue(svc: ApiServices, change: WorkerImageChange | None) -> JSONResponse | None:
    """:func:`enqueue_warning` as an answer: None when enqueued (or not needed), else 503 with
    the message (the change stays, audited)."""
    warning = await enqueue_warning(svc, change)
    return None if warning is None else error(503, warning)


@router.post("/{name}/validate-image", response_model=WorkerImageOut, status_code=202)
async def validate_image(name: str, caller: CallerDep, svc: ServicesDep) -> Any:
    """Validate the project's worker image again (superadmin): status ``pending`` until the
    validation job records its result."""
    caller.principal.require_superadmin("validating a project's worker image")

    def mark_pending() -> tuple[dict[str, Any], WorkerImageChange]:
        with svc.db.session() as session:
            project = project_for(session, caller.principal, name, Role.SUPERADMIN)
            if project.worker_image is None:
                raise InvalidInputError(f"project {project.name!r} has no worker image of its own")
            project.worker_image_status = WorkerImageStatus.PENDING.value
            project.worker_image_digest = None
            project.worker_image_error = None
            session.flush()
            reference = project.worker_image
            return image_view(project), WorkerImageChange(
                project.id, project.name, reference, reference
            )

    view, change = await asyncio.to_thread(mark_pending)
    failed = await enqueue(svc, change)
    return failed if failed is not None else view


@router.put("/{name}/registry-auth", response_model=WorkerImageOut)
def put_registry_auth(
    name: str, body: RegistryAuthIn, caller: CallerDep, svc: ServicesDep
) -> dict[str, Any]:
    """Set (or, ``username`` null, remove) the registry credentials of the project's worker
    image (superadmin). Stored encrypted; the answer says only whether they are set."""
    caller.principal.require_superadmin("setting a project's registry credentials")
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.SUPERADMIN)
        set_registry_auth(
            session,
            caller.principal,
            svc.box,
            project,
            body.username,
            body.password,
            request_id=caller.request_id,
        )
        return image_view(project)
