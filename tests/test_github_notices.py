"""A trigger ignored over an attempt cap or the monthly budget: one comment says so, on the fake
GitHub, sent by the notifier of the dispatch role (an outbox entry that follows from no run)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from gaffer.providers.github_api import AppCredentials
from gaffer.providers.github_api.credential_store import set_credentials
from gaffer.runs.caps import over_cap
from gaffer.runs.notices import (
    IgnoredNotice,
    budget_notice,
    cap_notice,
    enqueue_notices,
    notice_body,
)
from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store import outbox
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import (
    GitHubCredential,
    OutboxEntry,
    OutboxStatus,
    Run,
    RunStatus,
    utcnow,
)
from gaffer.store.outbox import entries_for_target
from tests.conftest import GafferFactory
from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.fixtures import fake_github
from tests.support.fake_github.state import Repository
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.support.store import add_runs, spend_this_month
from tests.test_github_runs import DIFF, REPO, repository_payload

__all__ = ["fake_github"]


def set_app(g: Gaffer, project: ProjectInfo, fake: FakeGitHub) -> None:
    """The project's App credentials, stored as ``gaffer github set-app`` stores them (the CLI
    itself is tested in test_github_runs.py; it costs seconds to start)."""
    pem = SecretStr(fake.app.private_key_pem)
    with g.rt.db.session() as session:
        creds = AppCredentials(app_id=fake.app.id, private_key_pem=pem)
        set_credentials(session, g.rt.box, project.id, creds, api_url=fake.api_url)


def send(g: Gaffer, project: ProjectInfo, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    payload["repository"] = repository_payload()
    response = g.deliver(
        json.dumps(payload).encode(), event, project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_notices_sent(g: Gaffer, project_id: str, number: int) -> list[OutboxEntry]:
    """Wait until every run-less entry about ``number`` is sent; returns them."""
    deadline = time.monotonic() + 30
    while True:
        with g.rt.db.session() as session:
            entries = list(entries_for_target(session, project_id, number))
            for e in entries:
                session.expunge(e)
        if entries and all(e.status == OutboxStatus.SENT for e in entries):
            return entries
        assert time.monotonic() < deadline, [(e.status, e.last_error) for e in entries]
        time.sleep(0.1)


def comments_on(repo: Repository, number: int) -> list[str]:
    return [c.body for c in repo.comments.values() if c.issue_number == number]


def test_a_notice_is_written_once_per_key_and_only_with_its_transaction(
    tmp_path: Path, database_url: str | None
) -> None:
    db = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(db)
    project_id = add_runs(db, "r" * 32, status=RunStatus.RUNNING)
    notice = IgnoredNotice(7, "respond-to-ci", "over the cap", "cap:respond-to-ci:pr7:branch:ab")
    with db.session() as session:  # no GitHub credentials: nothing to say it with
        assert enqueue_notices(session, project_id, [notice]) == 0
        session.add(GitHubCredential(project_id=project_id, kind="token", secret_encrypted=b"x"))
    with pytest.raises(RuntimeError), db.session() as session:
        assert enqueue_notices(session, project_id, [notice]) == 1
        raise RuntimeError("the delivery's record fails")
    with db.session() as session:
        assert entries_for_target(session, project_id, 7) == []
        assert enqueue_notices(session, project_id, [notice, notice]) == 1
    with db.session() as session:
        assert enqueue_notices(session, project_id, [notice]) == 0
        later = IgnoredNotice(7, "respond-to-ci", "over the cap", "cap:respond-to-ci:pr7:branch:cd")
        assert enqueue_notices(session, project_id, [later]) == 1
        # A run's entry is not held back by them, nor they by it.
        outbox.enqueue(session, run_id="r" * 32, project_id=project_id, kind="notice", payload={})
    with db.session() as session:
        entries = entries_for_target(session, project_id, 7)
        assert [(e.run_id, e.kind, e.number) for e in entries] == [(None, "ignored_notice", 7)] * 2
        assert len(outbox.due_ids(session, utcnow())) == 3


def test_the_keys_name_the_cap_the_pr_and_the_period(tmp_path: Path) -> None:
    db = Database(Settings(home=tmp_path, database_url=None, master_key=None))
    migrate(db)
    project_id = add_runs(db)
    settings = Settings(home=tmp_path, ci_max_attempts=1, replies_per_day=1, master_key=None)

    def request(agent: str, branch: str | None = None) -> AgentRequest:
        return AgentRequest(
            project_id=project_id, agent_type=agent, provider="github", trigger="t",
            work_item="5", pr_number=5, head_branch=branch,
        )  # fmt: skip

    with db.session() as session:
        for agent, branch in (
            ("respond-to-ci", "a"),
            ("respond-to-ci", "b/c"),
            ("respond-to-review", None),
        ):
            session.add(
                Run(
                    id=uuid.uuid4().hex, project_id=project_id, agent_type=agent, work_item="5",
                    pr_number=5, trigger="t", status=RunStatus.SUCCEEDED,
                    job_data={"task": {"head_branch": branch}},
                )
            )  # fmt: skip
        session.flush()
        on_a = over_cap(session, settings, project_id, request("respond-to-ci", "a"))
        on_b = over_cap(session, settings, project_id, request("respond-to-ci", "b/c"))
        assert over_cap(session, settings, project_id, request("respond-to-ci", "d")) is None
        replies = over_cap(session, settings, project_id, request("respond-to-review"))
    assert on_a is not None and on_b is not None and replies is not None
    assert on_a.key.startswith("cap:respond-to-ci:pr5:branch:") and on_a.key != on_b.key
    assert replies.key == f"cap:respond-to-review:pr5:day:{utcnow().date().isoformat()}"
    budget = budget_notice(request("review"), "over", now=datetime(2026, 12, 2, tzinfo=UTC))
    assert budget is not None and budget.dedup_key == "budget:monthly:2026-12:#5"
    reply_notice = cap_notice(request("respond-to-review"), "x", replies.key)
    assert reply_notice is not None and "once a day" in notice_body(reply_notice)


def test_a_pr_over_its_respond_to_ci_cap_is_told_once(
    start_gaffer: GafferFactory, fake_github: FakeGitHub
) -> None:
    repo = fake_github.add_repo(REPO, private=True)
    fake_github.add_installation("acme", ["widgets"])
    pull = fake_github.add_pull(repo, "feature", "a" * 40, DIFF)
    g = start_gaffer(roles=("ingest", "dispatch"), ci_max_attempts=1)
    project = g.create_project(agents=["respond-to-ci"], repository=REPO, with_repository=False)
    set_app(g, project, fake_github)
    with g.rt.db.session() as session:  # the one attempt the cap allows was made
        session.add(
            Run(
                id=uuid.uuid4().hex,
                project_id=project.id,
                agent_type="respond-to-ci",
                work_item=str(pull.number),
                pr_number=pull.number,
                trigger="github:check_suite.completed",
                status=RunStatus.FAILED,
                job_data={"task": {"head_branch": "feature"}},
            )
        )
    payload = json.loads(fixture_body("check_suite.completed"))
    suite = payload["check_suite"]
    [ref] = suite["pull_requests"]
    ref.update(number=pull.number)
    ref["head"] = {**ref["head"], "ref": "feature", "sha": "a" * 40}
    suite.update(conclusion="failure", head_sha="a" * 40, head_branch="feature")

    first = send(g, project, "check_suite", payload)
    reason = f"respond-to-ci already ran 1 time(s) on PR #{pull.number} (branch feature)"
    assert first["decision"] == "ignored" and reason in first["reason"], first
    [entry] = wait_notices_sent(g, project.id, pull.number)
    assert entry.run_id is None and entry.result is not None
    [comment] = comments_on(repo, pull.number)
    assert reason in comment and "GAFFER_CI_MAX_ATTEMPTS" in comment
    assert f"`{reason}" in comment  # the branch name it holds is code: it mentions nobody
    assert "<!-- gaffer:notice=" in comment
    assert entry.result["url"].endswith(f"#issuecomment-{entry.result['id']}")

    second = send(g, project, "check_suite", payload)
    assert second["decision"] == "ignored" and reason in second["reason"], second
    with g.rt.db.session() as session:  # written with the record: none for the second
        assert len(entries_for_target(session, project.id, pull.number)) == 1

    # A notifier that posted it but died before recording so: sent again, no second comment.
    with g.rt.db.session() as session:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry.id)
            .values(status=OutboxStatus.PENDING, next_attempt_at=utcnow(), result=None)
        )
    [again] = wait_notices_sent(g, project.id, pull.number)
    assert again.result is not None and again.result["id"] == entry.result["id"]
    assert again.result["created"] is False
    assert comments_on(repo, pull.number) == [comment]

    # The comment is gaffer's own: as a trigger it is ignored by the loop guard.
    event = json.loads(fixture_body("issue_comment.created"))
    event["comment"] = {**event["comment"], "body": comment}
    event["sender"] = {**event["sender"], "login": "alice"}
    guarded = send(g, project, "issue_comment", event)
    assert "loop guard" in guarded["reason"], guarded


def test_a_project_over_its_monthly_budget_says_so_on_the_issue(
    start_gaffer: GafferFactory,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GAFFER_GATEWAY_PROJECT_MONTHLY_USD", "1")
    repo = fake_github.add_repo(REPO, private=True)
    fake_github.add_installation("acme", ["widgets"])
    issue = fake_github.add_issue(repo, "Widgets break", "on Tuesdays")
    g = start_gaffer(roles=("ingest", "dispatch"))
    project = g.create_project(agents=["implementation"], repository=REPO, with_repository=False)
    set_app(g, project, fake_github)
    # Earlier this month the project's calls cost $1.50.
    spend_this_month(g.rt.db, project.id, 1_500_000_000)
    payload = json.loads(fixture_body("issues.labeled"))
    payload["issue"].update(number=issue.number, title=issue.title, body=issue.body)
    answer = send(g, project, "issues", payload)
    assert answer["decision"] == "ignored" and answer["runs"] == [], answer
    reason = "budget exceeded: $1.50 of $1.00 of the project's monthly budget"
    assert reason in answer["reason"]
    wait_notices_sent(g, project.id, issue.number)
    [comment] = comments_on(repo, issue.number)
    assert reason in comment and "**implementation**" in comment
