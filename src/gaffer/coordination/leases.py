"""Run leases in Redis: the work-item lock and the concurrency slots, shared by every process.

Before a run starts, its dispatcher acquires, atomically (``lua/acquire_run_leases.lua``):

* the **work-item lock** ``gaffer:lock:work-item:<project>:<agent>:<item>``: at most one run of
  an agent type per work item at a time;
* a **project slot** in ``gaffer:slots:project:<project>:<agent>``: at most ``project_cap`` runs
  of an agent type per project;
* a **global slot** in ``gaffer:slots:global``: at most ``global_cap`` runs across every
  dispatch process.

Each is a lease with an expiry (Redis server time, so hosts' clocks do not matter), refreshed
while the run lives. A dispatcher that crashes stops refreshing, and its leases expire instead of
wedging the work item. Process memory is not a lock: an in-memory map per process let two
processes both start the same review in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from gaffer.coordination.keys import key
from gaffer.coordination.scripts import script


@dataclass(frozen=True)
class LeaseKeys:
    """The three keys of one run's leases."""

    lock: str
    project_slots: str
    global_slots: str

    @classmethod
    def of(cls, project_id: str, agent_type: str, work_item: str) -> LeaseKeys:
        """The keys for a run of ``agent_type`` on ``work_item`` of a project."""
        return cls(
            lock=key("lock", "work-item", project_id, agent_type, work_item),
            project_slots=key("slots", "project", project_id, agent_type),
            global_slots=key("slots", "global"),
        )

    def as_list(self) -> list[str]:
        """KEYS for the Lua scripts."""
        return [self.lock, self.project_slots, self.global_slots]


@dataclass(frozen=True)
class LeaseResult:
    """Whether the leases were acquired; if not, why (``work_item_busy``, ``project_cap``,
    ``global_cap``) and a detail (the holding run id, or the cap)."""

    acquired: bool
    reason: str
    detail: str


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RunLeases:
    """Acquire, refresh and release run leases. ``lease_ms``: lease length in milliseconds;
    caps of 0 mean no cap."""

    def __init__(
        self, redis: aioredis.Redis, *, lease_ms: int, project_cap: int, global_cap: int
    ) -> None:
        self.lease_ms = lease_ms
        self.project_cap = project_cap
        self.global_cap = global_cap
        self._acquire = script(redis, "acquire_run_leases")
        self._refresh = script(redis, "refresh_run_leases")
        self._release = script(redis, "release_run_leases")

    async def acquire(self, keys: LeaseKeys, run_id: str) -> LeaseResult:
        """Take the lock and both slots for ``run_id``, or none of them. Redis errors propagate."""
        ok, reason, detail = await self._acquire(
            keys=keys.as_list(), args=[run_id, self.lease_ms, self.project_cap, self.global_cap]
        )
        return LeaseResult(bool(int(ok)), _text(reason), _text(detail))

    async def refresh(self, keys: LeaseKeys, run_id: str) -> str | None:
        """Extend the leases of a running run. Returns None, or the id of the run that holds
        the work-item lock now (``run_id``'s lease lapsed, for a Redis restart or a dispatcher
        that stalled longer than ``lease_ms``, and that run took the work item): at most one
        run per work item, so the caller stops ``run_id``. Redis errors propagate."""
        kept, holder = await self._refresh(keys=keys.as_list(), args=[run_id, self.lease_ms])
        return None if int(kept) else _text(holder)

    async def release(self, keys: LeaseKeys, run_id: str) -> None:
        """Give the leases back (the lock only if ``run_id`` holds it)."""
        await self._release(keys=keys.as_list(), args=[run_id])
