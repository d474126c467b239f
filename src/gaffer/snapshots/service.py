"""What the dispatcher asks of snapshots: where a run starts from, committing a worker, building
a project snapshot, the caps, reconciling, dropping a work item's snapshot.

Where a run starts (:meth:`Snapshots.plan`), by the project's settings (``snapshot_settings``;
both kinds off by default):

1. its work item's snapshot, when work-item snapshots are on and its image exists;
2. else the project snapshot, when project snapshots are on and it was built on the current
   worker image (the worker then checks the set-up and lock-file half of the key, and sets up
   again when they changed: ``snapshot_stale``);
3. else the worker image (a cold start).

After a worker exited 0 having said ``snapshot_ready`` (and was not stopped: a failed, timed-out
or cancelled run never makes one), :meth:`Snapshots.after_success` commits it as its work
item's snapshot (work-item snapshots on), and builds the project snapshot when there is none for
the current worker image or the worker found it stale. Each new snapshot is followed by
:meth:`Snapshots.prune` (the caps, :mod:`gaffer.snapshots.caps`).

A project snapshot is built in a container of its own (labelled ``gaffer.snapshot.build``, not
``gaffer.managed``: the orphan sweep's rules are for runs), which only clones the base branch,
sets up and prepares (``GAFFER_SNAPSHOT_BUILD=1``); its row is claimed first (``building``) so
that one dispatcher builds it. The container is removed afterwards in every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import docker
import structlog
from docker.errors import NotFound

from gaffer.aio import in_thread
from gaffer.backends.base import BackendError
from gaffer.backends.docker_spec import WORKSPACE, RedisAccess, worker_mounts
from gaffer.engines.base import ENGINE_USER_ENV
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.snapshots import registry
from gaffer.snapshots.caps import Limits, evictions
from gaffer.snapshots.images import ImageInfo, SnapshotImages, snapshot_labels
from gaffer.snapshots.keys import project_key
from gaffer.snapshots.names import snapshot_image
from gaffer.store.db import Database
from gaffer.store.models import Snapshot, SnapshotSettings, utcnow
from gaffer.worker.events import parse_line
from gaffer.worker.job import JOB_DATA_ENV
from gaffer.worker.setup import (
    SETUP_COMMAND_ENV,
    SETUP_FAILURE_ENV,
    SETUP_TIMEOUT_ENV,
    SNAPSHOT_BUILD_ENV,
    SNAPSHOT_FILES_HASH_ENV,
    SNAPSHOT_FROM_ENV,
    SNAPSHOT_KIND_ENV,
    SNAPSHOT_PREPARE_ENV,
)

log = structlog.get_logger(__name__)

LABEL_BUILD = "gaffer.snapshot.build"
BUILD_PREFIX = "gaffer-snapshot-build-"
MAX_CHAIN = 16
"""Most snapshot commits stacked on the worker image (see :meth:`Snapshots._chain_full`)."""


@dataclass(frozen=True)
class StartPlan:
    """Where a run starts: ``image`` (a snapshot's or the worker image), ``env`` to add to the
    worker's (set-up and snapshot instructions), the snapshot's ``kind`` and row ``row_id``
    (None: cold), whether to ``commit`` the worker after a success (work-item snapshots on),
    and whether the project snapshot is to be built (``build_project``)."""

    image: str
    env: dict[str, str] = field(default_factory=dict)
    kind: str | None = None
    row_id: str | None = None
    commit: bool = False
    build_project: bool = False


def _setup_env(settings: Settings, policy: SnapshotSettings | None) -> dict[str, str]:
    env = {SETUP_TIMEOUT_ENV: f"{settings.setup_timeout_s:g}"}
    if policy is not None:
        if policy.setup_timeout_s:
            env[SETUP_TIMEOUT_ENV] = f"{policy.setup_timeout_s:g}"
        if policy.setup_command:
            env[SETUP_COMMAND_ENV] = policy.setup_command
        if policy.setup_failure == "warn":
            env[SETUP_FAILURE_ENV] = "warn"
    return env


class Snapshots:
    """The snapshot service of one installation (``settings.instance``) on one engine."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        client: docker.DockerClient,
        redis: RedisAccess | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.images = SnapshotImages(client)
        self.redis = redis or RedisAccess("")
        self.instance = settings.instance
        self.pending_deletes: set[str] = set()
        """Ids of replaced snapshot images, deleted by :meth:`delete_replaced`."""

    # -- where a run starts ---------------------------------------------------------------------

    async def plan(self, job: JobData, worker_image: str, worker_image_id: str) -> StartPlan:
        """Where ``job``'s worker starts (see the module docstring). A row whose image is gone
        is dropped and the run starts cold."""
        policy, work_row, project_row = await in_thread(
            lambda: self._rows_for(job), name="gaffer-snapshots"
        )
        env = _setup_env(self.settings, policy)
        if policy is None or not (policy.work_item or policy.project):
            return StartPlan(worker_image, env)
        if policy.work_item:
            env[SNAPSHOT_PREPARE_ENV] = "1"
        build = bool(policy.project) and (
            project_row is None
            or (
                project_row.status == registry.READY
                and project_row.base_image_id != worker_image_id
            )
        )
        for row, kind in ((work_row, "work-item"), (project_row, "project")):
            if row is None or row.status != registry.READY:
                continue
            if kind == "project" and row.base_image_id != worker_image_id:
                continue
            info = await self.images.inspect(row.image_id or row.image)
            if info is None:
                log.warning("snapshot_image_vanished", image=row.image, row_id=row.id)
                await in_thread(partial(self._remove_rows, [row.id]), name="gaffer-snapshots")
                if kind == "project":
                    build = True
                continue
            env[SNAPSHOT_FROM_ENV] = row.image
            env[SNAPSHOT_KIND_ENV] = kind
            if kind == "project" and row.files_hash:
                env[SNAPSHOT_FILES_HASH_ENV] = row.files_hash
            await in_thread(partial(self._touch, row.id), name="gaffer-snapshots")
            return StartPlan(
                info.id, env, kind, row.id, commit=bool(policy.work_item), build_project=build
            )
        return StartPlan(worker_image, env, commit=bool(policy.work_item), build_project=build)

    def _rows_for(
        self, job: JobData
    ) -> tuple[SnapshotSettings | None, Snapshot | None, Snapshot | None]:
        with self.db.session() as session:
            policy = registry.settings_of(session, job.project_id)
            work = registry.find(
                session, self.instance, job.project_id, "work-item", job.task.work_item
            )
            project = registry.find(session, self.instance, job.project_id, "project")
            session.expunge_all()
            return policy, work, project

    def _touch(self, row_id: str) -> None:
        with self.db.session() as session:
            row = session.get(Snapshot, row_id)
            if row is not None:
                row.last_used_at = utcnow()
            session.commit()

    def _remove_rows(self, row_ids: list[str]) -> None:
        with self.db.session() as session:
            registry.remove(session, row_ids)
            session.commit()

    # -- after a run ------------------------------------------------------------------------------

    async def after_success(
        self,
        job: JobData,
        plan: StartPlan,
        container: str,
        ready: Mapping[str, Any] | None,
        stale: bool,
        worker_image_id: str,
    ) -> None:
        """Commit ``container`` as the work item's snapshot (when ``plan.commit`` and the
        worker said ``snapshot_ready``: ``ready`` holds that event's fields), then build the
        project snapshot if it is missing or ``stale``, then prune. Errors are logged."""
        if plan.commit and ready is None:
            log.warning("snapshot_not_ready", run_id=job.run_id)
        elif plan.commit and await self._chain_full(plan, worker_image_id):
            log.warning("snapshot_chain_full", run_id=job.run_id, image=plan.image)
        elif plan.commit and ready is not None:
            try:
                await self.commit(
                    container,
                    job.project_id,
                    "work-item",
                    job.task.work_item,
                    base_image_id=worker_image_id,
                    files_hash=ready.get("files_hash"),
                    source_run_id=job.run_id,
                )
            except BackendError as exc:
                log.error("snapshot_commit_failed", run_id=job.run_id, error=str(exc))
        if plan.build_project or stale:
            try:
                await self.build_project(job, worker_image_id, rebuild=stale)
            except BackendError as exc:
                log.error("snapshot_build_failed", project_id=job.project_id, error=str(exc))
        await self.prune()

    async def _chain_full(self, plan: StartPlan, worker_image_id: str) -> bool:
        """True when the run started from a work-item snapshot that is already
        :data:`MAX_CHAIN` commits above the worker image: each refresh adds a layer, and
        layer chains are bounded (overlayfs), so the snapshot is kept as it is until it
        expires and a cold start makes a fresh one."""
        if plan.kind != "work-item":
            return False
        try:
            depth = await in_thread(
                lambda: len(self.client.api.history(plan.image)),  # type: ignore[no-untyped-call]
                name="gaffer-snapshots",
            )
            base = await in_thread(
                lambda: len(self.client.api.history(worker_image_id)),  # type: ignore[no-untyped-call]
                name="gaffer-snapshots",
            )
        except docker.errors.APIError:
            return False
        return bool(depth - base >= MAX_CHAIN)

    async def delete_replaced(self) -> None:
        """Delete the images that new snapshots replaced (call it once the container that was
        committed is removed). A failure is logged; reconcile deletes what is left."""
        for image_id in sorted(self.pending_deletes):
            self.pending_deletes.discard(image_id)
            try:
                await self.images.delete(image_id)
            except BackendError as exc:
                log.warning("snapshot_replaced_delete_failed", image_id=image_id, error=str(exc))

    async def commit(
        self,
        container: str,
        project_id: str,
        kind: str,
        work_item: str,
        *,
        base_image_id: str | None,
        files_hash: str | None,
        source_run_id: str | None,
    ) -> ImageInfo:
        """Commit ``container`` to the snapshot's image and record it (the image it replaces is
        deleted). Returns the image. Raises :class:`BackendError`."""
        image = snapshot_image(self.instance, project_id, kind, work_item)
        key = (
            project_key(base_image_id, files_hash)
            if kind == "project" and base_image_id and files_hash
            else None
        )
        labels = snapshot_labels(self.instance, project_id, kind, work_item, key)
        started = time.monotonic()
        info = await self.images.commit(container, image, labels)
        base = await self.images.inspect(base_image_id) if base_image_id else None
        own = max(0, info.size_bytes - (base.size_bytes if base else 0))

        def save() -> registry.Recorded:
            with self.db.session() as session:
                done = registry.record(
                    session,
                    instance=self.instance,
                    project_id=project_id,
                    kind=kind,
                    work_item=work_item,
                    image=image,
                    info=info,
                    size_bytes=own,
                    base_image_id=base_image_id,
                    key=key,
                    files_hash=files_hash,
                    source_run_id=source_run_id,
                )
                session.commit()
                return done

        recorded = await in_thread(save, name="gaffer-snapshots")
        if recorded.replaced_image_id:
            # The container being committed may run on that image (a warm start from the
            # project snapshot being rebuilt): deleted once the container is gone.
            self.pending_deletes.add(recorded.replaced_image_id)
        log.info(
            "snapshot_committed",
            image=image,
            image_id=info.id,
            kind=kind,
            project_id=project_id,
            work_item=work_item,
            size_bytes=own,
            seconds=round(time.monotonic() - started, 3),
        )
        return info

    # -- project snapshots ------------------------------------------------------------------------

    async def build_project(self, job: JobData, worker_image_id: str, *, rebuild: bool) -> None:
        """Build the project snapshot of ``job``'s project (see the module docstring); a row
        that exists (built on this worker image and not ``rebuild``, or being built) wins."""
        image = snapshot_image(self.instance, job.project_id, "project")

        def claim() -> bool:
            with self.db.session() as session:
                row = registry.find(session, self.instance, job.project_id, "project")
                if (
                    row is not None
                    and row.status == registry.READY
                    and (rebuild or row.base_image_id != worker_image_id)
                ):
                    row.status = registry.BUILDING
                    row.created_at = utcnow()
                    session.commit()
                    return True
                claimed = registry.claim_build(session, self.instance, job.project_id, image)
                session.commit()
                return claimed

        if not await in_thread(claim, name="gaffer-snapshots"):
            return
        name = f"{BUILD_PREFIX}{job.run_id}"
        committed = False
        try:
            container = await self._start_build(job, name)
            ready = await self._await_build(container, name)
            if ready is not None:
                await self.commit(
                    container,
                    job.project_id,
                    "project",
                    "",
                    base_image_id=worker_image_id,
                    files_hash=ready.get("files_hash"),
                    source_run_id=job.run_id,
                )
                committed = True
        finally:
            with contextlib.suppress(NotFound, docker.errors.APIError):
                await in_thread(
                    lambda: self.client.api.remove_container(name, force=True, v=True),
                    name="gaffer-snapshots",
                )
            if not committed:
                await in_thread(
                    lambda: self._drop_building(job.project_id), name="gaffer-snapshots"
                )

    def _drop_building(self, project_id: str) -> None:
        with self.db.session() as session:
            row = registry.find(session, self.instance, project_id, "project")
            if row is not None and row.status == registry.BUILDING:
                if row.image_id:
                    row.status = registry.READY  # the old image is still there
                else:
                    session.delete(row)
            session.commit()

    async def _start_build(self, job: JobData, name: str) -> str:
        env = {
            "HOME": f"{WORKSPACE}/home",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "GIT_TERMINAL_PROMPT": "0",
            JOB_DATA_ENV: job.model_copy(update={"payload": None}).model_dump_json(),
            SNAPSHOT_BUILD_ENV: "1",
            **{k: v for k, v in (await self._policy_env(job)).items()},
        }
        if self.settings.worker_engine_user:
            env[ENGINE_USER_ENV] = self.settings.worker_engine_user
        memory = self.settings.worker_memory_mb * 1024 * 1024
        options: dict[str, Any] = {
            "image": self.settings.worker_image,
            "command": ["python", "-m", "gaffer.worker"],
            "name": name,
            "labels": {LABEL_BUILD: self.instance, "gaffer.snapshot.project": job.project_id},
            "environment": env,
            "working_dir": WORKSPACE,
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": self.settings.worker_pids_limit,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"],
            "network_mode": self.settings.worker_network,
            "mounts": worker_mounts(job, RedisAccess("")),
            "init": True,
            "detach": True,
        }
        with contextlib.suppress(NotFound, docker.errors.APIError):
            await in_thread(
                lambda: self.client.api.remove_container(name, force=True), name="gaffer-snapshots"
            )
        try:
            created = await in_thread(
                lambda: self.client.containers.create(**options), name="gaffer-snapshots"
            )
            await in_thread(created.start, name="gaffer-snapshots")
        except docker.errors.APIError as exc:
            raise BackendError(f"starting the project snapshot build: {exc}") from exc
        log.info("snapshot_build_started", container=name, project_id=job.project_id)
        return str(created.id)

    async def _policy_env(self, job: JobData) -> dict[str, str]:
        def read() -> SnapshotSettings | None:
            with self.db.session() as session:
                policy = registry.settings_of(session, job.project_id)
                session.expunge_all()
                return policy

        return _setup_env(self.settings, await in_thread(read, name="gaffer-snapshots"))

    async def _await_build(self, container: str, name: str) -> dict[str, Any] | None:
        """Wait for the build (its time limit: ``snapshot_build_timeout_s``); returns its
        ``snapshot_ready`` fields when it exited 0 having said so, else None (logged)."""
        try:
            result = await asyncio.wait_for(
                in_thread(lambda: self.client.api.wait(container), name="gaffer-snapshots"),
                self.settings.snapshot_build_timeout_s,
            )
        except TimeoutError:
            log.error("snapshot_build_timed_out", container=name)
            return None
        logs = await in_thread(
            lambda: self.client.api.logs(container, stdout=True, stderr=True),
            name="gaffer-snapshots",
        )
        ready = None
        for line in bytes(logs).decode(errors="replace").splitlines():
            parsed = parse_line(line)
            if parsed.event == "snapshot_ready":
                ready = parsed.fields
        code = int(result["StatusCode"])
        if code != 0 or ready is None:
            tail = bytes(logs).decode(errors="replace").splitlines()[-5:]
            log.error("snapshot_build_failed", container=name, exit_code=code, last_lines=tail)
            return None
        return ready

    # -- caps, reconcile, deletes -----------------------------------------------------------------

    def limits(self) -> Limits:
        """The caps from the settings."""
        s = self.settings
        return Limits(
            s.snapshot_ttl_s, s.snapshot_max_per_project, s.snapshot_max_total, s.snapshot_max_bytes
        )

    async def prune(self) -> list[tuple[Snapshot, str]]:
        """Apply the caps: delete the images of the evicted snapshots, then their rows.
        Returns the evicted rows (detached) with the reason."""

        def read() -> tuple[list[Snapshot], dict[str, float | None]]:
            with self.db.session() as session:
                rows = [
                    r for r in registry.list_rows(session, self.instance) if r.status == "ready"
                ]
                ttls = {
                    r.project_id: getattr(
                        registry.settings_of(session, r.project_id), "ttl_s", None
                    )
                    for r in rows
                }
                session.expunge_all()
                return rows, ttls

        rows, ttls = await in_thread(read, name="gaffer-snapshots")
        chosen = evictions(rows, self.limits(), ttls, utcnow())
        by_id = {r.id: r for r in rows}
        evicted = [(by_id[e.id], e.reason) for e in chosen]
        for row, reason in evicted:
            await self.images.delete(row.image_id or row.image)
            log.info("snapshot_evicted", image=row.image, reason=reason, project_id=row.project_id)
        await in_thread(
            lambda: self._remove_rows([r.id for r, _ in evicted]), name="gaffer-snapshots"
        )
        return evicted

    async def delete(self, row_id: str) -> Snapshot | None:
        """Delete one snapshot (image, then row); None when there is no such row."""

        def read() -> Snapshot | None:
            with self.db.session() as session:
                row = session.get(Snapshot, row_id)
                session.expunge_all()
                return row

        row = await in_thread(read, name="gaffer-snapshots")
        if row is None:
            return None
        if row.image_id:
            await self.images.delete(row.image_id)
        await in_thread(lambda: self._remove_rows([row_id]), name="gaffer-snapshots")
        log.info("snapshot_deleted", image=row.image, project_id=row.project_id)
        return row

    async def drop_work_item(self, project_id: str, work_item: str) -> bool:
        """Delete the work item's snapshot (its PR was merged or closed); False when it had
        none. For the webhook path (``pull_request.closed``)."""

        def read() -> str | None:
            with self.db.session() as session:
                row = registry.find(session, self.instance, project_id, "work-item", work_item)
                return row.id if row is not None else None

        row_id = await in_thread(read, name="gaffer-snapshots")
        if row_id is None:
            return False
        await self.delete(row_id)
        return True

    async def reconcile(self) -> registry.ReconcilePlan:
        """Reconcile the registry with the images by label (see
        :mod:`gaffer.snapshots.registry`), and remove leftover build containers."""
        images = await self.images.list(self.instance)

        def read() -> list[Snapshot]:
            with self.db.session() as session:
                rows = registry.list_rows(session, self.instance)
                session.expunge_all()
                return rows

        rows = await in_thread(read, name="gaffer-snapshots")
        plan = registry.plan_reconcile(rows, images)
        await in_thread(lambda: self._remove_rows(plan.drop), name="gaffer-snapshots")
        for image_id in plan.delete:
            await self.images.delete(image_id)
        leftovers = await in_thread(
            lambda: self.client.api.containers(
                all=True, filters={"label": [f"{LABEL_BUILD}={self.instance}"]}
            ),
            name="gaffer-snapshots",
        )
        for item in leftovers:
            if item.get("State") != "running":
                with contextlib.suppress(NotFound, docker.errors.APIError):
                    await in_thread(
                        partial(self.client.api.remove_container, item["Id"], force=True),
                        name="gaffer-snapshots",
                    )
        if plan.drop or plan.delete:
            log.info("snapshots_reconciled", dropped=len(plan.drop), deleted=len(plan.delete))
        return plan
