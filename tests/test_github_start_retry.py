"""A run's start taken up again (issue 10, "Nothing lost, nothing twice"): the "started" writes
(the ack's started text, the check run in progress) are queued once however many times the
run starts, and the started job (with the GitHub context fetched at start) is kept on the
run's row for a run taken up again. Real PostgreSQL and SQLite, real Redis, the fake GitHub."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gaffer.dispatch.github_start import keep_started_job, started_job
from gaffer.dispatch.github_writes import enqueue_moment
from gaffer.queue.jobs import JobData
from gaffer.runtime import open_runtime
from gaffer.store.models import GitHubCredential, Run
from gaffer.store.outbox import entries_for_run
from gaffer.store.projects import create_project
from gaffer.triggers.github import default_agent_setups
from tests.conftest import SettingsFactory
from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.fixtures import fake_github
from tests.support.fake_github.state import CheckRun, Repository
from tests.support.harness import Gaffer, fixture_body, running_gaffer
from tests.support.jobs import make_job
from tests.test_github_runs import DIFF, REPO, REVIEW, deliver, seed, set_app, wait_sent

__all__ = ["fake_github"]


def review_job(run_id: str, project_id: str) -> JobData:
    job = make_job(Path("/x"), "true", run_id=run_id)
    job.run_id, job.project_id = run_id, project_id
    job.agent_type = job.task.agent_type = "review"
    job.task.pr_number, job.task.head_sha, job.task.work_item = 5, "ab" * 20, "5"
    return job


def test_started_writes_are_queued_once_and_the_started_job_is_kept(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    with open_runtime(make_settings(database_url=database_url), redis=False) as rt:
        with rt.db.session() as session:
            project = create_project(
                session, rt.box, name="p", repository="o/r", clone_url="/x",
                webhook_secret="s" * 16, bot_login="bot",
                agents=default_agent_setups("command", {"command": "true"}, ["review"]),
            )  # fmt: skip
            session.add(
                GitHubCredential(project_id=project.id, kind="token", secret_encrypted=b"x")
            )
            event = review_job("r" * 32, project.id)
            session.add(
                Run(
                    id=event.run_id, project_id=project.id, agent_type="review", work_item="5",
                    trigger="github:x", status="RUNNING", job_data=event.model_dump(mode="json"),
                )
            )  # fmt: skip
        for _ in range(3):  # a start, a retried start, a re-attach
            with rt.db.session() as session:
                enqueue_moment(session, event, "started")
        with rt.db.session() as session:
            kinds = [e.kind for e in entries_for_run(session, event.run_id)]
        assert sorted(kinds) == ["ack_update", "check_run_start"]

        # The started job (context filled in) replaces the event's job on the row, and a run
        # taken up again works from it; another run's row or a job without context does not.
        started = event.model_copy(deep=True)
        started.task.context = {"github": {"pull_request": {"head_ref": "feature"}}}
        started.task.head_branch = "feature"
        keep_started_job(rt.db, started)
        with rt.db.session() as session:
            row = session.get(Run, event.run_id)
            assert row is not None
            stored = row.job_data
        assert started_job(stored, event) == started
        assert started_job(stored, review_job("o" * 32, project.id)).run_id == "o" * 32
        assert started_job(event.model_dump(mode="json"), started) == started
        assert started_job(None, event) == event


def test_a_dispatcher_restarted_mid_run_opens_one_check_run_and_posts_started_once(
    make_settings: SettingsFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo = fake_github.add_repo(REPO, private=True, git=True)
    fake_github.add_installation("acme", ["widgets"])
    heads = seed(repo, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    settings = make_settings()
    with running_gaffer(settings) as first:
        run_id = start_a_review_that_waits(first, fake_github, repo, pull.number, heads, tmp_path)
    # The first dispatcher stopped gracefully mid-run: the run was queued again.
    with running_gaffer(settings) as second:
        run = second.wait_for(run_id)
        assert run["status"] == "SUCCEEDED", run["error"]
        entries = wait_sent(second, run_id)
        with second.rt.db.session() as session:
            row = session.get(Run, run_id)
            assert row is not None
            kept = JobData.model_validate(row.job_data)
    started = [e for e in entries if e.kind == "check_run_start"]
    assert len(started) == 1, [(e.kind, e.status) for e in entries]
    texts = [e.payload["status"]["state"] for e in entries if e.kind == "ack_update"]
    assert texts.count("started") == 1, texts
    [check] = check_runs(repo)
    assert check.status == "completed" and check.head_sha == heads["feature"]
    # The started job, with the context fetched at start, is the one kept on the row.
    assert kept.task.context["github"]["pull_request"]["head_sha"] == heads["feature"]


def start_a_review_that_waits(
    first: Gaffer,
    fake_github: FakeGitHub,
    repo: Repository,
    number: int,
    heads: dict[str, str],
    tmp_path: Path,
) -> str:
    """Deliver a PR opened whose review waits at its first start (the second reviews); return
    once that first start runs and its check run is open."""
    # The first start's engine waits (it is stopped with its dispatcher); the second reviews.
    marker = tmp_path / "first-start"
    command = f"if [ -e {marker} ]; then\n{REVIEW}\nelse touch {marker}; sleep 60; fi\n"
    project = first.create_project(
        command=command, agents=["review"], repository=REPO, with_repository=False,
        raw_command=True,
    )  # fmt: skip
    set_app(first, project, fake_github, tmp_path)
    pr = json.loads(fixture_body("pull_request.opened"))["pull_request"]
    pr.update(number=number)
    pr["head"] = {**pr["head"], "ref": "feature", "sha": heads["feature"]}
    run_id = deliver(
        first, project, "pull_request.opened", "pull_request", number=number,
        pull_request=pr,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists() or not check_runs(repo):
        assert time.monotonic() < deadline, "the first start never got going"
        time.sleep(0.1)
    return run_id


def check_runs(repo: Repository) -> list[CheckRun]:
    return [r for r in repo.check_runs.values() if r.name == "gaffer / review"]
