"""The provider-neutral event that triggers evaluate.

A provider module turns a verified webhook body into an :class:`Event`; nothing after that point
reads the raw payload except to hand it to the worker unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class MalformedPayloadError(ValueError):
    """The body is not the JSON document the provider's event promises (answered with 400)."""


@dataclass(frozen=True)
class WorkItem:
    """An issue, card or ticket. ``number`` is its id within the repository or board."""

    number: str
    title: str
    body: str
    url: str | None = None
    is_pull_request: bool = False


@dataclass(frozen=True)
class PullRequestRef:
    """A pull request as far as triggers need it."""

    number: int
    head_sha: str | None
    title: str = ""
    body: str = ""
    head_ref: str | None = None
    draft: bool = False
    url: str | None = None
    base_ref: str | None = None
    head_repository: str | None = None


@dataclass(frozen=True)
class Event:
    """A webhook event, typed and provider-neutral.

    ``key`` is ``"<event>.<action>"`` (``"issues.labeled"``) or the bare event name when the
    payload has no action (``"push"``). Fields that do not apply to the event are None/empty.
    ``pull_requests`` holds the PRs an event concerns (a check suite can name several).
    """

    provider: str
    name: str
    action: str | None
    delivery_id: str
    repository: str | None
    sender: str | None
    payload: dict[str, Any]
    work_item: WorkItem | None = None
    pull_requests: tuple[PullRequestRef, ...] = ()
    label: str | None = None
    comment: str | None = None
    conclusion: str | None = None
    review_state: str | None = None
    requested_reviewer: str | None = None
    head_sha: str | None = None
    comment_id: int | None = None
    review_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``"<event>.<action>"``, or the event name alone when there is no action."""
        return f"{self.name}.{self.action}" if self.action else self.name
