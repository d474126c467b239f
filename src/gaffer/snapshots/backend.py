"""The ``docker`` backend with snapshots: each worker starts from its snapshot when there is one,
and a successful worker is committed before its container is removed.

:class:`SnapshotBackend` is :class:`~gaffer.backends.docker.DockerBackend` plus:

* ``check``: also reconciles the registry with the images (and applies the caps) at
  dispatcher start;
* ``start``: asks :meth:`~gaffer.snapshots.service.Snapshots.plan` where the run starts, adds
  its set-up and snapshot variables to the worker's env, and creates the container from the
  snapshot's image (or the worker image);
* its handles (:class:`SnapshotWorker`) note the ``snapshot_ready`` / ``snapshot_stale``
  events in the output, whether the dispatcher stopped the worker, and its exit code; their
  ``cleanup`` commits (exit 0, ready, never stopped) and then removes the container, in every
  path (a commit that fails is logged; the container goes anyway).

The commit happens after the dispatcher recorded the run's outcome: a snapshot is never what
decides a run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog

from gaffer.backends.base import LogCursor
from gaffer.backends.docker import DockerBackend, DockerWorker
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.snapshots.service import Snapshots, StartPlan
from gaffer.store.db import Database
from gaffer.worker.events import parse_line

log = structlog.get_logger(__name__)


class SnapshotWorker(DockerWorker):
    """A worker container that may be committed as a snapshot when it is cleaned up."""

    def __init__(
        self,
        base: DockerWorker,
        snapshots: Snapshots,
        job: JobData | None,
        plan: StartPlan | None,
        worker_image_id: str | None,
    ) -> None:
        super().__init__(base.client, base.ref, base.name)
        self.logs = base.logs
        self.snapshots = snapshots
        self.job = job
        self.plan = plan
        self.worker_image_id = worker_image_id
        self.ready: dict[str, Any] | None = None
        self.stale = False
        self.stopped = False
        self.exit_code: int | None = None

    async def output(self) -> AsyncIterator[str]:
        async for line in self.logs.lines():
            parsed = parse_line(line)
            if parsed.event == "snapshot_ready":
                self.ready = parsed.fields
            elif parsed.event == "snapshot_stale":
                self.stale = True
            yield line

    async def wait(self) -> int:
        self.exit_code = await super().wait()
        return self.exit_code

    async def stop(self, grace_s: float) -> None:
        self.stopped = True
        await super().stop(grace_s)

    @property
    def succeeded(self) -> bool:
        """True when the worker exited 0 and was never stopped by the dispatcher (only then
        may it become a snapshot, or start a project snapshot's build)."""
        return (
            self.exit_code == 0
            and not self.stopped
            and self.job is not None
            and self.plan is not None
            and self.worker_image_id is not None
        )

    async def cleanup(self) -> None:
        """After a success, commit (when the worker said ``snapshot_ready``) and build the
        project snapshot if due; then remove the container, in every path."""
        try:
            if self.succeeded:
                assert self.job is not None and self.plan is not None
                assert self.worker_image_id is not None
                await self.snapshots.after_success(
                    self.job, self.plan, self.ref, self.ready, self.stale, self.worker_image_id
                )
        except Exception:
            log.exception("snapshot_after_run_failed", container=self.name)
        finally:
            await super().cleanup()
        try:
            await self.snapshots.delete_replaced()
        except Exception:
            log.exception("snapshot_replaced_delete_failed", container=self.name)


class SnapshotBackend(DockerBackend):
    """The ``docker`` backend with snapshots (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__(settings)
        self.snapshots = Snapshots(settings, db, self.client, self.redis)
        self._images: dict[str, str] = {}

    async def check(self) -> None:
        """Ping the engine, then reconcile the registry and apply the caps (errors of the
        latter are logged: a dispatcher starts without its snapshots rather than not at all)."""
        await super().check()
        try:
            await self.snapshots.reconcile()
            await self.snapshots.prune()
        except Exception:
            log.exception("snapshots_reconcile_failed")

    def image_for(self, job: JobData) -> str:
        """The snapshot's image chosen for this run by :meth:`start`, else the worker image."""
        return self._images.get(job.run_id) or super().image_for(job)

    async def start(self, job: JobData, env: Mapping[str, str]) -> SnapshotWorker:
        """Plan where the run starts, then start its container from that image."""
        worker_image = super().image_for(job)
        worker_image_id = await self.ensure_image(job, worker_image)
        plan = await self.snapshots.plan(job, worker_image, worker_image_id)
        if plan.kind is not None:
            log.info(
                "snapshot_start",
                run_id=job.run_id,
                kind=plan.kind,
                image=plan.env.get("GAFFER_SNAPSHOT_FROM"),
            )
        self._images[job.run_id] = plan.image
        try:
            handle = await super().start(job, {**env, **plan.env})
        finally:
            self._images.pop(job.run_id, None)
        return SnapshotWorker(handle, self.snapshots, job, plan, worker_image_id)

    async def recover(
        self, run_id: str, worker_ref: str | None, *, logs_from: LogCursor | None = None
    ) -> DockerWorker | None:
        """Re-attach as the docker backend does; a re-attached worker is not committed (what it
        said before the dead dispatcher stopped reading is not known)."""
        handle = await super().recover(run_id, worker_ref, logs_from=logs_from)
        if handle is None:
            return None
        return SnapshotWorker(handle, self.snapshots, None, None, None)
