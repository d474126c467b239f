"""Jobs for tests that drive the worker directly, and waiting on a run's BullMQ job."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec
from gaffer.queue.queues import RunQueue
from tests.support.harness import Gaffer


def make_job(
    bare: Path, command: str, body: str = "the body", run_id: str | None = None
) -> JobData:
    """An implementation job on work item 7 of ``o/r`` (cloned from ``bare``), on the command
    engine running ``command``."""
    return JobData(
        run_id=uuid.uuid4().hex,
        project_id="p",
        project_name="hello",
        agent_type="implementation",
        repository=RepositorySpec(full_name="o/r", clone_url=str(bare), base_branch="main"),
        engine=EngineSpec(name="command", settings={"command": command}),
        task=TaskSpec(
            agent_type="implementation",
            repository="o/r",
            work_item="7",
            title="Fix it",
            body=body,
            trigger="issues.labeled",
            provider="github",
        ),
        branch="gaffer/implementation/7",
        timeout_s=60,
    )


def worker_base_env() -> dict[str, str]:
    """What a backend gives every worker here: this Python's bin first on PATH."""
    return {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "LANG": "C.UTF-8"}


def run_worker(env: dict[str, str], workspace: Path) -> tuple[int, list[dict[str, Any]]]:
    """Run ``python -m gaffer.worker`` with exactly ``env`` (plus HOME) in ``workspace``;
    returns its exit code and its report events (one JSON object per stdout line)."""
    workspace.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "gaffer.worker"],
        cwd=workspace,
        env={**env, "HOME": str(workspace)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@asynccontextmanager
async def run_queue(gaffer: Gaffer) -> AsyncIterator[RunQueue]:
    """The run queue of ``gaffer``'s Redis, closed after the block."""
    queue = RunQueue(gaffer.rt.require_redis(), gaffer.settings.queue_name)
    try:
        yield queue
    finally:
        await queue.close()


async def _job_state(gaffer: Gaffer, run_id: str) -> str:
    async with run_queue(gaffer) as queue:
        return await queue.state(run_id)


def wait_for_job(gaffer: Gaffer, run_id: str, state: str, timeout: float = 90) -> None:
    """Wait until the job of ``run_id`` is in ``state`` (``completed``, ``failed``, ...). A
    run's final status is written before its dispatcher hands the job back (and releases the
    run's leases), so a test that goes on to stop Redis waits for ``completed`` first."""
    deadline = time.monotonic() + timeout
    while (current := asyncio.run(_job_state(gaffer, run_id))) != state:
        assert time.monotonic() < deadline, f"job of {run_id} still {current}"
        time.sleep(0.2)
