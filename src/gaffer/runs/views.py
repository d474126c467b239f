"""Plain-dict views of records, shared by the CLI's ``--json`` output and later the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gaffer.images.state import image_view
from gaffer.store.models import Project, Run, RunLog, WebhookDelivery


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_view(run: Run) -> dict[str, Any]:
    """A run as JSON-ready data (timestamps ISO 8601 UTC; ``duration_s`` in seconds).

    ``buffer`` is None for a row; :func:`gaffer.buffer.access.buffered_view` gives the same keys
    for a run that still waits in the burst buffer."""
    duration = None
    if run.started_at and run.finished_at:
        duration = round((run.finished_at - run.started_at).total_seconds(), 3)
    return {
        "id": run.id,
        "project_id": run.project_id,
        "agent_type": run.agent_type,
        "work_item": run.work_item,
        "pr_number": run.pr_number,
        "head_sha": run.head_sha,
        "trigger": run.trigger,
        "delivery_id": run.delivery_id,
        "status": str(run.status),
        "created_at": _ts(run.created_at),
        "started_at": _ts(run.started_at),
        "finished_at": _ts(run.finished_at),
        "duration_s": duration,
        "exit_code": run.exit_code,
        "error": run.error,
        "branch": run.branch,
        "commit": run.commit_sha,
        "summary": run.summary,
        "engine_usage": run.engine_usage,
        "outputs": run.outputs,
        "batch_id": run.batch_id,
        "batch_index": run.batch_index,
        "tags": list(run.tags or []),
        "metadata": run.run_metadata,
        "accepted_at": _ts(run.accepted_at),
        "buffer": None,
    }


def run_detail(session: Session, run: Run) -> dict[str, Any]:
    """:func:`run_view` plus what ``runs show`` adds: ``usage``, the gateway's totals of the
    run's model calls (``calls``, the four token counts, ``cost_usd``: USD), and ``posted``,
    the run's writes to GitHub from the outbox (``kind``, ``status``, ``url``, ``attempts``,
    ``error``, ``sent_at``), what is pending or failed for good included."""
    from gaffer.gateway.usage import run_totals
    from gaffer.store.outbox import describe, entries_for_run

    totals = run_totals(session, run.id)
    view = run_view(run)
    view["usage"] = {
        "calls": totals.calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "cost_usd": round(totals.cost_nano_usd / 1e9, 6),
        "unpriced_calls": totals.unpriced,
    }
    view["posted"] = [describe(entry) for entry in entries_for_run(session, run.id)]
    return view


def log_view(line: RunLog) -> dict[str, Any]:
    """One run log line as JSON-ready data."""
    return {"id": line.id, "ts": _ts(line.ts), "stream": line.stream, "message": line.message}


def project_view(project: Project) -> dict[str, Any]:
    """A project without its secret, with agents and triggers."""
    return {
        "id": project.id,
        "name": project.name,
        "organization_id": project.organization_id,
        "repository": project.repository,
        "clone_url": project.clone_url,
        "base_branch": project.base_branch,
        "bot_login": project.bot_login,
        "trigger_label": project.trigger_label,
        "created_at": _ts(project.created_at),
        "agents": [
            {
                "agent_type": a.agent_type,
                "enabled": a.enabled,
                "engine": a.engine,
                "engine_settings": a.engine_settings,
                "events": sorted(
                    t.event for t in project.triggers if t.agent_type == a.agent_type and t.enabled
                ),
            }
            for a in project.agents
        ],
        **image_view(project),
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    """A webhook delivery record as JSON-ready data."""
    return {
        "id": delivery.id,
        "provider": delivery.provider,
        "event": delivery.event,
        "action": delivery.action,
        "delivery_id": delivery.delivery_id,
        "project_id": delivery.project_id,
        "status_code": delivery.status_code,
        "decision": delivery.decision,
        "reason": delivery.reason,
        "run_ids": delivery.run_ids,
        "received_at": _ts(delivery.received_at),
    }
