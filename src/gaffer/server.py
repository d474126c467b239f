"""``gaffer up``: ingest, dispatch, drain and the model gateway in one process (or some of
them, with ``roles``).

Roles: ``ingest`` (the webhook server, ``/metrics`` and the API), ``dispatch`` (workers),
``drain`` (the burst buffer's drainer with its in-flight reclaim and stale sweeps; idle and
cheap while the buffer is empty, so it is on by default) and ``gateway`` (the model API proxy
every engine calls, on ``GAFFER_GATEWAY_HOST``:``GAFFER_GATEWAY_PORT``; started first, so this
process's dispatcher hands its address to workers). Any number of processes may run any role
against the same Redis and database.

The HTTP server is uvicorn, given a socket bound here (so port 0 works and the real port is
known), with uvicorn's own signal capture turned off: SIGINT/SIGTERM stop the HTTP server first
(no new deliveries), then the drainer (its tick in progress finishes), then the dispatcher
(runs in progress are re-queued), then the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog
import uvicorn

from gaffer.accounts.ratelimit import LoginLimiter
from gaffer.api.services import ApiServices
from gaffer.api.v1 import mount_v1
from gaffer.backends import make_backend
from gaffer.buffer.access import RunAccess
from gaffer.buffer.drainer import Drainer
from gaffer.buffer.gate import BufferGate
from gaffer.buffer.replay import ProjectCache, Replayer
from gaffer.buffer.scripts import BufferStore
from gaffer.buffer.sweeps import Reclaimer, StaleSweeper, every
from gaffer.coordination.client import connect
from gaffer.dispatch.dispatcher import Dispatcher
from gaffer.dispatch.engine_secrets import GatewayAccess
from gaffer.dispatch.followups import FollowUps
from gaffer.dispatch.github_notify import make_notifier
from gaffer.errors import UserError
from gaffer.ingest.app import create_app
from gaffer.ingest.directory import ProjectDirectory
from gaffer.ingest.github import GitHubIngest
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import RunEngine
from gaffer.runs.intake import RunIntake
from gaffer.runtime import Runtime

if TYPE_CHECKING:
    from gaffer.images.consumer import ImageValidations
    from gaffer.snapshots.drops import SnapshotDrops

log = structlog.get_logger(__name__)

ROLES = frozenset({"ingest", "dispatch", "drain", "gateway"})


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: :func:`serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True)
class Listening:
    """Where ingest listens: ``url`` is ``http://host:port``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL of the ingest server."""
        return f"http://{self.host}:{self.port}"


