"""The ``docker`` backend: each worker is a container, through the Docker Engine API.

It speaks the API with the ``docker`` SDK to ``DOCKER_HOST``: Docker, or Podman's compatible
service (``podman system service``; see ``../shared/ENVIRONMENT.md`` and the README). What a
container looks like (name, labels, limits, mounts) is in :mod:`gaffer.backends.docker_spec`;
the image policy (pull when missing, no retry storm) in :mod:`gaffer.backends.docker_images`.

Life of a worker container:

1. start: the image is ensured; a leftover container of the same name (an earlier attempt of the
   same run) is removed; the container is created with exactly the env the worker env builder
   made, and started. A failure to start removes the container before the error is raised.
2. output: the engine's log stream (``follow``), cut into lines and resumed if the engine's API
   service restarts (:mod:`gaffer.backends.docker_logs`); wait: the engine's wait (asked again
   while the engine is unreachable), then an inspect for ``State.OOMKilled``.
3. stop (timeout, cancel, shutdown): the engine's stop, SIGTERM then SIGKILL after the grace.
4. cleanup: the container is removed (never ``AutoRemove``, which would race with reading its
   logs and exit code), after the dispatcher recorded the exit; in every path.

Exit codes are the engines' (128 + N for a container killed by signal N). An exit 137 that gaffer
did not cause reads "killed: out of memory" when the engine reports ``OOMKilled``, else
"killed (SIGKILL), likely out of memory": Podman on cgroup v1 reports 137 without the flag.

After a dispatcher died, :meth:`DockerBackend.recover` re-attaches to the run's container
(logs from where the dead dispatcher stopped recording, wait, stop); a container that vanished
raises :class:`~gaffer.backends.base.WorkerLostError`.

Every engine call runs on a daemon thread of its own (:func:`gaffer.aio.in_thread`): a log stream
or a wait blocks for a whole run and must not take a slot of the shared default thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import docker
import docker.constants
import structlog
from docker.errors import APIError, NotFound

from gaffer.aio import in_thread
from gaffer.backends.base import (
    RUN_ID_ENV,
    Backend,
    BackendError,
    LogCursor,
    WorkerHandle,
    WorkerInfo,
    WorkerLostError,
    WorkerNeverStartedError,
)
from gaffer.backends.docker_images import WorkerImages
from gaffer.backends.docker_logs import ENGINE_ERRORS, RETRY_INTERVAL_S, ContainerLogs
from gaffer.backends.docker_spec import (
    LABEL_RUN,
    WORKSPACE,
    RedisAccess,
    container_name,
    create_options,
    managed_filters,
    worker_redis_access,
)
from gaffer.coordination.embedded import socket_url
from gaffer.engines.base import ENGINE_USER_ENV
from gaffer.errors import UserError
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database

log = structlog.get_logger(__name__)

T = TypeVar("T")

API_VERSION = "1.41"
"""Docker Engine API version spoken (Podman 4 serves it; Docker 25+ still accepts it). Fixed, so
building a client needs no round trip to the engine."""
API_TIMEOUT_S = 60
"""Timeout of one API request in seconds (streams and waits have none)."""
SIGKILL_EXIT = 128 + signal.SIGKILL
WAIT_TRIES = 60
"""Tries of the engine's wait in a row, a second apart, before a worker counts as lost."""


class EngineUnreachableError(UserError, BackendError):
    """The container engine at ``DOCKER_HOST`` does not answer."""


async def _call(what: str, fn: Callable[[], T]) -> T:
    """``fn()`` on a thread of its own, with engine errors raised as :class:`BackendError`."""
    try:
        return await in_thread(fn, name="gaffer-docker")
    except NotFound:
        raise
    except APIError as exc:
        raise BackendError(f"{what}: {exc.explanation or exc}") from exc
    except ENGINE_ERRORS as exc:
        raise BackendError(f"{what}: {exc}") from exc


