"""A merged or closed PR drops its work items' snapshots (issue "Warm starts", "Caps").

Which work items: the PR's own (``"<number>"``: what its PR agents run on: review,
respond-to-review, respond-to-pr-comment, respond-to-ci) and, when the PR's head branch is in
the project's repository (not a fork), those of the project's runs that pushed that branch
(the implementation run on issue N whose ``gaffer/implementation/N`` the PR came from).

Two halves, so that the webhook's 10-second path never waits on the container engine:

* ingest (``pull_request.closed``, merged or not; :func:`request_drop`, called by
  :func:`gaffer.ingest.github_side.after_event`): two database reads, and when any of those
  work items has a work-item snapshot (of any instance), one ``RPUSH`` of a
  :class:`DropRequest` on :data:`QUEUE_KEY`;
* dispatch role (:class:`SnapshotDrops`, beside the worker image validations, where the
  engine is): pops the requests in order and deletes each work item's snapshot, image then
  row (:meth:`~gaffer.snapshots.service.Snapshots.drop_work_item`), logging
  ``snapshot_dropped``. An engine error puts the request back, tried again after ``retry_s``,
  at most :data:`MAX_ATTEMPTS` times. A request that is lost (Redis lost it, a dispatcher died
  mid-drop) leaves the snapshot to its TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gaffer.providers.events import Event, PullRequestRef
from gaffer.store.db import Database
from gaffer.store.models import Project, Run, Snapshot

if TYPE_CHECKING:  # the ingest imports this module: not the container engine's client
    from gaffer.snapshots.service import Snapshots

log = structlog.get_logger(__name__)

QUEUE_KEY = "gaffer:snapshot-drops"
"""The Redis list of pending drops (oldest first), JSON :class:`DropRequest` entries."""
MAX_ATTEMPTS = 5
RETRY_S = 5.0
POP_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class DropRequest:
    """Drop the work-item snapshots of ``work_items`` of project ``project_id``, because of
    ``reason`` (``"PR #12 was merged"``); ``attempts`` made so far."""

    project_id: str
    work_items: tuple[str, ...]
    reason: str
    attempts: int = 0

    def encode(self) -> str:
        """The list entry (JSON)."""
        return json.dumps(
            {
                "project_id": self.project_id,
                "work_items": list(self.work_items),
                "reason": self.reason,
                "attempts": self.attempts,
            }
        )

    @classmethod
    def decode(cls, raw: str | bytes) -> DropRequest:
        """Parse a list entry. Raises ``ValueError``/``KeyError``/``TypeError`` for a
        malformed one."""
        data = json.loads(raw)
        items = data["work_items"]
        if not isinstance(items, list):
            raise TypeError("work_items is not a list")
        return cls(
            str(data["project_id"]),
            tuple(str(i) for i in items),
            str(data.get("reason") or ""),
            int(data.get("attempts") or 0),
        )


def closed_pr_work_items(session: Session, project_id: str, pr: PullRequestRef) -> list[str]:
    """The work items of ``pr`` (see the module docstring) that have a work-item snapshot,
    sorted."""
    items = {str(pr.number)}
    project = session.get(Project, project_id)
    same_repo = (
        project is not None
        and pr.head_repository is not None
        and pr.head_repository.casefold() == project.repository.casefold()
    )
    if pr.head_ref and same_repo:
        pushed = session.scalars(
            select(Run.work_item)
            .where(Run.project_id == project_id, Run.branch == pr.head_ref)
            .distinct()
        )
        items.update(pushed)
    found = session.scalars(
        select(Snapshot.work_item)
        .where(
            Snapshot.project_id == project_id,
            Snapshot.kind == "work-item",
            Snapshot.work_item.in_(sorted(items)),
        )
        .distinct()
    )
    return sorted(found)


async def request_drop(
    db: Database, redis: aioredis.Redis, project_id: str, event: Event
) -> DropRequest | None:
    """For a ``pull_request.closed`` ``event``: enqueue the drop of its work items' snapshots
    (none: None, nothing enqueued). Raises database and Redis errors."""
    if event.key != "pull_request.closed" or not event.pull_requests:
        return None
    pr = event.pull_requests[0]

    def read() -> list[str]:
        with db.session() as session:
            return closed_pr_work_items(session, project_id, pr)

    items = await asyncio.to_thread(read)
    if not items:
        return None
    merged = bool((event.payload.get("pull_request") or {}).get("merged"))
    reason = f"PR #{pr.number} was {'merged' if merged else 'closed'}"
    request = DropRequest(project_id, tuple(items), reason)
    await redis.rpush(QUEUE_KEY, request.encode())
    log.info("snapshot_drop_requested", project_id=project_id, work_items=items, reason=reason)
    return request


class SnapshotDrops:
    """Consumes :data:`QUEUE_KEY` with ``snapshots`` (see the module docstring)."""

    def __init__(
        self, redis: aioredis.Redis, snapshots: Snapshots, *, retry_s: float = RETRY_S
    ) -> None:
        self.redis = redis
        self.snapshots = snapshots
        self.retry_s = retry_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Consume in a background task."""
        self._task = asyncio.create_task(self._consume(), name="gaffer-snapshot-drops")

    async def stop(self) -> None:
        """Stop (a drop in progress is abandoned; its request is not put back)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                popped = await self.redis.blpop([QUEUE_KEY], timeout=POP_TIMEOUT_S)
            except RedisError as exc:
                log.warning("snapshot_drop_queue_unreachable", error=str(exc))
                await asyncio.sleep(self.retry_s)
                continue
            if popped is None:
                continue
            try:
                request = DropRequest.decode(popped[1])
            except (ValueError, KeyError, TypeError) as exc:
                log.error("snapshot_drop_request_malformed", error=str(exc))
                continue
            await self.process(request)

    async def process(self, request: DropRequest) -> list[str]:
        """Drop the snapshots of ``request``; returns the work items whose snapshot was
        deleted. A failure is logged and the rest is put back (up to :data:`MAX_ATTEMPTS`)."""
        dropped: list[str] = []
        left: list[str] = list(request.work_items)
        for item in request.work_items:
            try:
                done = await self.snapshots.drop_work_item(request.project_id, item)
            except Exception as exc:
                await self._retry(request, left, exc)
                return dropped
            left.remove(item)
            if done:
                dropped.append(item)
                log.info(
                    "snapshot_dropped",
                    project_id=request.project_id,
                    work_item=item,
                    reason=request.reason,
                )
        return dropped

    async def _retry(self, request: DropRequest, left: Iterable[str], exc: Exception) -> None:
        attempts = request.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            log.error(
                "snapshot_drop_failed",
                project_id=request.project_id,
                work_items=list(left),
                attempts=attempts,
                error=str(exc),
            )
            return
        log.warning(
            "snapshot_drop_retrying",
            project_id=request.project_id,
            work_items=list(left),
            attempts=attempts,
            error=str(exc),
        )
        await asyncio.sleep(self.retry_s)
        again = DropRequest(request.project_id, tuple(left), request.reason, attempts)
        try:
            await self.redis.rpush(QUEUE_KEY, again.encode())
        except RedisError:
            log.exception("snapshot_drop_requeue_failed", project_id=request.project_id)
