"""The audit log: one row per write, added to the session (so the transaction) of the write.

Callers pass the session that makes the change: if the change rolls back, so does its row, and
a row exists only for a change that was committed (issue 12, "Audit log").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gaffer.accounts.models import AuditEvent
from gaffer.accounts.principal import Principal

MASK = "********"
SECRET_WORDS = ("secret", "password", "token", "key", "credential")
"""A change field whose name contains one of these is stored as :data:`MASK`."""


def mask(change: Mapping[str, Any]) -> dict[str, Any]:
    """``change`` with the values of secret-looking fields (:data:`SECRET_WORDS`) replaced by
    :data:`MASK`, nested mappings included. Field names are kept."""
    masked: dict[str, Any] = {}
    for name, value in change.items():
        if any(word in name.lower() for word in SECRET_WORDS) and value is not None:
            masked[name] = MASK
        elif isinstance(value, Mapping):
            masked[name] = mask(value)
        else:
            masked[name] = value
    return masked


def record(
    session: Session,
    principal: Principal,
    action: str,
    *,
    target_type: str,
    target_id: str | None,
    organization_id: str | None,
    change: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Add an audit row for ``principal``'s ``action`` to ``session`` (flushed, not committed).

    ``action`` is ``<resource>.<verb>``; ``change`` is masked with :func:`mask`.
    """
    event = AuditEvent(
        actor_type=principal.actor_type,
        actor_user_id=principal.user_id,
        actor_token_id=principal.token_id,
        actor_label=principal.label,
        via=principal.via,
        action=action,
        target_type=target_type,
        target_id=target_id,
        organization_id=organization_id,
        change=mask(change or {}),
        request_id=request_id,
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class AuditFilter:
    """Which rows :func:`list_events` returns: each field None means "any".

    ``organizations`` None means every organization (and installation-wide rows); otherwise
    only rows of those organizations. ``before_id`` pages backwards (rows with a smaller id).
    """

    organizations: Collection[str] | None = None
    organization_id: str | None = None
    action: str | None = None
    actor: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    before_id: int | None = None
    limit: int = 100


def list_events(session: Session, where: AuditFilter) -> list[AuditEvent]:
    """Audit rows matching ``where``, newest first (at most ``where.limit``).

    ``action`` matches exactly or as a prefix ending in ``.`` (``run.`` finds every run
    action); ``actor`` is an email or a user or token id.
    """
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(where.limit)
    if where.organizations is not None:
        query = query.where(AuditEvent.organization_id.in_(list(where.organizations)))
    if where.organization_id is not None:
        query = query.where(AuditEvent.organization_id == where.organization_id)
    if where.action:
        if where.action.endswith("."):
            query = query.where(AuditEvent.action.startswith(where.action, autoescape=True))
        else:
            query = query.where(AuditEvent.action == where.action)
    if where.actor:
        query = query.where(
            (AuditEvent.actor_label == where.actor.lower())
            | (AuditEvent.actor_user_id == where.actor)
            | (AuditEvent.actor_token_id == where.actor)
        )
    if where.target_id:
        query = query.where(AuditEvent.target_id == where.target_id)
    if where.since is not None:
        query = query.where(AuditEvent.ts >= where.since)
    if where.before_id is not None:
        query = query.where(AuditEvent.id < where.before_id)
    return list(session.scalars(query))


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An audit row as JSON-ready data (``ts`` ISO 8601 UTC)."""
    return {
        "id": event.id,
        "ts": event.ts.isoformat(),
        "actor_type": event.actor_type,
        "actor": event.actor_label,
        "actor_user_id": event.actor_user_id,
        "actor_token_id": event.actor_token_id,
        "via": event.via,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "organization_id": event.organization_id,
        "change": event.change,
        "request_id": event.request_id,
    }
