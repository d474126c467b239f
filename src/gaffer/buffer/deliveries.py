"""Deferred delivery records: a buffered delivery's record is written by the drainer, in batches.

Ingest records every delivery in ``webhook_deliveries``. Writing that row while a project
floods would spend the database on exactly the burst the buffer exists to keep off it, so a
delivery whose runs were buffered pushes its record to a Redis list instead (one RPUSH, after
the runs were accepted), and each drainer tick inserts up to :data:`FLUSH_BATCH` of them in one
statement. ``received_at`` is the time ingest answered, not the time of the insert.

Trade-offs (documented in the README): the record appears in ``gaffer deliveries list`` once a
drainer runs; if ingest dies between accepting the runs and pushing the record, the record is
lost (the runs are not, and the ``webhook_delivery`` log line remains); a drainer killed between
taking a batch and committing it loses that batch of records. If the push fails, ingest writes
the record to the database at once instead.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog

from gaffer.buffer import keys
from gaffer.store.db import Database
from gaffer.store.deliveries import record_deliveries

log = structlog.get_logger(__name__)

FLUSH_BATCH = 500


async def defer_record(redis: aioredis.Redis, record: dict[str, Any]) -> None:
    """Queue one delivery record (the columns of ``record_delivery`` plus ``received_at`` as
    an aware datetime). Raises Redis errors."""
    await redis.rpush(keys.PENDING_DELIVERIES, json.dumps(record, default=datetime.isoformat))


def _row(raw: bytes | str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(raw)
    row["received_at"] = datetime.fromisoformat(row["received_at"])
    return row


async def flush_records(redis: aioredis.Redis, db: Database, limit: int = FLUSH_BATCH) -> int:
    """Insert up to ``limit`` deferred records in one statement; returns how many.

    If the insert fails the records go back to the front of the list and the error is raised.
    """
    popped = await redis.lpop(keys.PENDING_DELIVERIES, limit)
    if not popped:
        return 0
    raw: list[bytes | str] = list(popped) if isinstance(popped, list) else [popped]
    try:
        await asyncio.to_thread(_insert, db, [_row(r) for r in raw])
    except BaseException:
        await redis.lpush(keys.PENDING_DELIVERIES, *reversed(raw))
        raise
    log.debug("buffer_delivery_records_flushed", count=len(raw))
    return len(raw)


def _insert(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.session() as session:
        record_deliveries(session, rows)
