"""Rows for tests that drive the store directly."""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet

from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import GatewayCall, Run, RunStatus
from gaffer.store.projects import create_project


def add_runs(db: Database, *run_ids: str, status: RunStatus = RunStatus.RUNNING) -> str:
    """A project ``p`` (repository ``o/r``) and review runs on work item 1 with ``run_ids`` in
    ``status``; returns the project id."""
    with db.session() as session:
        project = create_project(
            session,
            SecretBox(Fernet.generate_key()),
            name="p",
            repository="o/r",
            clone_url="/x",
            webhook_secret="s",
            bot_login="b",
        )
        for run_id in run_ids:
            session.add(
                Run(
                    id=run_id,
                    project_id=project.id,
                    agent_type="review",
                    work_item="1",
                    trigger="github:x",
                    status=status,
                    job_data={},
                )
            )
        return project.id


def spend_this_month(db: Database, project_id: str, cost_nano_usd: int) -> str:
    """A finished implementation run of ``project_id`` with one model call that cost
    ``cost_nano_usd`` (nano-USD) now, so the project's month has spent it; returns the run id."""
    run_id = uuid.uuid4().hex
    with db.session() as session:
        session.add(
            Run(
                id=run_id,
                project_id=project_id,
                agent_type="implementation",
                work_item="9",
                trigger="github:issues.labeled",
                status=RunStatus.SUCCEEDED,
                job_data={},
            )
        )
        session.flush()
        session.add(
            GatewayCall(
                run_id=run_id,
                project_id=project_id,
                agent_type="implementation",
                api="anthropic",
                provider="anthropic",
                model="claude-haiku-4-5",
                status_code=200,
                outcome="ok",
                input_tokens=1,
                output_tokens=1,
                cost_nano_usd=cost_nano_usd,
                duration_ms=10,
            )
        )
    return run_id
