"""Attempt caps per PR (issue "Back to GitHub", "Guard rails"): an agent that answers CI or
reviews must not loop on a PR forever.

- ``respond-to-ci``: at most ``settings.ci_max_attempts`` runs (default 3) per PR and head
  branch, over all time;
- ``respond-to-review`` / ``respond-to-pr-comment``: at most ``settings.replies_per_day`` runs
  (default 10) per PR in the last 24 hours.

Over the cap the request starts no run, and the intake reports the reason (the delivery's
answer and ``gaffer deliveries`` show it) and the cap's key: one comment on the PR says so
per key (:mod:`gaffer.runs.notices`). Runs of any status count (a failed attempt is an
attempt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store.models import Run, utcnow

CI_AGENT = "respond-to-ci"
REPLY_AGENTS = frozenset({"respond-to-review", "respond-to-pr-comment"})


@dataclass(frozen=True)
class CapRefusal:
    """Why a request is over its cap (``reason``, to report) and which cap and period it is
    (``key``: ``cap:respond-to-ci:pr<N>:branch:<hash>`` over all time,
    ``cap:<agent>:pr<N>:day:<YYYY-MM-DD>`` per UTC day): the same key says so once."""

    reason: str
    key: str


def over_cap(
    session: Session, settings: Settings, project_id: str, request: AgentRequest
) -> CapRefusal | None:
    """Why ``request`` is over its cap, or None."""
    if request.pr_number is None:
        return None
    if request.agent_type == CI_AGENT:
        rows = session.scalars(
            select(Run.job_data).where(
                Run.project_id == project_id,
                Run.agent_type == CI_AGENT,
                Run.pr_number == request.pr_number,
            )
        )
        branch = request.head_branch
        made = sum(
            1 for job in rows if ((job or {}).get("task") or {}).get("head_branch") == branch
        )
        cap = settings.ci_max_attempts
        if made >= cap:
            reason = (
                f"{CI_AGENT} already ran {made} time(s) on PR #{request.pr_number} "
                f"(branch {branch}): the cap is {cap} (GAFFER_CI_MAX_ATTEMPTS)"
            )
            digest = hashlib.sha256((branch or "").encode()).hexdigest()[:16]
            return CapRefusal(reason, f"cap:{CI_AGENT}:pr{request.pr_number}:branch:{digest}")
        return None
    if request.agent_type in REPLY_AGENTS:
        since = utcnow() - timedelta(days=1)
        made = (
            session.scalar(
                select(func.count(Run.id)).where(
                    Run.project_id == project_id,
                    Run.agent_type == request.agent_type,
                    Run.pr_number == request.pr_number,
                    Run.created_at >= since,
                )
            )
            or 0
        )
        cap = settings.replies_per_day
        if made >= cap:
            reason = (
                f"{request.agent_type} already ran {made} time(s) on PR #{request.pr_number} "
                f"in 24 h: the cap is {cap} a day (GAFFER_REPLIES_PER_DAY)"
            )
            day = utcnow().date().isoformat()
            key = f"cap:{request.agent_type}:pr{request.pr_number}:day:{day}"
            return CapRefusal(reason, key)
    return None
