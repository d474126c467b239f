"""Rows for tests that drive the store directly."""

from __future__ import annotations

from cryptography.fernet import Fernet

from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus
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
