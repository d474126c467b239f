"""A dispatcher that dies (SIGKILL, a real ``gaffer up`` process) or stops (gracefully) while its
run's container runs: the next dispatcher re-attaches to the container, or records why it
cannot. And the engine's API service restarting under a running dispatcher."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from gaffer.store.models import RunStatus, utcnow
from gaffer.store.runs import set_fields, transition
from tests.conftest import MASTER_KEY, DockerGaffers
from tests.support.containers import PodmanService
from tests.support.harness import Gaffer, ProjectInfo
from tests.support.jobs import wait_for_job
from tests.support.process import GafferUp, gaffer_env
from tests.test_dispatch_faults import lease_keys
from tests.test_lifecycle import gaffer_worker_ref, git_show, trigger


def dispatcher_env(gaffers: DockerGaffers, ingest: Gaffer) -> dict[str, str]:
    """The env of a ``gaffer up --role dispatch`` sharing ``ingest``'s data, Redis and engine,
    with a 1 s job lock so that a dead dispatcher's job comes back within seconds."""
    settings = ingest.settings
    extra = {
        "REDIS_URL": ingest.rt.require_redis(),
        "GAFFER_MASTER_KEY": MASTER_KEY,
        "GAFFER_BACKEND": "docker",
        "DOCKER_HOST": gaffers.podman.url,
        "GAFFER_INSTANCE": gaffers.instance,
        "GAFFER_WORKER_IMAGE": settings.worker_image,
        "GAFFER_CANCEL_GRACE_S": "2",
        "GAFFER_JOB_LOCK_MS": "1000",
        "GAFFER_STALLED_INTERVAL_MS": "500",
    }
    if settings.database_url:
        extra["DATABASE_URL"] = settings.database_url
    return gaffer_env(settings.home, **extra)


@contextmanager
def dispatcher(env: dict[str, str]) -> Iterator[GafferUp]:
    process = GafferUp(env, "--role", "dispatch")
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.terminate()


