"""Replaying one popped batch of buffer entries through the run engine.

For the entries of one project, popped together under one lease (issue 5, "Drainer"):

* **cancelled** entries become CANCELED rows without a job. Where a row already exists for the
  run id (a replay whose acknowledgement was lost, then a cancel), the run is cancelled
  through the run engine: cancel wins over a live run.
* entries whose **attempts are exhausted** (``GAFFER_BUFFER_MAX_ATTEMPTS``) become
  SYSTEM_FAILURE rows.
* buffered **reviews** take their dispatch claim again (it may have expired while they
  waited); one that another run claimed meanwhile becomes a CANCELED row. The claims of
  cancelled and failed reviews are released.
* the others are **materialised** with :meth:`RunEngine.create_runs` (all rows in one
  transaction, then their jobs). A row that already exists counts as created, so replaying an
  entry whose acknowledgement was lost is a success, not a duplicate. The acknowledgement
  only takes entries still in flight under the replay's lease: if the replay overran it and
  the entry was put back and cancelled meanwhile, the run just created is cancelled (cancel
  wins); an entry another drainer holds now is left to it.

Errors: a **retryable** error (:func:`gaffer.buffer.errors.is_retryable`) requeues the entries
at the front of their list with attempts + 1 (those it exhausts go to SYSTEM_FAILURE instead).
A **non-retryable** error on a batch replays its entries one by one, so only the entry at fault
fails; that entry gets a SYSTEM_FAILURE row (batch id, index and tags kept; tags ``[]`` when
none). Terminal rows are always written **before** the entry is deleted; if that write fails
with a retryable error the entry is requeued instead, and if no row can be written at all (the
project was deleted) the entry is kept in the dead-letter list: a run is never silently lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from gaffer.agents import AgentType
from gaffer.buffer.entries import Entry
from gaffer.buffer.errors import describe, is_retryable
from gaffer.buffer.metrics import DRAINED
from gaffer.buffer.scripts import BufferStore
from gaffer.coordination.dispatch_claims import ClaimOutcome, claim_review, release_review
from gaffer.runs.engine import AgentNotConfiguredError, RunEngine, build_job
from gaffer.runs.intake import review_target
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import RunStatus
from gaffer.store.projects import ProjectNotFoundError, ProjectSnapshot, get_project

log = structlog.get_logger(__name__)


@dataclass
class ReplayResult:
    """Counts of one replay, and the retryable error that cut it short (if any)."""

    materialized: int = 0
    canceled: int = 0
    system_failure: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    retryable_error: BaseException | None = None

    def count(self, result: str, n: int) -> None:
        """Add ``n`` to the counter ``result`` (and to the Prometheus counter)."""
        setattr(self, result, getattr(self, result) + n)
        DRAINED.labels(result).inc(n)


class ProjectCache:
    """Project configurations by id, read from the database and kept ``ttl_s`` seconds."""

    def __init__(self, db: Database, box: SecretBox, ttl_s: float) -> None:
        self.db = db
        self.box = box
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ProjectSnapshot | None]] = {}

    async def get(self, project_id: str) -> ProjectSnapshot | None:
        """The project, or None if it no longer exists. Raises database errors."""
        hit = self._cache.get(project_id)
        if hit is not None and time.monotonic() - hit[0] <= self.ttl_s:
            return hit[1]
        snapshot = await asyncio.to_thread(self._load, project_id)
        self._cache[project_id] = (time.monotonic(), snapshot)
        return snapshot

    def _load(self, project_id: str) -> ProjectSnapshot | None:
        with self.db.session() as session:
            try:
                return ProjectSnapshot.of(get_project(session, project_id), self.box)
            except ProjectNotFoundError:
                return None


class Replayer:
    """Replays popped entries (see the module docstring). One per drainer."""

    def __init__(
        self,
        settings: Settings,
        store: BufferStore,
        run_engine: RunEngine,
        projects: ProjectCache,
    ) -> None:
        self.settings = settings
        self.store = store
        self.run_engine = run_engine
        self.projects = projects

    async def replay(self, project_id: str, entries: Sequence[Entry], lease: str) -> ReplayResult:
        """Replay ``entries`` of ``project_id`` popped under ``lease``; returns the counts.

        Database errors do not escape: a retryable one requeues the entries it concerns (and
        sets ``retryable_error`` on the result, so the drainer waits for the database), any
        other one gives SYSTEM_FAILURE rows or, failing those, the dead-letter list. Raises
        only Redis errors of the buffer's own scripts (ack, requeue, fail): the entries then
        stay in flight and the reclaim sweep puts them back after the lease (their replay is
        idempotent).
        """
        result = ReplayResult()
        try:
            project = await self.projects.get(project_id)
        except Exception as exc:
            await self._retry_or_fail(None, entries, lease, exc, "project not readable", result)
            return result
        if project is None:
            await self._fail(None, entries, lease, f"project {project_id} no longer exists", result)
            return result
        cancelled = [e for e in entries if e.cancelled]
        exhausted = [
            e
            for e in entries
            if not e.cancelled and e.attempts >= self.settings.buffer_max_attempts
        ]
        exhausted_ids = {e.run_id for e in exhausted}
        live = [e for e in entries if not e.cancelled and e.run_id not in exhausted_ids]
        if cancelled:
            await self._cancel(project, cancelled, lease, result)
        for entry in exhausted:
            error = f"gave up after {entry.attempts} attempts: {entry.error or 'no error kept'}"
            await self._fail(project, [entry], lease, error, result)
        if live:
            await self._materialize(project, live, lease, result)
        return result

    async def _materialize(
        self,
        project: ProjectSnapshot,
        entries: Sequence[Entry],
        lease: str,
        result: ReplayResult,
    ) -> None:
        entries = await self._claim_reviews(project, entries, lease, result)
        valid: list[Entry] = []
        for entry in entries:
            try:
                build_job(entry.run_id, entry.snapshot.request, project, self.settings)
            except AgentNotConfiguredError as exc:
                await self._fail(project, [entry], lease, str(exc), result)
            else:
                valid.append(entry)
        if not valid:
            return
        try:
            await self.run_engine.create_runs(project, [e.new_run() for e in valid])
        except Exception as exc:
            if is_retryable(exc):
                await self._retry(project, valid, lease, exc, result)
            elif len(valid) > 1:
                log.warning(
                    "buffer_batch_failed_isolating", project=project.name, error=describe(exc)
                )
                for entry in valid:
                    await self._materialize(project, [entry], lease, result)
            else:
                await self._fail(project, valid, lease, describe(exc), result)
            return
        await self._ack_materialized(project, valid, lease, result)

    async def _ack_materialized(
        self,
        project: ProjectSnapshot | None,
        entries: Sequence[Entry],
        lease: str,
        result: ReplayResult,
    ) -> None:
        """Ack entries whose runs exist now. One the reclaim sweep put back and a cancel
        marked meanwhile (this replay overran its lease) is taken back by the ack: its run is
        cancelled through :meth:`_cancel` (cancel wins). One that is no longer ours at all is
        left to its next replay, which finds the row."""
        outcomes = await self.store.ack(
            [e.run_id for e in entries], lease, self.settings.buffer_ack_grace_ms
        )
        by_outcome: dict[str, list[Entry]] = {}
        for entry, outcome in zip(entries, outcomes, strict=True):
            by_outcome.setdefault(outcome, []).append(entry)
        if acked := by_outcome.get("acked"):
            result.count("materialized", len(acked))
        if lost := by_outcome.get("lost"):
            log.warning("buffer_ack_lease_lost", runs=[e.run_id for e in lost])
        if cancelled := by_outcome.get("cancelled"):
            log.info("buffer_cancelled_while_replayed", runs=[e.run_id for e in cancelled])
            await self._cancel(project, cancelled, lease, result)

    async def _ack_terminal(self, run_ids: Sequence[str], lease: str) -> None:
        """Ack entries whose runs are CANCELED now: one the ack took back because a cancel
        marked it after a reclaim is acked again (its run is cancelled already)."""
        outcomes = await self.store.ack(run_ids, lease, self.settings.buffer_ack_grace_ms)
        again = [r for r, o in zip(run_ids, outcomes, strict=True) if o == "cancelled"]
        if again:
            await self.store.ack(again, lease, self.settings.buffer_ack_grace_ms)

    async def _claim_reviews(
        self,
        project: ProjectSnapshot,
        entries: Sequence[Entry],
        lease: str,
        result: ReplayResult,
    ) -> list[Entry]:
        """Take the review claim again for buffered reviews (every path that starts a review
        goes through it, and the claim taken at accept time may have expired while the entry
        waited). A review that another run claimed meanwhile becomes a CANCELED row; when Redis
        fails, the entries are requeued. Returns the entries that may go on."""
        allowed: list[Entry] = []
        duplicates: list[Entry] = []
        for entry in entries:
            target = review_target(project, entry.new_run())
            if entry.snapshot.request.agent_type != AgentType.REVIEW or target is None:
                allowed.append(entry)
                continue
            outcome = await claim_review(
                self.run_engine.redis,
                target,
                run_id=entry.run_id,
                source="buffer:replay",
                ttl_s=self.settings.review_claim_ttl_s,
            )
            if outcome is ClaimOutcome.REDIS_DOWN:
                down = RedisError("review claim failed closed")
                await self._retry(project, entries, lease, down, result)
                return []
            (allowed if outcome is ClaimOutcome.CLAIMED else duplicates).append(entry)
        if duplicates:
            ids = [e.run_id for e in duplicates]
            try:
                await self.run_engine.record_unstarted(
                    [e.new_run() for e in duplicates],
                    RunStatus.CANCELED,
                    "review already dispatched by another run while this one was buffered",
                )
            except Exception as exc:
                await self._retry_or_fail(project, duplicates, lease, exc, "cancel failed", result)
                return allowed
            await self._ack_terminal(ids, lease)
            result.count("canceled", len(ids))
        return allowed

    async def _release_reviews(
        self, project: ProjectSnapshot | None, entries: Sequence[Entry]
    ) -> None:
        """Drop the review claims of entries that will not run (cancelled, failed); none when
        the project is gone (``None``). Redis errors are logged, not raised."""
        if project is None:
            return
        for entry in entries:
            if entry.snapshot.request.agent_type != AgentType.REVIEW:
                continue
            target = review_target(project, entry.new_run())
            if target is not None:
                await release_review(self.run_engine.redis, target, run_id=entry.run_id)

    async def _retry_or_fail(
        self,
        project: ProjectSnapshot | None,
        entries: Sequence[Entry],
        lease: str,
        exc: BaseException,
        what: str,
        result: ReplayResult,
    ) -> None:
        """``exc`` stopped ``entries``: requeue them when it is retryable (:meth:`_retry`),
        else fail them with ``"<what>: <error>"`` (:meth:`_fail`)."""
        if is_retryable(exc):
            await self._retry(project, entries, lease, exc, result)
        else:
            await self._fail(project, entries, lease, f"{what}: {describe(exc)}", result)

    async def _retry(
        self,
        project: ProjectSnapshot | None,
        entries: Sequence[Entry],
        lease: str,
        exc: BaseException,
        result: ReplayResult,
    ) -> None:
        """A retryable error: requeue, except the entries this attempt exhausts."""
        result.retryable_error = exc
        error = describe(exc)
        last = [e for e in entries if e.attempts + 1 >= self.settings.buffer_max_attempts]
        last_ids = {e.run_id for e in last}
        again = [e for e in entries if e.run_id not in last_ids]
        if again:
            await self.store.requeue([e.run_id for e in again], lease, error)
            result.count("requeued", len(again))
            log.warning(
                "buffer_entries_requeued",
                project_id=again[0].project_id,
                runs=len(again),
                error=error,
            )
        for entry in last:
            error_text = f"gave up after {entry.attempts + 1} attempts: {error}"
            await self._fail(project, [entry], lease, error_text, result)

    async def _fail(
        self,
        project: ProjectSnapshot | None,
        entries: Sequence[Entry],
        lease: str,
        error: str,
        result: ReplayResult,
    ) -> None:
        """Write SYSTEM_FAILURE rows, then delete the entries (requeue or dead-letter them if
        the rows cannot be written). An entry whose row exists already (an earlier attempt
        committed it, then failed to add its job: :meth:`RunEngine.repair` adds it) is
        materialised: it is acked and keeps its review claim, since the run will run."""
        ids = [e.run_id for e in entries]
        try:
            existing = await self.run_engine.record_unstarted(
                [e.new_run() for e in entries], RunStatus.SYSTEM_FAILURE, error
            )
        except Exception as exc:
            if is_retryable(exc):
                result.retryable_error = exc
                await self.store.requeue(ids, lease, error)
                result.count("requeued", len(ids))
                log.warning("buffer_failure_row_requeued", runs=ids, error=describe(exc))
            else:
                reason = f"{error}; and no run row could be written: {describe(exc)}"
                await self.store.fail(ids, lease, reason, dead=True)
                result.count("dead_lettered", len(ids))
                log.error("buffer_entries_dead_lettered", runs=ids, error=reason)
            return
        exists = [e for e in entries if e.run_id in existing]
        if exists:
            log.info("buffer_failed_entries_exist", runs=[e.run_id for e in exists], error=error)
            await self._ack_materialized(project, exists, lease, result)
        failed = [e for e in entries if e.run_id not in existing]
        if not failed:
            return
        ids = [e.run_id for e in failed]
        await self.store.fail(ids, lease, error)
        result.count("system_failure", len(ids))
        log.error("buffer_entries_failed", runs=ids, error=error)
        await self._release_reviews(project, failed)

    async def _cancel(
        self,
        project: ProjectSnapshot | None,
        entries: Sequence[Entry],
        lease: str,
        result: ReplayResult,
    ) -> None:
        """CANCELED rows without jobs; a run that already exists is cancelled (cancel wins)."""
        ids = [e.run_id for e in entries]
        try:
            existing = await self.run_engine.record_unstarted(
                [e.new_run() for e in entries], RunStatus.CANCELED, "canceled while buffered"
            )
            for run_id in sorted(existing):
                outcome = await self.run_engine.cancel(run_id)
                log.info("buffer_cancel_won", run_id=run_id, status=str(outcome.status))
        except Exception as exc:
            if not is_retryable(exc):
                await self._fail(project, entries, lease, f"cancel failed: {describe(exc)}", result)
                return
            result.retryable_error = exc
            await self.store.requeue(ids, lease, describe(exc))
            result.count("requeued", len(ids))
            return
        await self._ack_terminal(ids, lease)
        result.count("canceled", len(ids))
        await self._release_reviews(project, entries)
