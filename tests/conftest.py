"""Shared fixtures: a private Redis and PostgreSQL for the session, settings per test."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from cryptography.fernet import Fernet

from gaffer.settings import Settings
from tests.support.containers import WORKER_IMAGE, PodmanService, build_worker_image, new_instance
from tests.support.harness import Gaffer, running_gaffer
from tests.support.servers import PostgresServer, RedisServer

MASTER_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test starts with the logging set-up the one before it found.

    An in-process CLI command calls ``configure_logging(quiet=True)``, whose WARNING filter
    would otherwise outlive it: a later test's ``capture_logs`` (which swaps the processors,
    not the level filter) then never sees an info event. CI found this, not a single run.
    """
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test (restarted if a test stopped it)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each test using this runs twice: on SQLite (None: the default file) and PostgreSQL."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> SettingsFactory:
    """Settings for this test: its own data dir, the session Redis, fast stop timings."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "redis_url": redis_url,
            "database_url": None,
            "master_key": MASTER_KEY,
            "cancel_grace_s": 2.0,
            "project_cache_ttl_s": 0.0,
            **overrides,
        }
        return Settings(**values)

    return make


GafferFactory = Callable[..., Gaffer]


@pytest.fixture
def start_gaffer(make_settings: SettingsFactory) -> Iterator[GafferFactory]:
    """Start gaffer (ingest + dispatch in a thread) with settings overrides; stopped after."""
    stack: list[Any] = []

    def start(
        roles: tuple[str, ...] = ("ingest", "dispatch", "gateway"), **overrides: Any
    ) -> Gaffer:
        cm = running_gaffer(make_settings(**overrides), roles)
        gaffer = cm.__enter__()
        stack.append(cm)
        return gaffer

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio."""
    return "asyncio"


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client (``str`` replies) on the session's Redis, for async tests."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def podman() -> Iterator[PodmanService]:
    """The session's container engine (Podman's Docker API), with the worker image built."""
    build_worker_image()
    service = PodmanService()
    yield service
    service.close()


class DockerGaffers:
    """Starts gaffers on the ``docker`` backend, all with this test's ``gaffer.instance``."""

    def __init__(self, make_settings: SettingsFactory, podman: PodmanService) -> None:
        self.make_settings = make_settings
        self.podman = podman
        self.instance = new_instance()
        self._running: list[tuple[Gaffer, Any]] = []

    def settings(self, **overrides: Any) -> Settings:
        """Settings for a docker gaffer of this test (``overrides`` win)."""
        values: dict[str, Any] = {
            "backend": "docker",
            "docker_host": self.podman.url,
            "instance": self.instance,
            "worker_image": WORKER_IMAGE,
            **overrides,
        }
        return self.make_settings(**values)

    def start(
        self, roles: tuple[str, ...] = ("ingest", "dispatch", "gateway"), **overrides: Any
    ) -> Gaffer:
        """Start gaffer in a thread; it is stopped when the test ends."""
        cm = running_gaffer(self.settings(**overrides), roles)
        gaffer = cm.__enter__()
        self._running.append((gaffer, cm))
        return gaffer

    def stop(self, gaffer: Gaffer) -> None:
        """Stop one gaffer the way SIGTERM does (gracefully)."""
        [cm] = [cm for running, cm in self._running if running is gaffer]
        self._running.remove((gaffer, cm))
        cm.__exit__(None, None, None)

    def containers(self) -> list[dict[str, Any]]:
        """This test's worker containers, running or not."""
        return self.podman.managed(self.instance)

    def wait_until_removed(self, timeout: float = 30) -> None:
        """Wait until no container of this test is left (a dispatcher removes a worker right
        after it recorded the run's outcome)."""
        deadline = time.monotonic() + timeout
        while leftovers := self.containers():
            assert time.monotonic() < deadline, f"containers left: {leftovers}"
            time.sleep(0.05)

    def stop_all(self) -> None:
        while self._running:
            self._running.pop()[1].__exit__(None, None, None)


@pytest.fixture
def docker_gaffers(
    make_settings: SettingsFactory, podman: PodmanService
) -> Iterator[DockerGaffers]:
    """Docker gaffers for this test; afterwards, no container of the test may be left behind,
    running or stopped (checked through the engine's API, by label)."""
    gaffers = DockerGaffers(make_settings, podman)
    yield gaffers
    gaffers.stop_all()
    leftovers = gaffers.containers()
    podman.remove_all(gaffers.instance)
    assert leftovers == [], f"containers left behind: {[c['Names'] for c in leftovers]}"
