"""Submit a pull request review at the head SHA that was reviewed."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.diff_lines import commentable_lines, is_commentable
from gaffer.providers.github_api.errors import GitHubRequestError
from gaffer.providers.github_api.senders.markers import has_marker, with_marker

ReviewEvent = Literal["COMMENT", "REQUEST_CHANGES", "APPROVE"]
DIFF_MEDIA_TYPE = "application/vnd.github.diff"
MARKER_KIND = "review"


class InlineComment(BaseModel):
    """An inline comment of a review file: ``{"path", "line", "side", "body"}``."""

    path: str
    line: int = Field(gt=0)
    side: Literal["LEFT", "RIGHT"] = "RIGHT"
    body: str


class SubmittedReview(BaseModel):
    """A review on GitHub. ``inline``: comments placed on lines; ``moved_to_body``: those
    whose line is not in the diff, written into the body instead. ``event``: what was
    submitted (COMMENT when GitHub refused the verdict on the bot's own PR)."""

    id: int
    url: str
    event: ReviewEvent
    inline: int
    moved_to_body: int
    created: bool


def _compose(body: str, moved: list[InlineComment]) -> str:
    if not moved:
        return body
    lines = (
        [body.rstrip(), "", "Comments on lines outside this PR's diff:"]
        if body
        else ["Comments on lines outside this PR's diff:"]
    )
    lines += [f"- `{c.path}` line {c.line} ({c.side.lower()}): {c.body}" for c in moved]
    return "\n".join(lines)


async def submit_review(
    client: GitHubClient,
    number: int,
    run_id: str,
    *,
    head_sha: str,
    event: ReviewEvent,
    body: str,
    comments: list[InlineComment],
    diff: str | None = None,
) -> SubmittedReview:
    """Submit the review of run ``run_id`` on PR ``number`` at ``head_sha`` (the commit that
    was reviewed, so GitHub anchors it there even if the PR moved on).

    Inline comments on lines not in ``diff`` (the PR's diff; fetched when None) go into the
    body, so GitHub does not reject the whole review. If the run's review already exists
    (found by its marker), it is returned instead. If GitHub refuses ``APPROVE`` or
    ``REQUEST_CHANGES`` because the PR is the bot's own, the review is submitted as
    ``COMMENT`` with the verdict written in the body. Raises ``GitHubError`` subclasses.
    """
    o, r = client.owner, client.name
    reviews: list[Any] = (
        await client.call(
            "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            lambda gh: gh.rest.pulls.async_list_reviews(o, r, number, per_page=100),
        )
    ).parsed_data
    for old in reviews:
        if has_marker(old.body, run_id, MARKER_KIND):
            return SubmittedReview(
                id=old.id, url=old.html_url, event=event, inline=0, moved_to_body=0, created=False
            )
    if diff is None:
        diff = (
            await client.request(
                "GET", f"/repos/{o}/{r}/pulls/{number}", headers={"Accept": DIFF_MEDIA_TYPE}
            )
        ).text
    lines = commentable_lines(diff)
    placed = [c for c in comments if is_commentable(lines, c.path, c.line, c.side)]
    moved = [c for c in comments if c not in placed]
    text = _compose(body, moved)

    async def send(verdict: ReviewEvent, review_body: str) -> Any:
        payload: dict[str, Any] = {
            "commit_id": head_sha,
            "event": verdict,
            "body": with_marker(review_body or "Review", run_id, MARKER_KIND),
            "comments": [c.model_dump() for c in placed],
        }
        return (
            await client.call(
                "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                lambda gh: gh.rest.pulls.async_create_review(o, r, number, data=cast(Any, payload)),
            )
        ).parsed_data

    sent: ReviewEvent = event
    try:
        made = await send(event, text)
    except GitHubRequestError as exc:
        if exc.status != 422 or "your own pull request" not in exc.reason or event == "COMMENT":
            raise
        verdict = "Approve" if event == "APPROVE" else "Changes requested"
        sent = "COMMENT"
        made = await send(
            "COMMENT",
            f"**{verdict}** (GitHub does not let an app approve or "
            f"request changes on its own pull request.)\n\n{text}",
        )
    return SubmittedReview(
        id=made.id,
        url=made.html_url,
        event=sent,
        inline=len(placed),
        moved_to_body=len(moved),
        created=True,
    )
