"""The drainer on real Redis and a real database: replay, fairness, failures, outages, stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gaffer.buffer import keys
from gaffer.buffer.drainer import Drainer
from gaffer.coordination.dispatch_claims import ClaimOutcome, claim_review
from gaffer.runs.engine import NewRun
from gaffer.runs.intake import review_target
from gaffer.store.models import RunStatus
from tests.conftest import SettingsFactory
from tests.support.buffering import BufferParts, buffer_parts, new_runs, request
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.anyio

FAST = {
    "buffer_poll_ms": 10,
    "buffer_backoff_max_ms": 200,
    "project_cache_ttl_s": 0.0,
}


async def until(check: Callable[[], Awaitable[bool] | bool], within_s: float = 60.0) -> None:
    """Wait until ``check()`` is true (polled every 20 ms), or fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(0.02)


async def drain_all(parts: BufferParts, drainer: Drainer, max_ticks: int = 10_000) -> int:
    """Tick until the buffer is empty; returns the ticks it took."""
    for tick in range(1, max_ticks + 1):
        await drainer.tick()
        if not await parts.store.organizations():
            return tick
    raise AssertionError("the buffer did not drain")


@pytest.fixture
async def parts(
    make_settings: SettingsFactory, database_url: str | None
) -> AsyncIterator[BufferParts]:
    async with buffer_parts(make_settings(database_url=database_url, **FAST)) as opened:
        yield opened


@pytest.fixture
async def pg_parts(
    make_settings: SettingsFactory, postgres_server: PostgresServer, request: pytest.FixtureRequest
) -> AsyncIterator[BufferParts]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    settings = make_settings(
        database_url=postgres_server.create_database(), **{**FAST, **overrides}
    )
    async with buffer_parts(settings) as opened:
        yield opened


async def test_every_entry_becomes_one_run_with_its_job(parts: BufferParts) -> None:
    a = parts.project("a", "org-1")
    b = parts.project("b", "org-2")
    runs_a = new_runs(a.id, 30, batch_id="batch-a", tags=("burst",), metadata={"k": "v"})
    runs_b = new_runs(b.id, 20)
    ids = await parts.accept(a, runs_a) + await parts.accept(b, runs_b)
    await drain_all(parts, parts.drainer())

    rows = {r.id: r for r in parts.rows()}
    assert sorted(rows) == sorted(ids)
    assert {r.status for r in rows.values()} == {RunStatus.QUEUED}
    first = rows[runs_a[3].run_id]
    assert (first.batch_id, first.batch_index, first.tags) == ("batch-a", 3, ["burst"])
    assert first.run_metadata == {"k": "v"}
    assert first.accepted_at is not None and first.accepted_at <= first.created_at
    assert rows[runs_b[0].run_id].tags == []
    assert (await parts.queue.counts())["waiting"] == 50
    assert {await parts.queue.state(i) for i in ids} == {"waiting"}
    stats = await parts.store.stats()
    assert (stats.entries, stats.in_flight) == ({}, 0)
    entry = await parts.store.get(ids[0])
    assert entry is not None and entry.status == "done"  # kept for the ack grace


async def test_replaying_an_entry_whose_run_exists_is_a_success(parts: BufferParts) -> None:
    p = parts.project("p")
    runs = new_runs(p.id, 5)
    await parts.engine.create_runs(p, runs[:3])  # a replay whose ack was lost
    await parts.accept(p, runs)
    await drain_all(parts, parts.drainer())
    assert sorted(r.id for r in parts.rows()) == sorted(r.run_id for r in runs)
    assert parts.row_count(status=RunStatus.QUEUED) == 5
    assert (await parts.queue.counts())["waiting"] == 5


