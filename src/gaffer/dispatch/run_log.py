"""Buffered writes of a run's log lines to the database.

Lines arrive one by one from the worker's output; writing each in its own transaction would cost
a commit per line. :class:`RunLogWriter` collects them and writes a batch every
:data:`FLUSH_INTERVAL_S` seconds or :data:`FLUSH_LINES` lines, whichever comes first.

A batch that cannot be written (the database is down) is kept and written with the next flush;
at most :data:`MAX_PENDING_LINES` lines are kept, the oldest dropped beyond that, and the next
batch that is written starts with a ``system`` line saying how many were lost.

Lines of the worker's own output carry the backend's :class:`~gaffer.backends.base.LogCursor`;
the cursor of the last such line is written in the same transaction as its batch, so the
recorded cursor never runs ahead of, or behind, the recorded lines.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from gaffer.backends.base import LogCursor
from gaffer.store.db import Database
from gaffer.store.models import utcnow
from gaffer.store.runs import append_logs, set_fields

FLUSH_INTERVAL_S = 0.25
FLUSH_LINES = 200
MAX_MESSAGE_CHARS = 64 * 1024
MAX_PENDING_LINES = 10 * FLUSH_LINES
"""Lines kept while the database cannot be written; older ones are dropped beyond this."""


class RunLogWriter:
    """Collects ``(stream, message)`` lines of one run and writes them in batches."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self._pending: list[tuple[str, str, datetime]] = []
        self._cursor: LogCursor | None = None  # of the last pending line that carried one
        self._dropped = 0
        self._refused = False
        self._flushing = asyncio.Lock()
        self._last_flush = asyncio.get_running_loop().time()

    async def write(self, stream: str, message: str, cursor: LogCursor | None = None) -> None:
        """Queue one line (``cursor``: how far the worker's output has got with it); flushes
        when the batch is due. Raises what :meth:`flush` raises."""
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " [truncated]"
        self._pending.append((stream, message, utcnow()))
        if cursor is not None:
            self._cursor = cursor
        self._bound()
        now = asyncio.get_running_loop().time()
        # After a refused flush, only the interval triggers one: not every line while the
        # database is down.
        full = len(self._pending) >= FLUSH_LINES and not self._refused
        if full or now - self._last_flush >= FLUSH_INTERVAL_S:
            await self.flush()

    async def flush(self) -> None:
        """Write every queued line now.

        Database errors propagate; the lines stay queued for the next flush (at most
        :data:`MAX_PENDING_LINES` of them).
        """
        async with self._flushing:
            self._last_flush = asyncio.get_running_loop().time()
            if not self._pending and not self._dropped:
                return
            # Lines written while the insert runs go to a fresh list.
            batch, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
            cursor, self._cursor = self._cursor, None
            rows = batch
            if dropped:
                lost = f"{dropped} log lines lost: the database could not be written"
                rows = [("system", lost, batch[0][2] if batch else utcnow()), *batch]
            try:
                await asyncio.to_thread(self._insert, rows, cursor)
            except Exception:
                self._pending[:0] = batch
                self._dropped += dropped
                if self._cursor is None:  # no newer line carried one meanwhile
                    self._cursor = cursor
                self._bound()
                self._refused = True
                raise
            self._refused = False

    def _bound(self) -> None:
        excess = len(self._pending) - MAX_PENDING_LINES
        if excess > 0:
            del self._pending[:excess]
            self._dropped += excess

    def _insert(self, batch: list[tuple[str, str, datetime]], cursor: LogCursor | None) -> None:
        with self.db.session() as session:
            append_logs(session, self.run_id, batch)
            if cursor is not None:
                set_fields(session, self.run_id, log_cursor=str(cursor))
