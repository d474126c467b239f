"""A gateway for tests: the real app served by uvicorn on this event loop, in front of the
scripted upstream (:mod:`tests.support.upstream`), on the test's Redis and database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select

from gaffer.gateway.budgets import Budgets, Limits, SettingsLimits
from gaffer.gateway.pricing import PriceTable
from gaffer.gateway.proxy import create_app
from gaffer.gateway.runs import StoredRuns
from gaffer.gateway.service import Gateway
from gaffer.gateway.settings import GatewaySettings
from gaffer.gateway.tokens import RunTokens
from gaffer.gateway.upstreams import StaticUpstreams, Upstream
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import GatewayCall, Run, RunStatus, new_id
from gaffer.store.runs import transition
from tests.support.store import add_runs
from tests.support.upstream import UPSTREAM_KEY, ScriptedUpstream, serve_asgi


@dataclass
class Rig:
    """A served gateway and what a test needs around it."""

    url: str
    upstream_url: str
    gateway: Gateway
    upstream: ScriptedUpstream
    db: Database
    project_id: str
    hooks: list[tuple[str, str]] = field(default_factory=list)

    def token(self, run_id: str, ttl_s: int = 600) -> str:
        """A per-run token for ``run_id``."""
        return self.gateway.tokens.issue(run_id, ttl_s=ttl_s)

    def add_run(
        self, status: RunStatus = RunStatus.RUNNING, agent_type: str = "implementation"
    ) -> str:
        """A new run of the rig's project; returns its id."""
        run_id = new_id()
        with self.db.session() as session:
            session.add(
                Run(
                    id=run_id,
                    project_id=self.project_id,
                    agent_type=agent_type,
                    work_item=run_id[:6],
                    trigger="github:x",
                    status=status,
                    job_data={},
                )
            )
        return run_id

    def end_run(self, run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> None:
        """Move a run to a terminal status, as dispatch does when it ends."""
        with self.db.session() as session:
            assert transition(session, run_id, from_statuses=[RunStatus.RUNNING], to_status=status)

    async def rows(self, run_id: str | None = None) -> list[GatewayCall]:
        """The usage rows (of ``run_id``), oldest first, once pending writes are done."""
        await self.gateway.drain()
        with self.db.session() as session:
            query = select(GatewayCall).order_by(GatewayCall.id)
            if run_id is not None:
                query = query.where(GatewayCall.run_id == run_id)
            return list(session.execute(query).scalars())


@contextlib.asynccontextmanager
async def gateway_rig(
    settings: Settings,
    *,
    gateway_settings: GatewaySettings | None = None,
    overrides: dict[tuple[str, str | None], Limits] | None = None,
    **gateway_fields: Any,
) -> AsyncIterator[Rig]:
    """Serve the scripted upstream and a gateway in front of it (see the module docstring).

    ``gateway_settings`` (default: no limits but the per-run cost default) sets the limits;
    ``overrides`` are per-project limits (keyed by ``(project_id, agent or None)``; use the
    project id ``"*"`` for the rig's own project).
    """
    db = Database(settings)
    migrate(db)
    project_id = add_runs(db)
    upstream = ScriptedUpstream()
    gw_settings = gateway_settings or GatewaySettings()
    assert settings.redis_url is not None and settings.master_key is not None
    redis = aioredis.from_url(settings.redis_url)
    resolved = {
        (project_id if pid == "*" else pid, agent): limits
        for (pid, agent), limits in (overrides or {}).items()
    }
    async with serve_asgi(upstream.app) as upstream_url:
        hooks: list[tuple[str, str]] = []

        async def on_budget_exceeded(run_id: str, reason: str) -> None:
            hooks.append((run_id, reason))

        gateway = Gateway(
            settings=gw_settings,
            db=db,
            tokens=RunTokens(settings.master_key.encode()),
            runs=StoredRuns(db),
            resolver=StaticUpstreams(Upstream(upstream_url, UPSTREAM_KEY, "scripted")),
            budgets=Budgets(redis, db, SettingsLimits(gw_settings, resolved)),
            prices=PriceTable.load(gw_settings.prices_file),
            on_budget_exceeded=on_budget_exceeded,
            **gateway_fields,
        )
        try:
            async with serve_asgi(create_app(gateway)) as url:
                yield Rig(url, upstream_url, gateway, upstream, db, project_id, hooks)
        finally:
            await gateway.aclose()
            await redis.aclose()
            db.dispose()
