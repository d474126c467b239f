"""GitHub clients built from what the store holds: a project's credentials and repository.

``client_for_project`` is what dispatch calls when a run starts (context, the worker's token);
``outbox_clients`` is the notifier's client factory (writes never need ``contents``, so its
tokens are minted with ``contents: read``).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.credential_store import load_credentials
from gaffer.providers.github_api.credentials import DEFAULT_BASE_URL
from gaffer.providers.github_api.errors import GitHubError
from gaffer.providers.github_api.notifier import ClientFactory
from gaffer.providers.github_api.permissions import permissions_for
from gaffer.providers.github_api.retry import BoundedRetry
from gaffer.providers.github_api.token_cache import TokenCache
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import OutboxEntry, Project


class NoGitHubCredentialsError(GitHubError):
    """The project has no GitHub credentials (``gaffer github set-app|set-token``).
    Retryable: the outbox keeps its writes until they are set (within its attempts)."""

    retryable = True


def client_for_project(
    db: Database,
    box: SecretBox,
    project_id: str,
    *,
    permissions: dict[str, str],
    redis: aioredis.Redis | None,
    installation_id: int | None = None,
    retry: BoundedRetry | None = None,
) -> GitHubClient:
    """A client for the project's repository with its stored credentials (blocking: one
    database read). ``redis`` (bytes replies) backs the shared token cache. Raises
    :class:`NoGitHubCredentialsError`, ``MasterKeyError``, ``ProjectNotFoundError``."""
    with db.session() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise NoGitHubCredentialsError(f"no project {project_id!r}")
        loaded = load_credentials(session, box, project_id)
        repository = project.repository
    if loaded is None:
        raise NoGitHubCredentialsError(
            f"project {project_id} has no GitHub credentials (gaffer github set-app or set-token)"
        )
    credentials, api_url = loaded
    return GitHubClient(
        credentials,
        repository,
        permissions=permissions,
        base_url=api_url or DEFAULT_BASE_URL,
        cache=TokenCache(redis, box) if redis is not None else None,
        installation_id=installation_id,
        retry=retry,
    )


def outbox_clients(
    db: Database, box: SecretBox, redis: aioredis.Redis | None, retry: BoundedRetry | None = None
) -> ClientFactory:
    """The notifier's client factory: the entry's project, ``contents: read`` tokens."""

    async def make(entry: OutboxEntry) -> GitHubClient:
        return await asyncio.to_thread(
            client_for_project,
            db,
            box,
            entry.project_id,
            permissions=permissions_for("read-only"),
            redis=redis,
            retry=retry,
        )

    return make
