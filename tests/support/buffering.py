"""The burst buffer's parts wired together on real Redis and a real database, for tests.

:func:`buffer_parts` opens what a drain process opens (database migrated, Redis client, run
queue, run engine, buffer store, replayer), creates projects in organizations, and builds
requests, so a test can accept entries, drain them and read the rows.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from gaffer.buffer.drainer import Drainer
from gaffer.buffer.replay import ProjectCache, Replayer
from gaffer.buffer.scripts import BufferStore
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import NewRun, RunEngine
from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import Run
from gaffer.store.projects import ProjectSnapshot, create_project, get_project
from gaffer.triggers.github import default_agent_setups


def request(project_id: str, index: int, *, agent: str = "review") -> AgentRequest:
    """A review request for work item ``index`` of the project."""
    return AgentRequest(
        project_id=project_id,
        agent_type=agent,
        provider="github",
        trigger="pull_request.opened",
        work_item=str(index),
        title=f"PR {index}",
        pr_number=index,
        head_sha=f"{index:040x}",
    )


def new_runs(
    project_id: str, count: int, *, start: int = 0, batch_id: str | None = None, **extra: Any
) -> list[NewRun]:
    """``count`` runs with fresh ids for the project (indexes ``start``...)."""
    return [
        NewRun(
            secrets.token_hex(16),
            request(project_id, start + i),
            batch_id=batch_id,
            batch_index=(i if batch_id else None),
            **extra,
        )
        for i in range(count)
    ]


@dataclass
class BufferParts:
    """The buffer's collaborators on one Redis and one database."""

    settings: Settings
    db: Database
    box: SecretBox
    redis: aioredis.Redis
    queue: RunQueue
    engine: RunEngine
    store: BufferStore
    projects: dict[str, ProjectSnapshot] = field(default_factory=dict)

    def project(
        self, name: str, organization: str = "default", agents: Iterable[str] | None = None
    ) -> ProjectSnapshot:
        """Create a project (agents on the ``command`` engine) and return its snapshot."""
        with self.db.session() as session:
            created = create_project(
                session,
                self.box,
                name=name,
                repository=f"o/{name}",
                clone_url="/nonexistent",
                webhook_secret=secrets.token_hex(8),
                bot_login="bot",
                organization=organization,
                agents=default_agent_setups("command", {"command": "true"}, agents),
            )
            project_id = created.id
        with self.db.session() as session:
            snapshot = ProjectSnapshot.of(get_project(session, project_id), self.box)
        self.projects[name] = snapshot
        return snapshot

    async def accept(self, project: ProjectSnapshot, runs: Sequence[NewRun]) -> list[str]:
        """Buffer ``runs`` of ``project``; returns the run ids."""
        accepted = await self.store.accept(project.organization_id, project.id, runs)
        return [a.run_id for a in accepted]

    def replayer(self) -> Replayer:
        """A replayer as the drain role builds it."""
        cache = ProjectCache(self.db, self.box, self.settings.project_cache_ttl_s)
        return Replayer(self.settings, self.store, self.engine, cache)

    def drainer(self) -> Drainer:
        """A drainer as the drain role builds it (not started)."""
        return Drainer(self.settings, self.db, self.store, self.replayer())

    def rows(self, **filters: Any) -> list[Run]:
        """Run rows matching the equality filters."""
        with self.db.session() as session:
            return list(session.scalars(select(Run).filter_by(**filters)))

    def row_count(self, **filters: Any) -> int:
        """How many run rows match the equality filters."""
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(Run).filter_by(**filters)))


@contextlib.asynccontextmanager
async def buffer_parts(settings: Settings) -> AsyncIterator[BufferParts]:
    """Open the parts on ``settings`` (database migrated); closed on exit."""
    db = Database(settings)
    migrate(db)
    redis_url = settings.redis_url
    assert redis_url is not None
    redis = aioredis.from_url(redis_url)
    queue = RunQueue(redis_url, settings.queue_name)
    engine = RunEngine(settings, db, queue, redis)
    box = SecretBox((settings.master_key or Fernet.generate_key().decode()).encode())
    try:
        yield BufferParts(settings, db, box, redis, queue, engine, BufferStore(redis))
    finally:
        await queue.close()
        await redis.aclose()
        db.dispose()
