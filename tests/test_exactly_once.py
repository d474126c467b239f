"""Exactly once across processes: review claims and run leases live in Redis, not in memory.

The incident: a review ran twice on the same PR and commit, 29 s apart. One dispatch came from
the process that had just finished an implementation (a post-completion hook), the other from
the ingest process reacting to the green check suite; each process kept its own in-memory map.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import update
from structlog.testing import capture_logs

from gaffer.coordination.checks import record_check_suite, record_pr_head
from gaffer.coordination.leases import LeaseKeys
from gaffer.dispatch.followups import FollowUps
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import RunEngine
from gaffer.runs.intake import RunIntake
from gaffer.store.models import Run, RunStatus, TriggerConfig
from gaffer.store.projects import ProjectSnapshot, get_project
from tests.conftest import MASTER_KEY, GafferFactory
from tests.support.harness import FIXTURES, Gaffer, ProjectInfo, fixture_body
from tests.support.jobs import wait_for_job
from tests.support.process import GafferUp, gaffer_env
from tests.support.servers import PostgresServer, RedisServer
from tests.test_lifecycle import barrier_command, group_alive

ROOT = Path(__file__).resolve().parents[1]
HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # PR 2 in the fixtures
RACERS = 8
DELIVERIES = 1000
HOOKS_PER_RACER = 5


def reviews_of(gaffer_db: object, project_id: str, sha: str = HEAD_SHA) -> list[Run]:
    with gaffer_db.session() as session:  # type: ignore[attr-defined]
        return list(
            session.query(Run).filter_by(project_id=project_id, agent_type="review", head_sha=sha)
        )


def test_eight_processes_race_deliveries_and_hooks_to_one_review(
    tmp_path: Path, redis_url: str, postgres_server: PostgresServer, start_gaffer: GafferFactory
) -> None:
    database_url = postgres_server.create_database()
    home = tmp_path / "home"
    env = gaffer_env(
        home,
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        GAFFER_LOG_LEVEL="WARNING",
    )
    # The test's own view of the same database and Redis (no server role of its own).
    view = start_gaffer(
        roles=("dispatch",),
        database_url=database_url,
        max_workers=1,
        global_max_workers=1,
        max_runs_per_project_agent=1,
    )
    project = view.create_project(command="echo reviewed > REVIEW.md")

    # The PR's head already has a green check suite: post-completion hooks will want a review.
    async def seed() -> None:
        client = aioredis.from_url(redis_url)
        await record_pr_head(client, project.id, 2, HEAD_SHA)
        await record_check_suite(client, project.id, HEAD_SHA, "success")
        await client.aclose()

    asyncio.run(seed())
    ingests = [GafferUp(env, "--role", "ingest") for _ in range(2)]
    try:
        start_file = tmp_path / "go"
        racers = []
        for racer in range(RACERS):
            config = {
                "urls": [i.url for i in ingests],
                "secret": project.secret,
                "body_file": str(FIXTURES / "check_suite.completed.json"),
                "deliveries": DELIVERIES // RACERS,
                "hooks": HOOKS_PER_RACER,
                "racer": racer,
                "start_file": str(start_file),
                "database_url": database_url,
                "redis_url": redis_url,
                "master_key": MASTER_KEY,
                "home": str(tmp_path / f"racer-{racer}"),
                "project": project.name,
            }
            racers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.racer", json.dumps(config)],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(2)  # let every racer import and connect; then all start at once
        start_file.touch()
        results = []
        for proc in racers:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for ingest in ingests:
            ingest.terminate()

    answers: Counter[str] = Counter()
    for result in results:
        answers.update(result["answers"])
    hook_runs = [run for result in results for run in result["hook_runs"]]
    assert sum(answers.values()) == DELIVERIES
    errors = [error for result in results for error in result["errors"]]
    assert set(answers) <= {"202 queued", "202 ignored"}, (answers, errors[:3])
    # Exactly one review, whichever path won the claim.
    assert answers.get("202 queued", 0) + len(hook_runs) == 1, (answers, hook_runs)
    [review] = reviews_of(view.rt.db, project.id)
    # ... and the dispatch process (another process again) runs it.
    assert view.wait_for(review.id)["status"] == "SUCCEEDED"
    assert len(reviews_of(view.rt.db, project.id)) == 1


def lock_holder(redis_url: str, project_id: str, work_item: str) -> bytes | None:
    keys = LeaseKeys.of(project_id, "implementation", work_item)
    return redis.Redis.from_url(redis_url).get(keys.lock)  # type: ignore[no-any-return]


@dataclass
class OrphanedRun:
    """A run whose dispatcher was killed (SIGKILL) mid-run, after its lease expired."""

    ingest: Gaffer
    env: dict[str, str]
    project: ProjectInfo
    run_id: str
    pgid: int


def orphan_a_run(
    tmp_path: Path, redis_url: str, database_url: str, start_gaffer: GafferFactory
) -> OrphanedRun:
    """Start a dispatcher, start a run whose engine sleeps (the first time only), SIGKILL the
    dispatcher, and wait for the run's work-item lock to expire."""
    fast = {
        "GAFFER_LEASE_MS": "2000",
        "GAFFER_JOB_LOCK_MS": "2000",
        "GAFFER_STALLED_INTERVAL_MS": "1000",
        "GAFFER_LOG_LEVEL": "WARNING",
    }
    env = gaffer_env(
        tmp_path / "home",
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        **fast,
    )
    ingest = start_gaffer(roles=("ingest",), database_url=database_url)
    mark = tmp_path / "first-run-started"
    project = ingest.create_project(
        command=f'if [ ! -e "{mark}" ]; then touch "{mark}"; sleep 3600; fi; echo ok > OK.txt'
    )
    dispatcher = GafferUp(env, "--role", "dispatch")
    [first] = ingest.deliver(fixture_body("issues.labeled"), "issues", project.secret).json()[
        "runs"
    ]
    ingest.wait_for(first, [RunStatus.RUNNING])
    deadline = time.monotonic() + 60
    while not mark.exists():  # the engine is running (sleeping) in the first run's worker
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert lock_holder(redis_url, project.id, "1") == first.encode()
    pgid = int(run_field(ingest, first, "worker_ref"))

    dispatcher.kill()  # SIGKILL: no cleanup, no release
    # Nobody refreshes the lease any more: it expires and the work item is free.
    deadline = time.monotonic() + 30
    while lock_holder(redis_url, project.id, "1") is not None:
        assert time.monotonic() < deadline, "the work-item lock never expired"
        time.sleep(0.1)
    return OrphanedRun(ingest, env, project, first, pgid)


