"""What the run engine is asked to run: one agent on one work item, and why."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AgentRequest(BaseModel):
    """A request for one agent run, as triggers produce it and the run engine consumes it.

    ``trigger`` is the event key that matched (``"check_suite.completed"``); ``work_item`` the
    issue/card/PR number as text; ``head_branch``/``base_branch``/``head_repository`` the PR's
    branches and head repository when the event names them; ``comment_*``/``review_id`` the
    comment or review that triggered the run; ``payload`` the raw webhook body, passed to the
    worker unchanged. Serialisable as JSON (the burst buffer keeps it as a snapshot).
    """

    project_id: str
    agent_type: str
    provider: str
    trigger: str
    work_item: str
    title: str = ""
    body: str = ""
    url: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    delivery_id: str | None = None
    head_branch: str | None = None
    base_branch: str | None = None
    head_repository: str | None = None
    comment_body: str | None = None
    comment_id: int | None = None
    review_id: int | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    """Extra template variables (a failed run's post-mortem data for ``debug``)."""
    payload: dict[str, Any] | None = Field(default=None, repr=False)
