"""Each buffer script's semantics, on a real Redis (no database needed)."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from gaffer.buffer import keys
from gaffer.buffer.scripts import BufferStore
from gaffer.runs.engine import NewRun
from tests.support.buffering import new_runs, request

pytestmark = pytest.mark.anyio

ORG, PROJECT = "org1", "proj1"


@pytest.fixture
def store(aredis: aioredis.Redis) -> BufferStore:
    return BufferStore(aredis)


async def queued(aredis: aioredis.Redis, project: str = PROJECT) -> list[str]:
    return list(await aredis.lrange(keys.queue(project), 0, -1))  # type: ignore[misc]


async def field(aredis: aioredis.Redis, run_id: str, name: str) -> str | None:
    return await aredis.hget(keys.entry(run_id), name)  # type: ignore[no-any-return,misc]


async def test_accept_writes_entry_list_and_sets(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 3, batch_id="b1", tags=("x",), metadata={"k": 1})
    accepted = await store.accept(ORG, PROJECT, runs)
    assert [(a.outcome, a.run_id) for a in accepted] == [("accepted", r.run_id) for r in runs]
    assert await queued(aredis) == [r.run_id for r in runs]
    assert await aredis.smembers(keys.ORGS) == {ORG}  # type: ignore[misc]
    assert await aredis.smembers(keys.org_projects(ORG)) == {PROJECT}  # type: ignore[misc]
    entry = await store.get(runs[1].run_id)
    assert entry is not None
    assert entry.status == "queued" and entry.attempts == 0 and not entry.cancelled
    assert entry.snapshot.request == runs[1].request
    assert (entry.snapshot.batch_id, entry.snapshot.batch_index) == ("b1", 1)
    assert entry.tags == ["x"] and entry.metadata == {"k": 1}
    assert entry.created_ms == accepted[0].accepted_ms
    assert entry.new_run().run_id == runs[1].run_id


async def test_accept_of_a_known_run_id_is_a_no_op(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    [first] = new_runs(PROJECT, 1)
    await store.accept(ORG, PROJECT, [first])
    again = NewRun(first.run_id, request(PROJECT, 99))
    [outcome] = await store.accept(ORG, PROJECT, [again])
    assert (outcome.outcome, outcome.run_id) == ("duplicate", first.run_id)
    assert await queued(aredis) == [first.run_id]
    entry = await store.get(first.run_id)
    assert entry is not None and entry.snapshot.request.work_item == first.request.work_item


async def test_idempotency_key_bound_to_a_live_entry_returns_that_run(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    [a] = new_runs(PROJECT, 1, idempotency_key="deploy-7")
    [b, c] = new_runs(PROJECT, 2, idempotency_key="deploy-7")
    await store.accept(ORG, PROJECT, [a])
    outcomes = await store.accept(ORG, PROJECT, [b, c])
    assert [(o.outcome, o.run_id) for o in outcomes] == [("bound", a.run_id)] * 2
    assert await queued(aredis) == [a.run_id]
    assert await store.get(b.run_id) is None
    # Once the bound entry is gone (its terminal row written), the key binds anew.
    popped = await store.pop(ORG, 10, "L")
    assert [e.run_id for e in popped.entries] == [a.run_id]
    assert await store.fail([a.run_id], "L", "x") == 1
    [outcome] = await store.accept(ORG, PROJECT, [b])
    assert (outcome.outcome, outcome.run_id) == ("accepted", b.run_id)


async def test_keys_encode_customer_strings_so_colons_cannot_collide(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    # Unencoded, both idempotency keys would be "gaffer:buffer:idem:a:b:c".
    [one] = new_runs("a:b", 1, idempotency_key="c")
    [two] = new_runs("a", 1, idempotency_key="b:c")
    assert (await store.accept("o:1", "a:b", [one]))[0].outcome == "accepted"
    assert (await store.accept("o", "a", [two]))[0].outcome == "accepted"
    assert keys.idempotency("a:b", "c") != keys.idempotency("a", "b:c")
    assert await aredis.get(keys.idempotency("a:b", "c")) == one.run_id
    assert await store.organizations() == ["o", "o:1"]
    popped = await store.pop("o:1", 10, "L")
    assert popped.project_id == "a:b"
    assert [e.run_id for e in popped.entries] == [one.run_id]


async def test_pop_takes_a_budget_from_the_front_and_marks_it_in_flight(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 5)
    await store.accept(ORG, PROJECT, runs)
    popped = await store.pop(ORG, 2, "lease-1")
    assert popped.project_id == PROJECT and popped.skipped == 0
    assert [e.run_id for e in popped.entries] == [r.run_id for r in runs[:2]]
    assert all(e.status == "in_flight" and e.lease == "lease-1" for e in popped.entries)
    assert all(e.popped_ms is not None for e in popped.entries)
    in_flight = await aredis.zrange(keys.IN_FLIGHT, 0, -1, withscores=True)
    assert {m for m, _ in in_flight} == {r.run_id for r in runs[:2]}
    assert {int(s) for _, s in in_flight} == {popped.entries[0].popped_ms}
    assert await queued(aredis) == [r.run_id for r in runs[2:]]
    # Still entries left: the project and organization stay in their sets.
    assert await store.organizations() == [ORG]


async def test_pop_skips_vanished_entries_and_drops_empty_project_and_org(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 3)
    await store.accept(ORG, PROJECT, runs)
    await aredis.delete(keys.entry(runs[0].run_id))
    popped = await store.pop(ORG, 10, "L")
    assert popped.skipped == 1
    assert [e.run_id for e in popped.entries] == [r.run_id for r in runs[1:]]
    assert await queued(aredis) == []
    assert await aredis.smembers(keys.org_projects(ORG)) == set()  # type: ignore[misc]
    assert await store.organizations() == []
    empty = await store.pop(ORG, 10, "L")
    assert empty.project_id is None and empty.entries == []


async def test_pop_rotates_over_the_projects_of_an_organization(store: BufferStore) -> None:
    await store.accept(ORG, "p1", new_runs("p1", 4))
    await store.accept(ORG, "p2", new_runs("p2", 4))
    projects = [(await store.pop(ORG, 1, "L")).project_id for _ in range(4)]
    assert sorted(projects[:2]) == ["p1", "p2"]
    assert projects[2:] == projects[:2]


async def test_ack_marks_done_and_expires_after_the_grace(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 2, idempotency_key=None)
    [keyed] = new_runs(PROJECT, 1, start=5, idempotency_key="k")
    await store.accept(ORG, PROJECT, [*runs, keyed])
    await store.pop(ORG, 10, "L")
    outcomes = await store.ack([runs[0].run_id, keyed.run_id, "never-buffered"], "L", 5_000)
    assert outcomes == ["acked", "acked", "lost"]
    assert await field(aredis, runs[0].run_id, "status") == "done"
    assert 0 < await aredis.pttl(keys.entry(runs[0].run_id)) <= 5_000
    assert 0 < await aredis.pttl(keys.idempotency(PROJECT, "k")) <= 5_000
    assert await aredis.pttl(keys.entry(runs[1].run_id)) == -1  # not acked: no expiry
    assert await aredis.zrange(keys.IN_FLIGHT, 0, -1) == [runs[1].run_id]
    assert await store.ack([runs[1].run_id], "L", 0) == ["acked"]
    assert await store.get(runs[1].run_id) is None


async def test_requeue_puts_back_at_the_front_in_order_with_attempts_plus_one(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 4)
    await store.accept(ORG, PROJECT, runs)
    await store.pop(ORG, 2, "L1")
    assert await store.requeue([runs[0].run_id, runs[1].run_id], "L1", "boom") == [1, 1]
    assert await queued(aredis) == [r.run_id for r in runs]
    entry = await store.get(runs[0].run_id)
    assert entry is not None
    assert (entry.status, entry.attempts, entry.error, entry.lease) == ("queued", 1, "boom", "")
    assert await aredis.zcard(keys.IN_FLIGHT) == 0
    # An emptied project comes back into the sets.
    await store.pop(ORG, 10, "L2")
    assert await store.organizations() == []
    assert await store.requeue([runs[3].run_id], "L2", "again") == [1]
    assert await store.organizations() == [ORG]
    # Not in flight under that lease: untouched.
    assert await store.requeue([runs[0].run_id], "L1", "stale") == [-1]
    entry = await store.get(runs[0].run_id)
    assert entry is not None and (entry.attempts, entry.lease) == (1, "L2")


async def test_fail_deletes_or_dead_letters_only_entries_of_the_lease(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 3, idempotency_key=None)
    await store.accept(ORG, PROJECT, runs)
    await store.pop(ORG, 3, "L")
    assert await store.fail([runs[0].run_id], "other", "x") == 0
    assert await store.fail([runs[0].run_id], "L", "x") == 1
    assert await store.get(runs[0].run_id) is None
    assert await store.fail([runs[1].run_id], "L", "no project", dead=True) == 1
    dead = await store.get(runs[1].run_id)
    assert dead is not None and (dead.status, dead.error) == ("dead", "no project")
    assert await aredis.lrange(keys.DEAD, 0, -1) == [runs[1].run_id]  # type: ignore[misc]
    assert await aredis.pttl(keys.entry(runs[1].run_id)) == -1
    assert await aredis.zrange(keys.IN_FLIGHT, 0, -1) == [runs[2].run_id]


async def test_mutate_cancel_tags_and_metadata_only_while_queued(store: BufferStore) -> None:
    runs = new_runs(PROJECT, 2, tags=("a",))
    await store.accept(ORG, PROJECT, runs)
    run_id = runs[0].run_id
    assert (await store.add_tags(run_id, ["b", "a", "c"], 3)).outcome == "ok"
    capped = await store.add_tags(run_id, ["d"], 3)
    assert capped.outcome == "tag_cap" and json.loads(str(capped.value)) == ["a", "b", "c"]
    entry = await store.get(run_id)
    assert entry is not None and entry.tags == ["a", "b", "c"]

    assert await store.set_metadata(run_id, {"v": 1}, 0) == type(capped)("ok", 1)
    conflict = await store.set_metadata(run_id, {"v": 2}, 0)
    assert (conflict.outcome, conflict.value) == ("version_conflict", 1)
    entry = await store.get(run_id)
    assert entry is not None and (entry.metadata, entry.version) == ({"v": 1}, 1)

    assert (await store.cancel(run_id)).outcome == "ok"
    assert (await store.cancel(run_id)).outcome == "ok"
    entry = await store.get(run_id)
    assert entry is not None and entry.cancelled
    assert (await store.cancel("nope")).outcome == "missing"

    popped = await store.pop(ORG, 10, "L")
    assert [e.cancelled for e in popped.entries] == [True, False]
    assert (await store.cancel(runs[1].run_id)).outcome == "in_flight"
    assert (await store.add_tags(runs[1].run_id, ["z"], 5)).outcome == "in_flight"
    await store.ack([runs[1].run_id], "L", 1000)
    assert (await store.cancel(runs[1].run_id)).outcome == "done"


async def test_ack_only_acks_entries_in_flight_under_its_lease(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 3)
    await store.accept(ORG, PROJECT, runs)
    await store.pop(ORG, 3, "A")
    # A overran its lease: the sweep put the entries back; B took the first one, and a cancel
    # marked the second while it was queued again.
    assert await store.reclaim(lease_ms=0) == 3
    popped = await store.pop(ORG, 1, "B")
    assert [e.run_id for e in popped.entries] == [runs[0].run_id]
    assert (await store.cancel(runs[1].run_id)).outcome == "ok"

    outcomes = await store.ack([r.run_id for r in runs], "A", 5_000)
    assert outcomes == ["lost", "cancelled", "lost"]
    # B's entry stays B's (still in flight, still reclaimable); the untouched one stays queued.
    assert await field(aredis, runs[0].run_id, "lease") == "B"
    assert await field(aredis, runs[0].run_id, "status") == "in_flight"
    assert await field(aredis, runs[2].run_id, "status") == "queued"
    # The cancelled one is A's again, out of its list, for A to cancel its run and ack.
    assert (
        await field(aredis, runs[1].run_id, "status"),
        await field(aredis, runs[1].run_id, "lease"),
    ) == ("in_flight", "A")
    assert await queued(aredis) == [runs[2].run_id]
    assert sorted(await aredis.zrange(keys.IN_FLIGHT, 0, -1)) == sorted(r.run_id for r in runs[:2])
    assert await store.ack([runs[1].run_id], "A", 5_000) == ["acked"]
    assert await field(aredis, runs[1].run_id, "status") == "done"


async def test_reclaim_puts_back_expired_leases_in_accept_order(
    store: BufferStore, aredis: aioredis.Redis
) -> None:
    runs = new_runs(PROJECT, 6)
    await store.accept(ORG, PROJECT, runs)
    await store.pop(ORG, 4, "dead-drainer")
    assert await store.reclaim(lease_ms=60_000) == 0
    assert await store.reclaim(lease_ms=0) == 4
    assert await queued(aredis) == [r.run_id for r in runs]
    assert await aredis.zcard(keys.IN_FLIGHT) == 0
    entry = await store.get(runs[0].run_id)
    assert entry is not None and (entry.status, entry.attempts) == ("queued", 1)
    assert "lease expired" in entry.error
    # The dead drainer's late requeue no longer applies.
    assert await store.requeue([runs[0].run_id], "dead-drainer", "late") == [-1]


async def test_stats_count_lists_in_flight_and_dead(store: BufferStore) -> None:
    await store.accept(ORG, "p1", new_runs("p1", 3))
    await store.accept("org2", "p2", new_runs("p2", 2))
    popped = await store.pop("org2", 1, "L")
    await store.fail([popped.entries[0].run_id], "L", "x", dead=True)
    await store.pop(ORG, 1, "L2")
    stats = await store.stats()
    assert stats.entries == {"p1": 2, "p2": 1}
    assert (stats.in_flight, stats.dead) == (1, 1)