def wait_for_log(gaffer: Gaffer, run_id: str, line: tuple[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while line not in gaffer.logs(run_id):
        assert time.monotonic() < deadline, f"{line} never logged; logs: {gaffer.logs(run_id)}"
        time.sleep(0.05)


def barrier_project(gaffer: Gaffer, name: str, then: str = "") -> tuple[ProjectInfo, Path]:
    """A project whose engine says "before", waits for a file (returned) to appear in the bare
    repository's directory (mounted into the container), runs ``then``, writes AFTER.txt and
    says "after"."""
    release = gaffer.settings.home / "repos" / name / "Hello-World.git" / "test-release"
    project = gaffer.create_project(
        name=name,
        command=f'echo before; while [ ! -f "{release}" ]; do sleep 0.05; done; {then}'
        "echo after > AFTER.txt; echo after",
    )
    return project, release


def assert_finished_after_release(run: dict[str, Any], project: ProjectInfo) -> None:
    assert run["status"] == "SUCCEEDED", run
    assert project.bare is not None
    assert git_show(project.bare, f"{run['branch']}:AFTER.txt") == "after\n"


def run_then_kill_the_dispatcher(
    gaffers: DockerGaffers, ingest: Gaffer, run_id: str
) -> tuple[dict[str, str], str]:
    """Dispatch the run, wait until its engine runs, SIGKILL the dispatcher; returns the env
    for the next dispatcher and the container's id."""
    env = dispatcher_env(gaffers, ingest)
    with dispatcher(env) as first:
        wait_for_log(ingest, run_id, ("engine", "before"))
        container = gaffer_worker_ref(ingest, run_id)
        first.kill()
    assert ingest.run(run_id)["status"] == "RUNNING"
    assert [c["Id"] for c in gaffers.containers()] == [container]
    return env, container


def test_a_restarted_dispatcher_reattaches_to_the_running_container(
    docker_gaffers: DockerGaffers, database_url: str | None
) -> None:
    ingest = docker_gaffers.start(roles=("ingest",), database_url=database_url)
    project, release = barrier_project(ingest, "restart")
    run_id = trigger(ingest, project)
    env, container = run_then_kill_the_dispatcher(docker_gaffers, ingest, run_id)

    with dispatcher(env):
        wait_for_log(ingest, run_id, ("system", f"re-attached to the worker ({container})"))
        release.touch()
        run = ingest.wait_for(run_id)
    assert_finished_after_release(run, project)
    logs = ingest.logs(run_id)
    # Every line of the engine's output once: what the dead dispatcher recorded ("before",
    # moments before it was killed) is not read again, and nothing after it is lost.
    assert [m for stream, m in logs if stream == "engine"] == ["before", "after"], logs
    docker_gaffers.wait_until_removed()


def test_the_timeout_of_a_reattached_run_counts_from_its_start(
    docker_gaffers: DockerGaffers,
) -> None:
    ingest = docker_gaffers.start(roles=("ingest",), run_timeout_s=600.0)
    project = ingest.create_project(command="echo before; sleep 3600")
    run_id = trigger(ingest, project)
    env, _ = run_then_kill_the_dispatcher(docker_gaffers, ingest, run_id)
    # The run has been going for longer than its timeout (but not long enough for the orphan
    # sweep): the next dispatcher re-attaches and stops it at once.
    with ingest.rt.db.session() as session:
        set_fields(session, run_id, started_at=utcnow() - timedelta(seconds=601))

    with dispatcher(env):
        run = ingest.wait_for(run_id)
    assert run["status"] == "TIMED_OUT", run
    assert run["error"] == "timed out after 600 s"
    docker_gaffers.wait_until_removed()


def test_a_run_whose_container_vanished_fails_with_the_reason(
    docker_gaffers: DockerGaffers,
) -> None:
    ingest = docker_gaffers.start(roles=("ingest",))
    project = ingest.create_project(command="echo before; sleep 3600")
    run_id = trigger(ingest, project)
    env, container = run_then_kill_the_dispatcher(docker_gaffers, ingest, run_id)
    docker_gaffers.podman.client.api.remove_container(container, force=True)

    with dispatcher(env):
        run = ingest.wait_for(run_id, [RunStatus.FAILED])
    assert run["error"] == (
        f"the worker container gaffer-worker-{run_id} vanished while no dispatcher was watching it"
    )


def test_a_graceful_restart_leaves_the_container_running_for_the_next_dispatcher(
    docker_gaffers: DockerGaffers,
) -> None:
    first = docker_gaffers.start()
    project, release = barrier_project(first, "graceful")
    run_id = trigger(first, project)
    wait_for_log(first, run_id, ("engine", "before"))
    container = gaffer_worker_ref(first, run_id)
    docker_gaffers.stop(first)
    # The run goes on in its container, with no dispatcher.
    [item] = docker_gaffers.containers()
    assert (item["Id"], item["State"]) == (container, "running")

    second = docker_gaffers.start()
    assert second.run(run_id)["status"] == "RUNNING"
    wait_for_log(second, run_id, ("system", f"re-attached to the worker ({container})"))
    release.touch()
    run = second.wait_for(run_id)
    assert_finished_after_release(run, project)
    logs = second.logs(run_id)
    assert ("system", "dispatcher stopping: the worker runs on, to be re-attached") in logs
    assert logs.count(("engine", "after")) == 1
    docker_gaffers.wait_until_removed()


def test_the_engine_service_restarting_loses_no_output(docker_gaffers: DockerGaffers) -> None:
    """The dispatcher's log stream and wait break while the API service is down; the container
    runs on, and both resume: every line once, the real outcome recorded."""
    service = PodmanService()
    try:
        gaffer = docker_gaffers.start(docker_host=service.url)
        project, release = barrier_project(gaffer, "engine", "for i in 1 2 3; do echo same; done; ")
        run_id = trigger(gaffer, project)
        wait_for_log(gaffer, run_id, ("engine", "before"))
        service.restart(down_s=2.0)
        release.touch()
        run = gaffer.wait_for(run_id)
        logs = gaffer.logs(run_id)
    finally:
        docker_gaffers.stop_all()
        service.close()
    assert_finished_after_release(run, project)
    engine = [message for stream, message in logs if stream == "engine"]
    assert engine == ["before", "same", "same", "same", "after"], logs


def claimed_run(gaffers: DockerGaffers) -> tuple[Gaffer, str]:
    """An ingest-only gaffer and a run of a project of its left STARTING with no worker, as by a
    dispatcher that died right after it claimed the run."""
    ingest = gaffers.start(roles=("ingest",))
    project = ingest.create_project()
    run_id = trigger(ingest, project)
    with ingest.rt.db.session() as session:
        assert transition(
            session, run_id, from_statuses=[RunStatus.QUEUED], to_status=RunStatus.STARTING
        )
    return ingest, run_id


@pytest.mark.parametrize("container", ["created", "none"])
def test_a_run_whose_worker_never_started_starts_again_instead_of_failing(
    docker_gaffers: DockerGaffers, container: str
) -> None:
    """A dispatcher died after claiming the run (STARTING) and before starting its container:
    either it had created the container (left in state ``created``) or not even that. The engine
    never ran, so the next dispatcher starts the run from the beginning."""
    ingest, run_id = claimed_run(docker_gaffers)
    if container == "created":
        docker_gaffers.podman.client.containers.create(
            ingest.settings.worker_image,
            name=f"gaffer-worker-{run_id}",
            labels={
                "gaffer.managed": "true",
                "gaffer.instance": docker_gaffers.instance,
                "gaffer.run.id": run_id,
            },
        )

    with dispatcher(dispatcher_env(docker_gaffers, ingest)):
        run = ingest.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    assert any(
        stream == "system" and message.startswith("its worker never started")
        for stream, message in ingest.logs(run_id)
    )
    docker_gaffers.wait_until_removed()


def test_a_never_started_run_taken_up_while_another_run_holds_its_work_item_waits_its_turn(
    docker_gaffers: DockerGaffers,
) -> None:
    """Its lease lapsed with its dispatcher, and another run took the work item: the run is
    taken up (its worker might exist), found never started, and then waits for the work item
    like any queued run instead of starting a second worker on it."""
    ingest, run_id = claimed_run(docker_gaffers)
    keys = lease_keys(ingest, run_id)
    client = redis.Redis.from_url(ingest.rt.require_redis())
    client.set(keys.lock, "another-run", px=600_000)

    with dispatcher(dispatcher_env(docker_gaffers, ingest)):
        wait_for_job(ingest, run_id, "delayed")
        assert ingest.run(run_id)["status"] == "QUEUED"
        assert docker_gaffers.containers() == []
        client.delete(keys.lock)  # the other run ends
        run = ingest.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    docker_gaffers.wait_until_removed()
