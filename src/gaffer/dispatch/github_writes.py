"""The outbox rows of a run's GitHub writes, in the transaction of the state they follow.

- queued: in :meth:`RunEngine.create_runs`' transaction (:func:`enqueue_queued`);
- started: with the STARTING -> RUNNING transition (:func:`enqueue_moment`, ``"started"``);
- running: the engine's latest activity, every few minutes (:func:`enqueue_activity`);
- finished: with a run's final transition (:meth:`gaffer.dispatch.recorder.RunRecorder.finish`).

Only for projects with GitHub credentials and runs on a numbered issue or PR. The rows are
built by :func:`gaffer.providers.github_api.run_writes.enqueue_writes` from the run's facts
(:func:`facts_of`) and sent by the notifier (:mod:`gaffer.dispatch.github_notify`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gaffer.dispatch.github_start import branch_mode_of, work_item_number
from gaffer.providers.github_api.run_writes import Moment, RunFacts, ack_state, enqueue_writes
from gaffer.queue.jobs import JobData
from gaffer.store.models import GitHubCredential, OutboxEntry, Run, RunStatus

log = structlog.get_logger(__name__)


def has_github(session: Session, project_id: str) -> bool:
    """True when the project has GitHub credentials (its runs write to GitHub)."""
    return session.get(GitHubCredential, project_id) is not None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def facts_of(data: JobData, run: Run | None = None) -> RunFacts | None:
    """The facts of the run of ``data``; with ``run`` (its row, after a transition), its
    status, pushed branch, outputs, summary, reason, duration (s) and usage (tokens, USD).
    None when the work item is not a numbered issue or PR."""
    number = work_item_number(data)
    if number is None:
        return None
    task = data.task
    facts: dict[str, Any] = {
        "run_id": data.run_id,
        "project_id": data.project_id,
        "agent": data.agent_type,
        "branch_mode": branch_mode_of(data),
        "number": number,
        "is_pull_request": task.pr_number is not None,
        "head_sha": task.head_sha,
        "base_branch": task.base_branch or data.repository.base_branch,
        "title": task.title or None,
        "trigger_comment_id": task.comment_id,
    }
    if run is not None:
        facts["state"] = ack_state(str(run.status))
        facts["pushed_branch"] = (
            run.branch if data.agent is None or (data.agent.branch_mode != "read-only") else None
        )
        facts["summary"] = run.summary
        facts["reason"] = run.error
        if run.started_at is not None and run.finished_at is not None:
            facts["duration_s"] = (run.finished_at - run.started_at).total_seconds()
        usage = run.engine_usage or {}
        tokens = [_int(usage.get(k)) for k in ("input_tokens", "output_tokens")]
        if any(t is not None for t in tokens):
            facts["tokens"] = sum(t or 0 for t in tokens)
        cost = usage.get("cost_usd")
        facts["cost_usd"] = float(cost) if isinstance(cost, int | float) else None
        outputs = run.outputs or {}
        for kind in ("review", "reply", "plan"):
            value = outputs.get(kind)
            facts[kind] = value if isinstance(value, dict) else None
    return RunFacts.model_validate(facts)


def enqueue_queued(session: Session, jobs: Sequence[JobData]) -> None:
    """The queued writes (the ack) of new runs, in the transaction inserting their rows.
    Idempotent: a run that already has outbox rows (a replayed request) gets none."""
    for data in jobs:
        if not has_github(session, data.project_id):
            continue
        facts = facts_of(data)
        if facts is None:
            continue
        known = session.scalar(select(OutboxEntry.id).where(OutboxEntry.run_id == data.run_id))
        if known is not None:
            continue
        enqueue_writes(session, facts, "queued")


def enqueue_moment(session: Session, data: JobData, moment: Moment) -> None:
    """The writes of ``moment`` (``started``/``finished``) for the run of ``data``, read
    from its row in ``session`` (call it after the transition, in its transaction). A
    malformed output file writes nothing but the ack and the check run (logged)."""
    if not has_github(session, data.project_id):
        return
    run = session.get(Run, data.run_id, populate_existing=True)
    facts = facts_of(data, run)
    if facts is None:
        return
    try:
        enqueue_writes(session, facts, moment)
    except ValidationError as exc:
        log.warning("github_output_invalid", run_id=data.run_id, error=str(exc))
        bare = facts.model_copy(
            update={"review": None, "reply": None, "plan": None, "reason": f"bad output: {exc}"}
        )
        enqueue_writes(session, bare, moment)


def enqueue_activity(session: Session, data: JobData, activity: str) -> bool:
    """The ack update saying what the engine of the RUNNING run of ``data`` did last
    (``activity``, one run-log line). Coalesced with the run's other ack updates: one still
    pending is replaced, so a slow GitHub gets the latest text, not a backlog. Returns False
    (nothing written) when the project has no GitHub credentials, the work item has no number,
    or the run is no longer RUNNING."""
    if not has_github(session, data.project_id):
        return False
    run = session.get(Run, data.run_id, populate_existing=True)
    if run is None or run.status != RunStatus.RUNNING:
        return False
    facts = facts_of(data, run)
    if facts is None:
        return False
    enqueue_writes(session, facts.model_copy(update={"activity": activity}), "running")
    return True