def test_killed_dispatcher_leases_expire_and_the_work_item_is_free_again(
    tmp_path: Path, redis_url: str, postgres_server: PostgresServer, start_gaffer: GafferFactory
) -> None:
    orphan = orphan_a_run(tmp_path, redis_url, postgres_server.create_database(), start_gaffer)
    ingest, project = orphan.ingest, orphan.project
    second_dispatcher = GafferUp(orphan.env, "--role", "dispatch")
    try:
        labeled = fixture_body("issues.labeled")
        [second] = ingest.deliver(labeled, "issues", project.secret).json()["runs"]
        assert ingest.wait_for(second)["status"] == "SUCCEEDED"
        # The killed dispatcher's run comes back (its job stalled) and is settled; its worker,
        # orphaned by the kill, is stopped.
        first_run = ingest.wait_for(orphan.run_id)
        assert first_run["status"] == "SYSTEM_FAILURE"
        assert "dispatcher running this run died" in first_run["error"]
        assert not group_alive(orphan.pgid)
    finally:
        assert second_dispatcher.terminate() == 0


def test_a_run_taken_up_again_is_settled_even_while_another_run_holds_its_work_item(
    tmp_path: Path, redis_url: str, postgres_server: PostgresServer, start_gaffer: GafferFactory
) -> None:
    """A run already in progress is not a newcomer waiting for a slot: its worker exists. If
    the next dispatcher delayed it because another run took the lapsed lock meanwhile, the
    orphaned worker would go on unsupervised (no timeout, no cancel) for as long as that lock
    is held."""
    orphan = orphan_a_run(tmp_path, redis_url, postgres_server.create_database(), start_gaffer)
    keys = LeaseKeys.of(orphan.project.id, "implementation", "1")
    redis.Redis.from_url(redis_url).set(keys.lock, "another-run", px=600_000)
    second_dispatcher = GafferUp(orphan.env, "--role", "dispatch")
    try:
        first_run = orphan.ingest.wait_for(orphan.run_id)
        assert first_run["status"] == "SYSTEM_FAILURE"
        assert not group_alive(orphan.pgid)
        # The other run's lock is its own: settling this run did not take it away.
        assert lock_holder(redis_url, orphan.project.id, "1") == b"another-run"
    finally:
        assert second_dispatcher.terminate() == 0


def run_field(gaffer_: Gaffer, run_id: str, field: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with gaffer_.rt.db.session() as session:
            run = session.get(Run, run_id)
            if run is not None and getattr(run, field):
                return str(getattr(run, field))
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} has no {field}")


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    server = RedisServer(persistent=True)
    server.start()
    yield server
    server.close()


