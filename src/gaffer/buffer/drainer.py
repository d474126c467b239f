"""The drainer: replays buffered requests into the run engine, fairly, at a bounded pace.

One tick (:meth:`Drainer.tick`):

1. read the organizations that have entries, and advance the cursor shared by every drainer
   (``INCR``), which picks the organization the rotation starts at: successive ticks, and
   drainers running at once, start at different organizations;
2. for each organization in turn, pop up to ``GAFFER_BUFFER_DRAIN_BUDGET`` entries of *one* of
   its projects (the pop script rotates over the organization's projects), and replay them
   (:mod:`gaffer.buffer.replay`) as a task; at most ``GAFFER_BUFFER_DRAIN_CONCURRENCY`` replays
   run at once (each is one transaction: this is the cap on concurrent database writes of the
   process), and nothing is popped before a slot is free;
3. wait for the tick's replays, then (at most every 0.5 s, or when 500 are waiting) write the
   deferred delivery records in one insert.

So a project with 9,000 entries gets one budget per tick like every other project with
entries, and a project with 10 waits at most about one tick (two if it shares its organization
with the big one). Between ticks: none while some project still fills a whole budget (a
backlog), else ``GAFFER_BUFFER_POLL_MS`` (the buffer is empty or the drainer has caught up with
a trickle: waiting lets the next batches fill up instead of writing one transaction per
handful of entries), and after an error an exponential backoff from the poll interval up to
``GAFFER_BUFFER_BACKOFF_MAX_MS``. After a retryable database error the drainer pops nothing
until ``SELECT 1`` answers again, so an outage does not burn the entries' attempts.

Several drainers may run at once (every step is an atomic script; replay is idempotent per run
id). :meth:`Drainer.stop` lets the tick in progress finish; its caller closes the connections
afterwards. Entries of a drainer that dies are put back after their lease by
:class:`gaffer.buffer.sweeps.Reclaimer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from dataclasses import dataclass

import structlog

from gaffer.buffer.deliveries import FLUSH_BATCH, flush_records
from gaffer.buffer.errors import describe, is_retryable
from gaffer.buffer.keys import PENDING_DELIVERIES
from gaffer.buffer.replay import Replayer, ReplayResult
from gaffer.buffer.scripts import BufferStore, Popped
from gaffer.settings import Settings
from gaffer.store.db import Database

log = structlog.get_logger(__name__)

RECORD_FLUSH_INTERVAL_S = 0.5


@dataclass
class TickResult:
    """What one tick did: how many pops took a whole budget, and the first retryable error a
    replay or the record flush met (the drainer then backs off and waits for the database)."""

    full_budgets: int = 0
    """Pops that took a whole budget: that project probably has more waiting."""
    retryable_error: BaseException | None = None


class Drainer:
    """Drains the buffer until :meth:`stop` (see the module docstring)."""

    def __init__(
        self, settings: Settings, db: Database, store: BufferStore, replayer: Replayer
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.replayer = replayer
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """Names the drainer in logs and in its leases (``<name>:<n>``), pid first."""
        self._leases = itertools.count(1)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.popped = 0
        """Entries this drainer has taken, over its life."""
        self._flushed_at = float("-inf")

    async def start(self) -> None:
        """Start draining in a background task."""
        self._task = asyncio.create_task(self._run(), name=f"drainer-{self.name}")
        log.info(
            "buffer_drainer_started",
            drainer=self.name,
            budget=self.settings.buffer_drain_budget,
            concurrency=self.settings.buffer_drain_concurrency,
        )

    async def stop(self) -> None:
        """Stop after the tick in progress (its replays complete and are acknowledged)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        log.info("buffer_drainer_stopped", drainer=self.name, ticks=self.ticks)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _backoff_s(self, errors: int) -> float:
        base = self.settings.buffer_poll_ms
        delay_ms: int = min(self.settings.buffer_backoff_max_ms, base * 2 ** min(errors, 30))
        return delay_ms / 1000

    async def _run(self) -> None:
        errors = 0
        wait_for_db = False
        while not self._stopping.is_set():
            if wait_for_db:
                try:
                    await asyncio.to_thread(self.db.ping)
                    wait_for_db = False
                    log.info("buffer_drain_database_back", drainer=self.name)
                except Exception as exc:
                    errors += 1
                    log.warning(
                        "buffer_drain_database_unavailable",
                        drainer=self.name,
                        error=describe(exc),
                        retry_in_s=self._backoff_s(errors),
                    )
                    await self._sleep(self._backoff_s(errors))
                    continue
            try:
                tick = await self.tick()
            except Exception as exc:
                errors += 1
                log.exception("buffer_drain_tick_failed", drainer=self.name, error=describe(exc))
                await self._sleep(self._backoff_s(errors))
                continue
            if tick.retryable_error is not None:
                errors += 1
                wait_for_db = True
                await self._sleep(self._backoff_s(errors))
                continue
            errors = 0
            if not tick.full_budgets:
                await self._sleep(self.settings.buffer_poll_ms / 1000)

    async def tick(self) -> TickResult:
        """One rotation over the organizations with entries, then the deferred delivery
        records when their flush is due (see the module docstring).

        Returns what the tick did; its ``retryable_error`` is set when a replay or the record
        flush met a retryable error (:func:`gaffer.buffer.errors.is_retryable`, e.g. the
        database is down): the caller then pops nothing until the database answers. Raises
        Redis errors of the pops, acknowledgements and record list (the replays already
        started are awaited first), and non-retryable errors of the record flush.
        """
        result = TickResult()
        self.ticks += 1
        orgs = await self.store.organizations()
        if orgs:
            turn = await self.store.next_org_turn()
            start = turn % len(orgs)
            await self._rotate(orgs[start:] + orgs[:start], result)
        if result.retryable_error is not None:
            # The database (or Redis) is failing: the records wait for the next flush.
            return result
        try:
            await self._flush_records()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            # Same path as a replay's retryable error: wait for the database, pop nothing.
            log.warning(
                "buffer_delivery_records_flush_failed", drainer=self.name, error=describe(exc)
            )
            result.retryable_error = exc
        return result

    async def _flush_records(self) -> None:
        now = time.monotonic()
        recent = now - self._flushed_at < RECORD_FLUSH_INTERVAL_S
        if recent and await self.store.redis.llen(PENDING_DELIVERIES) < FLUSH_BATCH:
            return
        self._flushed_at = now
        await flush_records(self.store.redis, self.db)

    async def _rotate(self, orgs: list[str], result: TickResult) -> None:
        slots = asyncio.Semaphore(self.settings.buffer_drain_concurrency)
        tasks: list[asyncio.Task[None]] = []

        async def replay(popped: Popped, lease: str) -> None:
            try:
                assert popped.project_id is not None
                outcome: ReplayResult = await self.replayer.replay(
                    popped.project_id, popped.entries, lease
                )
                if outcome.retryable_error is not None and result.retryable_error is None:
                    result.retryable_error = outcome.retryable_error
            finally:
                slots.release()

        try:
            for org in orgs:
                await slots.acquire()
                if self._stopping.is_set() or result.retryable_error is not None:
                    slots.release()
                    break
                lease = f"{self.name}:{next(self._leases)}"
                try:
                    popped = await self.store.pop(org, self.settings.buffer_drain_budget, lease)
                except BaseException:
                    slots.release()
                    raise
                if not popped.entries:
                    slots.release()
                    continue
                self.popped += len(popped.entries)
                if len(popped.entries) >= self.settings.buffer_drain_budget:
                    result.full_budgets += 1
                tasks.append(asyncio.create_task(replay(popped, lease)))
        finally:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            # Acknowledgements failed (Redis): the entries stay in flight until reclaimed.
            raise failures[0]
