"""The job: everything a worker needs to carry out one run, and nothing it must not see.

A :class:`JobData` is built once when a run is created, stored with the run row (so a lost queue
job can be re-added from the row), carried by the BullMQ job, and handed to the worker as JSON
(``JOB_DATA``). It holds no infrastructure secret (database URL, master key). This module imports
only pydantic: it is the contract between dispatch and the worker, and the worker must start fast.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

JOB_SCHEMA_VERSION = 1


class RepositorySpec(BaseModel):
    """Where the worker clones from and which branch it starts on."""

    full_name: str
    clone_url: str
    base_branch: str = "main"


class EngineSpec(BaseModel):
    """Which engine plays the agent, with its settings (``{"command": ...}`` for ``command``)."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(BaseModel):
    """The task as engines see it (the ``command`` engine writes it to a JSON file)."""

    agent_type: str
    repository: str
    work_item: str
    title: str = ""
    body: str = ""
    url: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    trigger: str
    provider: str
    delivery_id: str | None = None


class JobData(BaseModel):
    """One run's job. ``timeout_s`` is the run's wall-clock limit in seconds."""

    schema_version: int = JOB_SCHEMA_VERSION
    run_id: str
    project_id: str
    project_name: str
    agent_type: str
    repository: RepositorySpec
    engine: EngineSpec
    task: TaskSpec
    branch: str
    bot_login: str = "gaffer"
    timeout_s: float
    payload: dict[str, Any] | None = Field(default=None, repr=False)


_UNSAFE_REF_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def branch_name(agent_type: str, work_item: str) -> str:
    """``gaffer/<agent>/<work-item>``, with characters git refuses in a ref replaced by ``-``."""
    item = _UNSAFE_REF_CHARS.sub("-", work_item).strip(".-") or "item"
    return f"gaffer/{_UNSAFE_REF_CHARS.sub('-', agent_type)}/{item}"
