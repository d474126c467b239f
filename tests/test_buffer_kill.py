"""Drainers as real ``gaffer up --role drain`` processes: one is killed with SIGKILL while its
entries are in flight; nothing is lost and nothing is duplicated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import redis
from sqlalchemy import create_engine, select, text

from gaffer.buffer import keys
from gaffer.store.models import Project
from gaffer.store.projects import ProjectSnapshot
from tests.conftest import MASTER_KEY, SettingsFactory
from tests.support.buffering import buffer_parts, new_runs
from tests.support.process import GafferUp, gaffer_env
from tests.support.servers import PostgresServer

RUNS_PER_PROJECT = 300
PROJECTS = 4


def wait_until(check: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


async def fill(
    settings_factory: SettingsFactory, db_url: str, per_project: int, start: int = 0
) -> list[str]:
    """Buffer ``per_project`` runs in each of the projects (created on first use), on PRs
    ``start``... (each a distinct review, so none is a duplicate of another)."""
    async with buffer_parts(settings_factory(database_url=db_url)) as parts:
        ids: list[str] = []
        for i in range(PROJECTS):
            with parts.db.session() as session:
                found = session.scalar(select(Project).where(Project.name == f"p{i}"))
                p = (
                    ProjectSnapshot.of(found, parts.box)
                    if found
                    else parts.project(f"p{i}", f"org-{i % 2}")
                )
            ids += await parts.accept(p, new_runs(p.id, per_project, start=start))
        return ids


def test_a_drainer_killed_mid_drain_loses_and_duplicates_nothing(
    tmp_path: Path,
    make_settings: SettingsFactory,
    postgres_server: PostgresServer,
    redis_url: str,
) -> None:
    db_url = postgres_server.create_database()
    asyncio.run(fill(make_settings, db_url, 0))  # migrates; creates the projects
    env = gaffer_env(
        tmp_path / "home",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        GAFFER_BUFFER_DRAIN_BUDGET="10",
        GAFFER_BUFFER_DRAIN_CONCURRENCY="2",
        GAFFER_BUFFER_LEASE_MS="2000",
        GAFFER_BUFFER_RECLAIM_INTERVAL_MS="200",
        GAFFER_BUFFER_POLL_MS="10",
    )
    rows = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    def row_count() -> int:
        with rows.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM runs")).scalar_one())

    def leased_by(pid: int) -> list[str]:
        return [
            run_id
            for run_id in r.zrange(keys.IN_FLIGHT, 0, -1)
            if str(r.hget(keys.entry(run_id), "lease") or "").startswith(f"{pid}-")
        ]

    victim = GafferUp(env, "--role", "drain")
    survivor = GafferUp(env, "--role", "drain")
    lock = psycopg.connect(db_url)
    try:
        # A first part drains while both run; then writes to runs are frozen and the rest is
        # buffered, so the victim is certainly mid-drain when it is killed: entries popped
        # and in flight under its lease, their rows not committed.
        first = asyncio.run(fill(make_settings, db_url, 50))
        wait_until(lambda: row_count() == len(first))
        lock.execute("LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE")
        rest = asyncio.run(fill(make_settings, db_url, RUNS_PER_PROJECT, start=50))
        ids = first + rest
        wait_until(lambda: len(leased_by(victim.process.pid)) > 0)
        stranded = leased_by(victim.process.pid)
        victim.kill()
        lock.rollback()
        wait_until(lambda: row_count() == len(ids))
        wait_until(lambda: r.zcard(keys.IN_FLIGHT) == 0 and not r.exists(keys.ORGS))
    finally:
        lock.close()
        victim.kill()
        assert survivor.terminate() == 0
    with rows.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT id FROM runs"))]
        statuses = {row[0] for row in conn.execute(text("SELECT DISTINCT status FROM runs"))}
    assert sorted(stored) == sorted(ids)
    assert statuses == {"QUEUED"}
    # One job per run: job ids are run ids, and every run has one.
    assert r.llen("gaffer:gaffer-runs:wait") == len(ids)
    # The victim's entries came back through the lease sweep and were materialised.
    assert stranded
    assert all(r.hget(keys.entry(run_id), "status") in ("done", None) for run_id in stranded)
    r.close()
    rows.dispose()
