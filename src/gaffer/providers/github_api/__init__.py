"""gaffer's GitHub API side: credentials, per-run installation tokens (cached in Redis,
encrypted), bounded retries, the context a run needs, and the writes it makes (senders).

Built on ``githubkit``; ``base_url`` points it at GitHub Enterprise Server or a test server.
"""

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.credentials import AppCredentials, Credentials, TokenCredentials
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
