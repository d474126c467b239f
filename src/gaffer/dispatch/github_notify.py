"""The notifier of the dispatch role: sends the outbox with each project's credentials.

:class:`ProjectClients` is the :data:`~gaffer.providers.github_api.notifier.ClientFactory`:
an entry is sent with a client for its project's repository, the project's credentials and
API root, and the permissions of its run's agent (installation tokens shared through the
Redis token cache).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from gaffer.dispatch.github_start import load_project_github
from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.errors import GitHubAuthError
from gaffer.providers.github_api.notifier import Notifier, NotifierConfig
from gaffer.providers.github_api.permissions import BranchMode, permissions_for
from gaffer.providers.github_api.token_cache import TokenCache
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import OutboxEntry, Project, Run


class ProjectClients:
    """Builds the client an outbox entry is sent with (see the module docstring).

    Raises :class:`GitHubAuthError` (not retried) when the project has no credentials any
    more or the master key is missing.
    """

    def __init__(self, db: Database, box: SecretBox | None, redis: aioredis.Redis) -> None:
        self.db = db
        self.box = box
        self.redis = redis

    def _repository_and_mode(self, entry: OutboxEntry) -> tuple[str, BranchMode] | None:
        with self.db.session() as session:
            project = session.get(Project, entry.project_id)
            run = session.get(Run, entry.run_id) if entry.run_id is not None else None
            if project is None:
                return None
            agent = (run.job_data or {}).get("agent") if run is not None else None
            raw = agent.get("branch_mode") if isinstance(agent, dict) else None
            # An entry of no run (a notice) only comments: contents read is enough.
            default: BranchMode = "new" if entry.run_id is not None else "read-only"
            mode: BranchMode = raw if raw in ("new", "pr-head", "read-only") else default
            return project.repository, mode

    async def __call__(self, entry: OutboxEntry) -> GitHubClient:
        """The client for ``entry``."""
        found = await asyncio.to_thread(self._repository_and_mode, entry)
        github = await asyncio.to_thread(load_project_github, self.db, self.box, entry.project_id)
        if found is None or github is None or self.box is None:
            raise GitHubAuthError("the project has no GitHub credentials")
        repository, mode = found
        return GitHubClient(
            github.credentials,
            repository,
            permissions=permissions_for(mode),
            base_url=github.api_url,
            cache=TokenCache(self.redis, self.box),
        )


def make_notifier(
    db: Database,
    box: SecretBox | None,
    redis: aioredis.Redis,
    config: NotifierConfig | None = None,
) -> Notifier:
    """The dispatch role's notifier (run it with ``Notifier.run(stop)``)."""
    return Notifier(db, ProjectClients(db, box, redis), config)
