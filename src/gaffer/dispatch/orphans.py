"""The orphan sweep: remove workers that no live run owns, or that outlived their run's timeout.

A dispatcher sweeps when it starts and every ``orphan_sweep_interval_s`` (5 min). It looks at
every worker its backend lists (for ``docker``: the containers labelled ``gaffer.managed=true``
and this installation's ``gaffer.instance``; the ``local`` backend lists none) and, in order:

* a worker of a run this dispatcher is supervising is left alone;
* the run is live (STARTING or RUNNING) and within ``timeout + grace + ORPHAN_SLACK_S`` of its
  ``started_at``: left alone; its dispatcher is watching it, or will re-attach to it when the
  run's job comes back after that dispatcher died;
* the run is live but the worker outlived that: stopped, removed, and the run marked FAILED
  with the reason (a supervising dispatcher would have stopped it at the deadline);
* the run is finished (its dispatcher died after recording the exit, before removing the
  container), QUEUED (a leftover of an attempt that was put back in the queue), missing from the
  database, or the worker names no run: stopped and removed. No run is marked: a finished run
  keeps its outcome, and a queued one will start a fresh worker.

Workers are listed before runs are read, and removed by id, so a worker started for a run after
the listing is never touched, and a race with a dispatcher removing its own worker is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select

from gaffer.backends.base import Backend, WorkerInfo
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus, utcnow

log = structlog.get_logger(__name__)

ORPHAN_SLACK_S = 60.0
"""Seconds past a run's timeout and stop grace before its still-present worker counts as
orphaned: a supervising dispatcher stops and removes its worker well within that."""
LIVE = (RunStatus.STARTING, RunStatus.RUNNING)

FailRun = Callable[[str, str], Awaitable[None]]
"""``fail_run(run_id, reason)``: record a live run as FAILED with ``reason``."""


@dataclass(frozen=True)
class SweptWorker:
    """A worker the sweep removed: its name, its run (if any), and why."""

    name: str
    run_id: str | None
    reason: str
    run_failed: bool


@dataclass(frozen=True)
class _RunState:
    status: RunStatus
    started_at: datetime | None
    timeout_s: float


class OrphanSweeper:
    """Sweeps the workers of ``backend`` (see the module docstring).

    ``busy()`` returns the ids of the runs this dispatcher is supervising; ``fail_run`` records
    a live run as FAILED (the dispatcher's own way of finishing runs).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        backend: Backend,
        *,
        busy: Callable[[], Collection[str]],
        fail_run: FailRun,
    ) -> None:
        self.settings = settings
        self.db = db
        self.backend = backend
        self.busy = busy
        self.fail_run = fail_run
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep once now, then every ``orphan_sweep_interval_s`` in the background."""
        await self.sweep_logged()
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stop the background sweeps."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.orphan_sweep_interval_s)
            await self.sweep_logged()

    async def sweep_logged(self) -> list[SweptWorker]:
        """:meth:`sweep`, with a failure logged (``orphan_sweep_failed``) instead of raised."""
        try:
            return await self.sweep()
        except Exception:
            log.exception("orphan_sweep_failed", backend=self.backend.name)
            return []

    async def sweep(self) -> list[SweptWorker]:
        """Sweep once; returns what was removed. Raises the backend's errors."""
        workers = await self.backend.list_workers()
        if not workers:
            return []
        run_ids = {w.run_id for w in workers if w.run_id}
        runs = await asyncio.to_thread(self._load_runs, run_ids)
        busy = set(self.busy())
        swept = []
        for worker in workers:
            if worker.run_id in busy:
                continue
            verdict = self._verdict(worker, runs.get(worker.run_id or ""))
            if verdict is None:
                continue
            reason, fail = verdict
            await self.backend.discard_worker(worker.ref, self.settings.cancel_grace_s)
            if fail and worker.run_id:
                await self.fail_run(worker.run_id, reason)
            log.warning(
                "orphan_worker_removed",
                worker=worker.name,
                run_id=worker.run_id,
                reason=reason,
                run_failed=fail,
            )
            swept.append(SweptWorker(worker.name, worker.run_id, reason, fail))
        return swept

    def _verdict(self, worker: WorkerInfo, run: _RunState | None) -> tuple[str, bool] | None:
        """None to leave the worker, else (reason, whether to fail its run)."""
        if worker.run_id is None:
            return "it names no run", False
        if run is None:
            return f"its run {worker.run_id} does not exist", False
        if run.status not in LIVE:
            return f"its run is {run.status}", False
        started = run.started_at or worker.created_at
        limit = run.timeout_s + self.settings.cancel_grace_s + ORPHAN_SLACK_S
        if (utcnow() - started).total_seconds() <= limit:
            return None
        return (
            f"the worker {worker.name} outlived the run's timeout ({run.timeout_s:g} s) with no "
            "dispatcher stopping it; the orphan sweep removed it",
            True,
        )

    def _load_runs(self, run_ids: Collection[str]) -> dict[str, _RunState]:
        if not run_ids:
            return {}
        with self.db.session() as session:
            rows = session.scalars(select(Run).where(Run.id.in_(list(run_ids))))
            return {
                run.id: _RunState(
                    RunStatus(run.status),
                    run.started_at,
                    float(run.job_data.get("timeout_s", self.settings.run_timeout_s)),
                )
                for run in rows
            }
