"""githubkit's retry decision with bounds: a run never sleeps an hour on a rate limit.

GitHub's rules ("Rate limits for the REST API"): after a secondary rate limit wait the
``Retry-After`` seconds; after a primary one wait until ``X-RateLimit-Reset``; githubkit turns
both into ``RateLimitExceeded.retry_after``. Here a wait longer than ``max_wait_s`` is not
waited at all: the call fails at once (:class:`GitHubRateLimitedError` from the client), and so
does a rate limit hit more than ``rate_limit_retries`` times. Server errors (5xx) and timeouts
are retried ``server_error_retries`` times with exponential backoff capped at
``max_backoff_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.retry import RetryOption


@dataclass(frozen=True)
class BoundedRetry:
    """A githubkit ``RetryDecisionFunc`` (pass as ``auto_retry=``). Times in seconds."""

    max_wait_s: float = 60.0
    rate_limit_retries: int = 2
    server_error_retries: int = 3
    base_backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if isinstance(exc, RateLimitExceeded):
            wait = exc.retry_after.total_seconds()
            if retry_count < self.rate_limit_retries and wait <= self.max_wait_s:
                return RetryOption(True, timedelta(seconds=max(wait, 0.0)))
            return RetryOption(False)
        server_error = isinstance(exc, RequestFailed) and exc.response.status_code >= 500
        transport = isinstance(exc, RequestTimeout) or (
            isinstance(exc, RequestError) and not isinstance(exc, RequestFailed)
        )
        if (server_error or transport) and retry_count < self.server_error_retries:
            backoff = min(self.base_backoff_s * (2**retry_count), self.max_backoff_s)
            return RetryOption(True, timedelta(seconds=backoff))
        return RetryOption(False)
