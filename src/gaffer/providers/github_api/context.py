"""Fetch a run's context from GitHub (issue, PR, diff, review, comment, failed checks).

Called when a run starts, not when it was queued, so the agent sees GitHub as it is now (a
PR closed meanwhile shows as such: see :attr:`PullRequestContext.ended_reason`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gaffer.providers.github_api.context_models import (
    ChangedFile,
    CommentInfo,
    ContextRequest,
    FailedCheck,
    IssueContext,
    PullRequestContext,
    ReviewCommentInfo,
    ReviewContext,
    RunContext,
)
from gaffer.providers.github_api.errors import GitHubNotFoundError

if TYPE_CHECKING:
    from gaffer.providers.github_api.client import GitHubClient

DIFF_MEDIA_TYPE = "application/vnd.github.diff"
FAILED_CONCLUSIONS = {"failure", "timed_out", "startup_failure", "action_required"}
PER_PAGE = 100


async def fetch_context(client: GitHubClient, request: ContextRequest) -> RunContext:
    """Fetch what ``request`` asks for, with ``client``'s credentials (REST calls; the diff
    through the ``application/vnd.github.diff`` media type, Actions logs through their
    redirect).

    Raises :class:`~gaffer.providers.github_api.errors.GitHubError` subclasses (a missing
    issue/PR is :class:`GitHubNotFoundError`); a missing review or comment named by the
    request is reported as None, a failed check whose log is gone gets a ``log_note``.
    """
    issue = await _issue(client, request)
    context = RunContext(repository=client.repository, issue=issue)
    if request.comment_id is not None:
        context.trigger_comment = next(
            (c for c in issue.comments if c.id == request.comment_id), None
        )
    if request.is_pull_request:
        context.pull_request = await _pull_request(client, request)
        if request.review_id is not None:
            context.review = await _review(client, request.number, request.review_id)
        if request.failed_checks:
            sha = request.head_sha or context.pull_request.head_sha
            context.failed_checks = await _failed_checks(client, sha, request)
    elif request.failed_checks and request.head_sha:
        context.failed_checks = await _failed_checks(client, request.head_sha, request)
    return context


def _login(user: Any) -> str | None:
    return getattr(user, "login", None) if user else None


async def _issue(client: GitHubClient, request: ContextRequest) -> IssueContext:
    o, r, n = client.owner, client.name, request.number
    got = await client.call(
        "GET /repos/{owner}/{repo}/issues/{issue_number}",
        lambda gh: gh.rest.issues.async_get(o, r, n),
    )
    data = got.parsed_data
    comments: list[CommentInfo] = []
    page, truncated = 1, False
    while True:
        batch = (
            await client.call(
                "GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
                lambda gh, p=page: gh.rest.issues.async_list_comments(  # type: ignore[misc]
                    o, r, n, per_page=PER_PAGE, page=p
                ),
            )
        ).parsed_data
        for c in batch:
            comments.append(
                CommentInfo(
                    id=c.id,
                    author=_login(c.user),
                    body=c.body or "",
                    url=c.html_url,
                    created_at=str(c.created_at),
                )
            )
        if len(batch) < PER_PAGE:
            break
        if len(comments) >= request.max_comments:
            truncated = True
            break
        page += 1
    if len(comments) > request.max_comments:
        comments, truncated = comments[: request.max_comments], True
    return IssueContext(
        number=data.number,
        title=data.title,
        body=data.body or "",
        url=data.html_url,
        state=str(data.state),
        author=_login(data.user),
        comments=comments,
        comments_truncated=truncated,
    )


def cap_text(text: str, cap_bytes: int, *, keep: str = "head") -> tuple[str, bool]:
    """``text`` cut to at most ``cap_bytes`` UTF-8 bytes on a line boundary (``keep``: the
    ``head`` or the ``tail``), and whether it was cut."""
    raw = text.encode()
    if len(raw) <= cap_bytes:
        return text, False
    if keep == "head":
        cut = raw[:cap_bytes]
        newline = cut.rfind(b"\n")
        cut = cut[: newline + 1] if newline > 0 else cut
    else:
        cut = raw[-cap_bytes:]
        newline = cut.find(b"\n")
        cut = cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut
    return cut.decode(errors="ignore"), True


async def _pull_request(client: GitHubClient, request: ContextRequest) -> PullRequestContext:
    o, r, n = client.owner, client.name, request.number
    pr = (
        await client.call(
            "GET /repos/{owner}/{repo}/pulls/{pull_number}",
            lambda gh: gh.rest.pulls.async_get(o, r, n),
        )
    ).parsed_data
    raw_diff = (
        await client.request(
            "GET", f"/repos/{o}/{r}/pulls/{n}", headers={"Accept": DIFF_MEDIA_TYPE}
        )
    ).text
    diff, truncated = cap_text(raw_diff, request.diff_cap_bytes)
    size = len(raw_diff.encode())
    files: list[ChangedFile] = []
    page = 1
    while page <= 30:  # GitHub lists at most 3000 files
        batch = (
            await client.call(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/files",
                lambda gh, p=page: gh.rest.pulls.async_list_files(  # type: ignore[misc]
                    o, r, n, per_page=PER_PAGE, page=p
                ),
            )
        ).parsed_data
        files += [
            ChangedFile(
                filename=f.filename,
                status=str(f.status),
                additions=f.additions,
                deletions=f.deletions,
            )
            for f in batch
        ]
        if len(batch) < PER_PAGE:
            break
        page += 1
    head_repo = pr.head.repo
    from_fork = head_repo is None or head_repo.full_name.lower() != client.repository.lower()
    note = None
    if truncated:
        note = (
            f"The diff was cut at {request.diff_cap_bytes // 1024} KiB of "
            f"{size / 1024:.0f} KiB; {len(files)} files changed (see the list of files)."
        )
    return PullRequestContext(
        number=pr.number,
        title=pr.title,
        body=pr.body or "",
        url=pr.html_url,
        state=str(pr.state),
        merged=bool(pr.merged),
        draft=bool(pr.draft),
        head_ref=pr.head.ref,
        head_sha=pr.head.sha,
        base_ref=pr.base.ref,
        from_fork=from_fork,
        author=_login(pr.user),
        files=files,
        diff=diff,
        diff_bytes=size,
        diff_truncated=truncated,
        diff_note=note,
    )


async def _review(client: GitHubClient, number: int, review_id: int) -> ReviewContext | None:
    o, r = client.owner, client.name
    try:
        review = (
            await client.call(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}",
                lambda gh: gh.rest.pulls.async_get_review(o, r, number, review_id),
            )
        ).parsed_data
        comments: list[Any] = (
            await client.call(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments",
                lambda gh: gh.rest.pulls.async_list_comments_for_review(
                    o, r, number, review_id, per_page=PER_PAGE
                ),
            )
        ).parsed_data
    except GitHubNotFoundError:
        return None
    # The review's own listing lacks line/side; the PR's review comments carry them.
    everything: list[Any] = (
        await client.call(
            "GET /repos/{owner}/{repo}/pulls/{pull_number}/comments",
            lambda gh: gh.rest.pulls.async_list_review_comments(o, r, number, per_page=PER_PAGE),
        )
    ).parsed_data
    by_id = {c.id: c for c in everything}
    infos = []
    for c in comments:
        full = by_id.get(c.id, c)
        infos.append(
            ReviewCommentInfo(
                id=c.id,
                author=_login(c.user),
                body=c.body,
                path=c.path,
                line=_opt_int(getattr(full, "line", None)),
                side=_opt_str(getattr(full, "side", None)),
                in_reply_to_id=_opt_int(getattr(c, "in_reply_to_id", None)),
                url=c.html_url,
            )
        )
    return ReviewContext(
        id=review.id,
        state=str(review.state),
        author=_login(review.user),
        body=review.body or "",
        commit_id=_opt_str(review.commit_id),
        comments=infos,
    )


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _opt_str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


async def _failed_checks(
    client: GitHubClient, sha: str, request: ContextRequest
) -> list[FailedCheck]:
    o, r = client.owner, client.name
    runs = (
        await client.call(
            "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
            lambda gh: gh.rest.checks.async_list_for_ref(
                o, r, sha, filter_="latest", per_page=PER_PAGE
            ),
        )
    ).parsed_data.check_runs
    failed = [k for k in runs if k.conclusion in FAILED_CONCLUSIONS]
    out: list[FailedCheck] = []
    for k in failed[: request.max_failed_checks]:
        tail: str | None = None
        cut, note = False, None
        try:
            log = (await client.request("GET", f"/repos/{o}/{r}/actions/jobs/{k.id}/logs")).text
            tail, cut = cap_text(log, request.log_tail_bytes, keep="tail")
            if cut:
                note = f"only the last {request.log_tail_bytes // 1024} KiB of the log"
        except GitHubNotFoundError:
            note = "no log (not an Actions job, or the log expired)"
        out.append(
            FailedCheck(
                id=k.id,
                name=k.name,
                conclusion=str(k.conclusion),
                url=k.html_url,
                summary=k.output.summary if k.output else None,
                log_tail=tail,
                log_truncated=cut,
                log_note=note,
            )
        )
    return out
