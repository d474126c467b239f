"""Project credentials: named secrets (an engine's API key...), encrypted with the master key.

Values are written from stdin by ``gaffer credentials set`` and read back only by the processes
that need them (the dispatcher, when it starts a run); listings show the name and a masked
value (:func:`mask`), never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gaffer.errors import UserError
from gaffer.store.crypto import SecretBox
from gaffer.store.models import ProjectCredential, utcnow

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
VALUE_MAX_BYTES = 64 * 1024


class CredentialError(UserError, ValueError):
    """A credential name or value is refused, or the credential does not exist."""


@dataclass(frozen=True)
class CredentialView:
    """A credential as listings show it: name, masked value, when it was last set."""

    name: str
    masked: str
    updated_at: datetime


def mask(value: str) -> str:
    """``value`` masked for display: ``"…"`` and its last 4 characters when it is 16 or more
    characters long (a quarter at most), else ``"****"``."""
    if len(value) < 16:
        return "****"
    return "…" + value[-4:]


def validate_name(name: str) -> str:
    """``name`` if it is a valid credential name (an environment-variable-like identifier),
    else raises :class:`CredentialError`."""
    if not NAME_PATTERN.fullmatch(name):
        raise CredentialError(
            f"invalid credential name {name!r}: letters, digits and '_', not starting with a digit"
        )
    return name


def set_credential(
    session: Session, box: SecretBox, project_id: str, name: str, value: str
) -> CredentialView:
    """Create or replace the project's credential ``name`` with ``value`` (stripped of
    surrounding whitespace, which a pasted key often carries). Raises :class:`CredentialError`
    for a bad name, an empty value, or one over :data:`VALUE_MAX_BYTES`."""
    validate_name(name)
    value = value.strip()
    if not value:
        raise CredentialError("the credential value is empty (it is read from stdin)")
    if len(value.encode()) > VALUE_MAX_BYTES:
        raise CredentialError(f"the credential value is over {VALUE_MAX_BYTES} bytes")
    row = session.scalar(
        select(ProjectCredential).where(
            ProjectCredential.project_id == project_id, ProjectCredential.name == name
        )
    )
    now = utcnow()
    if row is None:
        row = ProjectCredential(project_id=project_id, name=name, created_at=now)
        session.add(row)
    row.value_encrypted = box.encrypt(value)
    row.updated_at = now
    session.flush()
    return CredentialView(name, mask(value), now)


def list_credentials(session: Session, box: SecretBox, project_id: str) -> list[CredentialView]:
    """The project's credentials by name, masked."""
    rows = session.scalars(
        select(ProjectCredential)
        .where(ProjectCredential.project_id == project_id)
        .order_by(ProjectCredential.name)
    )
    return [
        CredentialView(r.name, mask(box.decrypt(r.value_encrypted)), r.updated_at) for r in rows
    ]


def read_credential(session: Session, box: SecretBox, project_id: str, name: str) -> str | None:
    """The decrypted value of the project's credential ``name``, or None when it is not set."""
    row = session.scalar(
        select(ProjectCredential).where(
            ProjectCredential.project_id == project_id, ProjectCredential.name == name
        )
    )
    return None if row is None else box.decrypt(row.value_encrypted)


def delete_credential(session: Session, project_id: str, name: str) -> None:
    """Delete the project's credential ``name``. Raises :class:`CredentialError` when there
    is none."""
    result = session.execute(
        delete(ProjectCredential).where(
            ProjectCredential.project_id == project_id, ProjectCredential.name == name
        )
    )
    if not getattr(result, "rowcount", 0):
        raise CredentialError(f"no credential named {name!r} on this project")