@pytest.mark.parametrize("pg_parts", [{"buffer_drain_budget": 50}], indirect=True)
async def test_a_project_with_9000_entries_does_not_delay_one_with_10(
    pg_parts: BufferParts,
) -> None:
    parts = pg_parts
    heavy = parts.project("heavy", "org-big")
    sibling = parts.project("sibling", "org-big")  # shares the organization with heavy
    light = parts.project("light", "org-small")
    await parts.accept(heavy, new_runs(heavy.id, 9000))
    # The light projects' triggers arrive after the whole burst.
    light_ids = await parts.accept(light, new_runs(light.id, 10))
    sibling_ids = await parts.accept(sibling, new_runs(sibling.id, 10))
    drainer = parts.drainer()

    ticks = 0
    while parts.row_count(project_id=light.id) + parts.row_count(project_id=sibling.id) < 20:
        await drainer.tick()
        ticks += 1
        assert ticks <= 2, "a light project waited more than two ticks"
    assert sorted(r.id for r in parts.rows(project_id=light.id)) == sorted(light_ids)
    assert sorted(r.id for r in parts.rows(project_id=sibling.id)) == sorted(sibling_ids)
    # Meanwhile heavy got at most one budget per tick.
    heavy_rows = parts.row_count(project_id=heavy.id)
    assert heavy_rows <= 50 * ticks
    assert (await parts.store.stats()).entries == {heavy.id: 9000 - heavy_rows}


async def test_cancelled_entries_become_canceled_rows_without_jobs(parts: BufferParts) -> None:
    p = parts.project("p")
    runs = new_runs(p.id, 3)
    await parts.accept(p, runs)
    assert (await parts.store.cancel(runs[1].run_id)).outcome == "ok"
    await drain_all(parts, parts.drainer())
    [canceled] = parts.rows(status=RunStatus.CANCELED)
    assert canceled.id == runs[1].run_id
    assert canceled.error == "canceled while buffered" and canceled.finished_at is not None
    assert await parts.queue.state(runs[1].run_id) == "unknown"
    assert parts.row_count(status=RunStatus.QUEUED) == 2


async def test_cancel_wins_over_a_live_run(parts: BufferParts) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    await parts.accept(p, [run])
    # A drainer materialised it and died before its ack; the lease expires; a cancel arrives.
    popped = await parts.store.pop(p.organization_id, 10, "dead")
    await parts.engine.create_runs(p, [e.new_run() for e in popped.entries])
    assert await parts.store.reclaim(lease_ms=0) == 1
    assert (await parts.store.cancel(run.run_id)).outcome == "ok"
    await drain_all(parts, parts.drainer())
    [row] = parts.rows()
    assert row.status == RunStatus.CANCELED
    assert await parts.queue.state(run.run_id) == "unknown"


async def test_a_cancel_after_a_lease_expired_wins_over_the_late_replay(
    parts: BufferParts,
) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    target = review_target(p, run)
    assert target is not None
    await parts.accept(p, [run])
    # Drainer A pops the entry and overruns its lease: the sweep puts it back, and a user
    # cancels it (the cancel is answered ok).
    popped = await parts.store.pop(p.organization_id, 10, "A")
    assert await parts.store.reclaim(lease_ms=0) == 1
    assert (await parts.store.cancel(run.run_id)).outcome == "ok"
    # Then A's replay (of the entry as it was popped) creates the run and acks it.
    result = await parts.replayer().replay(p.id, popped.entries, "A")
    assert (result.materialized, result.canceled) == (0, 1)
    [row] = parts.rows()
    assert row.status == RunStatus.CANCELED
    assert await parts.queue.state(run.run_id) == "unknown"
    assert await parts.redis.get(target.claim_key) is None  # the review claim is released
    entry = await parts.store.get(run.run_id)
    assert entry is not None and entry.status == "done"
    stats = await parts.store.stats()
    assert (stats.entries, stats.in_flight, stats.dead) == ({}, 0, 0)
    await drain_all(parts, parts.drainer())
    assert [r.status for r in parts.rows()] == [RunStatus.CANCELED]


async def test_a_late_ack_leaves_an_entry_another_drainer_took(parts: BufferParts) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    await parts.accept(p, [run])
    popped = await parts.store.pop(p.organization_id, 10, "A")
    assert await parts.store.reclaim(lease_ms=0) == 1
    taken = await parts.store.pop(p.organization_id, 10, "B")
    result = await parts.replayer().replay(p.id, popped.entries, "A")
    assert result.materialized == 0  # B's replay counts it
    entry = await parts.store.get(run.run_id)
    assert entry is not None and (entry.status, entry.lease) == ("in_flight", "B")
    assert (await parts.store.stats()).in_flight == 1  # still reclaimable if B dies
    result = await parts.replayer().replay(p.id, taken.entries, "B")
    assert result.materialized == 1
    [row] = parts.rows()
    assert row.status == RunStatus.QUEUED
    assert (await parts.queue.counts())["waiting"] == 1


