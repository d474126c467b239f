"""The stale sweep (sharded by a durable cursor, across restarts) on a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gaffer.buffer import keys
from gaffer.buffer.scripts import BufferStore
from gaffer.buffer.sweeps import StaleSweeper
from tests.conftest import SettingsFactory
from tests.support.buffering import new_runs

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000


async def age(redis: aioredis.Redis, run_ids: list[str], ms: int) -> None:
    """Make entries look ``ms`` older than they are."""
    for run_id in run_ids:
        created = int(await redis.hget(keys.entry(run_id), "created_ms"))  # type: ignore[misc]
        await redis.hset(keys.entry(run_id), "created_ms", created - ms)  # type: ignore[misc]


async def counts(redis: aioredis.Redis) -> dict[str, int]:
    raw = await redis.hgetall(keys.STALE_COUNTS)  # type: ignore[misc]
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_stale_sweep_resumes_its_cycle_across_restarts(
    make_settings: SettingsFactory, redis_url: str
) -> None:
    settings = make_settings(buffer_stale_after_ms=HOUR_MS, buffer_stale_orgs_per_pass=1)
    redis = aioredis.from_url(redis_url)
    store = BufferStore(redis)
    try:
        ids = {}
        for org, project, stale in (("o1", "pa", 3), ("o2", "pb", 1), ("o3", "pc", 0)):
            accepted = await store.accept(org, project, new_runs(project, 4))
            ids[project] = [a.run_id for a in accepted]
            await age(redis, ids[project][:stale], 2 * HOUR_MS)

        first = StaleSweeper(settings, store)
        p1 = await first.run_once()
        assert (p1.cycle, p1.position, p1.total, p1.completed) == (1, 1, 3, False)
        assert await counts(redis) == {"pa": 3}
        # An organization that appears mid-cycle waits for the next cycle's snapshot.
        await store.accept("o0", "pz", new_runs("pz", 2))
        await age(redis, ids["pc"][:2], 2 * HOUR_MS)
    finally:
        await redis.aclose()

    # A restart: new connection, new sweeper; the cursor is in Redis.
    redis = aioredis.from_url(redis_url)
    store = BufferStore(redis)
    try:
        second = StaleSweeper(settings, store)
        p2 = await second.run_once()
        assert (p2.cycle, p2.position, p2.completed) == (1, 2, False)
        assert await counts(redis) == {"pa": 3, "pb": 1}
        # pa drains away before the cycle ends: its count stays until the cycle completes.
        popped = await store.pop("o1", 10, "L")
        await store.ack([e.run_id for e in popped.entries], "L", 0)
        p3 = await second.run_once()
        assert (p3.cycle, p3.position, p3.completed) == (1, 3, True)
        assert await counts(redis) == {"pa": 3, "pb": 1, "pc": 2}

        # The next cycle snapshots the orgs with entries now (o0, o2, o3: not o1).
        passes = [await second.run_once() for _ in range(3)]
        assert [(p.cycle, p.total, p.completed) for p in passes] == [
            (2, 3, False),
            (2, 3, False),
            (2, 3, True),
        ]
        assert await counts(redis) == {"pb": 1, "pc": 2, "pz": 0}
    finally:
        await redis.aclose()


async def test_an_empty_buffer_completes_each_cycle_and_clears_the_counts(
    make_settings: SettingsFactory, redis_url: str
) -> None:
    redis = aioredis.from_url(redis_url)
    try:
        store = BufferStore(redis)
        await redis.hset(keys.STALE_COUNTS, "gone", 5)  # type: ignore[misc]
        result = await StaleSweeper(make_settings(), store).run_once()
        assert (result.total, result.visited, result.completed) == (0, 0, True)
        assert await counts(redis) == {}
        assert (await store.stats()).stale == {}
    finally:
        await redis.aclose()
