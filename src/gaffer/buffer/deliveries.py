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
the record to the database at once instead. A record the database refuses for good (not a
retryable error) is moved to a dead-letter list, so it cannot hold back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog

from gaffer.buffer import keys
from gaffer.buffer.entries import text
from gaffer.buffer.errors import describe, is_retryable
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
    """Insert up to ``limit`` deferred records, in one statement; returns how many were
    inserted.

    A retryable database error (:func:`gaffer.buffer.errors.is_retryable`) puts the records
    back at the front of the list and is raised. Any other error means some record can never
    be inserted (a value longer than its column, a record that does not parse): the records
    are then inserted one by one, and each that fails so is moved to the dead-letter list
    :data:`gaffer.buffer.keys.DEAD_DELIVERIES` (JSON ``{"record", "error"}``) and logged
    (``buffer_delivery_record_dead_lettered``), so it no longer holds back the others; a
    retryable error meanwhile puts the records not yet inserted back and is raised. Raises
    Redis errors (a record taken and neither inserted nor put back is then lost).
    """
    popped = await redis.lpop(keys.PENDING_DELIVERIES, limit)
    if not popped:
        return 0
    raw: list[bytes | str] = list(popped) if isinstance(popped, list) else [popped]
    try:
        await asyncio.to_thread(_insert, db, [_row(r) for r in raw])
    except Exception as exc:
        if is_retryable(exc):
            await redis.lpush(keys.PENDING_DELIVERIES, *reversed(raw))
            raise
        log.warning("buffer_delivery_records_isolating", count=len(raw), error=describe(exc))
        return await _insert_one_by_one(redis, db, raw)
    except BaseException:
        await redis.lpush(keys.PENDING_DELIVERIES, *reversed(raw))
        raise
    log.debug("buffer_delivery_records_flushed", count=len(raw))
    return len(raw)


async def _insert_one_by_one(redis: aioredis.Redis, db: Database, raw: list[bytes | str]) -> int:
    inserted = 0
    for i, record in enumerate(raw):
        try:
            await asyncio.to_thread(_insert, db, [_row(record)])
        except Exception as exc:
            if is_retryable(exc):
                await redis.lpush(keys.PENDING_DELIVERIES, *reversed(raw[i:]))
                raise
            await _dead_letter(redis, record, exc)
        except BaseException:
            await redis.lpush(keys.PENDING_DELIVERIES, *reversed(raw[i:]))
            raise
        else:
            inserted += 1
    log.debug("buffer_delivery_records_flushed", count=inserted)
    return inserted


async def _dead_letter(redis: aioredis.Redis, record: bytes | str, exc: Exception) -> None:
    error = describe(exc)
    await redis.rpush(keys.DEAD_DELIVERIES, json.dumps({"record": text(record), "error": error}))
    delivery_id = None
    with contextlib.suppress(ValueError, AttributeError):
        delivery_id = json.loads(record).get("delivery_id")
    log.error("buffer_delivery_record_dead_lettered", delivery_id=delivery_id, error=error)


def _insert(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.session() as session:
        record_deliveries(session, rows)
