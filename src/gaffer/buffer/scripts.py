"""The buffer in Redis: every operation is one atomic Lua script (``lua/*.lua``).

:class:`BufferStore` wraps the scripts with types. The scripts compute the keys of entries,
lists and sets from the prefix and the encoded ids they hold (``lua/common.lua``), so the
buffer needs one Redis server (or a Sentinel-managed primary), not Redis Cluster.

Semantics, script by script (tests/test_buffer_scripts.py checks each):

* **accept**: a run id that already has an entry is a no-op (``duplicate``); an idempotency key
  bound to a live entry returns that entry's run (``bound``); otherwise the entry hash is
  written, its run appended to the project's list, and the project and organization put in
  their sets, all at once.
* **pop**: takes up to a budget of entries from the front of the next project of an
  organization, marks them in flight (sorted set scored by pop time), skips list members whose
  hash is gone, and drops the project and organization from their sets when it empties them.
* **ack**: the run exists now; the entry is kept for a short grace, then expires. Only an
  entry in flight under the caller's lease is acked; one that was put back and cancelled
  meanwhile is taken back and reported, so the caller cancels the run it created.
* **requeue**: back to the front of the list, attempts + 1.
* **fail**: delete (its terminal row is written) or dead-letter (no row could be written).
* **mutate**: cancel, append tags under a cap, or set metadata under a version check, on
  entries not yet in flight.
* **reclaim**: entries in flight longer than the lease go back to the front.
* **stale**: one pass of the stale sweep (see :mod:`gaffer.buffer.sweeps`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from gaffer.buffer import keys
from gaffer.buffer.entries import Entry, Snapshot, text
from gaffer.runs.engine import NewRun

LUA_DIR = Path(__file__).parent / "lua"
ACCEPT_CHUNK = 200
"""Entries per accept call: bounds the time one script holds Redis (payloads can be large)."""


@cache
def lua_source(name: str, *, common: bool = True) -> str:
    """The text of ``lua/<name>.lua``, after ``lua/common.lua`` unless ``common`` is False."""
    body = (LUA_DIR / f"{name}.lua").read_text()
    return (LUA_DIR / "common.lua").read_text() + "\n" + body if common else body


@dataclass(frozen=True)
class Accepted:
    """What accept did with one request: ``outcome`` is ``accepted``, ``duplicate`` (the run id
    was already buffered) or ``bound`` (``run_id`` is the live run its idempotency key is bound
    to); ``accepted_ms`` is the Redis time of the call (ms since the epoch)."""

    outcome: str
    run_id: str
    accepted_ms: int


@dataclass(frozen=True)
class Popped:
    """What a pop took: ``project_id`` (None when the organization had nothing), how many list
    members it dropped because their entry was gone, and the entries now in flight."""

    project_id: str | None
    skipped: int
    entries: list[Entry]


@dataclass(frozen=True)
class Mutation:
    """The answer of a mutate call: ``outcome`` is ``ok``, ``tag_cap``, ``version_conflict``,
    ``missing``, ``in_flight``, ``done`` or ``dead``; ``value`` the tags JSON or the version."""

    outcome: str
    value: str | int | None = None


@dataclass(frozen=True)
class StalePass:
    """One stale-sweep pass: the cycle number, cursor position after it, snapshot size,
    organizations visited, and whether it completed the cycle."""

    cycle: int
    position: int
    total: int
    visited: int
    completed: bool


@dataclass(frozen=True)
class BufferStats:
    """Sizes of the buffer for the metrics: list length and stale count per project id,
    entries in flight, dead-lettered entries and dead-lettered delivery records."""

    entries: dict[str, int]
    stale: dict[str, int]
    in_flight: int
    dead: int
    dead_deliveries: int = 0


class BufferStore:
    """Typed access to the buffer's scripts on one Redis client (bytes or str replies)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(lua_source(name))
            for name in ("accept", "pop", "ack", "requeue", "fail", "mutate", "reclaim", "stale")
        }

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](args=[keys.PREFIX, *args])

    async def accept(
        self, organization_id: str, project_id: str, runs: Sequence[NewRun]
    ) -> list[Accepted]:
        """Buffer ``runs`` of one project (in chunks of :data:`ACCEPT_CHUNK`, each atomic).

        Returns one :class:`Accepted` per run, in order. Raises Redis errors.
        """
        results: list[Accepted] = []
        for start in range(0, len(runs), ACCEPT_CHUNK):
            chunk = runs[start : start + ACCEPT_CHUNK]
            payload = [
                {
                    "id": new.run_id,
                    "seg": keys.segment(new.run_id),
                    "snapshot": Snapshot.of(new, organization_id).model_dump_json(),
                    "idem": (
                        keys.idempotency(project_id, new.idempotency_key)
                        if new.idempotency_key
                        else ""
                    ),
                    "tags": json.dumps(list(new.tags)),
                    "metadata": json.dumps(new.metadata),
                }
                for new in chunk
            ]
            now, outcomes = await self._run(
                "accept",
                keys.segment(organization_id),
                keys.segment(project_id),
                json.dumps(payload),
            )
            results.extend(
                Accepted(text(outcome), text(run_id), int(now)) for outcome, run_id in outcomes
            )
        return results

    async def organizations(self) -> list[str]:
        """The organization ids that have entries waiting, sorted. Raises Redis errors."""
        return sorted(unquote(text(m)) for m in await self.redis.smembers(keys.ORGS))

    async def next_org_turn(self) -> int:
        """Advance the shared organization cursor; returns its new value. Raises Redis
        errors."""
        return int(await self.redis.incr(keys.ORG_CURSOR))

    async def pop(self, organization_id: str, budget: int, lease: str) -> Popped:
        """Take up to ``budget`` entries of the organization's next project, in flight under
        ``lease``. Raises Redis errors."""
        reply = await self._run("pop", keys.segment(organization_id), budget, lease)
        project, skipped, *flat = reply
        return Popped(
            unquote(text(project)) if project else None,
            int(skipped),
            [Entry.from_flat(fields) for fields in flat],
        )

    async def ack(self, run_ids: Sequence[str], lease: str, grace_ms: int) -> list[str]:
        """Mark entries in flight under ``lease`` done (their runs exist); they expire after
        ``grace_ms``.

        Returns one outcome per run id, in order (see ``lua/ack.lua``): ``acked``;
        ``cancelled`` (the lease expired, the entry was put back and cancelled meanwhile: it is
        in flight under ``lease`` again, and the caller must cancel the run and ack it again);
        or ``lost`` (missing, or no longer ours: left alone). Raises Redis errors.
        """
        if not run_ids:
            return []
        reply = await self._run("ack", lease, grace_ms, *(keys.segment(r) for r in run_ids))
        return [text(outcome) for outcome in reply]

    async def requeue(self, run_ids: Sequence[str], lease: str, error: str) -> list[int]:
        """Put entries in flight under ``lease`` back at the front (in this order), attempts
        + 1. Returns the new attempts of each (-1: no longer ours). Raises Redis errors."""
        if not run_ids:
            return []
        reply = await self._run("requeue", lease, error, *(keys.segment(r) for r in run_ids))
        return [int(a) for a in reply]

    async def fail(
        self, run_ids: Sequence[str], lease: str, error: str, *, dead: bool = False
    ) -> int:
        """Delete entries in flight under ``lease`` (their terminal rows are written), or with
        ``dead`` keep them in the dead-letter list. Returns how many were ours. Raises Redis
        errors."""
        if not run_ids:
            return 0
        mode = "dead" if dead else "delete"
        return int(await self._run("fail", lease, mode, error, *(keys.segment(r) for r in run_ids)))

    async def _mutate(self, run_id: str, op: str, arg: str = "", number: int = 0) -> Mutation:
        reply = await self._run("mutate", keys.segment(run_id), op, arg, number)
        outcome = text(reply[0])
        value: str | int | None = None
        if len(reply) > 1:
            value = reply[1] if isinstance(reply[1], int) else text(reply[1])
        return Mutation(outcome, value)

    async def cancel(self, run_id: str) -> Mutation:
        """Mark a queued entry cancelled (idempotent); ``outcome`` ``ok``, or the status that
        prevents it (``missing``, ``in_flight``, ``done``, ``dead``). Raises Redis errors."""
        return await self._mutate(run_id, "cancel")

    async def add_tags(self, run_id: str, tags: Sequence[str], cap: int) -> Mutation:
        """Append ``tags`` (those not already there) to a queued entry unless it would then
        carry more than ``cap``; ``value`` is the tags JSON after (or unchanged). Raises Redis
        errors."""
        return await self._mutate(run_id, "tags", json.dumps(list(tags)), cap)

    async def set_metadata(
        self, run_id: str, metadata: dict[str, Any], expected_version: int
    ) -> Mutation:
        """Replace a queued entry's metadata if its version is ``expected_version``; ``value``
        is the new version (or the current one on ``version_conflict``). Raises Redis
        errors."""
        return await self._mutate(run_id, "metadata", json.dumps(metadata), expected_version)

    async def reclaim(self, lease_ms: int, limit: int = 1000) -> int:
        """Put back entries in flight longer than ``lease_ms`` (at most ``limit``); returns
        how many. Raises Redis errors."""
        return int(await self._run("reclaim", lease_ms, limit))

    async def stale_pass(self, threshold_ms: int, orgs_per_pass: int) -> StalePass:
        """One pass of the stale sweep (see ``lua/stale.lua``); ``threshold_ms`` is the age
        (ms) past which an entry is stale. Raises Redis errors."""
        cycle, position, total, visited, completed = await self._run(
            "stale", threshold_ms, orgs_per_pass
        )
        return StalePass(int(cycle), int(position), int(total), int(visited), bool(completed))

    async def get(self, run_id: str) -> Entry | None:
        """The entry of a run, or None when the buffer has none. Raises Redis errors, and
        pydantic ``ValidationError`` or ``KeyError`` for a hash that is not an entry."""
        mapping: dict[Any, Any] = await self.redis.hgetall(keys.entry(run_id))
        return Entry.from_mapping(mapping)

    async def stats(self) -> BufferStats:
        """List length per project, stale counts, in-flight and dead-letter sizes. Raises
        Redis errors."""
        orgs = [text(o) for o in await self.redis.smembers(keys.ORGS)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for org in orgs:
                pipe.smembers(keys.PREFIX + ":o:" + org)
            project_sets = await pipe.execute()
        projects = sorted({text(p) for members in project_sets for p in members})
        async with self.redis.pipeline(transaction=False) as pipe:
            for project in projects:
                pipe.llen(keys.PREFIX + ":q:" + project)
            pipe.hgetall(keys.STALE_COUNTS)
            pipe.zcard(keys.IN_FLIGHT)
            pipe.llen(keys.DEAD)
            pipe.llen(keys.DEAD_DELIVERIES)
            *lengths, stale, in_flight, dead, dead_deliveries = await pipe.execute()
        return BufferStats(
            entries={unquote(p): int(n) for p, n in zip(projects, lengths, strict=True)},
            stale={unquote(text(p)): int(n) for p, n in stale.items()},
            in_flight=int(in_flight),
            dead=int(dead),
            dead_deliveries=int(dead_deliveries),
        )