async def test_non_retryable_failures_write_system_failure_rows_with_batch_fields(
    parts: BufferParts,
) -> None:
    p = parts.project("p", agents=["review"])
    good = new_runs(p.id, 2, batch_id="b")
    bad = NewRun("f" * 32, request(p.id, 7, agent="implementation"), batch_id="b", batch_index=2)
    await parts.accept(p, [good[0], bad, good[1]])
    await drain_all(parts, parts.drainer())
    [failed] = parts.rows(status=RunStatus.SYSTEM_FAILURE)
    assert failed.id == bad.run_id
    assert (failed.batch_id, failed.batch_index, failed.tags) == ("b", 2, [])
    assert failed.error is not None and "'implementation' is not enabled" in failed.error
    assert failed.job_data["request"]["agent_type"] == "implementation"
    assert await parts.queue.state(bad.run_id) == "unknown"
    assert parts.row_count(status=RunStatus.QUEUED) == 2
    assert await parts.store.get(bad.run_id) is None  # deleted once its row was written


async def test_exhausted_attempts_write_a_system_failure_row(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(buffer_max_attempts=2, **FAST)
    async with buffer_parts(settings) as parts:
        p = parts.project("p")
        [run] = new_runs(p.id, 1, batch_id="b", tags=("t",))
        await parts.accept(p, [run])
        for attempt in range(2):
            await parts.store.pop(p.organization_id, 1, f"L{attempt}")
            await parts.store.requeue([run.run_id], f"L{attempt}", "OperationalError: gone")
        await drain_all(parts, parts.drainer())
        [row] = parts.rows()
        assert row.status == RunStatus.SYSTEM_FAILURE
        assert row.error == "gave up after 2 attempts: OperationalError: gone"
        assert (row.batch_id, row.batch_index, row.tags) == ("b", 0, ["t"])


async def test_an_exhausted_entry_whose_row_exists_counts_as_materialised(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    settings = make_settings(database_url=database_url, buffer_max_attempts=1, **FAST)
    async with buffer_parts(settings) as parts:
        p = parts.project("p")
        [run] = new_runs(p.id, 1)
        target = review_target(p, run)
        assert target is not None
        # Claimed at accept time, as the intake does.
        assert await claim_review(parts.redis, target, run_id=run.run_id, source="test") is (
            ClaimOutcome.CLAIMED
        )
        await parts.accept(p, [run])
        await parts.store.pop(p.organization_id, 1, "L")
        await parts.store.requeue([run.run_id], "L", "ConnectionError: queue add failed")
        popped = await parts.store.pop(p.organization_id, 1, "L2")
        # The earlier attempt had committed the row (its job comes from the engine's repair).
        await parts.engine.create_runs(p, [run])
        result = await parts.replayer().replay(p.id, popped.entries, "L2")
        assert (result.materialized, result.system_failure) == (1, 0)
        [row] = parts.rows()
        assert row.status == RunStatus.QUEUED
        assert await parts.redis.get(target.claim_key) == run.run_id.encode()  # kept
        entry = await parts.store.get(run.run_id)
        assert entry is not None and entry.status == "done"


async def test_an_entry_no_row_can_be_written_for_is_dead_lettered_not_lost(
    pg_parts: BufferParts,
) -> None:
    parts = pg_parts
    p = parts.project("p")
    good = new_runs(p.id, 2)
    # work_item is VARCHAR(200): PostgreSQL refuses the row, whatever its status.
    bad = NewRun("e" * 32, request(p.id, 1).model_copy(update={"work_item": "x" * 300}))
    await parts.accept(p, [good[0], bad, good[1]])
    await drain_all(parts, parts.drainer())
    assert sorted(r.id for r in parts.rows()) == sorted(r.run_id for r in good)
    dead = await parts.store.get(bad.run_id)
    assert dead is not None and dead.status == "dead"
    assert "no run row could be written" in dead.error and "DataError" in dead.error
    assert (await parts.store.stats()).dead == 1


async def test_postgres_stopped_during_a_drain_requeues_and_all_materialise(
    make_settings: SettingsFactory, postgres_server: PostgresServer
) -> None:
    settings = make_settings(
        database_url=postgres_server.create_database(),
        buffer_drain_budget=10,
        buffer_drain_concurrency=2,
        **FAST,
    )
    async with buffer_parts(settings) as parts:
        projects = [parts.project(f"p{i}", f"org-{i % 2}") for i in range(4)]
        ids: list[str] = []
        for p in projects:
            ids += await parts.accept(p, new_runs(p.id, 150))
        drainer = parts.drainer()
        await drainer.start()
        try:
            await until(lambda: parts.row_count() >= 40)
            postgres_server.stop()
            try:
                # Entries that were being written go back to the front, attempts + 1.
                await until(lambda: requeued(parts, ids))
                stopped_at = await parts.store.stats()
                assert sum(stopped_at.entries.values()) > 0
            finally:
                postgres_server.start()
            await until(lambda: parts.row_count() == len(ids), within_s=120)
        finally:
            await drainer.stop()
        rows = parts.rows()
        assert sorted(r.id for r in rows) == sorted(ids)
        assert {r.status for r in rows} == {RunStatus.QUEUED}
        assert (await parts.queue.counts())["waiting"] == len(ids)
        stats = await parts.store.stats()
        assert (stats.entries, stats.in_flight, stats.dead) == ({}, 0, 0)


async def requeued(parts: BufferParts, ids: list[str]) -> bool:
    """True once some entry was requeued by the drainer (attempts >= 1, queued again)."""
    for run_id in ids:
        attempts = await parts.redis.hget(keys.entry(run_id), "attempts")  # type: ignore[misc]
        if attempts is not None and int(attempts) >= 1:
            return True
    return False


async def test_a_failure_row_that_cannot_be_written_requeues_the_entry(
    make_settings: SettingsFactory, postgres_server: PostgresServer
) -> None:
    settings = make_settings(
        database_url=postgres_server.create_database(), buffer_max_attempts=1, **FAST
    )
    async with buffer_parts(settings) as parts:
        p = parts.project("p")
        [run] = new_runs(p.id, 1)
        await parts.accept(p, [run])
        popped = await parts.store.pop(p.organization_id, 1, "L")
        await parts.store.requeue([run.run_id], "L", "earlier error")
        popped = await parts.store.pop(p.organization_id, 1, "L2")
        replayer = parts.replayer()
        postgres_server.stop()
        try:
            result = await replayer.replay(p.id, popped.entries, "L2")
        finally:
            postgres_server.start()
        assert result.requeued == 1 and result.system_failure == 0
        assert result.retryable_error is not None
        entry = await parts.store.get(run.run_id)
        assert entry is not None and (entry.status, entry.attempts) == ("queued", 2)
        await drain_all(parts, parts.drainer())
        [row] = parts.rows()
        assert row.status == RunStatus.SYSTEM_FAILURE


async def test_graceful_stop_finishes_the_tick_in_progress(parts: BufferParts) -> None:
    p = parts.project("p")
    ids = await parts.accept(p, new_runs(p.id, 400))
    drainer = parts.drainer()
    await drainer.start()
    await until(lambda: parts.row_count() > 0)
    await drainer.stop()
    stats = await parts.store.stats()
    assert stats.in_flight == 0
    left = sum(stats.entries.values())
    assert left > 0, "the drain finished before the stop: nothing was tested"
    assert parts.row_count() + left == len(ids)


async def test_two_drainers_at_once_create_each_run_once(pg_parts: BufferParts) -> None:
    parts = pg_parts
    projects = [parts.project(f"p{i}", f"org-{i}") for i in range(3)]
    ids: list[str] = []
    for p in projects:
        ids += await parts.accept(p, new_runs(p.id, 200))
    drainers = [parts.drainer(), parts.drainer()]
    for d in drainers:
        await d.start()
    try:
        await until(lambda: parts.row_count() == len(ids))
    finally:
        for d in drainers:
            await d.stop()
    assert all(d.popped > 0 for d in drainers)
    assert sorted(r.id for r in parts.rows()) == sorted(ids)
    assert (await parts.queue.counts())["waiting"] == len(ids)


async def test_deferred_delivery_records_are_flushed_by_a_tick(parts: BufferParts) -> None:
    from gaffer.buffer.deliveries import defer_record
    from gaffer.store.deliveries import list_deliveries
    from gaffer.store.models import utcnow

    received = utcnow()
    for i in range(3):
        await defer_record(
            parts.redis,
            {
                "provider": "github",
                "status_code": 202,
                "decision": "buffered",
                "reason": "r",
                "event": "check_suite",
                "action": "completed",
                "delivery_id": f"d{i}",
                "project_id": None,
                "run_ids": [f"r{i}"],
                "received_at": received,
            },
        )
    await parts.drainer().tick()
    with parts.db.session() as session:
        records = list_deliveries(session)
        assert sorted(d.delivery_id or "" for d in records) == ["d0", "d1", "d2"]
        assert {d.received_at for d in records} == {received}
    assert await parts.redis.llen(keys.PENDING_DELIVERIES) == 0  # type: ignore[misc]


async def test_a_buffered_review_takes_its_dispatch_claim_when_it_materialises(
    parts: BufferParts,
) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    await parts.accept(p, [run])
    await drain_all(parts, parts.drainer())
    [row] = parts.rows()
    assert row.status == RunStatus.QUEUED
    target = review_target(p, run)
    assert target is not None
    assert await parts.redis.get(target.claim_key) == run.run_id.encode()


async def test_a_buffered_review_claimed_meanwhile_by_another_run_is_canceled(
    parts: BufferParts,
) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    await parts.accept(p, [run])
    # Its claim lapsed while it waited, and another path reviewed the same PR and head SHA.
    target = review_target(p, run)
    assert target is not None
    outcome = await claim_review(parts.redis, target, run_id="another-run", source="test")
    assert outcome is ClaimOutcome.CLAIMED
    await drain_all(parts, parts.drainer())
    [row] = parts.rows()
    assert row.status == RunStatus.CANCELED
    assert row.error == "review already dispatched by another run while this one was buffered"
    assert await parts.queue.state(run.run_id) == "unknown"
    assert await parts.redis.get(target.claim_key) == b"another-run"


async def test_a_cancelled_buffered_review_releases_its_claim(parts: BufferParts) -> None:
    p = parts.project("p")
    [run] = new_runs(p.id, 1)
    target = review_target(p, run)
    assert target is not None
    # Claimed at accept time, as the intake does.
    assert await claim_review(parts.redis, target, run_id=run.run_id, source="test") is (
        ClaimOutcome.CLAIMED
    )
    await parts.accept(p, [run])
    assert (await parts.store.cancel(run.run_id)).outcome == "ok"
    await drain_all(parts, parts.drainer())
    assert [r.status for r in parts.rows()] == [RunStatus.CANCELED]
    assert await parts.redis.get(target.claim_key) is None


def delivery_record(index: int, **overrides: Any) -> dict[str, Any]:
    """A deferred delivery record (the columns ``record_delivery`` takes, ``received_at``)."""
    from gaffer.store.models import utcnow

    return {
        "provider": "github",
        "status_code": 202,
        "decision": "buffered",
        "reason": "r",
        "event": "check_suite",
        "action": "completed",
        "delivery_id": f"d{index}",
        "project_id": None,
        "run_ids": [f"r{index}"],
        "received_at": utcnow(),
        **overrides,
    }


async def test_a_record_flush_failing_while_the_database_is_down_waits_for_it(
    make_settings: SettingsFactory, postgres_server: PostgresServer
) -> None:
    """The deferred records' flush fails like the replays while the database is down: the
    drainer must then wait for ``SELECT 1`` too, not pop (and requeue) the entries again."""
    from gaffer.buffer.deliveries import FLUSH_BATCH, defer_record
    from gaffer.store.deliveries import list_deliveries

    settings = make_settings(database_url=postgres_server.create_database(), **FAST)
    async with buffer_parts(settings) as parts:
        p = parts.project("p")
        ids = await parts.accept(p, new_runs(p.id, 20))
        # A burst leaves more records than one flush takes: every tick tries to flush.
        for i in range(FLUSH_BATCH + 100):
            await defer_record(parts.redis, delivery_record(i))
        drainer = parts.drainer()
        postgres_server.stop()
        try:
            # The tick reports the flush's error as retryable instead of raising it.
            tick = await parts.drainer().tick()
            assert tick.retryable_error is not None
            await drainer.start()
            await asyncio.sleep(3.0)  # fifteen times the backoff cap
            # One tick, then only SELECT 1 until the database is back: one more attempt each.
            assert drainer.ticks == 1
            attempts = [
                int(await parts.redis.hget(keys.entry(run_id), "attempts"))  # type: ignore[misc]
                for run_id in ids
            ]
            assert set(attempts) == {2}, attempts
        finally:
            postgres_server.start()
        try:
            await until(lambda: parts.row_count() == len(ids), within_s=120)
            await until(lambda: records_left(parts, 0))
        finally:
            await drainer.stop()
        assert {r.status for r in parts.rows()} == {RunStatus.QUEUED}
        with parts.db.session() as session:
            assert len(list_deliveries(session, limit=10_000)) == FLUSH_BATCH + 100


async def records_left(parts: BufferParts, count: int) -> bool:
    """True when ``count`` deferred delivery records wait in Redis."""
    return int(await parts.redis.llen(keys.PENDING_DELIVERIES)) == count  # type: ignore[misc]


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_others_recorded(
    pg_parts: BufferParts,
) -> None:
    import json

    from gaffer.buffer.deliveries import defer_record
    from gaffer.store.deliveries import list_deliveries

    parts = pg_parts
    # delivery_id is VARCHAR(128): PostgreSQL refuses that record (DataError) every time.
    records = [delivery_record(0), delivery_record(1, delivery_id="x" * 200), delivery_record(2)]
    for record in records:
        await defer_record(parts.redis, record)
    tick = await parts.drainer().tick()
    assert tick.retryable_error is None
    with parts.db.session() as session:
        assert sorted(d.delivery_id or "" for d in list_deliveries(session)) == ["d0", "d2"]
    assert await records_left(parts, 0)
    [dead] = await parts.redis.lrange(keys.DEAD_DELIVERIES, 0, -1)  # type: ignore[misc]
    kept = json.loads(dead)
    assert json.loads(kept["record"])["delivery_id"] == "x" * 200
    assert "DataError" in kept["error"]
    assert (await parts.store.stats()).dead_deliveries == 1


async def test_a_database_error_writing_a_duplicate_review_requeues_it(
    make_settings: SettingsFactory, postgres_server: PostgresServer
) -> None:
    from gaffer.buffer.replay import ProjectCache, Replayer

    settings = make_settings(database_url=postgres_server.create_database(), **FAST)
    async with buffer_parts(settings) as parts:
        p = parts.project("p")
        [run] = new_runs(p.id, 1)
        await parts.accept(p, [run])
        target = review_target(p, run)
        assert target is not None
        assert await claim_review(parts.redis, target, run_id="another-run", source="test") is (
            ClaimOutcome.CLAIMED
        )
        # The project comes from the cache: the first database write is the CANCELED row.
        cache = ProjectCache(parts.db, parts.box, ttl_s=3600)
        assert await cache.get(p.id) is not None
        replayer = Replayer(parts.settings, parts.store, parts.engine, cache)
        popped = await parts.store.pop(p.organization_id, 10, "L")
        postgres_server.stop()
        try:
            result = await replayer.replay(p.id, popped.entries, "L")
        finally:
            postgres_server.start()
        assert result.retryable_error is not None and result.requeued == 1
        entry = await parts.store.get(run.run_id)
        assert entry is not None and (entry.status, entry.attempts) == ("queued", 1)
        await drain_all(parts, parts.drainer())
        [row] = parts.rows()
        assert row.status == RunStatus.CANCELED
