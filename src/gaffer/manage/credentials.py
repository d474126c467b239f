"""A project's credentials as ``gaffer credentials`` and ``/api/v1/projects/{p}/credentials``
show and change them: names and masked values only (write-only secrets), each write with its
audit row (the value never in it) in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gaffer.accounts import audit
from gaffer.accounts.principal import Principal
from gaffer.store.credentials import (
    CredentialView,
    delete_credential,
    list_credentials,
    set_credential,
)
from gaffer.store.crypto import SecretBox
from gaffer.store.models import Project


def credential_row(view: CredentialView) -> dict[str, Any]:
    """``{"name", "masked", "updated_at"}`` (ISO 8601) of one credential."""
    return {"name": view.name, "masked": view.masked, "updated_at": view.updated_at.isoformat()}


def credential_rows(session: Session, box: SecretBox, project: Project) -> list[dict[str, Any]]:
    """:func:`credential_row` of each of ``project``'s credentials, by name."""
    return [credential_row(v) for v in list_credentials(session, box, project.id)]


def put_credential(
    session: Session,
    box: SecretBox,
    principal: Principal,
    project: Project,
    name: str,
    value: str,
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Create or replace ``project``'s credential ``name`` and record ``credential.set``
    (name and masked value only); its :func:`credential_row`. Raises
    :class:`~gaffer.store.credentials.CredentialError` (bad name, empty or oversized value);
    nothing is written then."""
    view = set_credential(session, box, project.id, name, value)
    _record(session, principal, project, "credential.set", name, request_id)
    return credential_row(view)


def remove_credential(
    session: Session,
    principal: Principal,
    project: Project,
    name: str,
    *,
    request_id: str | None = None,
) -> None:
    """Delete ``project``'s credential ``name`` and record ``credential.delete``. Raises
    :class:`~gaffer.store.credentials.CredentialError` when there is none."""
    delete_credential(session, project.id, name)
    _record(session, principal, project, "credential.delete", name, request_id)


def _record(
    session: Session,
    principal: Principal,
    project: Project,
    action: str,
    name: str,
    request_id: str | None,
) -> None:
    audit.record(
        session,
        principal,
        action,
        target_type="project",
        target_id=project.id,
        organization_id=project.organization_id,
        change={"name": name} | ({"value": audit.MASK} if action == "credential.set" else {}),
        request_id=request_id,
    )
