"""Which GitHub writes a run's state calls for, as outbox entries.

Call :func:`enqueue_writes` with the ``Session`` that moves the run (queued, started,
finished), so the writes exist exactly when the state does. What each moment writes:

- queued: the ack (👀 and the "working on it" comment);
- started: the ack updated; for PR agents the check run ``gaffer / <agent>`` in progress;
- running: the ack updated with the engine's latest activity (every few minutes, while it
  changes);
- finished: implementation/planning that pushed a branch: the PR (``Closes #N``); planning:
  its plan file as a comment; review: its review file as a review at the reviewed head SHA;
  respond-to-review / respond-to-pr-comment: the reply file's replies and answer; PR agents:
  the check run completed; always: the ack's final text (with the PR link once opened).

The structured output files are those of the agent definitions: review ``{"event", "body",
"comments": [{"path", "line", "side", "body"}]}``, reply ``{"body", "replies":
[{"comment_id", "body"}]}``, plan ``{"title", "body"}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gaffer.providers.github_api.permissions import BranchMode
from gaffer.providers.github_api.senders.ack import AckState, AckStatus
from gaffer.providers.github_api.senders.pulls import pull_request_body
from gaffer.providers.github_api.senders.replies import ReviewReply
from gaffer.providers.github_api.senders.reviews import InlineComment, ReviewEvent
from gaffer.store import outbox
from gaffer.store.models import OutboxEntry

Moment = Literal["queued", "started", "running", "finished"]
PR_AGENTS = frozenset({"review", "respond-to-ci", "respond-to-review", "respond-to-pr-comment"})
_CONCLUSION = {"succeeded": "success", "failed": "failure", "canceled": "cancelled"}


class ReviewFile(BaseModel):
    """A review agent's output file."""

    event: ReviewEvent
    body: str = ""
    comments: list[InlineComment] = Field(default_factory=list)


class ReplyFile(BaseModel):
    """A respond-to-review / respond-to-pr-comment agent's output file."""

    body: str = ""
    replies: list[ReviewReply] = Field(default_factory=list)


class PlanFile(BaseModel):
    """A planning agent's output file."""

    title: str
    body: str


class RunFacts(BaseModel):
    """What the writes of a run are made from.

    ``number``: the issue or PR of the work item. ``head_sha``: the PR head the run works at
    (PR agents). ``pushed_branch``: the branch the worker pushed (None: nothing pushed).
    ``state``: the ack's state (map a terminal run status with :func:`ack_state`).
    ``review``/``reply``/``plan``: the output file the worker reported (raw JSON).
    Durations in seconds, cost in USD.
    """

    run_id: str
    project_id: str
    agent: str
    branch_mode: BranchMode
    number: int
    is_pull_request: bool = False
    head_sha: str | None = None
    base_branch: str = "main"
    pushed_branch: str | None = None
    title: str | None = None  # the work item's title (a PR title fallback)
    summary: str | None = None
    trigger_comment_id: int | None = None
    state: AckState = "queued"
    activity: str | None = None
    reason: str | None = None
    duration_s: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    review: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None


def ack_state(status: str) -> AckState:
    """The ack state of a run status (``SUCCEEDED`` -> succeeded; ``FAILED``, ``TIMED_OUT``,
    ``SYSTEM_FAILURE`` -> failed; ``CANCELED`` -> canceled; others -> running)."""
    known: dict[str, AckState] = {
        "QUEUED": "queued",
        "STARTING": "started",
        "RUNNING": "running",
        "SUCCEEDED": "succeeded",
        "CANCELED": "canceled",
        "FAILED": "failed",
        "TIMED_OUT": "failed",
        "SYSTEM_FAILURE": "failed",
    }
    return known.get(status, "running")


Write = tuple[str, dict[str, Any], str | None]  # kind, payload, coalesce key


