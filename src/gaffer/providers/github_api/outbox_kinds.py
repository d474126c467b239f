"""The kinds of outbox entries: each one's payload (a Pydantic model) and sender.

``send_entry(client, kind, payload, prior)`` makes the write and returns the ``result`` to
record. ``prior`` maps a kind to the result of the run's newest sent entry of that kind
(``ack`` -> the comment id to update, ``check_run_start`` -> the check run to complete,
``pull_request`` -> the PR link for the final ack).

Entries that follow from no run (``run_id`` None) have kinds of their own
(:data:`RUNLESS_SENDERS`: ``ignored_notice``), sent without a run id or prior results.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.senders.ack import AckStatus, post_ack, update_ack
from gaffer.providers.github_api.senders.checks import (
    CheckConclusion,
    complete_check_run,
    start_check_run,
)
from gaffer.providers.github_api.senders.comments import upsert_comment
from gaffer.providers.github_api.senders.notices import post_notice
from gaffer.providers.github_api.senders.pulls import open_or_reuse_pull_request
from gaffer.providers.github_api.senders.replies import (
    ReviewReply,
    answer_comment,
    post_plan,
    reply_to_review_comments,
)
from gaffer.providers.github_api.senders.reviews import (
    InlineComment,
    ReviewEvent,
    submit_review,
)

PRIOR_KINDS = ("ack", "ack_update", "check_run_start", "pull_request")


class AckPayload(BaseModel):
    """``ack``: react and post the ack comment."""

    number: int
    status: AckStatus
    trigger_comment_id: int | None = None


class AckUpdatePayload(BaseModel):
    """``ack_update`` (coalesce key ``ack``): the ack comment's new text. A final status
    without ``pull_request_url`` gets the run's PR link when the run opened one."""

    number: int
    status: AckStatus


class PullRequestPayload(BaseModel):
    """``pull_request``: open (or reuse) the PR of the pushed branch."""

    head: str
    base: str
    title: str
    body: str
    draft: bool = False


class ReviewPayload(BaseModel):
    """``review``: the review file, at the head SHA that was reviewed."""

    number: int
    head_sha: str
    event: ReviewEvent
    body: str
    comments: list[InlineComment] = []


class RepliesPayload(BaseModel):
    """``review_replies``: the reply file's replies."""

    number: int
    replies: list[ReviewReply]


class CommentPayload(BaseModel):
    """``answer`` / ``notice`` (any other marked comment, e.g. "attempt cap reached")."""

    number: int
    body: str
    marker_kind: str = "notice"


class PlanPayload(BaseModel):
    """``plan``: the plan file as a comment."""

    number: int
    title: str
    body: str


class CheckStartPayload(BaseModel):
    """``check_run_start``: ``gaffer / <agent>`` in progress on ``head_sha``."""

    head_sha: str
    agent: str
    details_url: str | None = None


class CheckCompletePayload(BaseModel):
    """``check_run_complete``: the run's outcome on its check run (created first if the
    start never reached GitHub)."""

    head_sha: str
    agent: str
    conclusion: CheckConclusion
    title: str
    summary: str
    text: str | None = None


class NoticePayload(BaseModel):
    """``ignored_notice`` (no run): a trigger on issue/PR ``number`` was ignored, and
    ``body`` says why; ``notice_id`` (hex) names its marker."""

    number: int
    notice_id: str
    body: str


Sender = Callable[
    [GitHubClient, str, dict[str, Any], dict[str, dict[str, Any]]], Awaitable[dict[str, Any]]
]


async def _ack(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = AckPayload.model_validate(raw)
    posted = await post_ack(
        c,
        p.number,
        p.status,
        trigger_comment_id=p.trigger_comment_id,
        comment_id=(prior.get("ack") or {}).get("id"),
    )
    return posted.model_dump()


async def _ack_update(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = AckUpdatePayload.model_validate(raw)
    status = p.status
    if status.pull_request_url is None and "pull_request" in prior:
        status = status.model_copy(update={"pull_request_url": prior["pull_request"]["url"]})
    known = prior.get("ack_update") or prior.get("ack") or {}
    posted = await update_ack(c, p.number, status, comment_id=known.get("id"))
    return posted.model_dump()


async def _pull_request(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = PullRequestPayload.model_validate(raw)
    opened = await open_or_reuse_pull_request(
        c, head=p.head, base=p.base, title=p.title, body=p.body, draft=p.draft
    )
    return opened.model_dump()


async def _review(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = ReviewPayload.model_validate(raw)
    review = await submit_review(
        c, p.number, run_id, head_sha=p.head_sha, event=p.event, body=p.body, comments=p.comments
    )
    return review.model_dump()


async def _replies(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = RepliesPayload.model_validate(raw)
    posted = await reply_to_review_comments(c, p.number, run_id, p.replies)
    return {"replies": [r.model_dump() for r in posted]}


async def _answer(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = CommentPayload.model_validate(raw)
    return (await answer_comment(c, p.number, run_id, p.body)).model_dump()


async def _notice(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = CommentPayload.model_validate(raw)
    return (await upsert_comment(c, p.number, run_id, p.body, kind=p.marker_kind)).model_dump()


async def _plan(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = PlanPayload.model_validate(raw)
    return (await post_plan(c, p.number, run_id, p.title, p.body)).model_dump()


async def _check_start(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = CheckStartPayload.model_validate(raw)
    ref = await start_check_run(
        c, head_sha=p.head_sha, agent=p.agent, run_id=run_id, details_url=p.details_url
    )
    return ref.model_dump()


async def _check_complete(
    c: GitHubClient, run_id: str, raw: dict[str, Any], prior: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = CheckCompletePayload.model_validate(raw)
    check_id = (prior.get("check_run_start") or {}).get("id")
    if check_id is None:
        check_id = (await start_check_run(c, head_sha=p.head_sha, agent=p.agent, run_id=run_id)).id
    ref = await complete_check_run(
        c, int(check_id), conclusion=p.conclusion, title=p.title, summary=p.summary, text=p.text
    )
    return ref.model_dump()


SENDERS: dict[str, Sender] = {
    "ack": _ack,
    "ack_update": _ack_update,
    "pull_request": _pull_request,
    "review": _review,
    "review_replies": _replies,
    "answer": _answer,
    "notice": _notice,
    "plan": _plan,
    "check_run_start": _check_start,
    "check_run_complete": _check_complete,
}


RunlessSender = Callable[[GitHubClient, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _ignored_notice(c: GitHubClient, raw: dict[str, Any]) -> dict[str, Any]:
    p = NoticePayload.model_validate(raw)
    return (await post_notice(c, p.number, p.notice_id, p.body)).model_dump()


RUNLESS_SENDERS: dict[str, RunlessSender] = {"ignored_notice": _ignored_notice}


async def send_entry(
    client: GitHubClient,
    run_id: str | None,
    kind: str,
    payload: dict[str, Any],
    prior: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Send one entry; returns its result. ``run_id`` None: an entry that follows from no
    run (a kind of :data:`RUNLESS_SENDERS`). Raises ``KeyError`` for an unknown kind (or a
    run's kind without a run), ``pydantic.ValidationError`` or ``ValueError`` for a bad
    payload, ``GitHubError`` subclasses."""
    if run_id is None:
        return await RUNLESS_SENDERS[kind](client, payload)
    return await SENDERS[kind](client, run_id, payload, prior)
