"""The gateway's parts in one object: what each call needs, and the work left after a call.

:class:`Gateway` is built once per process (:meth:`Gateway.open` from the settings, or by hand
in tests) and handed to :func:`gaffer.gateway.proxy.create_app`. When a call ends its reservation
is settled at once and its usage row queued for the batch writer
(:class:`gaffer.gateway.writer.UsageWriter`; :meth:`Gateway.finish`), so the engine's stream
ends as soon as the upstream's does; :meth:`Gateway.drain` waits for the rows and the budget
hooks (tests, shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gaffer.gateway.budgets import Budgets, Reservation, SettingsLimits
from gaffer.gateway.pricing import NANO_PER_USD, PriceTable
from gaffer.gateway.runs import RunDirectory, StoredRuns
from gaffer.gateway.settings import GatewaySettings
from gaffer.gateway.tokens import RunTokens
from gaffer.gateway.upstreams import StoredUpstreams, UpstreamResolver
from gaffer.gateway.usage import CallRecord
from gaffer.gateway.writer import UsageWriter
from gaffer.runtime import Runtime
from gaffer.store.crypto import load_master_key
from gaffer.store.db import Database

log = structlog.get_logger("gaffer.gateway")

BudgetHook = Callable[[str, str], Awaitable[None]]
"""``await on_budget_exceeded(run_id, reason)``: called once per refused call; the lead
connects it to stopping the run (FAILED with ``reason``)."""


def upstream_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """The gateway's client for upstream calls: httpx's API over aiohttp's connection pool and
    C HTTP parser (``httpx-aiohttp``). With httpx's own transport (h11, pure Python) parsing an
    upstream's 2,000 small SSE chunks cost the gateway more CPU than the upstream spent making
    them (``bench/gateway.py``)."""
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.connect_timeout_s,
        ),
    )


class Gateway:
    """Everything a gateway process needs to answer calls (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        db: Database,
        tokens: RunTokens,
        runs: RunDirectory,
        resolver: UpstreamResolver,
        budgets: Budgets,
        prices: PriceTable,
        on_budget_exceeded: BudgetHook | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.tokens = tokens
        self.runs = runs
        self.resolver = resolver
        self.budgets = budgets
        self.prices = prices
        self.on_budget_exceeded = on_budget_exceeded
        self.client = client or upstream_client(settings)
        self._tasks: set[asyncio.Task[None]] = set()
        self.writer = UsageWriter(db)

    @classmethod
    def open(
        cls,
        runtime: Runtime,
        redis: aioredis.Redis,
        *,
        settings: GatewaySettings | None = None,
        resolver: UpstreamResolver | None = None,
        on_budget_exceeded: BudgetHook | None = None,
    ) -> Gateway:
        """The gateway of a ``gaffer up`` process: tokens keyed by the master key, runs and
        (unless ``resolver`` is given) upstreams read from the database, budgets in ``redis``
        with the limits of ``settings`` (default: read from ``GAFFER_GATEWAY_*``)."""
        settings = settings or GatewaySettings()
        return cls(
            settings=settings,
            db=runtime.db,
            tokens=RunTokens(load_master_key(runtime.settings)),
            runs=StoredRuns(runtime.db),
            resolver=resolver or StoredUpstreams(runtime.db, runtime.box),
            budgets=Budgets(
                redis,
                runtime.db,
                SettingsLimits(settings),
                reservation_ttl_s=settings.reservation_ttl_s,
            ),
            prices=PriceTable.load(settings.prices_file),
            on_budget_exceeded=on_budget_exceeded,
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on a task the gateway keeps until it ends (see :meth:`drain`)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every background task (hooks) has ended and every usage row is
        written."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.writer.flush()

    async def aclose(self) -> None:
        """Drain, then close the upstream connection pool."""
        await self.drain()
        await self.writer.aclose()
        await self.client.aclose()

    async def budget_exceeded(self, run_id: str, reason: str) -> None:
        """Call the hook for a refused call, before the refusal is answered: the run's stop
        (and its reason) is recorded before the engine can react to the error and exit, so
        the run ends FAILED with the budget's reason rather than the engine's words. A hook
        that fails is logged (``gateway_budget_hook_failed``), never raised."""
        hook = self.on_budget_exceeded
        if hook is None:
            return
        try:
            await hook(run_id, reason)
        except Exception:
            log.exception("gateway_budget_hook_failed", run_id=run_id)

    async def finish(self, record: CallRecord, reservation: Reservation | None) -> None:
        """Price ``record`` and settle ``reservation`` with it now (one Redis round trip, so
        the engine's next call sees the real figures), then write the usage row on a
        background task. Errors are logged (``gateway_settle_failed``,
        ``gateway_record_failed``), never raised: the call itself is over."""
        model = record.usage.model or record.model
        record.cost_nano_usd = self.prices.cost_nano_usd(model, record.usage)
        if record.cost_nano_usd is None and record.usage.seen:
            log.warning("gateway_price_unknown", model=model, run_id=record.run.run_id)
        if reservation is not None:
            try:
                await self.budgets.settle(
                    reservation,
                    cost_nano_usd=record.cost_nano_usd or 0,
                    tokens=record.usage.total_tokens,
                )
            except (RedisError, TimeoutError) as exc:
                log.error(
                    "gateway_settle_failed", run_id=record.run.run_id, error=type(exc).__name__
                )
        self.writer.add(record)
        log.info(
            "gateway_call",
            run_id=record.run.run_id,
            api=record.api,
            model=record.usage.model or record.model,
            status=record.status_code,
            outcome=record.outcome,
            input_tokens=record.usage.input_tokens,
            output_tokens=record.usage.output_tokens,
            cache_read_tokens=record.usage.cache_read_tokens,
            cache_write_tokens=record.usage.cache_write_tokens,
            cost_usd=(record.cost_nano_usd or 0) / NANO_PER_USD,
            duration_ms=record.duration_ms,
            ttfb_ms=record.ttfb_ms,
        )
