"""Reply to a review's comments (respond-to-review) and answer a comment
(respond-to-pr-comment)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.errors import GitHubNotFoundError
from gaffer.providers.github_api.senders.comments import PostedComment, upsert_comment
from gaffer.providers.github_api.senders.markers import has_marker, with_marker

MAX_PAGES = 30


class ReviewReply(BaseModel):
    """One reply of a reply file: ``{"comment_id", "body"}``."""

    comment_id: int
    body: str


class PostedReply(BaseModel):
    """A reply on GitHub (``id``/``url`` None when the comment replied to is gone)."""

    comment_id: int
    id: int | None
    url: str | None
    created: bool


def _kind(comment_id: int) -> str:
    return f"reply:{comment_id}"


async def reply_to_review_comments(
    client: GitHubClient, number: int, run_id: str, replies: list[ReviewReply]
) -> list[PostedReply]:
    """Post each reply under its review comment on PR ``number``, skipping those the run
    already posted (found by their marker among the PR's review comments). A reply to a
    comment that no longer exists is reported with ``id=None``. Raises ``GitHubError``."""
    o, r = client.owner, client.name
    existing: list[Any] = []
    for page in range(1, MAX_PAGES + 1):
        batch: list[Any] = (
            await client.call(
                "GET /repos/{owner}/{repo}/pulls/{pull_number}/comments",
                lambda gh, p=page: gh.rest.pulls.async_list_review_comments(  # type: ignore[misc]
                    o, r, number, per_page=100, page=p
                ),
            )
        ).parsed_data
        existing += batch
        if len(batch) < 100:
            break
    out: list[PostedReply] = []
    for reply in replies:
        kind = _kind(reply.comment_id)
        done = next((c for c in existing if has_marker(c.body, run_id, kind)), None)
        if done is not None:
            out.append(
                PostedReply(
                    comment_id=reply.comment_id, id=done.id, url=done.html_url, created=False
                )
            )
            continue
        text = with_marker(reply.body, run_id, kind)
        cid = reply.comment_id
        try:
            made = (
                await client.call(
                    "POST /repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies",
                    lambda gh, c=cid, t=text: gh.rest.pulls.async_create_reply_for_review_comment(  # type: ignore[misc]
                        o, r, number, c, body=t
                    ),
                )
            ).parsed_data
        except GitHubNotFoundError:
            out.append(PostedReply(comment_id=cid, id=None, url=None, created=False))
            continue
        out.append(PostedReply(comment_id=cid, id=made.id, url=made.html_url, created=True))
    return out


async def answer_comment(
    client: GitHubClient, number: int, run_id: str, body: str, *, comment_id: int | None = None
) -> PostedComment:
    """Answer on issue/PR ``number``'s conversation with ``body`` (once per run: an earlier
    answer, by ``comment_id`` or by marker, is updated instead). Raises ``GitHubError``."""
    return await upsert_comment(client, number, run_id, body, kind="answer", comment_id=comment_id)


async def post_plan(
    client: GitHubClient,
    number: int,
    run_id: str,
    title: str,
    body: str,
    *,
    comment_id: int | None = None,
) -> PostedComment:
    """Post a planning run's plan file (``{"title", "body"}``) as a comment on issue
    ``number`` (once per run). Raises ``GitHubError``."""
    return await upsert_comment(
        client, number, run_id, f"## {title}\n\n{body}", kind="plan", comment_id=comment_id
    )
