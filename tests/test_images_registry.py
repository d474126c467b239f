"""Worker image validation against a real registry and real containers (issue 13).

One local registry (``docker-registry``) and one with htpasswd auth, a Podman API service of
this module's own started after both are marked insecure; the worker image pushed as the good
image, busybox images as broken ones. Containers are kept few: one smoke test per validation.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from gaffer.accounts.principal import Principal
from gaffer.backends.docker import EngineUnreachableError
from gaffer.images import queue
from gaffer.images.consumer import ImageValidations
from gaffer.images.launch import effective_image
from gaffer.images.state import (
    ValidationResult,
    set_registry_auth,
    set_worker_image,
)
from gaffer.images.validation import SMOKE_LABEL, ImageValidator
from gaffer.runtime import Runtime, open_runtime
from gaffer.store.models import Project
from gaffer.store.projects import create_project
from gaffer.triggers.github import default_agent_setups
from tests.conftest import SettingsFactory
from tests.support.containers import WORKER_IMAGE, PodmanService, build_worker_image
from tests.support.registry import LocalRegistry, busybox_image

LOCAL = Principal.local()
FAKE_PYTHON = 'echo "Python 3.11.2"'
FAKE_GIT = 'echo "git version 2.39.5"'


class Images:
    """What the module pushed: references and their manifest digests."""

    def __init__(self, registry: LocalRegistry, private: LocalRegistry, work: Path) -> None:
        exists = subprocess.run(["podman", "image", "exists", WORKER_IMAGE], check=False)
        if exists.returncode != 0:
            build_worker_image()
        self.good = f"{registry.host}/gaffer/worker:good"
        self.good_digest = registry.push(WORKER_IMAGE, "gaffer/worker:good")
        broken = busybox_image("broken", {}, work)
        self.broken = f"{registry.host}/gaffer/broken:1"
        registry.push(broken, "gaffer/broken:1")
        nocli = busybox_image("nocli", {"python": FAKE_PYTHON, "git": FAKE_GIT}, work)
        self.nocli = f"{registry.host}/gaffer/nocli:1"
        registry.push(nocli, "gaffer/nocli:1")
        hang = busybox_image("hang", {"python": "sleep 600"}, work)
        self.hang = f"{registry.host}/gaffer/hang:1"
        registry.push(hang, "gaffer/hang:1")
        self.local_only = busybox_image("local-only", {"python": FAKE_PYTHON}, work)
        self.private = f"{private.host}/team/worker:1"
        self.private_digest = private.push(WORKER_IMAGE, "team/worker:1")
        self.missing_tag = f"{registry.host}/gaffer/worker:no-such-tag"
        self.unreachable = f"127.0.0.1:{_closed_port()}/gaffer/worker:1"


def _closed_port() -> int:
    from tests.support.registry import free_port

    return free_port()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PodmanService, Images]]:
    registry = LocalRegistry()
    private = LocalRegistry(auth=True)
    service = PodmanService()  # after the drop-ins: it reads registries.conf at start
    try:
        yield service, Images(registry, private, tmp_path_factory.mktemp("images"))
    finally:
        service.close()
        registry.close()
        private.close()


@pytest.fixture
def rt(make_settings: SettingsFactory, database_url: str | None) -> Iterator[Runtime]:
    with open_runtime(make_settings(database_url=database_url), redis=False) as runtime:
        yield runtime


def new_project(rt: Runtime, name: str, engine: str = "command") -> str:
    settings = {"command": "true"} if engine == "command" else {}
    with rt.db.session() as session:
        project = create_project(
            session,
            rt.box,
            name=name,
            repository=f"acme/{name}",
            clone_url="/nonexistent",
            webhook_secret="s" * 16,
            bot_login="bot",
            agents=default_agent_setups(engine, settings, ["implementation"]),
        )
        return project.id


def set_image(rt: Runtime, project_id: str, reference: str) -> None:
    with rt.db.session() as session:
        project = session.get(Project, project_id)
        assert project is not None
        set_worker_image(session, LOCAL, project, reference)


def columns(rt: Runtime, project_id: str) -> tuple[str | None, str | None, str | None]:
    with rt.db.session() as session:
        p = session.get(Project, project_id)
        assert p is not None
        return p.worker_image_status, p.worker_image_digest, p.worker_image_error


def validate(
    rt: Runtime, podman: PodmanService, redis_url: str, project_id: str, reference: str, **kw: float
) -> ValidationResult | None:
    async def go() -> ValidationResult | None:
        client = aioredis.Redis.from_url(redis_url)
        consumer = ImageValidations.for_engine(rt.db, rt.box, client, podman.url, **kw)
        try:
            return await consumer.process(queue.ValidationRequest(project_id, reference))
        finally:
            consumer.validator.close()
            await client.aclose()

    return asyncio.run(go())


def smoke_containers(podman: PodmanService) -> list[object]:
    return list(podman.client.api.containers(all=True, filters={"label": SMOKE_LABEL}))


def test_the_good_image_is_verified_with_its_exact_digest_and_runs_launch_by_it(
    engine: tuple[PodmanService, Images], rt: Runtime, redis_url: str
) -> None:
    podman, images = engine
    pid = new_project(rt, "good")
    other = new_project(rt, "other")
    set_image(rt, pid, images.good)
    assert columns(rt, pid) == ("pending", None, None)
    validate(rt, podman, redis_url, pid, images.good)
    pinned = f"{images.good.rsplit(':', 1)[0]}@{images.good_digest}"
    assert columns(rt, pid) == ("verified", pinned, None)
    assert effective_image(rt.db, pid, WORKER_IMAGE) == pinned
    assert effective_image(rt.db, other, WORKER_IMAGE) == WORKER_IMAGE
    # The pinned reference is what the engine runs: a container of it starts and exits 0.
    out = podman.client.containers.run(
        pinned, ["python", "-c", "import gaffer.worker.main; print('ok')"], remove=True
    )
    assert out.strip() == b"ok"
    assert smoke_containers(podman) == []


@pytest.mark.parametrize(
    ("which", "engine_name", "reason"),
    [
        ("broken", "command", "smoke test check failed: python (python --version)"),
        ("nocli", "codex", "smoke test check failed: engine codex CLI (codex --version)"),
        ("local_only", "command", "no registry digest"),
        ("missing_tag", "command", "pull failed:"),
        ("unreachable", "command", "pull failed:"),
    ],
)
def test_a_bad_image_fails_with_the_reason(
    engine: tuple[PodmanService, Images],
    rt: Runtime,
    redis_url: str,
    which: str,
    engine_name: str,
    reason: str,
) -> None:
    podman, images = engine
    reference = getattr(images, which)
    pid = new_project(rt, which.replace("_", "-"), engine_name)
    set_image(rt, pid, reference)
    validate(rt, podman, redis_url, pid, reference)
    status, digest, error = columns(rt, pid)
    assert (status, digest) == ("failed", None)
    assert error is not None and reason in error, error
    if which == "nocli":
        assert "python (python --version)" not in error  # the first failing check only
    assert smoke_containers(podman) == []


def test_a_hanging_smoke_test_is_stopped_at_its_timeout_and_removed(
    engine: tuple[PodmanService, Images], rt: Runtime, redis_url: str
) -> None:
    podman, images = engine
    pid = new_project(rt, "hang")
    set_image(rt, pid, images.hang)
    validate(rt, podman, redis_url, pid, images.hang, smoke_timeout_s=3)
    status, _, error = columns(rt, pid)
    assert status == "failed" and error == "smoke test timed out after 3 s"
    assert smoke_containers(podman) == []


def test_a_result_for_a_changed_reference_is_dropped_and_the_current_one_enqueued(
    engine: tuple[PodmanService, Images], rt: Runtime, redis_url: str
) -> None:
    podman, images = engine
    pid = new_project(rt, "reset")
    set_image(rt, pid, images.broken)
    # The operator changes the reference while the first validation is in flight: simulated
    # by setting the new reference before the first one's result is recorded.
    set_image(rt, pid, images.good)
    first = validate(rt, podman, redis_url, pid, images.broken)
    assert first is None
    assert columns(rt, pid) == ("pending", None, None)
    client = redis.Redis.from_url(redis_url)
    entries = [queue.ValidationRequest.decode(e) for e in client.lrange(queue.QUEUE_KEY, 0, -1)]
    client.close()
    assert entries == [queue.ValidationRequest(pid, images.good)]
    validate(rt, podman, redis_url, pid, images.good)
    assert columns(rt, pid)[0] == "verified"


def test_a_private_registry_needs_the_projects_credentials(
    engine: tuple[PodmanService, Images], rt: Runtime, redis_url: str
) -> None:
    podman, images = engine
    pid = new_project(rt, "private")
    set_image(rt, pid, images.private)
    validate(rt, podman, redis_url, pid, images.private)
    status, _, error = columns(rt, pid)
    assert status == "failed" and error is not None and "pull failed" in error
    with rt.db.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        set_registry_auth(session, LOCAL, rt.box, project, "gaffer-puller", "s3cret-pull-pw")
        set_worker_image(session, LOCAL, project, images.private)
        stored = project.worker_image_registry_auth_encrypted
    assert stored is not None and b"s3cret" not in stored
    validate(rt, podman, redis_url, pid, images.private)
    pinned = f"{images.private.rsplit(':', 1)[0]}@{images.private_digest}"
    assert columns(rt, pid) == ("verified", pinned, None)


def test_an_unreachable_engine_raises_for_a_retry() -> None:
    validator = ImageValidator("unix:///nonexistent/podman.sock")
    with pytest.raises(EngineUnreachableError):
        validator.validate("127.0.0.1:5000/x:1")


def test_a_reference_set_while_a_validation_is_in_flight_wins(
    engine: tuple[PodmanService, Images], rt: Runtime, redis_url: str
) -> None:
    podman, images = engine
    pid = new_project(rt, "in-flight")
    set_image(rt, pid, images.hang)

    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        consumer = ImageValidations.for_engine(
            rt.db, rt.box, client, podman.url, smoke_timeout_s=4, retry_s=0.1
        )
        await consumer.start()  # enqueues the pending project: the hanging image
        try:
            for _ in range(1200):  # until its smoke test is running
                if smoke_containers(podman):
                    break
                await asyncio.sleep(0.05)
            set_image(rt, pid, images.good)
            await queue.enqueue(client, queue.ValidationRequest(pid, images.good))
            for _ in range(1200):
                if columns(rt, pid)[0] != "pending":
                    break
                await asyncio.sleep(0.05)
        finally:
            await consumer.stop()
            await client.aclose()

    asyncio.run(go())
    pinned = f"{images.good.rsplit(':', 1)[0]}@{images.good_digest}"
    assert columns(rt, pid) == ("verified", pinned, None)
    assert smoke_containers(podman) == []


def test_an_unreachable_engine_leaves_the_project_pending_and_the_request_queued(
    rt: Runtime, redis_url: str
) -> None:
    pid = new_project(rt, "no-engine")
    reference = "127.0.0.1:5000/x:1"
    set_image(rt, pid, reference)

    async def go() -> ValidationResult | None:
        client = aioredis.Redis.from_url(redis_url)
        consumer = ImageValidations.for_engine(
            rt.db, rt.box, client, "unix:///nonexistent/podman.sock", retry_s=0.01
        )
        try:
            return await consumer.process(queue.ValidationRequest(pid, reference))
        finally:
            consumer.validator.close()
            await client.aclose()

    assert asyncio.run(go()) is None
    assert columns(rt, pid) == ("pending", None, None)
    client = redis.Redis.from_url(redis_url)
    entries = [queue.ValidationRequest.decode(e) for e in client.lrange(queue.QUEUE_KEY, 0, -1)]
    client.close()
    assert entries == [queue.ValidationRequest(pid, reference)]
