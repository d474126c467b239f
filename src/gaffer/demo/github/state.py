"""The fake GitHub's in-memory state: repositories and what lives in them."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    """The current time as GitHub writes it (``2026-01-01T00:00:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "Bot" for an app's bot user


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: User
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class Reaction:
    id: int
    content: str
    user: User
    subject: tuple[str, int]  # ("issue", number) | ("comment", id)


@dataclass
class Issue:
    number: int
    title: str
    body: str
    user: User
    state: str = "open"
    is_pull_request: bool = False


@dataclass
class PullRequest:
    number: int
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    user: User
    state: str = "open"
    merged: bool = False
    draft: bool = False
    from_fork: bool = False
    diff: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReviewComment:
    id: int
    pull_number: int
    review_id: int | None
    path: str
    line: int | None
    side: str
    body: str
    user: User
    commit_id: str
    in_reply_to_id: int | None = None
    created_at: str = field(default_factory=now_iso)


@dataclass
class Review:
    id: int
    pull_number: int
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | PENDING
    body: str
    commit_id: str
    user: User
    submitted_at: str = field(default_factory=now_iso)


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    app_id: int | None = None
    log: str | None = None  # an Actions job's log, served through the job-logs redirect


@dataclass
class Repository:
    owner: str
    name: str
    id: int
    private: bool = False
    default_branch: str = "main"
    git_dir: Path | None = None  # a bare repository served through git http-backend
    issues: dict[int, Issue] = field(default_factory=dict)
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    reactions: list[Reaction] = field(default_factory=list)
    reviews: dict[int, Review] = field(default_factory=dict)
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Installation:
    id: int
    account: User
    repositories: list[str]  # repository names (without owner)
    permissions: dict[str, str]


@dataclass
class Token:
    """An access token the fake accepts: an installation token or a PAT."""

    value: str
    kind: str  # "installation" | "pat"
    user: User
    installation_id: int | None = None
    repositories: list[str] | None = None  # None: every repository of the installation
    permissions: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None  # epoch seconds


class State:
    """Everything the fake holds, behind one lock (handlers take it for their whole body)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.repos: dict[str, Repository] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.users: dict[str, User] = {}

    def next_id(self) -> int:
        """A fresh id, unique across every kind of object (as GitHub's are in practice)."""
        return next(self._ids)

    def user(self, login: str, kind: str = "User") -> User:
        """The user ``login``, created on first use."""
        if login not in self.users:
            self.users[login] = User(login=login, id=self.next_id(), type=kind)
        return self.users[login]

    def repo(self, owner: str, name: str) -> Repository | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def next_number(self, repo: Repository) -> int:
        """The next issue/PR number of ``repo`` (they share one sequence, as on GitHub)."""
        used = set(repo.issues) | set(repo.pulls)
        return max(used, default=0) + 1
