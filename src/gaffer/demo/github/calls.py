"""One API call as a handler sees it, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gaffer.demo.github.state import Repository, Token


class HttpError(Exception):
    """An error answer: ``status`` and GitHub's ``message`` (plus ``errors`` for 422)."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass
class Call:
    """An authenticated, contract-valid request routed to an operation."""

    operation_id: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    token: Token | None  # None for app-JWT operations
    repo: Repository | None  # the {owner}/{repo} of the path, when there is one

    def int_param(self, name: str) -> int:
        return int(self.params[name])

    def need_repo(self) -> Repository:
        if self.repo is None:
            raise HttpError(404, "Not Found")
        return self.repo


@dataclass
class Answer:
    """A response: a JSON body (or raw ``text`` with ``media_type``), status, headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    media_type: str = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Violation:
    """A request or response that breaks GitHub's description, or a bug of the stand-in
    itself (``direction`` ``"request"``, ``"response"`` or ``"fake"``)."""

    direction: str
    method: str
    path: str
    status: int | None
    errors: str
