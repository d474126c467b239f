"""fetch_context against the fake GitHub: issue, PR, diff cap, review, comment, failed CI."""

from __future__ import annotations

import pytest

from gaffer.providers.github_api.context import fetch_context
from gaffer.providers.github_api.context_models import ContextRequest
from gaffer.providers.github_api.errors import GitHubNotFoundError
from tests.support.fake_github.fixtures import GitHubWorld, fake_github, github_world

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]

SHA = "c0ffee" + "0" * 34


def _diff(lines: int) -> str:
    body = "".join(f"+line {i}\n" for i in range(lines))
    return (
        "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n"
        f"@@ -1,1 +1,{lines + 1} @@\n keep\n{body}"
    )


async def test_issue_context_with_comments_and_the_mentioning_comment(
    github_world: GitHubWorld,
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Crash on start", "Steps: run it", author="reporter")
    for i in range(130):  # more than one page
        fake.add_comment(repo, issue.number, f"comment {i}")
    mention = fake.add_comment(repo, issue.number, "@gaffer-bot please fix", author="boss")
    context = await fetch_context(
        github_world.client("read-only"),
        ContextRequest(number=issue.number, comment_id=mention.id),
    )
    assert context.issue.title == "Crash on start" and context.issue.body == "Steps: run it"
    assert context.issue.author == "reporter"
    assert len(context.issue.comments) == 131
    assert context.issue.comments[0].body == "comment 0"
    assert context.trigger_comment is not None and context.trigger_comment.author == "boss"
    assert context.pull_request is None


async def test_pr_context_with_a_capped_diff_and_review_and_failed_checks(
    github_world: GitHubWorld,
) -> None:
    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "feature/x", SHA, _diff(400), title="Add x", body="Closes #1")
    review, comments = fake.add_review(
        repo, pull, "CHANGES_REQUESTED", "Please fix", [("app.py", 3, "off by one")]
    )
    log = "".join(f"step {i}\n" for i in range(5000)) + "Error: assertion failed\n"
    failed = fake.add_check_run(repo, "ci / test", SHA, "failure", log=log)
    fake.add_check_run(repo, "ci / lint", SHA, "success", log="fine\n")
    fake.add_check_run(repo, "external", SHA, "failure")  # no Actions log

    context = await fetch_context(
        github_world.client("pr-head"),
        ContextRequest(
            number=pull.number,
            is_pull_request=True,
            review_id=review.id,
            failed_checks=True,
            diff_cap_bytes=1024,
            log_tail_bytes=2048,
        ),
    )
    pr = context.pull_request
    assert pr is not None
    assert (pr.title, pr.head_ref, pr.base_ref, pr.head_sha) == ("Add x", "feature/x", "main", SHA)
    assert pr.state == "open" and not pr.merged and not pr.from_fork
    assert pr.ended_reason is None
    assert pr.diff_truncated and len(pr.diff.encode()) <= 1024 and pr.diff.endswith("\n")
    assert pr.diff_note is not None and "cut at 1 KiB" in pr.diff_note
    assert pr.diff_bytes == len(_diff(400).encode())
    assert [f.filename for f in pr.files] == ["app.py"] and pr.files[0].additions == 400

    assert context.review is not None
    assert context.review.state == "CHANGES_REQUESTED" and context.review.body == "Please fix"
    (comment,) = context.review.comments
    assert (comment.id, comment.path, comment.line, comment.body) == (
        comments[0].id,
        "app.py",
        3,
        "off by one",
    )

    by_name = {c.name: c for c in context.failed_checks}
    assert set(by_name) == {"ci / test", "external"}
    test = by_name["ci / test"]
    assert test.id == failed.id and test.log_tail is not None
    assert test.log_tail.endswith("Error: assertion failed\n")
    assert len(test.log_tail.encode()) <= 2048 and test.log_truncated
    assert by_name["external"].log_tail is None and by_name["external"].log_note


async def test_small_diff_is_whole_and_a_merged_or_forked_pr_says_so(
    github_world: GitHubWorld,
) -> None:
    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "fork-branch", SHA, _diff(3), from_fork=True)
    pull.merged = True
    context = await fetch_context(
        github_world.client("read-only"), ContextRequest(number=pull.number, is_pull_request=True)
    )
    pr = context.pull_request
    assert pr is not None
    assert not pr.diff_truncated and pr.diff == _diff(3) and pr.diff_note is None
    assert pr.from_fork and pr.merged and pr.ended_reason == f"PR #{pull.number} was merged"


async def test_a_missing_issue_is_not_found(github_world: GitHubWorld) -> None:
    with pytest.raises(GitHubNotFoundError):
        await fetch_context(github_world.client(), ContextRequest(number=999))


async def test_context_files_and_start_refusals(github_world: GitHubWorld) -> None:
    from gaffer.providers.github_api.context_files import context_files, start_refusal

    fake, repo = github_world.fake, github_world.repo
    pull = fake.add_pull(repo, "fork-branch", SHA, _diff(3), title="Forked", from_fork=True)
    review, (comment,) = fake.add_review(
        repo, pull, "CHANGES_REQUESTED", "fix", [("app.py", 2, "rename")]
    )
    fake.add_check_run(repo, "ci / test", SHA, "failure", log="boom\n")
    context = await fetch_context(
        github_world.client("pr-head"),
        ContextRequest(
            number=pull.number, is_pull_request=True, review_id=review.id, failed_checks=True
        ),
    )
    assert start_refusal(context, "read-only") is None
    refusal = start_refusal(context, "pr-head")
    assert refusal is not None and "fork" in refusal
    files = context_files(context)
    assert files["pr.diff"] == _diff(3)
    assert f"comment_id {comment.id} on app.py:2" in files["review.md"]
    assert "Forked" in files["pr.md"] and "(from a fork)" in files["pr.md"]
    (log_name,) = [n for n in files if n.startswith("ci/")]
    assert log_name.startswith("ci/ci-test-") and files[log_name] == "boom\n"
    pull.state = "closed"
    closed = await fetch_context(
        github_world.client("read-only"), ContextRequest(number=pull.number, is_pull_request=True)
    )
    assert start_refusal(closed, "read-only") == f"PR #{pull.number} was closed"
