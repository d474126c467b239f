"""Runs launch only a verified worker image (issue 13): a real gaffer on the docker backend
(ingest + dispatch, whose image validations run beside the dispatcher), a real registry, real
containers. A project with a verified image runs in its pinned digest; once its reference is one
that fails validation, its runs fail at once with the reason, and a project without an image of
its own runs on the global default, unaffected."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from gaffer.accounts.principal import Principal
from gaffer.images import queue
from gaffer.images.state import set_worker_image
from gaffer.store.models import Project
from tests.conftest import DockerGaffers, SettingsFactory
from tests.support.containers import WORKER_IMAGE, PodmanService
from tests.support.harness import Gaffer, ProjectInfo
from tests.support.registry import LocalRegistry, busybox_image
from tests.test_lifecycle import LABELED


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PodmanService, str, str, str]]:
    registry = LocalRegistry()
    service = PodmanService()  # after the registry's insecure drop-in
    try:
        digest = registry.push(WORKER_IMAGE, "gaffer/worker:good")
        broken = busybox_image("launch-broken", {}, tmp_path_factory.mktemp("img"))
        registry.push(broken, "gaffer/broken:1")
        good = f"{registry.host}/gaffer/worker:good"
        pinned = f"{registry.host}/gaffer/worker@{digest}"
        yield service, good, pinned, f"{registry.host}/gaffer/broken:1"
    finally:
        service.close()
        registry.close()


@pytest.fixture
def gaffers(
    make_settings: SettingsFactory, engine: tuple[PodmanService, str, str, str]
) -> Iterator[DockerGaffers]:
    podman = engine[0]
    gaffers = DockerGaffers(make_settings, podman)
    yield gaffers
    gaffers.stop_all()
    leftovers = gaffers.containers()
    podman.remove_all(gaffers.instance)
    assert leftovers == [], leftovers


def set_image(gaffer: Gaffer, project: ProjectInfo, reference: str) -> None:
    with gaffer.rt.db.session() as session:
        row = session.get(Project, project.id)
        assert row is not None
        set_worker_image(session, Principal.local(), row, reference)
    client = redis.Redis.from_url(gaffer.settings.redis_url or "")
    client.rpush(queue.QUEUE_KEY, queue.ValidationRequest(project.id, reference).encode())
    client.close()


def wait_status(gaffer: Gaffer, project: ProjectInfo, wanted: str) -> tuple[str | None, ...]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with gaffer.rt.db.session() as session:
            row = session.get(Project, project.id)
            assert row is not None
            got = (row.worker_image_status, row.worker_image_digest, row.worker_image_error)
        if got[0] == wanted:
            return got
        time.sleep(0.1)
    raise AssertionError(f"worker image never {wanted}: {got}")


def deliver(gaffer: Gaffer, project: ProjectInfo, repository: str, issue: int) -> str:
    payload = json.loads(LABELED)
    payload["issue"]["number"] = issue
    payload["repository"]["full_name"] = repository
    response = gaffer.deliver(
        json.dumps(payload).encode(), "issues", project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return run_id


def test_runs_use_the_pinned_digest_and_fail_at_once_for_an_image_not_verified(
    gaffers: DockerGaffers, engine: tuple[PodmanService, str, str, str]
) -> None:
    podman, good, pinned, broken = engine
    gaffer = gaffers.start()
    own = gaffer.create_project(command="echo own > RESULT.txt", repository="acme/own")
    plain = gaffer.create_project(command="echo plain > RESULT.txt", repository="acme/plain")
    set_image(gaffer, own, good)
    assert wait_status(gaffer, own, "verified") == ("verified", pinned, None)

    seen: list[str] = []
    run_id = deliver(gaffer, own, "acme/own", 1)
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline:
        for item in gaffers.containers():
            if item["Labels"].get("gaffer.run.id") == run_id:
                seen.append(podman.client.api.inspect_container(item["Id"])["Config"]["Image"])
        time.sleep(0.02)
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    assert seen and seen[0] == pinned, seen

    # The operator sets an image that fails validation: the project's runs fail at once.
    set_image(gaffer, own, broken)
    _, _, error = wait_status(gaffer, own, "failed")
    assert error is not None and "python (python --version)" in error
    failed = gaffer.wait_for(deliver(gaffer, own, "acme/own", 2))
    assert failed["status"] == "SYSTEM_FAILURE", failed
    assert "failed validation" in (failed["error"] or "") and broken in failed["error"]
    # Another project, without an image of its own, runs on the global default.
    other = gaffer.wait_for(deliver(gaffer, plain, "acme/plain", 3))
    assert other["status"] == "SUCCEEDED", other
