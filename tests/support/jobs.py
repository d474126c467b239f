"""Jobs for tests that drive the worker directly."""

from __future__ import annotations

import uuid
from pathlib import Path

from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec


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
