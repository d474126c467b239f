"""gaffer's GitHub API side: credentials, per-run installation tokens (cached in Redis,
encrypted), bounded retries, the context a run needs, and the writes it makes (senders,
outbox kinds, notifier).

Built on ``githubkit``; ``base_url`` points it at GitHub Enterprise Server or a test server.
The names below are imported lazily: importing githubkit costs seconds of CPU, and
``gaffer.providers.github_api.credentials`` (used by the CLI) must not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gaffer.providers.github_api.client import GitHubClient
    from gaffer.providers.github_api.credentials import (
        AppCredentials,
        Credentials,
        TokenCredentials,
    )
    from gaffer.providers.github_api.errors import (
        GitHubAuthError,
        GitHubError,
        GitHubNotFoundError,
        GitHubRateLimitedError,
        GitHubRequestError,
        GitHubUnavailableError,
    )
    from gaffer.providers.github_api.permissions import permissions_for
    from gaffer.providers.github_api.token_cache import TokenCache

_EXPORTS = {
    "GitHubClient": "client",
    "AppCredentials": "credentials",
    "Credentials": "credentials",
    "TokenCredentials": "credentials",
    "GitHubAuthError": "errors",
    "GitHubError": "errors",
    "GitHubNotFoundError": "errors",
    "GitHubRateLimitedError": "errors",
    "GitHubRequestError": "errors",
    "GitHubUnavailableError": "errors",
    "permissions_for": "permissions",
    "TokenCache": "token_cache",
}

__all__ = [
    "AppCredentials",
    "Credentials",
    "GitHubAuthError",
    "GitHubClient",
    "GitHubError",
    "GitHubNotFoundError",
    "GitHubRateLimitedError",
    "GitHubRequestError",
    "GitHubUnavailableError",
    "TokenCache",
    "TokenCredentials",
    "permissions_for",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
