"""One comment says so: a trigger ignored over an attempt cap or the monthly budget is told on
its issue/PR (issue "Back to GitHub", "Guard rails"; issue "Every model call through gaffer",
"Budgets").

The intake reports each such refusal as an :class:`IgnoredNotice` (its issue/PR, the reason,
and a dedup key naming the cap or budget and its period); the ingest writes them with
:func:`enqueue_notices` in the transaction of the delivery's ignored record, as outbox entries
that follow from no run (``ignored_notice``, :func:`gaffer.store.outbox.enqueue_once`), sent
by the notifier of the dispatch role with the hidden marker ``<!-- gaffer:notice=<id> -->``.

Once: the same cap on the same PR in the same period (a respond-to-ci cap per PR and head
branch, over all time; a reply cap per PR and UTC day; the monthly budget per issue/PR and
month) is one entry however many deliveries it ignores, and the sender looks for the marker
before posting. Only for projects with GitHub credentials.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session

from gaffer.runs.requests import AgentRequest
from gaffer.store import outbox
from gaffer.store.models import GitHubCredential

log = structlog.get_logger(__name__)

KIND = "ignored_notice"


@dataclass(frozen=True)
class IgnoredNotice:
    """A trigger on issue/PR ``number`` that starts no run for ``agent``, and why.

    ``dedup_key`` (at most 200 characters) names the cap or budget and its period: one
    comment per key and project.
    """

    number: int
    agent: str
    reason: str
    dedup_key: str


def request_number(request: AgentRequest) -> int | None:
    """The issue/PR number ``request`` is about (its PR, else a numeric work item), or None
    (a work item that is no GitHub issue: nothing to comment on)."""
    if request.pr_number is not None:
        return request.pr_number
    item = request.work_item.strip()
    return int(item) if item.isdigit() and 0 < int(item) < 2**31 else None


def cap_notice(request: AgentRequest, reason: str, key: str) -> IgnoredNotice | None:
    """The notice of ``request`` refused over the attempt cap ``key`` (None without a
    number)."""
    number = request_number(request)
    if number is None:
        return None
    return IgnoredNotice(number, request.agent_type, reason, key)


def budget_notice(
    request: AgentRequest, reason: str, now: datetime | None = None
) -> IgnoredNotice | None:
    """The notice of ``request`` refused over the project's monthly budget: one per issue/PR
    and calendar month (UTC). None without a number."""
    number = request_number(request)
    if number is None:
        return None
    month = (now or datetime.now(UTC)).strftime("%Y-%m")
    return IgnoredNotice(number, request.agent_type, reason, f"budget:monthly:{month}:#{number}")


def notice_id(project_id: str, dedup_key: str) -> str:
    """The marker id of a notice: 24 hex digits of SHA-256 over the project and key."""
    return hashlib.sha256(f"{project_id}\n{dedup_key}".encode()).hexdigest()[:24]


def notice_body(notice: IgnoredNotice) -> str:
    """The comment's text (Markdown)."""
    if notice.dedup_key.startswith("budget:"):
        what = (
            "The project is over its monthly model budget: gaffer starts no new run until the "
            "budget is raised or the month ends."
        )
        once = "once a month"
    else:
        what = (
            "The agent is over its attempt cap on this pull request: gaffer ignores its "
            "triggers here until the cap allows again."
        )
        once = "once a day" if ":day:" in notice.dedup_key else "once"
    # The reason names a branch the webhook gave (a ref name may hold "@team"): as a code span,
    # nothing in it mentions or links anyone.
    reason = notice.reason.replace("`", "'")
    return (
        f"gaffer did not start **{notice.agent}**: `{reason}`.\n\n"
        f"{what} This is said {once}; the triggers it ignores meanwhile add no comment."
    )


def enqueue_notices(session: Session, project_id: str, notices: Sequence[IgnoredNotice]) -> int:
    """Write the outbox entries of ``notices`` in ``session``'s transaction, once per dedup
    key, when the project has GitHub credentials (else none). Returns how many were added
    (0 for a notice already written by an earlier delivery)."""
    if not notices or session.get(GitHubCredential, project_id) is None:
        return 0
    added = 0
    for notice in notices:
        payload = {
            "number": notice.number,
            "notice_id": notice_id(project_id, notice.dedup_key),
            "body": notice_body(notice),
        }
        made = outbox.enqueue_once(
            session,
            project_id=project_id,
            number=notice.number,
            dedup_key=notice.dedup_key,
            kind=KIND,
            payload=payload,
        )
        if made:
            added += 1
            log.info(
                "ignored_notice_enqueued",
                project_id=project_id,
                number=notice.number,
                agent=notice.agent,
                key=notice.dedup_key,
            )
    return added
