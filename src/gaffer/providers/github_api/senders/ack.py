"""The ack: a 👀 reaction on what triggered the run and one "working on it" comment carrying
``<!-- gaffer:run=<id> -->``, updated in place as the run goes and when it ends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.senders.comments import PostedComment, upsert_comment

AckState = Literal["queued", "started", "running", "succeeded", "failed", "canceled"]
REACTION: Literal["eyes"] = "eyes"


class AckStatus(BaseModel):
    """What the ack comment says. Durations in seconds, cost in USD."""

    run_id: str
    agent: str
    state: AckState
    activity: str | None = None  # the engine's latest activity (while running)
    branch: str | None = None
    pull_request_url: str | None = None
    duration_s: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    reason: str | None = None  # the failure or cancel reason


_HEADLINE = {
    "queued": "👀 Working on it: queued",
    "started": "⏳ Working on it: started",
    "running": "⏳ Working on it",
    "succeeded": "✅ Done",
    "failed": "❌ Failed",
    "canceled": "⏹️ Canceled",
}


def render_ack(status: AckStatus) -> str:
    """The ack comment's Markdown (without the marker, which :func:`post_ack` adds)."""
    lines = [f"**{_HEADLINE[status.state]}** · gaffer run `{status.run_id}` ({status.agent})"]
    if status.activity and status.state in ("started", "running"):
        # The engine's words, in a code span: nothing in them mentions or links anyone.
        lines.append(f"Latest: `{status.activity.replace('`', chr(39))}`")
    if status.reason and status.state in ("failed", "canceled"):
        lines.append(f"Reason: {status.reason}")
    facts = []
    if status.pull_request_url:
        facts.append(f"PR: {status.pull_request_url}")
    elif status.branch:
        facts.append(f"branch `{status.branch}`")
    if status.duration_s is not None:
        minutes, seconds = divmod(round(status.duration_s), 60)
        facts.append(f"took {minutes}m{seconds:02d}s" if minutes else f"took {seconds}s")
    if status.tokens is not None:
        facts.append(f"{status.tokens:,} tokens")
    if status.cost_usd is not None:
        facts.append(f"${status.cost_usd:.2f}")
    if facts:
        lines.append(" · ".join(facts))
    return "\n\n".join(lines)


async def post_ack(
    client: GitHubClient,
    number: int,
    status: AckStatus,
    *,
    trigger_comment_id: int | None = None,
    comment_id: int | None = None,
) -> PostedComment:
    """React 👀 to the triggering comment (``trigger_comment_id``) or else the issue/PR
    ``number`` (GitHub answers 200 for a reaction already there, so this is idempotent), and
    post the ack comment, or update it in place when it exists (``comment_id``, or found by
    the run's marker). Raises ``GitHubError`` subclasses."""
    o, r = client.owner, client.name
    if trigger_comment_id is not None:
        tid = trigger_comment_id
        await client.call(
            "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            lambda gh: gh.rest.reactions.async_create_for_issue_comment(
                o, r, tid, content=REACTION
            ),
        )
    else:
        await client.call(
            "POST /repos/{owner}/{repo}/issues/{issue_number}/reactions",
            lambda gh: gh.rest.reactions.async_create_for_issue(o, r, number, content=REACTION),
        )
    return await update_ack(client, number, status, comment_id=comment_id)


async def update_ack(
    client: GitHubClient, number: int, status: AckStatus, *, comment_id: int | None = None
) -> PostedComment:
    """Update the ack comment in place (posting it if it never was). Raises ``GitHubError``."""
    return await upsert_comment(
        client, number, status.run_id, render_ack(status), comment_id=comment_id
    )
