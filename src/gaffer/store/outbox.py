"""The outbox: writes to GitHub recorded with the run state they follow from, sent later.

:func:`enqueue` is called inside the caller's transaction (the same ``Session`` that moves
the run), so the write exists exactly when the state does. The notifier claims due entries
with a compare-and-set ``UPDATE`` (:func:`claim`), so any number of notifiers share the work
and an entry is sent by one at a time; an entry whose sender died is taken over when its
lease ends. Entries of one run are sent in order: an entry waits while an older entry of its
run is still pending or being sent.

An entry may follow from no run (:func:`enqueue_once`: a trigger ignored over an attempt cap
or the monthly budget says so on its issue/PR): it has a ``number`` and a ``dedup_key``, unique
per project, so the same notice is written once however many deliveries ask for it.

A write that a run calls for once (its start: the ack's "started" text, the check run in
progress) is enqueued with ``once``: a start that is retried (the dispatcher restarted, the job
taken up again) finds the same write already recorded, in any status, and adds none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from gaffer.store.models import OutboxEntry, OutboxStatus, utcnow

OPEN = (OutboxStatus.PENDING, OutboxStatus.SENDING)


def enqueue(
    session: Session,
    *,
    run_id: str,
    project_id: str,
    kind: str,
    payload: dict[str, Any],
    coalesce_key: str | None = None,
    once: bool = False,
) -> OutboxEntry:
    """Add an entry (pending, due now) in ``session``'s transaction and return it.

    With ``coalesce_key``, older *pending* entries of the run with that key are superseded
    (only the newest text of an ack needs sending; one already being sent is left alone).
    With ``once``, an entry of the run with the same ``kind`` and an equal ``payload`` (as
    JSON), in any status, is returned instead and nothing is added (the dedup of a retried
    start; see the module docstring).
    """
    session.flush()  # a run added in this session is written first (its row is the FK target)
    if once:
        same = json.loads(json.dumps(payload))
        for known in session.scalars(
            select(OutboxEntry)
            .where(OutboxEntry.run_id == run_id, OutboxEntry.kind == kind)
            .order_by(OutboxEntry.id)
        ):
            if known.payload == same:
                return known
    if coalesce_key is not None:
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.run_id == run_id,
                OutboxEntry.coalesce_key == coalesce_key,
                OutboxEntry.status == OutboxStatus.PENDING,
            )
            .values(status=OutboxStatus.SUPERSEDED)
        )
    entry = OutboxEntry(
        run_id=run_id,
        project_id=project_id,
        kind=kind,
        payload=payload,
        coalesce_key=coalesce_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry


def enqueue_once(
    session: Session,
    *,
    project_id: str,
    number: int,
    dedup_key: str,
    kind: str,
    payload: dict[str, Any],
) -> bool:
    """Add an entry that follows from no run (pending, due now), about issue/PR ``number``,
    in ``session``'s transaction, unless the project already has one with ``dedup_key`` (any
    status: a notice sent or failed for good is not written again). True when added.

    ``INSERT ... ON CONFLICT DO NOTHING`` on the unique ``(project_id, dedup_key)`` index, so
    two ingest processes writing the same notice at once add one row and neither fails.
    Raises ``ValueError`` for an empty ``dedup_key`` or one over 200 characters.
    """
    if not dedup_key or len(dedup_key) > 200:
        raise ValueError(f"dedup key {dedup_key!r} must be 1 to 200 characters")
    values = {
        "run_id": None,
        "project_id": project_id,
        "number": number,
        "dedup_key": dedup_key,
        "kind": kind,
        "payload": payload,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "created_at": utcnow(),
    }
    table = cast(Table, OutboxEntry.__table__)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - gaffer runs on SQLite and PostgreSQL only
        known = session.scalar(
            select(OutboxEntry.id).where(
                OutboxEntry.project_id == project_id, OutboxEntry.dedup_key == dedup_key
            )
        )
        if known is not None:
            return False
        stmt = insert(table).values(values)
    # RETURNING says whether a row was added (rowcount is not reliable for ON CONFLICT).
    added = session.execute(stmt.returning(table.c.id)).scalar()
    return added is not None


def entries_for_target(session: Session, project_id: str, number: int) -> Sequence[OutboxEntry]:
    """The entries of ``project_id`` that follow from no run and are about issue/PR
    ``number``, oldest first."""
    return list(
        session.scalars(
            select(OutboxEntry)
            .where(
                OutboxEntry.project_id == project_id,
                OutboxEntry.run_id.is_(None),
                OutboxEntry.number == number,
            )
            .order_by(OutboxEntry.id)
        )
    )


def due_ids(session: Session, now: datetime, limit: int = 20) -> list[int]:
    """Ids of entries that may be sent now, oldest first: pending and due, or sending with a
    lapsed lease, and with no older open entry of the same run."""
    older = aliased(OutboxEntry)
    blocked = exists().where(
        older.run_id == OutboxEntry.run_id,
        older.id < OutboxEntry.id,
        older.status.in_(OPEN),
    )
    query = (
        select(OutboxEntry.id)
        .where(
            or_(
                and_(
                    OutboxEntry.status == OutboxStatus.PENDING, OutboxEntry.next_attempt_at <= now
                ),
                and_(OutboxEntry.status == OutboxStatus.SENDING, OutboxEntry.lease_until <= now),
            ),
            ~blocked,
        )
        .order_by(OutboxEntry.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim(session: Session, entry_id: int, now: datetime, lease_s: float) -> OutboxEntry | None:
    """Take entry ``entry_id`` for sending until ``now + lease_s`` (compare-and-set: None when
    another notifier took it first or it is no longer due)."""
    taken = session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == entry_id,
            or_(
                and_(
                    OutboxEntry.status == OutboxStatus.PENDING, OutboxEntry.next_attempt_at <= now
                ),
                and_(OutboxEntry.status == OutboxStatus.SENDING, OutboxEntry.lease_until <= now),
            ),
        )
        .values(
            status=OutboxStatus.SENDING,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=OutboxEntry.attempts + 1,
        )
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OutboxEntry, entry_id, populate_existing=True)


def mark_sent(session: Session, entry_id: int, result: dict[str, Any]) -> None:
    """The entry reached GitHub: record what was created."""
    session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id)
        .values(
            status=OutboxStatus.SENT,
            result=result,
            sent_at=utcnow(),
            lease_until=None,
            last_error=None,
        )
    )


def mark_retry(session: Session, entry_id: int, error: str, at: datetime) -> None:
    """The attempt failed in a way a later one may not: try again at ``at``."""
    session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id)
        .values(status=OutboxStatus.PENDING, last_error=error, next_attempt_at=at, lease_until=None)
    )


def mark_failed(session: Session, entry_id: int, error: str) -> None:
    """The entry failed for good (GitHub's answer in ``error``); later entries go on."""
    session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id)
        .values(status=OutboxStatus.FAILED, last_error=error, lease_until=None)
    )


