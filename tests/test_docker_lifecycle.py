"""The run lifecycle on the ``docker`` backend: real deliveries, real containers (Podman's Docker
API), real git. After each test no container of it is left, running or stopped (the
``docker_gaffers`` fixture checks through the API)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from gaffer.store.models import RunStatus
from tests.conftest import DockerGaffers
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.test_lifecycle import (
    TERM_TRAPPING_ENGINE,
    assert_pushed,
    gaffer_worker_ref,
    trigger,
    wait_for_line,
)

IN_CONTAINER = '{ [ -e /run/.containerenv ] || [ -e /.dockerenv ]; } && echo "in a container"'
# What an agent might try from inside its container: each prints what it could do.
PROBES = (
    'echo "engine uid $(id -u)"; '
    "python -c \"import redis; redis.Redis(unix_socket_path='/run/gaffer/redis.sock').ping() "
    "and print('redis reachable')\" 2>/dev/null || echo 'redis unreachable'; "
    "{ tr '\\0' '\\n' < /proc/1/environ | grep -q JOB_DATA && echo 'job readable'; } "
    "2>/dev/null || echo 'job unreadable'; "
    'echo "capability bounding set $(grep CapBnd /proc/self/status | cut -f2)"'
)
# CHOWN (bit 0), DAC_OVERRIDE (1), FOWNER (3), KILL (5), SETGID (6), SETUID (7): no other
# capability can be had by any process of the container.
WORKER_CAPABILITY_MASK = f"{(1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7):016x}"


def container_of(gaffers: DockerGaffers, run_id: str) -> dict[str, Any]:
    """The full inspect of the run's container, once it is running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for item in gaffers.containers():
            if item["Labels"].get("gaffer.run.id") == run_id and item["State"] == "running":
                return dict(gaffers.podman.client.api.inspect_container(item["Id"]))
        time.sleep(0.05)
    raise AssertionError(f"no running container for run {run_id}")


def test_success_in_a_container_pushes_the_branch(docker_gaffers: DockerGaffers) -> None:
    gaffer = docker_gaffers.start()
    project = gaffer.create_project(
        command=f"{IN_CONTAINER}; {PROBES}; "
        'printf "%s\\n" "$GAFFER_WORK_ITEM_TITLE" > TASK.txt; echo "engine says hi"'
    )
    run_id = trigger(gaffer, project)
    run = gaffer.wait_for(run_id)
    assert_pushed(run, project, "TASK.txt", "Spelling error in the README file\n")
    logs = gaffer.logs(run_id)
    assert ("engine", "in a container") in logs
    # The engine runs as its own user: the Redis socket mounted for the worker's job-data
    # offload and the job in the init's environment are out of its reach.
    assert ("engine", "engine uid 1000") in logs
    assert ("engine", "redis unreachable") in logs
    assert ("engine", "job unreadable") in logs
    assert ("engine", f"capability bounding set {WORKER_CAPABILITY_MASK}") in logs, logs
    assert ("system", "dispatching to the docker backend") in logs
    started = [m for s, m in logs if s == "system" and m.startswith("worker started (")]
    assert len(started) == 1
    assert gaffer.run(run_id)["status"] == "SUCCEEDED"


def test_failure_is_recorded(docker_gaffers: DockerGaffers) -> None:
    gaffer = docker_gaffers.start()
    project = gaffer.create_project(command="echo boom >&2; exit 3")
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED"
    assert run["exit_code"] == 1
    assert run["error"] == "engine command exited with code 3"
    assert ("engine", "boom") in gaffer.logs(run["id"])


def big_issue(body_bytes: int) -> bytes:
    payload = json.loads(fixture_body("issues.labeled"))
    payload["issue"]["body"] = "x" * body_bytes
    return json.dumps(payload).encode()


def trigger_body(gaffer: Gaffer, project: ProjectInfo, body: bytes) -> str:
    response = gaffer.deliver(body, "issues", project.secret, delivery_id=str(uuid.uuid4()))
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return str(run_id)


def test_payload_over_the_kernel_limit_fails_with_its_reason_when_not_offloaded(
    docker_gaffers: DockerGaffers,
) -> None:
    """The incident: a 200 KiB issue makes JOB_DATA longer than one env string may be
    (MAX_ARG_STRLEN, 128 KiB); the container's exec fails and the run says why."""
    gaffer = docker_gaffers.start(job_data_offload=False)
    project = gaffer.create_project()
    run = gaffer.wait_for(trigger_body(gaffer, project, big_issue(200 * 1024)))
    assert run["status"] == "FAILED", run
    assert run["exit_code"] == 1
    assert "argument list too long" in run["error"], run["error"]


def test_a_large_payload_is_offloaded_and_read_through_the_mounted_socket(
    docker_gaffers: DockerGaffers,
) -> None:
    gaffer = docker_gaffers.start()
    project = gaffer.create_project(
        command='printf "%s" "$GAFFER_WORK_ITEM_BODY" | wc -c; echo ok > OK.txt'
    )
    run = gaffer.wait_for(trigger_body(gaffer, project, big_issue(200 * 1024)))
    assert run["status"] == "SUCCEEDED", run
    logs = gaffer.logs(run["id"])
    # The body reached the engine, capped as env text (the task file has all of it).
    assert any(s == "engine" and m.strip().isdigit() and int(m) > 30_000 for s, m in logs), logs