class ListenError(UserError, OSError):
    """The ingest address cannot be listened on (in use, not local, no permission)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises :class:`ListenError`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(
    runtime: Runtime,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    roles: Iterable[str] = ROLES,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Listening | None], None] | None = None,
) -> None:
    """Run the given roles until ``stop`` is set or SIGINT/SIGTERM arrives.

    ``on_ready`` is called once everything is up, with where ingest listens (None without the
    ingest role). Raises ValueError for an unknown role.
    """
    roles = frozenset(roles)
    if not roles or not roles <= ROLES:
        raise ValueError(
            f"roles must be a non-empty subset of {sorted(ROLES)}, got {sorted(roles)}"
        )
    settings = runtime.settings
    redis_url = runtime.require_redis()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    redis = connect(redis_url)
    queue = RunQueue(redis_url, settings.queue_name)
    run_engine = RunEngine(settings, runtime.db, queue, redis)
    buffer = BufferStore(redis)
    intake = RunIntake(settings, run_engine, redis, gate=BufferGate(settings, redis), buffer=buffer)
    dispatcher: Dispatcher | None = None
    validations: ImageValidations | None = None
    drops: SnapshotDrops | None = None
    drainer: Drainer | None = None
    gateway_server: _Server | None = None
    gateway_task: asyncio.Task[None] | None = None
    sweeps_stop = asyncio.Event()
    sweeps: list[asyncio.Task[None]] = []
    notifier_task: asyncio.Task[None] | None = None
    server: _Server | None = None
    server_task: asyncio.Task[None] | None = None
    listening: Listening | None = None
    try:
        gateway_url: str | None = None
        if "gateway" in roles and settings.gateway_enabled:
            gateway_server, gateway_task, gateway_url = await _start_gateway(runtime, redis)
        if "dispatch" in roles:
            follow_ups = FollowUps(intake, redis, runtime.db, runtime.box)
            backend = make_backend(settings, runtime.db)
            dispatcher = Dispatcher(
                settings,
                runtime.db,
                redis_url,
                backend,
                run_engine,
                box=runtime.box,
                gateway=_gateway_access(runtime, gateway_url),
                on_run_finished=follow_ups.after_run,
            )
            await dispatcher.start()
            # The outbox's writes to GitHub (acks, PRs, reviews, check runs).
            notifier_task = asyncio.create_task(
                make_notifier(runtime.db, runtime.box, redis).run(sweeps_stop)
            )
            if settings.backend == "docker":
                # Worker image validations run here, where the container engine is (issue 13).
                import docker.constants

                from gaffer.images.consumer import ImageValidations

                validations = ImageValidations.for_engine(
                    runtime.db,
                    runtime.box,
                    redis,
                    settings.docker_host or docker.constants.DEFAULT_UNIX_SOCKET,
                )
                await validations.start()
                snapshots = getattr(backend, "snapshots", None)
                if snapshots is not None:
                    # Closed PRs' snapshots are deleted here, where their images are (issue 14).
                    from gaffer.snapshots.drops import SnapshotDrops

                    drops = SnapshotDrops(redis, snapshots)
                    await drops.start()
        if "drain" in roles:
            projects = ProjectCache(runtime.db, runtime.box, settings.project_cache_ttl_s)
            replayer = Replayer(settings, buffer, run_engine, projects)
            drainer = Drainer(settings, runtime.db, buffer, replayer)
            await drainer.start()
            reclaim, stale = Reclaimer(settings, buffer), StaleSweeper(settings, buffer)
            sweeps = [
                asyncio.create_task(
                    every(
                        settings.buffer_reclaim_interval_ms / 1000,
                        reclaim.run_once,
                        sweeps_stop,
                        "reclaim",
                    )
                ),
                asyncio.create_task(
                    every(
                        settings.buffer_stale_interval_ms / 1000,
                        stale.run_once,
                        sweeps_stop,
                        "stale",
                    )
                ),
            ]
        if "ingest" in roles:
            directory = ProjectDirectory(runtime.db, runtime.box, settings.project_cache_ttl_s)
            access = RunAccess(runtime.db, buffer, run_engine)
            app = create_app(
                GitHubIngest(settings, runtime.db, redis, directory, intake),
                buffer=buffer,
                access=access,
            )
            mount_v1(
                app,
                ApiServices(
                    settings,
                    runtime.db,
                    runtime.box,
                    redis,
                    access,
                    intake,
                    buffer,
                    LoginLimiter(redis),
                ),
            )
            sock = bind(host, port)
            listening = Listening(host, sock.getsockname()[1])
            config = uvicorn.Config(
                app, log_config=None, access_log=False, lifespan="off", timeout_keep_alive=30
            )
            server = _Server(config)
            server_task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                if server_task.done():
                    await server_task
                    raise RuntimeError("the ingest server stopped during start-up")
                await asyncio.sleep(0.01)
        log.info("gaffer_up", roles=sorted(roles), url=listening.url if listening else None)
        if on_ready is not None:
            on_ready(listening)
        await stop.wait()
    finally:
        log.info("gaffer_stopping")
        if server is not None and server_task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server_task
        sweeps_stop.set()
        if sweeps:
            await asyncio.gather(*sweeps, return_exceptions=True)
        if notifier_task is not None:
            await asyncio.gather(notifier_task, return_exceptions=True)
        if drainer is not None:
            await drainer.stop()
        if validations is not None:
            await validations.stop()
        if drops is not None:
            await drops.stop()
        if dispatcher is not None:
            await dispatcher.stop()
        if gateway_server is not None and gateway_task is not None:
            gateway_server.should_exit = True
            with contextlib.suppress(Exception):
                await gateway_task
        await queue.close()
        await redis.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _start_gateway(
    runtime: Runtime, redis: aioredis.Redis
) -> tuple[_Server, asyncio.Task[None], str]:
    """Serve the model gateway on its own port; returns the server, its task and its URL."""
    from gaffer.coordination.cancel import request_stop
    from gaffer.gateway.agent_upstreams import AgentUpstreams
    from gaffer.gateway.proxy import create_app as create_gateway_app
    from gaffer.gateway.service import Gateway

    settings = runtime.settings

    async def stop_run(run_id: str, reason: str) -> None:
        await request_stop(redis, run_id, reason)

    gateway = Gateway.open(
        runtime,
        redis,
        resolver=AgentUpstreams(runtime.db, runtime.box),
        on_budget_exceeded=stop_run,
    )
    sock = bind(settings.gateway_host, settings.gateway_port)
    where = Listening(settings.gateway_host, sock.getsockname()[1])
    config = uvicorn.Config(
        create_gateway_app(gateway),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=75,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the gateway stopped during start-up")
        await asyncio.sleep(0.01)
    log.info("gateway_up", url=where.url)
    return server, task, where.url


def _gateway_access(runtime: Runtime, listening_url: str | None) -> GatewayAccess | None:
    """How this process's dispatcher hands workers the gateway (None: the gateway is off)."""
    from gaffer.gateway.settings import GatewaySettings
    from gaffer.gateway.tokens import RunTokens
    from gaffer.store.crypto import load_master_key

    settings = runtime.settings
    if not settings.gateway_enabled:
        log.warning("gateway_disabled", detail="provider keys are handed to workers")
        return None
    return GatewayAccess.of(
        settings,
        listening_url,
        RunTokens(load_master_key(settings)),
        GatewaySettings().token_ttl_s,
    )
