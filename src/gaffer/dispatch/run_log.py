"""Buffered writes of a run's log lines to the database.

Lines arrive one by one from the worker's output; writing each in its own transaction would cost
a commit per line. :class:`RunLogWriter` collects them and writes a batch every
:data:`FLUSH_INTERVAL_S` seconds or :data:`FLUSH_LINES` lines, whichever comes first.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from gaffer.store.db import Database
from gaffer.store.models import utcnow
from gaffer.store.runs import append_logs

FLUSH_INTERVAL_S = 0.25
FLUSH_LINES = 200
MAX_MESSAGE_CHARS = 64 * 1024


class RunLogWriter:
    """Collects ``(stream, message)`` lines of one run and writes them in batches."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._pending: list[tuple[str, str, datetime]] = []
        self._last_flush = asyncio.get_running_loop().time()

    async def write(self, stream: str, message: str) -> None:
        """Queue one line; flushes when the batch is due."""
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " [truncated]"
        self._pending.append((stream, message, utcnow()))
        now = asyncio.get_running_loop().time()
        if len(self._pending) >= FLUSH_LINES or now - self._last_flush >= FLUSH_INTERVAL_S:
            await self.flush()

    async def flush(self) -> None:
        """Write every queued line now."""
        self._last_flush = asyncio.get_running_loop().time()
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        await asyncio.to_thread(self._insert, batch)

    def _insert(self, batch: list[tuple[str, str, datetime]]) -> None:
        with self.db.session() as session:
            append_logs(session, self.run_id, batch)
