"""Errors of calls to GitHub, each with a reason fit for a run's failure record.

No error message ever contains a token: messages are built from the method, the path, the
status and GitHub's own ``message`` field.
"""

from __future__ import annotations


class GitHubError(RuntimeError):
    """A GitHub call failed. ``status`` is the HTTP status when there was an answer.
    ``retryable``: a later attempt may succeed (outage, rate limit), so an outbox keeps it."""

    retryable = False

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class GitHubAuthError(GitHubError):
    """401 even with a freshly minted token, or 403 "Resource not accessible" (a missing
    permission of the app or token); also an unusable private key."""


class GitHubNotFoundError(GitHubError):
    """404: the repository, issue, PR or comment is not there (or not visible to us)."""


class GitHubRequestError(GitHubError):
    """GitHub refused the request (4xx other than 401/404/rate limits), e.g. 422."""


class GitHubUnavailableError(GitHubError):
    """5xx, a timeout or a connection failure, after the bounded retries."""

    retryable = True


class GitHubRateLimitedError(GitHubError):
    """A primary or secondary rate limit whose wait exceeds the bounded wait.
    ``retry_after_s`` is GitHub's wait (from ``Retry-After`` or ``X-RateLimit-Reset``)."""

    retryable = True

    def __init__(self, reason: str, status: int | None, retry_after_s: float) -> None:
        super().__init__(reason, status)
        self.retry_after_s = retry_after_s
