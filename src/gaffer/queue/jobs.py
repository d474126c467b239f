"""The job: everything a worker needs to carry out one run, and nothing it must not see.

A :class:`JobData` is built once when a run is created, stored with the run row (so a lost queue
job can be re-added from the row), carried by the BullMQ job, and handed to the worker as JSON
(``JOB_DATA``). It holds no infrastructure secret (database URL, master key). This module imports
only pydantic: it is the contract between dispatch and the worker, and the worker must start fast.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

JOB_SCHEMA_VERSION = 2

BranchMode = Literal["new", "pr-head", "read-only"]
"""How an agent's run uses git (see :class:`AgentSpec`)."""
FinishRule = Literal["changes", "review", "reply", "plan", "none"]
"""What an agent's run must leave behind to count as finished (see :class:`AgentSpec`)."""


class RepositorySpec(BaseModel):
    """Where the worker clones from and which branch it starts on."""

    full_name: str
    clone_url: str
    base_branch: str = "main"


class EngineSpec(BaseModel):
    """Which engine plays the agent, with its settings (``{"command": ...}`` for ``command``).

    ``model`` is the model name the engine is asked for (None: the engine's default);
    ``base_url`` the provider API's base URL the engine calls (None: the CLI's default).
    ``credential`` names the project credential that holds the engine's API key: the
    dispatcher reads it from the encrypted store and hands it to the worker in
    ``GAFFER_ENGINE_API_KEY`` (never in the job, which is stored with the run).
    """

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    base_url: str | None = None
    credential: str | None = None


class AgentSpec(BaseModel):
    """The effective agent definition of a run (package definition + project overrides).

    * ``branch_mode``: ``new`` (a branch ``gaffer/<agent>/<work-item>`` from the base branch),
      ``pr-head`` (the PR's own head branch, pushed onto), ``read-only`` (nothing is pushed);
    * ``finish_rule``: ``changes`` (at least one commit), ``review`` / ``reply`` / ``plan`` (a
      valid output file of that kind), ``none``;
    * ``max_turns``: the most model turns the engine may take in one invocation;
    * ``continuation_turns``: how many times the engine is run again when it exits 0 with the
      finish rule unmet;
    * ``merge_base``: the worker merges the PR's base branch into the head before the engine
      starts, and the result is a merge commit (:mod:`gaffer.worker.merge`; ``pr-head`` only);
    * ``system_prompt`` / ``task_prompt``: Jinja2 template sources (rendered in the worker,
      sandboxed, ``StrictUndefined``); ``variables``: the names they may use.
    """

    name: str
    label: str
    branch_mode: BranchMode
    finish_rule: FinishRule
    max_turns: int = Field(ge=1)
    continuation_turns: int = Field(ge=0)
    merge_base: bool = False
    system_prompt: str
    task_prompt: str
    variables: list[str] = Field(default_factory=list)


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
    head_branch: str | None = None
    """The PR's head branch (``pr-head`` agents check it out and push onto it)."""
    base_branch: str | None = None
    """The PR's base branch, when the run is on a PR."""
    head_repository: str | None = None
    """``owner/repo`` of the PR's head (differs from ``repository`` for a PR from a fork)."""
    comment_body: str | None = None
    """The comment (or review body) that triggered the run, when one did."""
    comment_id: int | None = None
    review_id: int | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    """Extra template variables resolved before the run starts (fetched context, a failed
    run's post-mortem data for ``debug``); names must not clash with the built-in ones."""


class JobData(BaseModel):
    """One run's job. ``timeout_s`` is the run's wall-clock limit in seconds."""

    schema_version: int = JOB_SCHEMA_VERSION
    run_id: str
    project_id: str
    project_name: str
    agent_type: str
    repository: RepositorySpec
    engine: EngineSpec
    agent: AgentSpec | None = None
    """None only in jobs written before agent definitions (treated as ``new`` + ``none``)."""
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
