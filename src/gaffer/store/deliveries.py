"""Queries over webhook deliveries: every request received, with its answer and reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from gaffer.store.models import WebhookDelivery


def record_delivery(
    session: Session,
    *,
    provider: str,
    status_code: int,
    decision: str,
    reason: str,
    event: str | None = None,
    action: str | None = None,
    delivery_id: str | None = None,
    project_id: str | None = None,
    run_ids: Sequence[str] = (),
) -> int:
    """Insert one delivery record (a Core insert: this is on every delivery's path); returns
    its id."""
    return int(
        session.execute(
            insert(WebhookDelivery).returning(WebhookDelivery.id),
            {
                "provider": provider,
                "event": event,
                "action": action,
                "delivery_id": delivery_id,
                "project_id": project_id,
                "status_code": status_code,
                "decision": decision,
                "reason": reason,
                "run_ids": list(run_ids),
            },
        ).scalar_one()
    )


def record_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many delivery records in one statement (the burst buffer's deferred records).

    Each row has the columns of :func:`record_delivery` and ``received_at`` (aware datetime).
    """
    if rows:
        session.execute(insert(WebhookDelivery), [dict(row) for row in rows])


def update_delivery(
    session: Session, record_id: int, *, status_code: int, decision: str, reason: str
) -> None:
    """Change the answer recorded for a delivery (when a later step failed)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == record_id)
        .values(status_code=status_code, decision=decision, reason=reason)
    )


def list_deliveries(
    session: Session, *, delivery_id: str | None = None, limit: int = 100
) -> list[WebhookDelivery]:
    """Newest deliveries first, optionally only those whose delivery id is or starts with
    ``delivery_id`` (so the shortened id a listing shows finds its delivery)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if delivery_id is not None:
        # autoescape: "_" and "%" in the prefix are themselves, not LIKE wildcards.
        query = query.where(WebhookDelivery.delivery_id.startswith(delivery_id, autoescape=True))
    return list(session.scalars(query))
