"""Dispatch when the database fails: real databases made to refuse writes (a trigger that
raises), real Redis and BullMQ, real worker processes. And run id prefixes that look like
patterns."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from gaffer.backends.base import LogCursor
from gaffer.coordination.client import connect
from gaffer.coordination.leases import LeaseKeys, RunLeases
from gaffer.dispatch.run_log import MAX_PENDING_LINES, RunLogWriter
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import RunEngine
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import RunStatus
from gaffer.store.runs import RunNotFoundError, get_run, read_logs, transition
from tests.conftest import GafferFactory
from tests.support.harness import Gaffer
from tests.support.jobs import run_queue, wait_for_job
from tests.support.store import add_runs
from tests.test_lifecycle import gaffer_worker_ref, group_alive, trigger

# -- a database that refuses some writes --------------------------------------------------------


def refuse(db: Database, name: str, table: str, event: str, when: str) -> None:
    """Make the database raise on ``event`` (INSERT, UPDATE) of ``table`` rows matching
    ``when`` (SQL over NEW/OLD), as a database that is down or full would."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN {when} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN ({when}) EXECUTE FUNCTION {name}()"
            )


def allow(db: Database, name: str, table: str) -> None:
    """Undo :func:`refuse`."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER {name} ON {table}")
            conn.exec_driver_sql(f"DROP FUNCTION {name}()")


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Database:
    database = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(database)
    return database


def messages(db: Database, run_id: str) -> list[str]:
    with db.session() as session:
        return [line.message for line in read_logs(session, run_id, limit=100_000)]


# -- the run log writer -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_batch_the_database_refuses_is_kept_for_the_next_flush(db: Database) -> None:
    run_id = "r" * 32
    add_runs(db, run_id)
    refuse(db, "refuse_second", "run_logs", "INSERT", "NEW.message = 'second'")
    writer = RunLogWriter(db, run_id)
    await writer.write("worker", "first")
    await writer.write("worker", "second")
    with pytest.raises(DBAPIError, match="refused by the test"):
        await writer.flush()
    assert messages(db, run_id) == []
    # Still refused: still kept.
    with pytest.raises(DBAPIError, match="refused by the test"):
        await writer.flush()
    allow(db, "refuse_second", "run_logs")
    await writer.write("worker", "third")
    await writer.flush()
    assert messages(db, run_id) == ["first", "second", "third"]


def log_cursor(db: Database, run_id: str) -> str | None:
    with db.session() as session:
        return get_run(session, run_id).log_cursor


@pytest.mark.anyio
async def test_the_log_cursor_moves_only_with_the_lines_it_counts(db: Database) -> None:
    """The cursor a re-attaching dispatcher resumes from is committed with its batch: a batch
    the database refuses moves it not at all (those lines are read again), and a system line
    (written by the dispatcher, not read from the worker) does not move it."""
    run_id = "c" * 32
    add_runs(db, run_id)
    writer = RunLogWriter(db, run_id)
    await writer.write("engine", "one", LogCursor(1_700_000_000, 1))
    await writer.write("engine", "two", LogCursor(1_700_000_000, 2))
    await writer.flush()
    assert log_cursor(db, run_id) == "1700000000:2"

    refuse(db, "refuse_three", "run_logs", "INSERT", "NEW.message = 'three'")
    await writer.write("engine", "three", LogCursor(1_700_000_001, 1))
    with pytest.raises(DBAPIError, match="refused by the test"):
        await writer.flush()
    assert log_cursor(db, run_id) == "1700000000:2"
    await writer.write("system", "a note")
    allow(db, "refuse_three", "run_logs")
    await writer.flush()
    assert messages(db, run_id) == ["one", "two", "three", "a note"]
    assert log_cursor(db, run_id) == "1700000001:1"
    assert LogCursor.parse(log_cursor(db, run_id)) == LogCursor(1_700_000_001, 1)


@pytest.mark.anyio
async def test_a_refused_log_keeps_at_most_max_pending_lines(db: Database) -> None:
    run_id = "r" * 32
    add_runs(db, run_id)
    refuse(db, "refuse_all", "run_logs", "INSERT", "1 = 1")
    writer = RunLogWriter(db, run_id)
    total = MAX_PENDING_LINES + 5
    for i in range(total):
        with contextlib.suppress(DBAPIError):
            await writer.write("worker", f"line {i}")
    allow(db, "refuse_all", "run_logs")
    await writer.flush()
    written = messages(db, run_id)
    assert written[0] == "5 log lines lost: the database could not be written"
    assert written[1:] == [f"line {i}" for i in range(5, total)]
    # The loss is reported once.
    await writer.write("worker", "after")
    await writer.flush()
    assert messages(db, run_id)[-2:] == [f"line {total - 1}", "after"]


def test_a_log_the_database_refuses_still_kills_the_worker(start_gaffer: GafferFactory) -> None:
    """The last log batch cannot be written: the worker's process group is killed anyway
    (the process left behind does not carry the run id, so only the dispatcher's clean-up of
    its own worker can find it; the retry's re-attach cannot)."""
    gaffer = start_gaffer()
    project = gaffer.create_project(
        command="env -u GAFFER_RUN_ID sleep 3600 >/dev/null 2>&1 & echo started"
    )
    # The worker's result line is the last it prints: the batch holding it is refused, and
    # every flush after that (the batch is kept).
    refuse(gaffer.rt.db, "refuse_result", "run_logs", "INSERT", "NEW.message LIKE 'result %'")
    run_id = trigger(gaffer, project)
    pgid = int(gaffer_worker_ref(gaffer, run_id))
    run = gaffer.wait_for(run_id)
    # The job's next attempt found the run in progress and its worker gone.
    assert run["status"] == "SYSTEM_FAILURE", run
    assert not group_alive(pgid)


# -- runs whose job will never come back ------------------------------------------------------


async def _hold_leases(gaffer: Gaffer, keys: LeaseKeys, run_id: str) -> bool:
    redis = connect(gaffer.rt.require_redis())
    try:
        leases = RunLeases(redis, lease_ms=600_000, project_cap=0, global_cap=0)
        return (await leases.acquire(keys, run_id)).acquired
    finally:
        await redis.aclose()


async def _lease_holders(gaffer: Gaffer, keys: LeaseKeys) -> tuple[object, list[object]]:
    redis = connect(gaffer.rt.require_redis())
    try:
        lock = await redis.get(keys.lock)
        slots = [
            *await redis.zrange(keys.project_slots, 0, -1),
            *await redis.zrange(keys.global_slots, 0, -1),
        ]
        return lock, slots
    finally:
        await redis.aclose()


def wait_for_leases_released(gaffer: Gaffer, keys: LeaseKeys, timeout: float = 30) -> None:
    """Wait until no run holds the work-item lock or a slot of ``keys``: the repair releases
    them just after it writes the run's final status, so a reader can come in between."""
    deadline = time.monotonic() + timeout
    while (holders := asyncio.run(_lease_holders(gaffer, keys))) != (None, []):
        assert time.monotonic() < deadline, f"leases still held: {holders}"
        time.sleep(0.1)


def lease_keys(gaffer: Gaffer, run_id: str) -> LeaseKeys:
    run = gaffer.run(run_id)
    return LeaseKeys.of(run["project_id"], run["agent_type"], run["work_item"])


def test_a_run_whose_job_failed_for_good_is_ended_by_the_repair(
    start_gaffer: GafferFactory, database_url: str | None
) -> None:
    """Every attempt of the job fails after the claim (the database refuses to move the run
    on from STARTING): BullMQ gives the job up, and the run would stay STARTING forever. The
    periodic repair ends it SYSTEM_FAILURE and releases its leases."""
    gaffer = start_gaffer(database_url=database_url, repair_interval_s=0.5)
    project = gaffer.create_project(command="sleep 3600")
    refuse(
        gaffer.rt.db,
        "refuse_leaving_starting",
        "runs",
        "UPDATE",
        "OLD.status = 'STARTING' AND NEW.status <> 'STARTING'",
    )
    run_id = trigger(gaffer, project)
    wait_for_job(gaffer, run_id, "failed")
    assert gaffer.run(run_id)["status"] == "STARTING"
    # As a dispatcher that died would have left them:
    keys = lease_keys(gaffer, run_id)
    assert asyncio.run(_hold_leases(gaffer, keys, run_id))

    allow(gaffer.rt.db, "refuse_leaving_starting", "runs")
    run = gaffer.wait_for(run_id, timeout=30)
    assert run["status"] == "SYSTEM_FAILURE"
    assert run["error"].startswith("abandoned: its queue job is failed"), run["error"]
    wait_for_leases_released(gaffer, keys)


async def _repair(gaffer: Gaffer) -> list[str]:
    redis_url = gaffer.rt.require_redis()
    redis = connect(redis_url)
    queue = RunQueue(redis_url, gaffer.settings.queue_name)
    try:
        return await RunEngine(gaffer.settings, gaffer.rt.db, queue, redis).repair()
    finally:
        await queue.close()
        await redis.aclose()


async def _remove_job(gaffer: Gaffer, run_id: str) -> bool:
    async with run_queue(gaffer) as queue:
        return await queue.remove(run_id)


def _set_status(gaffer: Gaffer, run_id: str, status: RunStatus) -> None:
    with gaffer.rt.db.session() as session:
        assert transition(session, run_id, from_statuses=list(RunStatus), to_status=status)


def test_repair_leaves_runs_whose_job_lives_and_ends_runs_whose_job_is_gone(
    start_gaffer: GafferFactory,
) -> None:
    # No dispatcher: the jobs wait in the queue.
    gaffer = start_gaffer(roles=("ingest",))
    project = gaffer.create_project()
    running = trigger(gaffer, project)
    starting = trigger(gaffer, project)
    finished = trigger(gaffer, project)
    _set_status(gaffer, running, RunStatus.RUNNING)
    _set_status(gaffer, starting, RunStatus.STARTING)
    # A job that is waiting (or active, or delayed) is still to be taken up: left alone.
    assert asyncio.run(_repair(gaffer)) == []
    assert gaffer.run(running)["status"] == "RUNNING"
    assert gaffer.run(starting)["status"] == "STARTING"

    for run_id in (running, starting, finished):
        assert asyncio.run(_remove_job(gaffer, run_id))
    _set_status(gaffer, finished, RunStatus.SUCCEEDED)
    assert sorted(asyncio.run(_repair(gaffer))) == sorted([running, starting])
    for run_id in (running, starting):
        run = gaffer.run(run_id)
        assert run["status"] == "SYSTEM_FAILURE"
        assert run["error"].startswith("abandoned: its queue job is missing")
        assert run["finished_at"] is not None
    # A finished run keeps its outcome.
    assert gaffer.run(finished)["status"] == "SUCCEEDED"
    assert asyncio.run(_repair(gaffer)) == []


# -- run id prefixes --------------------------------------------------------------------------


def test_a_run_id_prefix_is_not_a_pattern(db: Database) -> None:
    other, underscored = "abxd" + "0" * 28, "ab_d" + "1" * 28
    add_runs(db, other, underscored)
    with db.session() as session:
        # "_" and "%" are themselves, not wildcards: "ab_d" is one run, not two.
        assert get_run(session, "ab_d").id == underscored
        for prefix in ("a_xd", "ab%d", "%bxd", "abx%"):
            with pytest.raises(RunNotFoundError):
                get_run(session, prefix)
        assert get_run(session, "abxd").id == other