def test_redis_stopped_mid_test_fails_closed_then_recovers(
    start_gaffer: GafferFactory, persistent_redis: RedisServer, tmp_path: Path
) -> None:
    gaffer_ = start_gaffer(redis_url=persistent_redis.url)
    project = gaffer_.create_project(command="echo reviewed > REVIEW.md")
    opened = fixture_body("pull_request.opened")
    suite = fixture_body("check_suite.completed")
    [review] = gaffer_.deliver(opened, "pull_request", project.secret).json()["runs"]
    assert gaffer_.wait_for(review)["status"] == "SUCCEEDED"
    # The dispatcher is done with Redis (leases released, job handed back) before it stops.
    wait_for_job(gaffer_, review, "completed")

    persistent_redis.stop()
    try:
        during = gaffer_.deliver(suite, "check_suite", project.secret)
        assert during.status_code == 503 and during.json()["runs"] == []
        with capture_logs() as logs:
            submission = asyncio.run(hook_review(gaffer_, project, persistent_redis.url))
        assert submission.run_ids == [] and submission.redis_down
        assert any(e["event"] == "review_dispatch_redis_down" for e in logs)
    finally:
        persistent_redis.start()

    # Redis is back with its data: the same PR and SHA is still claimed; no duplicate.
    after = gaffer_.deliver(suite, "check_suite", project.secret)
    assert (after.status_code, after.json()["decision"]) == (202, "ignored")
    assert "already dispatched" in after.json()["reason"]
    assert [r.id for r in reviews_of(gaffer_.rt.db, project.id)] == [review]
    # Normal service: a new head SHA gets its review, and it runs.
    payload = json.loads(opened)
    payload["pull_request"]["head"]["sha"] = "f" * 40
    [fresh] = gaffer_.deliver(json.dumps(payload).encode(), "pull_request", project.secret).json()[
        "runs"
    ]
    assert gaffer_.wait_for(fresh)["status"] == "SUCCEEDED"


async def hook_review(
    gaffer_: Gaffer, project: ProjectInfo, redis_url: str, queue_url: str | None = None
) -> object:
    """Fire the post-completion review path of another process, with its claims on the Redis at
    ``redis_url`` and its queue on ``queue_url`` (default: the same); returns the submission, or
    the exception it raised."""
    client = aioredis.from_url(redis_url)
    queue = RunQueue(queue_url or redis_url, gaffer_.settings.queue_name)
    try:
        intake = RunIntake(
            gaffer_.settings, RunEngine(gaffer_.settings, gaffer_.rt.db, queue, client), client
        )
        with gaffer_.rt.db.session() as session:
            snapshot = ProjectSnapshot.of(get_project(session, project.id), gaffer_.rt.box)
        follow = FollowUps(intake, client, gaffer_.rt.db, gaffer_.rt.box)
        try:
            return await follow.review(snapshot, 2, HEAD_SHA, after_run="impl-1")
        except Exception as exc:
            return exc
    finally:
        await queue.close()
        await client.aclose()


def test_post_completion_hook_reviews_a_green_pr(start_gaffer: GafferFactory) -> None:
    gaffer_ = start_gaffer()
    # The PR's head branch is in the repository: respond-to-review pushes onto it.
    project = gaffer_.create_project(command="echo done > DONE.md", pr_branch="changes")
    # Reviews on check suites are off here, so the green suite alone starts no review.
    with gaffer_.rt.db.session() as session:
        session.execute(
            update(TriggerConfig)
            .where(
                TriggerConfig.project_id == project.id,
                TriggerConfig.event == "check_suite.completed",
            )
            .values(enabled=False)
        )
    suite = gaffer_.deliver(fixture_body("check_suite.completed"), "check_suite", project.secret)
    assert suite.json()["decision"] == "ignored"
    # Changes requested on PR 2: respond-to-review runs on the PR's branch (the event names
    # it), then its follow-up reviews.
    review_event = json.loads(fixture_body("pull_request_review.submitted"))
    review_event["review"]["state"] = "changes_requested"
    [responded] = gaffer_.deliver(
        json.dumps(review_event).encode(), "pull_request_review", project.secret
    ).json()["runs"]
    assert gaffer_.wait_for(responded)["status"] == "SUCCEEDED"
    deadline = time.monotonic() + 60
    while not reviews_of(gaffer_.rt.db, project.id):
        assert time.monotonic() < deadline, "no follow-up review"
        time.sleep(0.05)
    [review] = reviews_of(gaffer_.rt.db, project.id)
    assert review.trigger == "gaffer:run.completed"
    assert review.pr_number == 2
    assert gaffer_.wait_for(review.id)["status"] == "SUCCEEDED"


