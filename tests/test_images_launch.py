"""Runs launch only a verified worker image (issue 13): a real gaffer on the docker backend
(ingest + dispatch, whose image validations run beside the dispatcher), a real registry, real
containers. A project with a verified image runs in its pinned digest; once its reference is one
that fails validation, its runs fail at once with the reason, and a project without an image of
its own runs on the global default, unaffected. The registry needs credentials: a project's
verified digest that is no longer on the engine is pulled at launch with the project's registry
credentials, which never reach the worker container."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import redis

from gaffer.accounts.principal import Principal
from gaffer.images import queue
from gaffer.images.state import set_registry_auth, set_worker_image
from gaffer.store.models import Project
from tests.conftest import DockerGaffers, SettingsFactory
from tests.support.containers import WORKER_IMAGE, PodmanService
from tests.support.harness import Gaffer, ProjectInfo
from tests.support.registry import LocalRegistry, busybox_image
from tests.test_lifecycle import LABELED


@dataclass
class Engine:
    """The module's Podman service and its registry (htpasswd auth) with what was pushed."""

    podman: PodmanService
    registry: LocalRegistry
    good: str
    pinned: str
    broken: str


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    registry = LocalRegistry(auth=True)
    service = PodmanService()  # after the registry's insecure drop-in
    try:
        digest = registry.push(WORKER_IMAGE, "gaffer/worker:good")
        broken = busybox_image("launch-broken", {}, tmp_path_factory.mktemp("img"))
        registry.push(broken, "gaffer/broken:1")
        good = f"{registry.host}/gaffer/worker:good"
        pinned = f"{registry.host}/gaffer/worker@{digest}"
        yield Engine(service, registry, good, pinned, f"{registry.host}/gaffer/broken:1")
    finally:
        service.close()
        registry.close()


@pytest.fixture
def gaffers(make_settings: SettingsFactory, engine: Engine) -> Iterator[DockerGaffers]:
    podman = engine.podman
    gaffers = DockerGaffers(make_settings, podman)
    yield gaffers
    gaffers.stop_all()
    leftovers = gaffers.containers()
    podman.remove_all(gaffers.instance)
    assert leftovers == [], leftovers


def set_image(
    gaffer: Gaffer, project: ProjectInfo, reference: str, registry: LocalRegistry | None = None
) -> None:
    """Set the project's image (and, with ``registry``, its credentials) and enqueue its
    validation."""
    with gaffer.rt.db.session() as session:
        row = session.get(Project, project.id)
        assert row is not None
        if registry is not None:
            assert registry.user and registry.password
            set_registry_auth(
                session, Principal.local(), gaffer.rt.box, row, registry.user, registry.password
            )
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


def inspect_while_running(gaffers: DockerGaffers, run_id: str) -> dict[str, Any]:
    """The engine's inspect of the run's container, taken while it exists."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for item in gaffers.containers():
            if item["Labels"].get("gaffer.run.id") == run_id:
                with contextlib.suppress(docker.errors.NotFound):
                    return dict(gaffers.podman.client.api.inspect_container(item["Id"]))
        time.sleep(0.02)
    raise AssertionError(f"no container seen for run {run_id}")


def test_runs_use_the_pinned_digest_and_fail_at_once_for_an_image_not_verified(
    gaffers: DockerGaffers, engine: Engine
) -> None:
    good, pinned, broken = engine.good, engine.pinned, engine.broken
    gaffer = gaffers.start()
    own = gaffer.create_project(command="echo own > RESULT.txt", repository="acme/own")
    plain = gaffer.create_project(command="echo plain > RESULT.txt", repository="acme/plain")
    set_image(gaffer, own, good, engine.registry)
    assert wait_status(gaffer, own, "verified") == ("verified", pinned, None)

    run_id = deliver(gaffer, own, "acme/own", 1)
    seen = inspect_while_running(gaffers, run_id)["Config"]["Image"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    assert seen == pinned, seen

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


def test_a_verified_private_digest_gone_from_the_engine_is_pulled_with_the_credentials(
    gaffers: DockerGaffers, engine: Engine, tmp_path: Path
) -> None:
    registry = engine.registry
    assert registry.password is not None
    # An image of its own (the worker image plus a label: same layers, another id), so that
    # removing it from the engine leaves the shared worker image alone.
    tag = uuid.uuid4().hex[:12]
    local = f"localhost/gaffer-test-private-{tag}:1"
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {WORKER_IMAGE}\nLABEL gaffer.test.private={tag}\n")
    podman_cli("build", "--pull=never", "-q", "-t", local, "-f", str(containerfile), str(tmp_path))
    digest = registry.push(local, f"team/private-{tag}:1")
    image_id = podman_cli("image", "inspect", "--format", "{{.Id}}", local).strip()
    podman_cli("rmi", local)
    reference = f"{registry.host}/team/private-{tag}:1"
    pinned = f"{registry.host}/team/private-{tag}@{digest}"

    try:
        gaffer = gaffers.start()
        project = gaffer.create_project(command="echo private > RESULT.txt", repository="acme/priv")
        set_image(gaffer, project, reference, registry)
        assert wait_status(gaffer, project, "verified") == ("verified", pinned, None)
        # Pruned (or validated on another dispatcher's engine): the launch must pull it again, and
        # the registry answers 401 to a pull without the project's credentials.
        podman_cli("rmi", "--force", image_id)
        assert subprocess.run(["podman", "image", "exists", pinned], check=False).returncode == 1

        run_id = deliver(gaffer, project, "acme/priv", 7)
        inspect = inspect_while_running(gaffers, run_id)
        run = gaffer.wait_for(run_id)
        assert run["status"] == "SUCCEEDED", run
        assert inspect["Config"]["Image"] == pinned
        assert inspect["Image"].removeprefix("sha256:") == image_id.removeprefix("sha256:")
        # The credentials went to the engine's pull only: not in the container's env, labels,
        # command or anywhere else the engine reports about it.
        text = json.dumps(inspect)
        encoded = base64.b64encode(registry.password.encode()).decode()
        assert registry.password not in text and encoded not in text
    finally:
        subprocess.run(["podman", "rmi", "--force", image_id], check=False, capture_output=True)


def podman_cli(*args: str) -> str:
    """Run the podman CLI (the same storage as the module's service); its stdout."""
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True).stdout
