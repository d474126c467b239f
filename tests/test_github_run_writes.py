"""A run's writes from its state and output files, through the outbox to the fake GitHub."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gaffer.providers.github_api import GitHubClient
from gaffer.providers.github_api.notifier import Notifier, NotifierConfig
from gaffer.providers.github_api.run_writes import (
    RunFacts,
    ack_state,
    enqueue_writes,
    writes_for,
)
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import OutboxEntry
from tests.support.fake_github.fixtures import GitHubWorld, fake_github, github_world
from tests.support.fake_github.gitops import push_files
from tests.support.store import add_runs

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]

RUN = "w" * 32
SHA = "de" * 20
DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,1 +1,2 @@\n x\n+y\n"
FAST = NotifierConfig(base_backoff_s=0.05, max_backoff_s=0.2, max_attempts=3, poll_s=0.05)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(Settings(home=tmp_path, database_url=None, master_key=None))
    migrate(database)
    return database


def _kinds(facts: RunFacts, moment: str) -> list[str]:
    return [kind for kind, _, _ in writes_for(facts, moment)]  # type: ignore[arg-type]


def test_writes_by_agent_and_moment() -> None:
    impl = RunFacts(
        run_id="r", project_id="p", agent="implementation", branch_mode="new", number=4, title="Bug"
    )
    assert _kinds(impl, "queued") == ["ack"]
    assert _kinds(impl, "started") == ["ack_update"]
    done = impl.model_copy(update={"state": "succeeded", "pushed_branch": "gaffer/i/4"})
    assert _kinds(done, "finished") == ["pull_request", "ack_update"]
    ((_, pr, _), _) = writes_for(done, "finished")
    assert pr["body"].endswith("Closes #4") and pr["title"] == "Bug"
    failed = impl.model_copy(update={"state": "failed", "reason": "engine exited 1"})
    assert _kinds(failed, "finished") == ["ack_update"]

    review = RunFacts(
        run_id="r",
        project_id="p",
        agent="review",
        branch_mode="read-only",
        number=2,
        is_pull_request=True,
        head_sha=SHA,
        state="succeeded",
        review={"event": "COMMENT", "body": "ok", "comments": []},
    )
    assert _kinds(review, "started") == ["ack_update", "check_run_start"]
    assert _kinds(review, "finished") == ["review", "check_run_complete", "ack_update"]
    with pytest.raises(ValidationError):
        writes_for(review.model_copy(update={"review": {"event": "LGTM"}}), "finished")

    reply = RunFacts(
        run_id="r",
        project_id="p",
        agent="respond-to-review",
        branch_mode="pr-head",
        number=2,
        is_pull_request=True,
        head_sha=SHA,
        state="succeeded",
        reply={"body": "Pushed fixes.", "replies": [{"comment_id": 5, "body": "done"}]},
    )
    assert _kinds(reply, "finished") == [
        "review_replies",
        "answer",
        "check_run_complete",
        "ack_update",
    ]
    assert (ack_state("TIMED_OUT"), ack_state("SUCCEEDED"), ack_state("CANCELED")) == (
        "failed",
        "succeeded",
        "canceled",
    )


async def _deliver(world: GitHubWorld, db: Database, facts: RunFacts, *moments: str) -> None:
    async def clients(entry: OutboxEntry) -> GitHubClient:
        return world.client(facts.branch_mode)

    for moment in moments:
        state = {"queued": "queued", "started": "started"}.get(moment, facts.state)
        with db.session() as session:
            enqueue_writes(session, facts.model_copy(update={"state": state}), moment)  # type: ignore[arg-type]
    await Notifier(db, clients, FAST).send_due()


async def test_a_review_run_acks_checks_and_reviews_at_its_head_sha(
    github_world: GitHubWorld, db: Database
) -> None:
    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "feature", SHA, DIFF)
    facts = RunFacts(
        run_id=RUN,
        project_id=add_runs(db, RUN),
        agent="review",
        branch_mode="read-only",
        number=pull.number,
        is_pull_request=True,
        head_sha=SHA,
        state="succeeded",
        duration_s=12,
        review={
            "event": "REQUEST_CHANGES",
            "body": "Two things",
            "comments": [
                {"path": "a.py", "line": 2, "side": "RIGHT", "body": "why y?"},
                {"path": "a.py", "line": 9, "side": "RIGHT", "body": "elsewhere"},
            ],
        },
    )
    await _deliver(github_world, db, facts, "queued", "started", "finished")
    (review,) = repo.reviews.values()
    assert review.state == "CHANGES_REQUESTED" and review.commit_id == SHA
    assert "elsewhere" in review.body
    assert [c.body for c in repo.review_comments.values()] == ["why y?"]
    (check,) = repo.check_runs.values()
    assert (check.name, check.status, check.conclusion) == (
        "gaffer / review",
        "completed",
        "success",
    )
    (ack,) = repo.comments.values()
    assert "Done" in ack.body and "took 12s" in ack.body
    assert [x.content for x in repo.reactions] == ["eyes"]


async def test_an_implementation_run_opens_its_pr_and_links_it_in_the_ack(
    github_world: GitHubWorld, db: Database, tmp_path: Path
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Add y")
    token = await github_world.client("new").token()
    push_files(fake.web_url, repo.full_name, token, tmp_path / "w", "main", {"a.py": "x\n"})
    push_files(
        fake.web_url,
        repo.full_name,
        token,
        tmp_path / "w",
        "gaffer/implementation/1",
        {"a.py": "x\ny\n"},
        base="main",
    )
    facts = RunFacts(
        run_id=RUN,
        project_id=add_runs(db, RUN),
        agent="implementation",
        branch_mode="new",
        number=issue.number,
        title=issue.title,
        pushed_branch="gaffer/implementation/1",
        summary="Adds y.",
        state="succeeded",
    )
    await _deliver(github_world, db, facts, "queued", "started", "finished")
    (pull,) = repo.pulls.values()
    assert repo.issues[pull.number].title == "Add y"
    assert repo.issues[pull.number].body == f"Adds y.\n\nCloses #{issue.number}"
    (ack,) = repo.comments.values()
    assert f"/pull/{pull.number}" in ack.body and "Done" in ack.body
