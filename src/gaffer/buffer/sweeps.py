"""Periodic sweeps of the drain role: in-flight reclaim and the stale-entry count.

**Reclaim** (:class:`Reclaimer`): an entry popped by a drainer and not acknowledged within
``GAFFER_BUFFER_LEASE_MS`` (default 60 s) is put back at the front of its list, attempts + 1,
so a drainer killed mid-drain strands nothing. If the drainer was merely slow, both replays
meet the same run id and the run engine creates one run. Runs every
``GAFFER_BUFFER_RECLAIM_INTERVAL_MS`` in every drain process (the script is atomic).

**Stale sweep** (:class:`StaleSweeper`): counts, per project, the entries waiting longer than
``GAFFER_BUFFER_STALE_AFTER_MS``. Work is sharded by a durable cursor in Redis over a snapshot
of the organization set taken at each cycle start, ``GAFFER_BUFFER_STALE_ORGS_PER_PASS``
organizations per pass (one atomic script per pass, ``lua/stale.lua``), so a restart resumes
the cycle where it stopped and no pass is unbounded. Counts live in the Redis hash
``gaffer:buffer:stale:counts`` (read by ``/metrics``); projects that drained away leave it when
a cycle completes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gaffer.buffer.errors import describe
from gaffer.buffer.scripts import BufferStore, StalePass
from gaffer.settings import Settings

log = structlog.get_logger(__name__)


class Reclaimer:
    """Puts back entries whose lease expired."""

    def __init__(self, settings: Settings, store: BufferStore) -> None:
        self.settings = settings
        self.store = store

    async def run_once(self) -> int:
        """One reclaim pass; returns how many entries went back. Raises Redis errors."""
        reclaimed = await self.store.reclaim(self.settings.buffer_lease_ms)
        if reclaimed:
            log.warning("buffer_entries_reclaimed", count=reclaimed)
        return reclaimed


class StaleSweeper:
    """Counts stale entries per project, a bounded number of organizations per pass."""

    def __init__(self, settings: Settings, store: BufferStore) -> None:
        self.settings = settings
        self.store = store

    async def run_once(self) -> StalePass:
        """One pass; raises Redis errors."""
        result = await self.store.stale_pass(
            self.settings.buffer_stale_after_ms, self.settings.buffer_stale_orgs_per_pass
        )
        if result.completed:
            log.debug("buffer_stale_cycle_completed", cycle=result.cycle, orgs=result.total)
        return result


async def every(
    interval_s: float, step: Callable[[], Awaitable[object]], stop: asyncio.Event, name: str
) -> None:
    """Call ``step`` every ``interval_s`` seconds until ``stop`` is set; an error is logged
    (``buffer_sweep_failed``) and the next period tries again."""
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:
            log.warning("buffer_sweep_failed", sweep=name, error=describe(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
