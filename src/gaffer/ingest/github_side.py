"""What a GitHub delivery changes besides starting runs (issue "Back to GitHub"):

- the App's installation id is learned from the webhook's ``installation.id`` when the
  project's credentials name none (:func:`record_installation_id`);
- a push to a PR (``pull_request.synchronize``) supersedes the queued or running reviews of
  an older head SHA of that PR (:func:`gaffer.runs.supersede.supersede_reviews`);
- a merged or closed PR (``pull_request.closed``) drops its work items' snapshots: enqueued
  here, deleted by the dispatch role (:func:`gaffer.snapshots.drops.request_drop`).

Both are idempotent, so a redelivery repeats them harmlessly. A failure is logged and the
delivery's answer stands.
"""

from __future__ import annotations

import asyncio

import structlog

from gaffer.providers.events import Event
from gaffer.providers.github_api.credential_store import record_installation_id
from gaffer.runs.engine import RunEngine
from gaffer.runs.supersede import supersede_reviews
from gaffer.snapshots.drops import request_drop
from gaffer.store.db import Database

log = structlog.get_logger(__name__)


def installation_id_of(event: Event) -> int | None:
    """The webhook's ``installation.id`` (an App's deliveries carry it), or None."""
    found = event.payload.get("installation")
    value = found.get("id") if isinstance(found, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def _learn_installation(db: Database, project_id: str, installation_id: int) -> bool:
    with db.session() as session:
        return record_installation_id(session, project_id, installation_id)


async def after_event(db: Database, engine: RunEngine, project_id: str, event: Event) -> None:
    """Apply the side effects of ``event`` for the project (see the module docstring)."""
    try:
        installation = installation_id_of(event)
        if installation is not None and await asyncio.to_thread(
            _learn_installation, db, project_id, installation
        ):
            log.info("github_installation_learned", project_id=project_id, id=installation)
        item = event.work_item
        sha = event.head_sha
        if event.key == "pull_request.synchronize" and sha and item and item.number.isdigit():
            await supersede_reviews(
                db, engine.queue, engine.redis, project_id, int(item.number), sha
            )
        if event.key == "pull_request.closed":
            await request_drop(db, engine.redis, project_id, event)
    except Exception:
        log.exception("github_event_side_failed", project_id=project_id, event=event.key)
