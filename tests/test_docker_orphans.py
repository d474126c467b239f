"""The orphan sweep with real worker containers and real runs in the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gaffer.backends.docker import DockerBackend
from gaffer.backends.docker_spec import LABEL_INSTANCE, LABEL_MANAGED, LABEL_RUN
from gaffer.coordination.client import connect
from gaffer.dispatch.dispatcher import Dispatcher
from gaffer.dispatch.orphans import SweptWorker
from gaffer.dispatch.worker_env import build_worker_env
from gaffer.queue.jobs import JobData
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import RunEngine
from gaffer.store.models import Run, RunStatus, utcnow
from gaffer.store.runs import transition
from tests.conftest import DockerGaffers
from tests.support.containers import WORKER_IMAGE, new_instance
from tests.support.harness import Gaffer
from tests.test_lifecycle import trigger


def set_status(gaffer: Gaffer, run_id: str, status: RunStatus, started_ago_s: float) -> None:
    with gaffer.rt.db.session() as session:
        assert transition(
            session,
            run_id,
            from_statuses=[RunStatus.QUEUED],
            to_status=status,
            started_at=utcnow() - timedelta(seconds=started_ago_s),
        )


async def start_worker(backend: DockerBackend, gaffer: Gaffer, run_id: str) -> str:
    """Start the run's real worker container, as a dispatcher would; returns its id."""
    with gaffer.rt.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        job = JobData.model_validate(run.job_data)
    redis_url = gaffer.rt.require_redis()
    redis = connect(redis_url)
    try:
        env = await build_worker_env(
            job,
            backend.base_env(job),
            settings=gaffer.settings,
            redis=redis,
            worker_redis_url=backend.worker_redis_url(redis_url),
        )
    finally:
        await redis.aclose()
    handle = await backend.start(job, env)
    return handle.ref


def stray(gaffers: DockerGaffers, labels: dict[str, str]) -> str:
    """A running container with ``labels`` that gaffer did not start."""
    container = gaffers.podman.client.containers.run(
        WORKER_IMAGE, ["sleep", "3600"], labels=labels, detach=True, init=True
    )
    assert container.id is not None
    return container.id


async def sweep(gaffer: Gaffer, backend: DockerBackend) -> list[SweptWorker]:
    """One sweep by a dispatcher of this gaffer's settings (not started: nothing else runs)."""
    redis_url = gaffer.rt.require_redis()
    redis = connect(redis_url)
    queue = RunQueue(redis_url, gaffer.settings.queue_name)
    run_engine = RunEngine(gaffer.settings, gaffer.rt.db, queue, redis)
    dispatcher = Dispatcher(gaffer.settings, gaffer.rt.db, redis_url, backend, run_engine)
    try:
        return await dispatcher.orphans.sweep()
    finally:
        await dispatcher.redis.aclose()
        await queue.close()
        await redis.aclose()


def test_sweep_removes_what_no_live_run_owns_and_fails_outlived_runs(
    docker_gaffers: DockerGaffers,
) -> None:
    # Ingest only: runs stay QUEUED until the test moves them.
    gaffer = docker_gaffers.start(roles=("ingest",), run_timeout_s=600.0)
    project = gaffer.create_project(command="sleep 3600")
    live, outlived, finished, queued = (trigger(gaffer, project) for _ in range(4))
    set_status(gaffer, live, RunStatus.RUNNING, started_ago_s=10)
    set_status(gaffer, outlived, RunStatus.RUNNING, started_ago_s=2 * 3600)
    set_status(gaffer, finished, RunStatus.SUCCEEDED, started_ago_s=10)
    backend = DockerBackend(gaffer.settings)
    ids = {
        run_id: asyncio.run(start_worker(backend, gaffer, run_id))
        for run_id in (live, outlived, finished, queued)
    }
    mine = {LABEL_MANAGED: "true", LABEL_INSTANCE: docker_gaffers.instance}
    stray(docker_gaffers, mine)
    stray(docker_gaffers, {**mine, LABEL_RUN: "f" * 32})
    other_instance = stray(docker_gaffers, {LABEL_MANAGED: "true", LABEL_INSTANCE: new_instance()})
    try:
        swept = asyncio.run(sweep(gaffer, backend))
        remaining = {c["Id"] for c in docker_gaffers.containers()}
        assert remaining == {ids[live]}
        assert docker_gaffers.podman.client.containers.get(other_instance).status == "running"
    finally:
        docker_gaffers.podman.client.api.remove_container(other_instance, force=True)
        asyncio.run(backend.discard_worker(ids[live], 0))

    by_run = {s.run_id: s for s in swept}
    assert set(by_run) == {outlived, finished, queued, None, "f" * 32}
    assert [s.run_failed for s in swept if s.run_id == outlived] == [True]
    assert not any(s.run_failed for s in swept if s.run_id != outlived)
    assert {s.reason for s in swept if s.run_id in (None, "f" * 32)} == {
        "it names no run",
        f"its run {'f' * 32} does not exist",
    }
    failed = gaffer.run(outlived)
    assert failed["status"] == "FAILED"
    assert failed["error"] == (
        f"the worker gaffer-worker-{outlived} outlived the run's timeout (600 s) with no "
        "dispatcher stopping it; the orphan sweep removed it"
    )
    assert gaffer.run(live)["status"] == "RUNNING"
    assert gaffer.run(finished)["status"] == "SUCCEEDED"
    assert gaffer.run(queued)["status"] == "QUEUED"


def test_a_dispatcher_sweeps_when_it_starts(docker_gaffers: DockerGaffers) -> None:
    leftover = stray(
        docker_gaffers, {LABEL_MANAGED: "true", LABEL_INSTANCE: docker_gaffers.instance}
    )
    assert [c["Id"] for c in docker_gaffers.containers()] == [leftover]
    docker_gaffers.start(roles=("dispatch",))
    assert docker_gaffers.containers() == []