class DockerWorker(WorkerHandle):
    """A worker container (``ref`` is its id). ``logs_from`` skips the output up to it: a
    re-attached handle starts where the dead dispatcher stopped recording."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        name: str,
        *,
        logs_from: LogCursor | None = None,
    ) -> None:
        self.client = client
        self.ref = container_id
        self.name = name
        self.oom_killed = False
        self.logs = ContainerLogs(client, container_id, name, logs_from)

    def output(self) -> AsyncIterator[str]:
        return self.logs.lines()

    def log_cursor(self) -> LogCursor | None:
        return self.logs.cursor

    async def wait(self) -> int:
        """The container's exit code (see the module docstring); notes ``OOMKilled``.

        An engine that stops answering is asked again every second for up to
        :data:`WAIT_TRIES` tries (its API service may be restarting; the container runs on).
        Raises :class:`WorkerLostError` when the container vanished, :class:`BackendError`
        when the engine stays unreachable.
        """
        tries = 0
        while True:
            try:
                result = await _call(
                    f"waiting for {self.name}", lambda: self.client.api.wait(self.ref)
                )
                state = await _call(
                    f"inspecting {self.name}", lambda: self.client.api.inspect_container(self.ref)
                )
                break
            except NotFound as exc:
                raise WorkerLostError(f"the worker container {self.name} vanished") from exc
            except BackendError as exc:
                tries += 1
                if tries >= WAIT_TRIES:
                    raise
                if tries == 1:
                    log.warning("docker_wait_retrying", container=self.name, error=str(exc))
                await asyncio.sleep(RETRY_INTERVAL_S)
        self.oom_killed = bool(state["State"].get("OOMKilled"))
        return int(result["StatusCode"])

    def exit_reason(self, exit_code: int) -> str | None:
        """ "killed: out of memory" / "killed (SIGKILL), likely out of memory" for 137, "killed
        by signal N (NAME)" for another 128 + N, else None."""
        if exit_code == SIGKILL_EXIT:
            if self.oom_killed:
                return "killed: out of memory"
            return "killed (SIGKILL), likely out of memory"
        number = exit_code - 128
        if 0 < number < 65 and number in signal.valid_signals():
            return f"killed by signal {number} ({signal.Signals(number).name})"
        return None

    async def stop(self, grace_s: float) -> None:
        """The engine's stop: SIGTERM, then SIGKILL after ``grace_s`` (whole seconds, rounded
        up, as the API takes them). Gone already is fine."""
        with contextlib.suppress(NotFound):
            await _call(
                f"stopping {self.name}",
                lambda: self.client.api.stop(self.ref, timeout=math.ceil(grace_s)),
            )

    async def detach(self) -> None:
        """Close the log stream; the container runs on (another dispatcher re-attaches)."""
        self.logs.close()

    async def cleanup(self) -> None:
        """Close the log stream and remove the container (logged, not raised, on failure: the
        orphan sweep removes what is left)."""
        await self.detach()
        try:
            await remove_container(self.client, self.ref, self.name)
        except BackendError as exc:
            log.error("docker_worker_remove_failed", container=self.name, error=str(exc))


async def remove_container(client: docker.DockerClient, ref: str, name: str) -> None:
    """Remove a container, running or not, with its anonymous volumes; gone already is fine.

    Raises :class:`BackendError`.
    """
    try:
        await _call(
            f"removing {name}", lambda: client.api.remove_container(ref, force=True, v=True)
        )
    except NotFound:
        return
    log.info("docker_worker_removed", container=name)