def labeled_on(issue: int) -> bytes:
    payload = json.loads(fixture_body("issues.labeled"))
    payload["issue"]["number"] = issue
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("issues", "caps", "reason"),
    [
        ((1, 1), {}, "work_item_busy"),  # one run of an agent type per work item
        ((1, 3), {"max_runs_per_project_agent": 1}, "project_cap"),
        ((1, 3), {"global_max_workers": 1}, "global_cap"),
    ],
)
def test_leases_make_runs_wait_their_turn(
    start_gaffer: GafferFactory,
    tmp_path: Path,
    issues: tuple[int, int],
    caps: dict[str, int],
    reason: str,
) -> None:
    # Two dispatch processes' worth of slots; the Redis leases still allow one run at a time.
    first_dispatcher = start_gaffer(**caps)
    start_gaffer(roles=("dispatch",), **caps)
    release = tmp_path / "release"
    project = first_dispatcher.create_project(command=barrier_command(release))
    with capture_logs() as logs:
        [first] = first_dispatcher.deliver(labeled_on(issues[0]), "issues", project.secret).json()[
            "runs"
        ]
        first_dispatcher.wait_for(first, [RunStatus.RUNNING])
        [second] = first_dispatcher.deliver(labeled_on(issues[1]), "issues", project.secret).json()[
            "runs"
        ]
        deadline = time.monotonic() + 30
        while not any(
            e.get("run_id") == second and e["event"] == "run_waiting_for_slot" for e in logs
        ):
            assert time.monotonic() < deadline, "the second run never waited for a slot"
            time.sleep(0.05)
    waiting = next(e for e in logs if e["event"] == "run_waiting_for_slot")
    assert waiting["reason"] == reason
    assert first_dispatcher.run(second)["status"] == "QUEUED"
    release.touch()
    done_first = first_dispatcher.wait_for(first)
    done_second = first_dispatcher.wait_for(second)
    assert done_first["status"] == done_second["status"] == "SUCCEEDED"
    assert done_second["started_at"] >= done_first["finished_at"]


def test_a_run_whose_lapsed_work_item_lock_another_run_took_is_stopped(
    start_gaffer: GafferFactory, tmp_path: Path
) -> None:
    """A run's lease lapses (a Redis restart, a dispatcher stalled past the lease) and another
    run of the same agent type takes its work item: two runs would work on one work item (one
    branch) at once. The refresh finds the lock taken and stops the older run."""
    gaffer_ = start_gaffer(lease_ms=1500)
    project = gaffer_.create_project(command=barrier_command(tmp_path / "never"))
    [run_id] = gaffer_.deliver(labeled_on(1), "issues", project.secret).json()["runs"]
    gaffer_.wait_for(run_id, [RunStatus.RUNNING])
    pgid = int(run_field(gaffer_, run_id, "worker_ref"))
    keys = LeaseKeys.of(project.id, "implementation", "1")
    client = redis.Redis.from_url(gaffer_.rt.require_redis())
    assert client.get(keys.lock) == run_id.encode()
    # As if the lease had lapsed and another run had acquired the work item.
    client.set(keys.lock, "another-run", px=600_000)
    run = gaffer_.wait_for(run_id)
    assert run["status"] == "SYSTEM_FAILURE", run
    assert "run another-run took the work item" in run["error"], run["error"]
    assert not group_alive(pgid)
    # Its slots are given back (just after the status is written)...
    deadline = time.monotonic() + 30
    while client.zscore(keys.project_slots, run_id) or client.zscore(keys.global_slots, run_id):
        assert time.monotonic() < deadline, "the stopped run kept its slots"
        time.sleep(0.05)
    # ... but the other run's lock is its own: stopping this run did not take it away.
    assert client.get(keys.lock) == b"another-run"


def test_a_review_whose_row_is_written_keeps_its_claim_when_its_job_add_fails(
    start_gaffer: GafferFactory,
) -> None:
    """Repair adds the job of a QUEUED row later, so that review will run: releasing its claim
    because the job add failed would let a second review of the same PR and SHA start."""
    gaffer_ = start_gaffer(roles=("ingest",))
    project = gaffer_.create_project(with_repository=False)
    full = RedisServer()
    full.start()
    try:
        admin = redis.Redis.from_url(full.url)
        admin.config_set("maxmemory", 1)
        admin.config_set("maxmemory-policy", "noeviction")
        failed = asyncio.run(
            hook_review(gaffer_, project, gaffer_.rt.require_redis(), queue_url=full.url)
        )
    finally:
        full.close()
    assert isinstance(failed, redis.exceptions.OutOfMemoryError), failed
    [review] = reviews_of(gaffer_.rt.db, project.id)
    assert review.status == RunStatus.QUEUED.value

    # The green check suite of the same PR and SHA arrives: the claim still stands.
    suite = gaffer_.deliver(fixture_body("check_suite.completed"), "check_suite", project.secret)
    assert (suite.status_code, suite.json()["decision"]) == (202, "ignored"), suite.text
    assert "already dispatched" in suite.json()["reason"]
    assert [r.id for r in reviews_of(gaffer_.rt.db, project.id)] == [review.id]
