"""A project's worker image in the database: set, clear, record a validation's result.

Lifecycle (issue 13): no reference is the global default (all four columns None); setting a
reference makes it ``pending`` (digest and error cleared); the validation job
(:mod:`gaffer.images.validation`) makes it ``verified`` with the pinned ``repo@sha256:...`` or
``failed`` with the reason. Every set and clear adds an audit row
``project.worker_image_changed`` with ``{actor, project, from, to}`` to the caller's session, so
it commits with the change, before the caller enqueues the validation job.

:func:`record_result` is guarded by the reference: an UPDATE ``WHERE worker_image = <the
validated reference>``, so a result for a reference the operator changed meanwhile changes
nothing (the caller then validates the current reference).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gaffer.accounts import audit
from gaffer.accounts.principal import Principal
from gaffer.images.validator import parse_image_reference
from gaffer.store.crypto import SecretBox
from gaffer.store.models import Project

log = structlog.get_logger(__name__)

AUDIT_ACTION = "project.worker_image_changed"
"""The audit action of a set or clear (its ``change`` is ``{actor, project, from, to}``)."""


class WorkerImageStatus(enum.StrEnum):
    """Where a project's own worker image is in its validation."""

    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class WorkerImageChange:
    """What a set or clear did: the project, the reference before and after (None: the
    global default), and whether a validation must now be enqueued."""

    project_id: str
    project_name: str
    before: str | None
    after: str | None

    @property
    def needs_validation(self) -> bool:
        """True after a set (a clear enqueues nothing)."""
        return self.after is not None


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating ``reference``: ``digest`` (``repo@sha256:...``) when
    verified, else ``error`` (the reason)."""

    reference: str
    digest: str | None = None
    error: str | None = None

    @property
    def verified(self) -> bool:
        """True when the image passed every check."""
        return self.digest is not None and self.error is None


def image_view(project: Project) -> dict[str, Any]:
    """The worker-image fields of a project as JSON-ready data (no credentials: only whether
    registry credentials are set)."""
    return {
        "worker_image": project.worker_image,
        "worker_image_status": project.worker_image_status,
        "worker_image_digest": project.worker_image_digest,
        "worker_image_error": project.worker_image_error,
        "worker_image_registry_auth": project.worker_image_registry_auth_encrypted is not None,
    }


def describe(view: dict[str, Any]) -> str:
    """The lifecycle line ``gaffer projects show`` prints: ``pending``, ``verified →
    <repo@sha256:…>``, ``failed: <reason>``, or ``(global default)``."""
    status = view.get("worker_image_status")
    if not view.get("worker_image"):
        return "(global default)"
    if status == WorkerImageStatus.VERIFIED:
        return f"verified → {view.get('worker_image_digest')}"
    if status == WorkerImageStatus.FAILED:
        return f"failed: {view.get('worker_image_error')}"
    return "pending"


def _audit(
    session: Session,
    principal: Principal,
    project: Project,
    before: str | None,
    after: str | None,
    request_id: str | None,
) -> None:
    audit.record(
        session,
        principal,
        AUDIT_ACTION,
        target_type="project",
        target_id=project.id,
        organization_id=project.organization_id,
        change={"actor": principal.label, "project": project.name, "from": before, "to": after},
        request_id=request_id,
    )
    log.info(
        "worker_image_changed",
        actor=principal.label,
        project=project.name,
        before=before,
        after=after,
    )


def set_worker_image(
    session: Session,
    principal: Principal,
    project: Project,
    reference: str,
    *,
    request_id: str | None = None,
) -> WorkerImageChange:
    """Set ``project``'s worker image to ``reference``: status ``pending``, digest and error
    cleared, an audit row added (flushed in ``session``, not committed).

    Superadmin only. Raises :class:`~gaffer.accounts.errors.ForbiddenError` (nothing changed)
    and :class:`~gaffer.images.validator.InvalidImageReferenceError` for a malformed reference
    (checked first: nothing changed).
    """
    principal.require_superadmin("setting a project's worker image")
    parse_image_reference(reference)
    before = project.worker_image
    project.worker_image = reference
    project.worker_image_status = WorkerImageStatus.PENDING.value
    project.worker_image_digest = None
    project.worker_image_error = None
    session.flush()
    _audit(session, principal, project, before, reference, request_id)
    return WorkerImageChange(project.id, project.name, before, reference)


def clear_worker_image(
    session: Session, principal: Principal, project: Project, *, request_id: str | None = None
) -> WorkerImageChange:
    """Back to the global default: the four columns None (registry credentials kept), an
    audit row added. Superadmin only (:class:`~gaffer.accounts.errors.ForbiddenError`)."""
    principal.require_superadmin("clearing a project's worker image")
    before = project.worker_image
    project.worker_image = None
    project.worker_image_status = None
    project.worker_image_digest = None
    project.worker_image_error = None
    session.flush()
    _audit(session, principal, project, before, None, request_id)
    return WorkerImageChange(project.id, project.name, before, None)


def set_registry_auth(
    session: Session,
    principal: Principal,
    box: SecretBox,
    project: Project,
    username: str | None,
    password: str | None,
    *,
    request_id: str | None = None,
) -> None:
    """Store (or, with ``username`` None, remove) the registry credentials used to pull the
    project's worker image, encrypted with the master key. Write-only: nothing reads them back
    but the validation job's pull. Superadmin only. The audit row says ``set``/``cleared``."""
    principal.require_superadmin("setting a project's registry credentials")
    if username is None:
        project.worker_image_registry_auth_encrypted = None
    else:
        payload = json.dumps({"username": username, "password": password or ""})
        project.worker_image_registry_auth_encrypted = box.encrypt(payload)
    session.flush()
    audit.record(
        session,
        principal,
        "project.registry_auth_changed",
        target_type="project",
        target_id=project.id,
        organization_id=project.organization_id,
        change={"project": project.name, "registry_auth": "cleared" if username is None else "set"},
        request_id=request_id,
    )


def registry_auth(box: SecretBox, project: Project) -> dict[str, str] | None:
    """The decrypted ``{"username", "password"}`` for the pull, or None."""
    if project.worker_image_registry_auth_encrypted is None:
        return None
    data = json.loads(box.decrypt(project.worker_image_registry_auth_encrypted))
    return {"username": str(data["username"]), "password": str(data["password"])}


def record_result(session: Session, project_id: str, result: ValidationResult) -> bool:
    """Persist ``result`` if the project's reference is still ``result.reference``.

    Returns True when written; False when the operator changed (or cleared) the reference
    meanwhile: nothing is written, and the caller validates the current reference.
    """
    status = WorkerImageStatus.VERIFIED if result.verified else WorkerImageStatus.FAILED
    written = session.execute(
        update(Project)
        .where(Project.id == project_id, Project.worker_image == result.reference)
        .values(
            worker_image_status=status.value,
            worker_image_digest=result.digest if result.verified else None,
            worker_image_error=None if result.verified else (result.error or "failed"),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(written, "rowcount", 0))


def current_reference(session: Session, project_id: str) -> str | None:
    """The project's worker image reference now (None: global default or no such project)."""
    return session.scalar(select(Project.worker_image).where(Project.id == project_id))


def pending_projects(session: Session) -> list[tuple[str, str]]:
    """``(project id, reference)`` of every project whose image is ``pending``."""
    rows = session.execute(
        select(Project.id, Project.worker_image).where(
            Project.worker_image_status == WorkerImageStatus.PENDING.value,
            Project.worker_image.is_not(None),
        )
    )
    return [(pid, ref) for pid, ref in rows if ref]