class DockerBackend(Backend):
    """Runs workers as containers (see the module docstring).

    Raises :class:`~gaffer.backends.docker_spec.RedisUnreachableError` when built with a Redis
    the containers could not reach (and no ``GAFFER_WORKER_REDIS_URL`` saying otherwise).
    """

    name = "docker"
    reattachable = True

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self._db = db
        """The database :meth:`image_for` reads (made from ``settings`` when first needed)."""
        self._box: SecretBox | None = None
        """Decrypts registry credentials for a launch pull (made when first needed)."""
        self.host = settings.docker_host or docker.constants.DEFAULT_UNIX_SOCKET
        self.client = docker.DockerClient(
            base_url=self.host,
            version=API_VERSION,
            timeout=API_TIMEOUT_S,
            max_pool_size=max(10, 4 * settings.max_workers),
        )
        self.images = WorkerImages(self.client)
        if settings.worker_redis_url:
            # The operator said where workers reach Redis: nothing to mount or to check.
            self.redis = RedisAccess(settings.worker_redis_url)
        else:
            dispatcher_redis = settings.redis_url or socket_url(settings.redis_socket_path)
            self.redis = worker_redis_access(dispatcher_redis, settings.worker_network)

    async def check(self) -> None:
        """Ping the engine. Raises :class:`EngineUnreachableError` naming ``DOCKER_HOST``."""
        try:
            await _call("ping", self.client.ping)
        except BackendError as exc:
            raise EngineUnreachableError(
                f"cannot reach the container engine at DOCKER_HOST={self.host}: {exc}"
            ) from exc

    def base_env(self, job: JobData) -> dict[str, str]:
        """HOME in the container's workspace, UTF-8, unbuffered Python, no git prompts, and the
        user the engine runs as (``worker_engine_user``; see
        :class:`~gaffer.engines.base.EngineUser`); PATH is the image's (it knows where its
        Python is)."""
        env = {
            "HOME": f"{WORKSPACE}/home",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "GIT_TERMINAL_PROMPT": "0",
            RUN_ID_ENV: job.run_id,
        }
        if self.settings.worker_engine_user:
            env[ENGINE_USER_ENV] = self.settings.worker_engine_user
        return env

    def worker_redis_url(self, redis_url: str) -> str:
        """A unix socket URL becomes the mounted socket's; a TCP URL stays (see
        :func:`~gaffer.backends.docker_spec.worker_redis_access`)."""
        return worker_redis_access(redis_url, self.settings.worker_network).url

    def image_for(self, job: JobData) -> str:
        """The effective worker image of ``job`` (:func:`gaffer.images.launch.effective_image`:
        the project's verified digest, else the global ``GAFFER_WORKER_IMAGE``). Reads the
        database: call it on a thread.

        Raises :class:`~gaffer.images.launch.WorkerImageNotReadyError` (a
        :class:`~gaffer.backends.base.PermanentStartError`) when the project's own image is set
        but not verified.
        """
        from gaffer.images.launch import effective_image

        return effective_image(self._database(), job.project_id, self.settings.worker_image)

    def _database(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings)
        return self._db

    async def ensure_image(self, job: JobData, image: str) -> str:
        """The id of ``image`` on the engine, pulled when missing; a project's own image (not
        the global default) is pulled with the project's registry credentials
        (:func:`gaffer.images.launch.launch_registry_auth`), which go to the engine's pull only.

        Raises what :meth:`WorkerImages.ensure` raises.
        """
        if image == self.settings.worker_image:
            return await self.images.ensure(image)

        def credentials() -> dict[str, str] | None:
            from gaffer.images.launch import launch_registry_auth
            from gaffer.store.crypto import load_master_key

            if self._box is None:
                self._box = SecretBox(load_master_key(self.settings))
            return launch_registry_auth(self._database(), self._box, job.project_id, image)

        return await self.images.ensure(image, auth=credentials, scope=job.project_id)

    async def start(self, job: JobData, env: Mapping[str, str]) -> DockerWorker:
        """Ensure the image, then create and start ``gaffer-worker-<job id>``.

        Raises :class:`~gaffer.backends.base.PermanentStartError` (the image is unavailable;
        nothing was created) or :class:`BackendError`.
        """
        image = await asyncio.to_thread(self.image_for, job)
        image_id = await self.ensure_image(job, image)
        name = container_name(job.run_id)
        # A container of this name is a leftover of an earlier attempt of this run (its
        # dispatcher stopped or died before removing it); this dispatcher owns the run now.
        await remove_container(self.client, name, name)
        options = create_options(job, dict(env), image, self.settings, self.redis)
        try:
            container = await _call(
                f"creating {name}", lambda: self.client.containers.create(**options)
            )
        except NotFound as exc:
            raise BackendError(f"creating {name}: {exc.explanation or exc}") from exc
        assert container.id is not None
        try:
            await _call(f"starting {name}", container.start)
        except (BackendError, NotFound) as exc:
            await remove_container(self.client, container.id, name)
            raise BackendError(f"could not start the worker container: {exc}") from exc
        log.info("docker_worker_started", container=name, run_id=job.run_id, image_id=image_id)
        return DockerWorker(self.client, container.id, name)

    async def recover(
        self, run_id: str, worker_ref: str | None, *, logs_from: LogCursor | None = None
    ) -> DockerWorker | None:
        """Re-attach to the run's container (found by ``worker_ref``, else by name).

        Raises :class:`WorkerNeverStartedError` (after removing it) for a container that was
        created but never started, and when there is no container and none was ever recorded
        (the dispatcher died before creating it): the engine never ran. Raises
        :class:`WorkerLostError` when the recorded container is gone.
        """
        name = container_name(run_id)
        attrs = None
        for ref in dict.fromkeys(r for r in (worker_ref, name) if r):
            with contextlib.suppress(NotFound):
                attrs = await self._inspect(ref, name)
                break
        if attrs is None:
            if worker_ref is None:
                raise WorkerNeverStartedError(f"no container {name} was ever created")
            raise WorkerLostError(
                f"the worker container {name} vanished while no dispatcher was watching it"
            )
        if attrs["State"].get("Status") == "created":
            await remove_container(self.client, attrs["Id"], name)
            raise WorkerNeverStartedError(f"the container {name} was created but never started")
        log.info("docker_worker_reattached", container=name, run_id=run_id)
        return DockerWorker(self.client, attrs["Id"], name, logs_from=logs_from)

    async def _inspect(self, ref: str, name: str) -> dict[str, Any]:
        attrs = await _call(f"inspecting {name}", lambda: self.client.api.inspect_container(ref))
        return dict(attrs)

    async def list_workers(self) -> list[WorkerInfo]:
        """Every container labelled ``gaffer.managed=true`` and this ``gaffer.instance``."""
        filters = managed_filters(self.settings.instance)
        found = await _call(
            "listing worker containers",
            lambda: self.client.api.containers(all=True, filters=filters),
        )
        workers = []
        for item in found:
            names = item.get("Names") or [item["Id"][:12]]
            workers.append(
                WorkerInfo(
                    ref=item["Id"],
                    name=str(names[0]).lstrip("/"),
                    run_id=(item.get("Labels") or {}).get(LABEL_RUN),
                    created_at=datetime.fromtimestamp(int(item.get("Created", 0)), UTC),
                    running=item.get("State") == "running",
                )
            )
        return workers

    async def discard_worker(self, ref: str, grace_s: float) -> None:
        """Stop (SIGTERM, ``grace_s``, SIGKILL) and remove a container; gone is fine."""
        worker = DockerWorker(self.client, ref, ref[:12])
        await worker.stop(grace_s)
        await remove_container(self.client, ref, ref[:12])
