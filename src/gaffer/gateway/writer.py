"""Usage rows written in batches by one task per gateway process.

Each call's row is queued when the call ends and a single writer task inserts whatever has
queued in one transaction, at most every :data:`FLUSH_INTERVAL_S`. One row per call written on a
thread of its own would run SQLAlchemy's Python on that thread while the event loop serves the
next call, and every switch of the interpreter lock between them can hold the loop for up to
5 ms (``sys.getswitchinterval()``): that showed as milliseconds added to each call's time to
first byte in ``bench/gateway.py``. With SQLite (a local file) a batch is written on the event
loop itself; with PostgreSQL on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.exc import SQLAlchemyError

from gaffer.gateway.usage import CallRecord, record_calls
from gaffer.store.db import Database

log = structlog.get_logger("gaffer.gateway")

FLUSH_INTERVAL_S = 0.05


class UsageWriter:
    """Queues :class:`CallRecord` s and writes them in batches (see the module docstring).

    :meth:`add` never blocks and never raises; a batch the database refuses is logged
    (``gateway_record_failed``, with the number of rows lost) and dropped.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inline = db.settings.uses_sqlite
        self._pending: list[CallRecord] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def add(self, record: CallRecord) -> None:
        """Queue ``record``'s row."""
        self._pending.append(record)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_INTERVAL_S)
            batch, self._pending = self._pending, []
            try:
                if self.inline:
                    record_calls(self.db, batch)
                else:
                    await asyncio.to_thread(record_calls, self.db, batch)
            except SQLAlchemyError as exc:
                log.error("gateway_record_failed", rows=len(batch), error=type(exc).__name__)
            if not self._pending:
                self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued row is written (or dropped)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Flush, then stop the writer task."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
