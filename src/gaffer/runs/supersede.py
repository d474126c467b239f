"""Superseded reviews: a push to a PR (a new head SHA) cancels the queued or running review of
an older head SHA of that PR, CANCELED ``"superseded by <sha>"`` (issue "Back to GitHub",
"Guard rails").

A QUEUED review is canceled at once (its job removed, its GitHub writes enqueued in the same
transaction); a STARTING or RUNNING one gets a cancel request with its reason
(:func:`request_cancel_with_reason`), which its dispatcher records when it stops the worker.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import structlog
from sqlalchemy import select

from gaffer.coordination.cancel import CANCEL_TTL_S, request_cancel
from gaffer.coordination.keys import key
from gaffer.queue.jobs import JobData
from gaffer.queue.queues import RunQueue
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus
from gaffer.store.runs import transition

log = structlog.get_logger(__name__)

REVIEW = "review"


def cancel_reason_key(run_id: str) -> str:
    """The key holding why a user-side cancel of ``run_id`` was asked (``superseded by``)."""
    return key("run", run_id, "cancel-reason")


async def request_cancel_with_reason(redis: aioredis.Redis, run_id: str, reason: str) -> None:
    """Ask the dispatcher holding ``run_id`` to stop it and end it CANCELED with ``reason``."""
    await redis.set(cancel_reason_key(run_id), reason, ex=CANCEL_TTL_S)
    await request_cancel(redis, run_id)


async def cancel_reason(redis: aioredis.Redis, run_id: str) -> str | None:
    """The reason :func:`request_cancel_with_reason` gave, or None (a plain cancel)."""
    value = await redis.get(cancel_reason_key(run_id))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _older_reviews(db: Database, project_id: str, pr_number: int, head_sha: str) -> list[Run]:
    with db.session() as session:
        rows = list(
            session.scalars(
                select(Run).where(
                    Run.project_id == project_id,
                    Run.agent_type == REVIEW,
                    Run.pr_number == pr_number,
                    Run.head_sha != head_sha,
                    Run.status.in_(
                        [RunStatus.QUEUED.value, RunStatus.STARTING.value, RunStatus.RUNNING.value]
                    ),
                )
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def _cancel_queued(db: Database, run: Run, reason: str) -> bool:
    with db.session() as session:
        moved = transition(
            session,
            run.id,
            from_statuses=[RunStatus.QUEUED],
            to_status=RunStatus.CANCELED,
            error=reason,
        )
        if moved and run.job_data:
            from gaffer.dispatch.github_writes import enqueue_moment  # githubkit: seconds

            enqueue_moment(session, JobData.model_validate(run.job_data), "finished")
        return moved


async def supersede_reviews(
    db: Database,
    queue: RunQueue,
    redis: aioredis.Redis,
    project_id: str,
    pr_number: int,
    head_sha: str,
) -> list[str]:
    """Cancel the project's reviews of PR ``pr_number`` at another head SHA than ``head_sha``
    (see the module docstring). Returns the ids of the runs canceled or asked to stop."""
    reason = f"superseded by {head_sha}"
    done: list[str] = []
    for run in await asyncio.to_thread(_older_reviews, db, project_id, pr_number, head_sha):
        if run.status == RunStatus.QUEUED.value and await asyncio.to_thread(
            _cancel_queued, db, run, reason
        ):
            await queue.remove(run.id)
        else:
            await request_cancel_with_reason(redis, run.id, reason)
        log.info("run_superseded", run_id=run.id, pr_number=pr_number, head_sha=head_sha)
        done.append(run.id)
    return done