def test_timeout_stops_the_container(docker_gaffers: DockerGaffers) -> None:
    gaffer = docker_gaffers.start(run_timeout_s=3.0)
    project = gaffer.create_project(command="echo started; sleep 3600")
    run_id = trigger(gaffer, project)
    container_of(docker_gaffers, run_id)
    run = gaffer.wait_for(run_id)
    assert run["status"] == "TIMED_OUT"
    assert run["error"] == "timed out after 3 s"
    assert ("system", "stopping the worker (timeout)") in gaffer.logs(run_id)
    docker_gaffers.wait_until_removed()


def test_cancel_stops_the_container_which_had_the_limits_and_the_env(
    docker_gaffers: DockerGaffers,
) -> None:
    gaffer = docker_gaffers.start(
        worker_memory_mb=300, worker_cpus=1.5, worker_pids_limit=256, worker_network="none"
    )
    project = gaffer.create_project(command=TERM_TRAPPING_ENGINE)
    run_id = trigger(gaffer, project)
    wait_for_line(gaffer, run_id, ("engine", "engine waiting"))
    inspect = container_of(docker_gaffers, run_id)

    assert inspect["Name"].lstrip("/") == f"gaffer-worker-{run_id}"
    assert inspect["Id"] == gaffer_worker_ref(gaffer, run_id)
    labels = inspect["Config"]["Labels"]
    assert labels["gaffer.managed"] == "true"
    assert labels["gaffer.instance"] == docker_gaffers.instance
    assert labels["gaffer.run.id"] == labels["gaffer.job.id"] == run_id
    assert labels["gaffer.project.id"] == project.id
    assert labels["gaffer.agent.type"] == "implementation"
    host = inspect["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 300 * 1024 * 1024
    assert host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 256
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "none"
    assert host["AutoRemove"] is False
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    assert env["GAFFER_RUN_ID"] == run_id
    assert json.loads(env["JOB_DATA"])["run_id"] == run_id
    assert not {"DATABASE_URL", "REDIS_URL", "GAFFER_MASTER_KEY"} & set(env)

    result = gaffer.cancel(run_id)
    assert result.status == RunStatus.RUNNING
    run = gaffer.wait_for(run_id)
    assert run["status"] == "CANCELED"
    assert run["error"] == "canceled while running"
    # The container's init passed SIGTERM to the worker, and the worker to the engine's tree.
    assert ("engine", "engine cleans up after SIGTERM") in gaffer.logs(run_id)
    assert run["branch"] is None
    docker_gaffers.wait_until_removed()


def test_out_of_memory_is_named(docker_gaffers: DockerGaffers) -> None:
    """Filling the container's tmpfs (/dev/shm, charged to its memory cgroup but to no
    process) makes the kernel's OOM killer pick the biggest process, the worker itself: the
    container exits 137 without gaffer having stopped it."""
    gaffer = docker_gaffers.start(worker_memory_mb=64)
    project = gaffer.create_project(command="dd if=/dev/zero of=/dev/shm/fill bs=1M count=1024")
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED", run
    assert run["exit_code"] == 137
    # Docker on cgroup v2 reports OOMKilled; Podman on these machines (cgroup v1) does not.
    assert run["error"] in ("killed: out of memory", "killed (SIGKILL), likely out of memory")


def test_an_image_that_cannot_be_had_fails_the_runs_before_any_container(
    docker_gaffers: DockerGaffers,
) -> None:
    began = time.time()
    image = "localhost/gaffer-no-such-image:missing"
    gaffer = docker_gaffers.start(worker_image=image)
    project = gaffer.create_project()
    first, second = trigger(gaffer, project), trigger(gaffer, project)
    runs = [gaffer.wait_for(first), gaffer.wait_for(second)]
    for run in runs:
        assert run["status"] == "SYSTEM_FAILURE", run
        assert run["error"].startswith(f"worker image {image} is not available: "), run
        logs = gaffer.logs(run["id"])
        # Failed at once: one start attempt, no retries with backoff.
        assert len([m for s, m in logs if m.startswith("worker start failed")]) == 1
    # One pull for both: the other run was failed from the memory of the failed pull.
    assert sum("pull failed" in run["error"] for run in runs) == 1
    assert docker_gaffers.podman.created_since(docker_gaffers.instance, began) == []


def test_an_image_that_cannot_run_the_worker_fails_the_run_with_its_words(
    docker_gaffers: DockerGaffers,
) -> None:
    """The base image has Python but not gaffer's ``python``: the container's init cannot exec
    the worker, and the run's reason is the last thing the container said."""
    gaffer = docker_gaffers.start(worker_image="localhost/gaffer-worker-base:bookworm")
    project = gaffer.create_project()
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED", run
    assert run["error"].startswith("worker exited with code "), run["error"]
    assert "No such file or directory" in run["error"], run["error"]