def _status(f: RunFacts, state: AckState) -> dict[str, Any]:
    return AckStatus(
        run_id=f.run_id,
        agent=f.agent,
        state=state,
        activity=f.activity,
        branch=f.pushed_branch,
        duration_s=f.duration_s,
        tokens=f.tokens,
        cost_usd=f.cost_usd,
        reason=f.reason,
    ).model_dump()


def writes_for(facts: RunFacts, moment: Moment) -> list[Write]:
    """The writes ``facts`` call for at ``moment`` (see the module docstring).

    Raises ``pydantic.ValidationError`` when an output file is malformed (nothing is
    written then: record it as the run's failure).
    """
    f = facts
    pr_agent = f.agent in PR_AGENTS and f.is_pull_request and f.head_sha is not None
    if moment == "queued":
        return [
            (
                "ack",
                {
                    "number": f.number,
                    "status": _status(f, "queued"),
                    "trigger_comment_id": f.trigger_comment_id,
                },
                None,
            )
        ]
    if moment == "running":
        return [("ack_update", {"number": f.number, "status": _status(f, "running")}, "ack")]
    if moment == "started":
        out: list[Write] = [
            ("ack_update", {"number": f.number, "status": _status(f, "started")}, "ack")
        ]
        if pr_agent:
            out.append(("check_run_start", {"head_sha": f.head_sha, "agent": f.agent}, None))
        return out
    writes: list[Write] = []
    succeeded = f.state == "succeeded"
    if succeeded and f.pushed_branch and f.branch_mode == "new":
        plan = PlanFile.model_validate(f.plan) if f.plan else None
        title = (plan.title if plan else None) or f.title or f"gaffer: {f.agent}"
        body = pull_request_body(
            f.summary or (plan.body if plan else ""), None if f.is_pull_request else f.number
        )
        writes.append(
            (
                "pull_request",
                {"head": f.pushed_branch, "base": f.base_branch, "title": title, "body": body},
                None,
            )
        )
    if succeeded and f.agent == "planning" and f.plan:
        plan = PlanFile.model_validate(f.plan)
        writes.append(("plan", {"number": f.number, "title": plan.title, "body": plan.body}, None))
    if succeeded and f.agent == "review" and f.review and f.head_sha:
        review = ReviewFile.model_validate(f.review)
        writes.append(
            ("review", {"number": f.number, "head_sha": f.head_sha, **review.model_dump()}, None)
        )
    if succeeded and f.reply and f.agent in ("respond-to-review", "respond-to-pr-comment"):
        reply = ReplyFile.model_validate(f.reply)
        if reply.replies:
            writes.append(
                (
                    "review_replies",
                    {"number": f.number, "replies": [r.model_dump() for r in reply.replies]},
                    None,
                )
            )
        if reply.body.strip():
            writes.append(("answer", {"number": f.number, "body": reply.body}, None))
    if pr_agent:
        conclusion = _CONCLUSION.get(f.state, "failure")
        summary = f.summary or f.reason or f"gaffer run `{f.run_id}`: {f.state}"
        writes.append(
            (
                "check_run_complete",
                {
                    "head_sha": f.head_sha,
                    "agent": f.agent,
                    "conclusion": conclusion,
                    "title": f.state.capitalize(),
                    "summary": summary,
                },
                None,
            )
        )
    writes.append(("ack_update", {"number": f.number, "status": _status(f, f.state)}, "ack"))
    return writes


def enqueue_writes(session: Session, facts: RunFacts, moment: Moment) -> list[OutboxEntry]:
    """Add the writes of :func:`writes_for` to the outbox in ``session``'s transaction. The
    ``started`` writes are enqueued ``once`` (:func:`gaffer.store.outbox.enqueue`): a retried
    start or a re-attached run does not post the "started" text or open a check run twice."""
    return [
        outbox.enqueue(
            session,
            run_id=facts.run_id,
            project_id=facts.project_id,
            kind=kind,
            payload=payload,
            coalesce_key=key,
            once=moment == "started",
        )
        for kind, payload, key in writes_for(facts, moment)
    ]