def entries_for_run(session: Session, run_id: str) -> Sequence[OutboxEntry]:
    """Every entry of a run, oldest first (what ``gaffer runs show`` lists)."""
    return list(
        session.scalars(
            select(OutboxEntry).where(OutboxEntry.run_id == run_id).order_by(OutboxEntry.id)
        )
    )


def latest_result(session: Session, run_id: str, kind: str) -> dict[str, Any] | None:
    """The ``result`` of the newest sent entry of ``kind`` for the run (e.g. the check run id
    a completion needs), or None."""
    row = session.scalars(
        select(OutboxEntry)
        .where(
            OutboxEntry.run_id == run_id,
            OutboxEntry.kind == kind,
            OutboxEntry.status == OutboxStatus.SENT,
        )
        .order_by(OutboxEntry.id.desc())
        .limit(1)
    ).first()
    return row.result if row is not None else None


def describe(entry: OutboxEntry) -> dict[str, Any]:
    """One entry as ``gaffer runs show`` may list it: ``{"kind", "status", "url", "attempts",
    "error", "sent_at"}`` (``url`` from the result when GitHub made something)."""
    result = entry.result or {}
    return {
        "kind": entry.kind,
        "status": str(entry.status),
        "url": result.get("url"),
        "attempts": entry.attempts,
        "error": entry.last_error,
        "sent_at": entry.sent_at.isoformat() if entry.sent_at else None,
    }
