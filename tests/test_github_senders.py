"""The senders against the fake GitHub: each write lands once, even when repeated after a
crash that lost the id GitHub gave it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaffer.providers.github_api.senders.ack import AckStatus, post_ack, update_ack
from gaffer.providers.github_api.senders.checks import complete_check_run, start_check_run
from gaffer.providers.github_api.senders.markers import is_gaffer_post, marker
from gaffer.providers.github_api.senders.pulls import (
    open_or_reuse_pull_request,
    pull_request_body,
)
from gaffer.providers.github_api.senders.replies import (
    ReviewReply,
    answer_comment,
    post_plan,
    reply_to_review_comments,
)
from gaffer.providers.github_api.senders.reviews import InlineComment, submit_review
from tests.support.fake_github.fixtures import GitHubWorld, fake_github, github_world
from tests.support.fake_github.gitops import push_files

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]

SHA = "ab" * 20
DIFF = (
    "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n"
    "@@ -10,3 +10,4 @@ def main():\n ctx\n-old\n+new\n+more\n ctx2\n"
)


async def test_ack_reacts_and_posts_one_comment_updated_in_place(
    github_world: GitHubWorld,
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    client = github_world.client("read-only")
    queued = AckStatus(run_id="run-1", agent="implementation", state="queued")
    first = await post_ack(client, issue.number, queued)
    assert first.created
    # A crash lost the comment id: the same ack again finds it by its marker.
    again = await post_ack(client, issue.number, queued)
    assert (again.id, again.created) == (first.id, False)
    done = AckStatus(
        run_id="run-1",
        agent="implementation",
        state="succeeded",
        pull_request_url="http://x/pull/2",
        duration_s=95,
        tokens=1234,
        cost_usd=0.42,
    )
    final = await update_ack(client, issue.number, done, comment_id=first.id)
    assert final.id == first.id

    (comment,) = list(repo.comments.values())
    assert comment.body.endswith(marker("run-1"))
    assert "Done" in comment.body and "http://x/pull/2" in comment.body
    assert "1m35s" in comment.body and "$0.42" in comment.body and "1,234 tokens" in comment.body
    assert is_gaffer_post(comment.body)
    assert [(x.content, x.subject) for x in repo.reactions] == [("eyes", ("issue", issue.number))]


async def test_ack_reacts_to_the_triggering_comment(github_world: GitHubWorld) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    trigger = fake.add_comment(repo, issue.number, "@bot fix it")
    await post_ack(
        github_world.client(),
        issue.number,
        AckStatus(run_id="r2", agent="implementation", state="queued"),
        trigger_comment_id=trigger.id,
    )
    assert [x.subject for x in repo.reactions] == [("comment", trigger.id)]


async def test_open_or_reuse_pull_request_for_a_pushed_branch(
    github_world: GitHubWorld, tmp_path: Path
) -> None:
    fake, repo = github_world.fake, github_world.repo
    client = github_world.client("new")
    token = await client.token()
    push_files(fake.web_url, repo.full_name, token, tmp_path / "w", "main", {"a.txt": "1\n"})
    head_sha = push_files(
        fake.web_url,
        repo.full_name,
        token,
        tmp_path / "w",
        "gaffer/implementation/7",
        {"a.txt": "2\n"},
        base="main",
    )
    body = pull_request_body("Fixes the bug.", closes=7)
    assert body.endswith("Closes #7")
    # Mentioning the issue does not close it; a closing keyword does (and #70 is not #7).
    assert pull_request_body("Wrote it from #7.", 7) == "Wrote it from #7.\n\nCloses #7"
    assert pull_request_body("Fixes #7.", 7) == "Fixes #7."
    assert pull_request_body("Resolves: #70", 7).endswith("Closes #7")
    opened = await open_or_reuse_pull_request(
        client, head="gaffer/implementation/7", base="main", title="Fix", body=body
    )
    assert opened.created and opened.head_sha == head_sha
    reused = await open_or_reuse_pull_request(
        client, head="gaffer/implementation/7", base="main", title="Fix", body=body
    )
    assert (reused.number, reused.created) == (opened.number, False)
    assert len(repo.pulls) == 1
    assert repo.issues[opened.number].body.endswith("Closes #7")


async def test_review_places_inline_comments_in_the_diff_and_moves_the_rest_to_the_body(
    github_world: GitHubWorld,
) -> None:
    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "feature", SHA, DIFF)
    client = github_world.client("read-only")
    comments = [
        InlineComment(path="app.py", line=11, side="RIGHT", body="good name"),
        InlineComment(path="app.py", line=11, side="LEFT", body="was bad"),
        InlineComment(path="app.py", line=40, side="RIGHT", body="outside the diff"),
        InlineComment(path="other.py", line=1, side="RIGHT", body="not in the PR"),
    ]
    review = await submit_review(
        client,
        pull.number,
        "run-r",
        head_sha=SHA,
        event="REQUEST_CHANGES",
        body="Needs work",
        comments=comments,
    )
    assert review.created and (review.inline, review.moved_to_body) == (2, 2)
    stored = repo.reviews[review.id]
    assert stored.state == "CHANGES_REQUESTED" and stored.commit_id == SHA
    assert "outside the diff" in stored.body and "`other.py` line 1" in stored.body
    assert sorted(c.body for c in repo.review_comments.values()) == ["good name", "was bad"]

    again = await submit_review(
        client,
        pull.number,
        "run-r",
        head_sha=SHA,
        event="REQUEST_CHANGES",
        body="Needs work",
        comments=comments,
    )
    assert (again.id, again.created) == (review.id, False)
    assert len(repo.reviews) == 1


async def test_a_verdict_on_the_bots_own_pr_is_submitted_as_a_comment(
    github_world: GitHubWorld, tmp_path: Path
) -> None:
    fake, repo = github_world.fake, github_world.repo
    client = github_world.client("new")
    token = await client.token()
    push_files(fake.web_url, repo.full_name, token, tmp_path / "w", "main", {"a.txt": "1\n"})
    push_files(
        fake.web_url, repo.full_name, token, tmp_path / "w", "mine", {"a.txt": "2\n"}, base="main"
    )
    opened = await open_or_reuse_pull_request(client, head="mine", base="main", title="t", body="b")
    review = await submit_review(
        client,
        opened.number,
        "run-own",
        head_sha=opened.head_sha,
        event="APPROVE",
        body="LGTM",
        comments=[],
    )
    assert review.event == "COMMENT"
    assert repo.reviews[review.id].state == "COMMENTED"
    assert "Approve" in repo.reviews[review.id].body


async def test_replies_to_review_comments_once(github_world: GitHubWorld) -> None:
    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "feature", SHA, DIFF)
    _, (c1, c2) = fake.add_review(
        repo, pull, "CHANGES_REQUESTED", "fix", [("app.py", 11, "rename"), ("app.py", 12, "why?")]
    )
    client = github_world.client("pr-head")
    replies = [
        ReviewReply(comment_id=c1.id, body="Renamed."),
        ReviewReply(comment_id=c2.id, body="Because."),
        ReviewReply(comment_id=999999, body="gone"),
    ]
    first = await reply_to_review_comments(client, pull.number, "run-x", replies)
    assert [p.created for p in first] == [True, True, False] and first[2].id is None
    second = await reply_to_review_comments(client, pull.number, "run-x", replies)
    assert [p.created for p in second] == [False, False, False]
    assert [p.id for p in second[:2]] == [p.id for p in first[:2]]
    answers = [c for c in repo.review_comments.values() if c.in_reply_to_id is not None]
    assert sorted((c.in_reply_to_id, c.body.split("\n")[0]) for c in answers) == sorted(
        [(c1.id, "Renamed."), (c2.id, "Because.")]
    )


async def test_answer_and_plan_comments_are_posted_once(github_world: GitHubWorld) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Plan it")
    client = github_world.client("read-only")
    a = await answer_comment(client, issue.number, "run-a", "Here is why.")
    b = await answer_comment(client, issue.number, "run-a", "Here is why.")
    p = await post_plan(client, issue.number, "run-a", "Plan", "1. do it")
    assert a.id == b.id and a.created and not b.created and p.created and p.id != a.id
    assert len(repo.comments) == 2


async def test_check_run_started_once_then_completed(github_world: GitHubWorld) -> None:
    repo = github_world.repo
    client = github_world.client("read-only")
    started = await start_check_run(client, head_sha=SHA, agent="review", run_id="run-c")
    again = await start_check_run(client, head_sha=SHA, agent="review", run_id="run-c")
    assert started.created and (again.id, again.created) == (started.id, False)
    other = await start_check_run(client, head_sha=SHA, agent="review", run_id="run-d")
    assert other.id != started.id
    await complete_check_run(
        client, started.id, conclusion="success", title="Reviewed", summary="No problems found"
    )
    run = repo.check_runs[started.id]
    assert run.name == "gaffer / review" and run.status == "completed"
    assert run.conclusion == "success" and run.output["summary"] == "No problems found"
    assert run.external_id == "run-c"
