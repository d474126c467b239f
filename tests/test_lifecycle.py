"""The run lifecycle on the local backend: real deliveries, real worker processes, real git."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue

from gaffer.queue.queues import bullmq_options
from gaffer.store.models import RunStatus
from tests.conftest import GafferFactory
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.support.jobs import run_queue

LABELED = fixture_body("issues.labeled")


def trigger(gaffer: Gaffer, project: ProjectInfo, issue: int = 1) -> str:
    """Deliver issues.labeled for ``issue`` (a fresh delivery id); return the run it queued."""
    body = LABELED
    if issue != 1:
        payload = json.loads(LABELED)
        payload["issue"]["number"] = issue
        body = json.dumps(payload).encode()
    response = gaffer.deliver(body, "issues", project.secret, delivery_id=str(uuid.uuid4()))
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return run_id


def git_show(bare: Path, ref: str) -> str:
    return subprocess.run(
        ["git", "show", ref], cwd=bare, capture_output=True, text=True, check=True
    ).stdout


def live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[2] == str(pgid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    """True if a live process of the group remains 5 s from now (killed ones may linger as
    zombies until init reaps them, which is why this waits)."""
    deadline = time.monotonic() + 5
    while live_members(pgid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def barrier_command(release: Path) -> str:
    return f'while [ ! -f "{release}" ]; do sleep 0.05; done; echo released > OUT.txt'


def assert_pushed(run: dict[str, Any], project: ProjectInfo, path: str, content: str) -> None:
    """The run succeeded (its engine said "engine says hi" last) and pushed its branch, whose
    ``path`` holds ``content``, at the commit it reported."""
    assert run["status"] == "SUCCEEDED", run
    assert run["exit_code"] == 0
    assert run["branch"] == "gaffer/implementation/1"
    assert run["summary"] == "engine says hi"
    assert project.bare is not None
    assert git_show(project.bare, f"{run['branch']}:{path}") == content
    assert git_show(project.bare, run["branch"]).startswith(f"commit {run['commit']}")


def test_success_pushes_the_branch(start_gaffer: GafferFactory, database_url: str | None) -> None:
    gaffer = start_gaffer(database_url=database_url)
    project = gaffer.create_project(
        command='printf "%s\\n%s\\n" "$GAFFER_WORK_ITEM_TITLE" "$GAFFER_TRIGGER" > TASK.txt; '
        'echo "engine says hi"'
    )
    run_id = trigger(gaffer, project)
    run = gaffer.wait_for(run_id)
    assert_pushed(run, project, "TASK.txt", "Spelling error in the README file\nissues.labeled\n")
    logs = gaffer.logs(run_id)
    assert ("engine", "engine says hi") in logs
    assert any(stream == "system" and "worker started" in msg for stream, msg in logs)
    # The workspace is removed after the run (right after its outcome is recorded).
    workspace = gaffer.settings.workspaces_dir / run_id
    deadline = time.monotonic() + 30
    while workspace.exists():
        assert time.monotonic() < deadline, f"{workspace} is still there"
        time.sleep(0.05)


def test_failure_is_recorded(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(command="echo boom >&2; exit 3")
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED"
    assert run["exit_code"] == 1
    assert run["error"] == "engine command exited with code 3"
    assert run["branch"] is None and run["commit"] is None
    assert ("engine", "boom") in gaffer.logs(run["id"])


def test_unreachable_repository_fails_with_gits_reason(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(with_repository=False)
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED"
    assert "git clone" in run["error"] and "/nonexistent" in run["error"]


def test_timeout_kills_the_process_group(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer(run_timeout_s=2.0)
    project = gaffer.create_project(command="sleep 3600")
    run_id = trigger(gaffer, project)
    gaffer.wait_for(run_id, [RunStatus.RUNNING])
    pgid = int(gaffer_worker_ref(gaffer, run_id))
    run = gaffer.wait_for(run_id)
    assert run["status"] == "TIMED_OUT"
    assert run["error"] == "timed out after 2 s"
    # Stopped by the deadline, not before it.
    assert run["duration_s"] >= 2.0
    assert not group_alive(pgid)


def gaffer_worker_ref(gaffer: Gaffer, run_id: str) -> str:
    from gaffer.store.models import Run

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with gaffer.rt.db.session() as session:
            run = session.get(Run, run_id)
            assert run is not None
            if run.worker_ref:
                return run.worker_ref
        time.sleep(0.05)
    raise AssertionError("the run never got a worker")


def test_cancel_while_running(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(command="sleep 3600")
    run_id = trigger(gaffer, project)
    gaffer.wait_for(run_id, [RunStatus.RUNNING])
    pgid = int(gaffer_worker_ref(gaffer, run_id))
    result = gaffer.cancel(run_id)
    assert result.status == RunStatus.RUNNING
    assert "cancel requested" in result.message
    run = gaffer.wait_for(run_id)
    assert run["status"] == "CANCELED"
    assert run["error"] == "canceled while running"
    assert not group_alive(pgid)


# An engine that cleans up on SIGTERM: its trap runs once the foreground sleep (signalled too)
# has ended, writes a file that must not be pushed, and exits 0.
TERM_TRAPPING_ENGINE = (
    "trap 'echo engine cleans up after SIGTERM; echo half > HALF.txt; exit 0' TERM; "
    "echo engine waiting; while :; do sleep 0.2; done"
)


def wait_for_line(gaffer: Gaffer, run_id: str, line: tuple[str, str]) -> None:
    """Wait (up to 120 s) until the run log holds ``line`` (stream, message)."""
    deadline = time.monotonic() + 120
    while line not in gaffer.logs(run_id):
        assert time.monotonic() < deadline, gaffer.logs(run_id)
        time.sleep(0.05)


def test_cancel_gives_the_engine_its_grace_and_pushes_nothing(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(command=TERM_TRAPPING_ENGINE)
    run_id = trigger(gaffer, project)
    wait_for_line(gaffer, run_id, ("engine", "engine waiting"))
    pgid = int(gaffer_worker_ref(gaffer, run_id))
    gaffer.cancel(run_id)
    run = gaffer.wait_for(run_id)
    assert run["status"] == "CANCELED"
    logs = gaffer.logs(run_id)
    assert ("engine", "engine cleans up after SIGTERM") in logs
    assert run["branch"] is None and run["commit"] is None
    assert project.bare is not None
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)"],
        cwd=project.bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert refs == ["refs/heads/main"]
    assert not group_alive(pgid)


def test_job_waits_for_a_slot_and_cancel_while_queued(
    start_gaffer: GafferFactory, tmp_path: Path
) -> None:
    """GAFFER_MAX_WORKERS=1: runs of different work items (no lock between them, and a project
    cap that would let them all run) still run one at a time; the others wait, not failed."""
    gaffer = start_gaffer(max_workers=1, max_runs_per_project_agent=10)
    release = tmp_path / "release"
    project = gaffer.create_project(command=barrier_command(release))
    first = trigger(gaffer, project, issue=1)
    gaffer.wait_for(first, [RunStatus.RUNNING])
    second = trigger(gaffer, project, issue=2)
    third = trigger(gaffer, project, issue=3)
    # The only slot is busy: the others wait in the queue; they are not failed.
    time.sleep(1.0)
    assert gaffer.run(second)["status"] == "QUEUED"
    assert gaffer.run(third)["status"] == "QUEUED"

    canceled = gaffer.cancel(third)
    assert canceled.status == RunStatus.CANCELED
    assert canceled.message == "canceled before it started"

    release.touch()
    first_done = gaffer.wait_for(first)
    second_done = gaffer.wait_for(second)
    assert first_done["status"] == second_done["status"] == "SUCCEEDED"
    assert second_done["work_item"] == "2"
    assert second_done["started_at"] >= first_done["finished_at"]
    # Each job took one attempt: the second waited for the slot, it did not fail for it.
    assert asyncio.run(_attempts_made(gaffer, [first, second])) == [1, 1]
    third_done = gaffer.run(third)
    assert third_done["status"] == "CANCELED"
    assert third_done["started_at"] is None
    assert gaffer.logs(third) == []


async def _attempts_made(gaffer: Gaffer, run_ids: list[str]) -> list[int]:
    """Attempts BullMQ counted for each run's job, once the job is completed (the run's row is
    written before the dispatcher returns the job, so the job may still be active a moment)."""
    queue = Queue(gaffer.settings.queue_name, bullmq_options(gaffer.rt.require_redis()))
    try:
        deadline = time.monotonic() + 30
        for run_id in run_ids:
            while (state := await queue.getJobState(run_id)) != "completed":
                assert time.monotonic() < deadline, f"job {run_id} is {state}"
                await asyncio.sleep(0.05)
        jobs = [await queue.getJob(run_id) for run_id in run_ids]
        return [int(job.attemptsMade) for job in jobs]
    finally:
        await queue.close()


def test_dispatcher_restart_repairs_queued_runs_without_jobs(
    start_gaffer: GafferFactory, database_url: str | None
) -> None:
    ingest = start_gaffer(roles=("ingest",), database_url=database_url)
    project = ingest.create_project()
    run_id = trigger(ingest, project)
    # The process died between writing the row and adding the job: the job is missing.
    queue_state = asyncio.run(_drop_job(ingest, run_id))
    assert queue_state == "unknown"
    assert ingest.run(run_id)["status"] == "QUEUED"

    dispatch = start_gaffer(roles=("dispatch",), database_url=database_url)
    run = dispatch.wait_for(run_id)
    assert run["status"] == "SUCCEEDED"
    assert run["branch"] == "gaffer/implementation/1"


async def _drop_job(gaffer: Gaffer, run_id: str) -> str:
    async with run_queue(gaffer) as queue:
        assert await queue.state(run_id) == "waiting"
        assert await queue.remove(run_id)
        return await queue.state(run_id)


@pytest.mark.parametrize("status", ["SUCCEEDED", "CANCELED"])
def test_cancel_of_a_finished_run_changes_nothing(start_gaffer: GafferFactory, status: str) -> None:
    gaffer = start_gaffer()
    # The run to cancel never ends by itself: only the cancel can finish it.
    project = gaffer.create_project(
        command="echo ok > RESULT.txt" if status == "SUCCEEDED" else "sleep 3600"
    )
    run_id = trigger(gaffer, project)
    if status == "CANCELED":
        first = gaffer.cancel(run_id)
        assert first.status in (RunStatus.CANCELED, RunStatus.STARTING, RunStatus.RUNNING)
    done = gaffer.wait_for(run_id)
    assert done["status"] == status
    result = gaffer.cancel(run_id)
    assert result.status == RunStatus(status)
    assert "already finished" in result.message
    after = gaffer.run(run_id)
    assert (after["status"], after["finished_at"]) == (status, done["finished_at"])
