"""The context of a run, fetched from GitHub when the run starts (Pydantic models, JSON-able
into the job and rendered into the prompt and context files)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DIFF_CAP_BYTES = 200 * 1024
LOG_TAIL_BYTES = 16 * 1024


class ContextRequest(BaseModel):
    """What a run's definition asks for.

    ``number``: the issue or PR number (the work item). ``comment_id``: the issue comment
    that mentioned the bot. ``review_id``: the review being answered (respond-to-review).
    ``failed_checks``: fetch the failed check runs at ``head_sha`` (default: the PR's head)
    with the last ``log_tail_bytes`` of each log (respond-to-ci). Sizes in bytes (UTF-8).
    """

    number: int = Field(gt=0)
    is_pull_request: bool = False
    comment_id: int | None = None
    review_id: int | None = None
    failed_checks: bool = False
    head_sha: str | None = None
    diff_cap_bytes: int = Field(default=DIFF_CAP_BYTES, gt=0)
    log_tail_bytes: int = Field(default=LOG_TAIL_BYTES, gt=0)
    max_comments: int = Field(default=300, gt=0)
    max_failed_checks: int = Field(default=5, gt=0)


class CommentInfo(BaseModel):
    """An issue (or PR conversation) comment."""

    id: int
    author: str | None
    body: str
    url: str | None = None
    created_at: str | None = None


class IssueContext(BaseModel):
    """The issue (or the PR's conversation): title, body, and its comments, oldest first
    (at most ``max_comments``; ``comments_truncated`` says when more exist)."""

    number: int
    title: str
    body: str
    url: str | None
    state: str
    author: str | None
    comments: list[CommentInfo]
    comments_truncated: bool = False


class ChangedFile(BaseModel):
    """One file of a PR (``status``: added, modified, removed, renamed, ...)."""

    filename: str
    status: str
    additions: int
    deletions: int


class PullRequestContext(BaseModel):
    """A PR as the run starts. ``diff`` is cut at ``diff_cap_bytes`` on a line boundary;
    ``diff_note`` says so (and how big it was) when it is."""

    number: int
    title: str
    body: str
    url: str | None
    state: str  # "open" | "closed"
    merged: bool
    draft: bool
    head_ref: str
    head_sha: str
    base_ref: str
    from_fork: bool
    author: str | None
    files: list[ChangedFile]
    diff: str
    diff_bytes: int
    diff_truncated: bool
    diff_note: str | None = None

    @property
    def ended_reason(self) -> str | None:
        """Why no agent should start on it ("PR #3 was merged" / "was closed"), or None."""
        if self.merged:
            return f"PR #{self.number} was merged"
        if self.state != "open":
            return f"PR #{self.number} was closed"
        return None


class ReviewCommentInfo(BaseModel):
    """An inline review comment (``line``/``side`` as GitHub gives them)."""

    id: int
    author: str | None
    body: str
    path: str
    line: int | None
    side: str | None
    in_reply_to_id: int | None = None
    url: str | None = None


class ReviewContext(BaseModel):
    """The review being answered and its inline comments."""

    id: int
    state: str
    author: str | None
    body: str
    commit_id: str | None
    comments: list[ReviewCommentInfo]


class FailedCheck(BaseModel):
    """A failed check run at the head SHA; ``log_tail``: the end of its Actions job log (the
    last ``log_tail_bytes``), None when it has none (not an Actions job, or gone)."""

    id: int
    name: str
    conclusion: str | None
    url: str | None
    summary: str | None
    log_tail: str | None
    log_truncated: bool = False
    log_note: str | None = None


class RunContext(BaseModel):
    """Everything fetched for a run. ``pull_request`` is None for an issue."""

    repository: str
    issue: IssueContext
    pull_request: PullRequestContext | None = None
    review: ReviewContext | None = None
    trigger_comment: CommentInfo | None = None
    failed_checks: list[FailedCheck] = Field(default_factory=list)
