"""Budgets: per run (most cost, tokens, calls) and per project (a calendar month, UTC).

Before a call is forwarded, :meth:`Budgets.reserve` runs ``lua/reserve.lua``: in one atomic
step it drops lapsed reservations, adds what the run and its project have spent (settled) and
hold (reserved by calls still streaming, in any gateway process), and admits the call only if
its estimate still fits every limit, holding that estimate until :meth:`Budgets.settle` replaces
it with the real cost. Two runs racing for a project's last dollar thus cannot both get it: the
second sees the first's reservation. A reservation whose gateway died lapses after
``GAFFER_GATEWAY_RESERVATION_TTL_S``.

Spent figures live in Redis (``gaffer:gateway:run:<run id>:spent``,
``gaffer:gateway:project:<project id>:<YYYY-MM>:spent`` and their ``:held`` sets) and are
seeded from the ``gateway_calls`` rows when missing (a new run, a new month, a Redis that lost
its data), so the database stays the record.

Fail closed: when Redis or the database cannot be reached, :class:`BudgetUnavailable` is
raised and the call is not forwarded (money is spent here).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gaffer.gateway.pricing import NANO_PER_USD
from gaffer.gateway.runs import RunInfo
from gaffer.gateway.settings import GatewaySettings
from gaffer.gateway.usage import run_spent, spent_since
from gaffer.store.db import Database

_LUA = Path(__file__).parent / "lua"
KEY_TTL_S = 40 * 24 * 3600
"""Spent figures outlive a month by a little; they are re-seeded from the database after."""


def usd_to_nano(usd: float) -> int:
    """``usd`` dollars in nano-USD (rounded to the nearest)."""
    return round(usd * NANO_PER_USD)


def _usd(nano: int) -> str:
    usd = nano / NANO_PER_USD
    return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:.4f}"


@dataclass(frozen=True)
class Limits:
    """Budgets of one run; 0 means no limit. Costs in nano-USD."""

    max_run_cost_nano_usd: int = 0
    max_run_tokens: int = 0
    max_run_calls: int = 0
    project_monthly_nano_usd: int = 0

    @classmethod
    def from_usd(
        cls,
        *,
        max_run_cost_usd: float = 0,
        max_run_tokens: int = 0,
        max_run_calls: int = 0,
        project_monthly_usd: float = 0,
    ) -> Limits:
        """Limits with costs given in USD."""
        return cls(
            usd_to_nano(max_run_cost_usd),
            max_run_tokens,
            max_run_calls,
            usd_to_nano(project_monthly_usd),
        )


class LimitsSource(Protocol):
    """Which limits apply to a run (the lead's per-project/per-agent settings plug in here)."""

    async def limits(self, run: RunInfo) -> Limits:
        """The limits of ``run``."""
        ...


class SettingsLimits:
    """The defaults of :class:`GatewaySettings`, overridden per project (``(project_id,
    None)``) or per project and agent type (``(project_id, agent_type)``, which wins)."""

    def __init__(
        self,
        settings: GatewaySettings,
        overrides: Mapping[tuple[str, str | None], Limits] | None = None,
    ) -> None:
        self.default = Limits.from_usd(
            max_run_cost_usd=settings.max_run_cost_usd,
            max_run_tokens=settings.max_run_tokens,
            max_run_calls=settings.max_run_calls,
            project_monthly_usd=settings.project_monthly_usd,
        )
        self.overrides = dict(overrides or {})

    async def limits(self, run: RunInfo) -> Limits:
        """See :meth:`LimitsSource.limits`."""
        return (
            self.overrides.get((run.project_id, run.agent_type))
            or self.overrides.get((run.project_id, None))
            or self.default
        )


class BudgetExceeded(Exception):
    """A call refused by a budget. ``budget`` is ``run_cost``, ``run_tokens``, ``run_calls`` or
    ``project_cost``; ``str()`` is the reason the engine and the run are given, such as
    ``budget exceeded: $4.12 of $4.00 per run``."""

    def __init__(self, budget: str, reason: str) -> None:
        super().__init__(reason)
        self.budget = budget


class BudgetUnavailable(Exception):
    """Redis or the database cannot be reached: calls fail closed. ``store`` says which."""

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(f"{store} unreachable: {detail}")
        self.store = store


@dataclass(frozen=True)
class Reservation:
    """Budget held for one call until it is settled."""

    member: str
    keys: tuple[str, str, str, str]


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month in UTC."""
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _reason(budget: str, spent: int, held: int, limit: int, estimate: int) -> str:
    """``budget exceeded: <spent> of <limit> <scope>``; when what is spent is still under the
    limit, what calls under way hold and this call's estimate are named too."""
    if budget == "run_calls":
        return f"budget exceeded: {spent} of {limit} model calls per run"
    if budget == "run_tokens":
        reason = f"budget exceeded: {spent:,} tokens of {limit:,} per run"
        if spent < limit:
            reason += f" ({held:,} held by calls under way, up to {estimate:,} for this one)"
        return reason
    scope = "per run" if budget == "run_cost" else "of the project's monthly budget"
    reason = f"budget exceeded: {_usd(spent)} of {_usd(limit)} {scope}"
    if spent < limit:
        reason += f" ({_usd(held)} held by calls under way, up to {_usd(estimate)} for this one)"
    return reason


class Budgets:
    """Reserves and settles budget for model calls (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        db: Database,
        limits: LimitsSource,
        *,
        reservation_ttl_s: int = 900,
        redis_timeout_s: float = 2.0,
    ) -> None:
        self.redis = redis
        self.db = db
        self.limits = limits
        self.reservation_ttl_s = reservation_ttl_s
        self.redis_timeout_s = redis_timeout_s
        """A Redis call slower than this (s) counts as Redis unreachable: fail closed."""
        self._reserve = redis.register_script((_LUA / "reserve.lua").read_text())
        self._seed = redis.register_script((_LUA / "seed.lua").read_text())
        self._settle = redis.register_script((_LUA / "settle.lua").read_text())

    @staticmethod
    def keys(run: RunInfo, now: datetime) -> tuple[str, str, str, str]:
        """The four Redis keys of ``run`` in ``now``'s month (see ``lua/reserve.lua``)."""
        month = now.astimezone(UTC).strftime("%Y-%m")
        run_key = f"gaffer:gateway:run:{run.run_id}"
        project_key = f"gaffer:gateway:project:{run.project_id}:{month}"
        return (
            f"{run_key}:spent",
            f"{run_key}:held",
            f"{project_key}:spent",
            f"{project_key}:held",
        )

    async def reserve(self, run: RunInfo, *, cost_nano_usd: int, tokens: int) -> Reservation:
        """Hold ``cost_nano_usd``/``tokens`` (the call's estimate) for ``run``.

        Raises :class:`BudgetExceeded` when the call does not fit a limit, and
        :class:`BudgetUnavailable` when Redis or the database cannot be reached.
        """
        limits = await self.limits.limits(run)
        now = datetime.now(UTC)
        keys = self.keys(run, now)
        member = f"{uuid.uuid4().hex}:{max(cost_nano_usd, 0)}:{max(tokens, 0)}"
        now_ms = int(time.time() * 1000)
        args: list[str | int] = [
            member,
            max(cost_nano_usd, 0),
            max(tokens, 0),
            limits.max_run_cost_nano_usd,
            limits.max_run_tokens,
            limits.max_run_calls,
            limits.project_monthly_nano_usd,
            now_ms,
            now_ms + self.reservation_ttl_s * 1000,
            KEY_TTL_S,
        ]
        try:
            async with asyncio.timeout(self.redis_timeout_s):
                answer = await self._reserve(keys=list(keys), args=args)
            if answer[0] in (b"seed", "seed"):
                await self._seed_from_db(run, keys, now)
                async with asyncio.timeout(self.redis_timeout_s):
                    answer = await self._reserve(keys=list(keys), args=args)
        except (RedisError, TimeoutError) as exc:
            raise BudgetUnavailable("redis", type(exc).__name__) from exc
        verdict = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
        if verdict == "ok":
            return Reservation(member, keys)
        if verdict == "seed":  # pragma: no cover - the seed just ran
            raise BudgetUnavailable("redis", "spent figures vanished while seeding")
        spent, held, limit, estimate = (int(x) for x in answer[1:5])
        raise BudgetExceeded(verdict, _reason(verdict, spent, held, limit, estimate))

    async def _seed_from_db(
        self, run: RunInfo, keys: tuple[str, str, str, str], now: datetime
    ) -> None:
        def read() -> tuple[int, int, int, int]:
            with self.db.session() as session:
                cost, tokens, calls = run_spent(session, run.run_id)
                return cost, tokens, calls, spent_since(session, run.project_id, month_start(now))

        try:
            cost, tokens, calls, project = await asyncio.to_thread(read)
        except SQLAlchemyError as exc:
            raise BudgetUnavailable("database", type(exc).__name__) from exc
        async with asyncio.timeout(self.redis_timeout_s):
            await self._seed(
                keys=[keys[0], keys[2]], args=[cost, tokens, calls, project, KEY_TTL_S]
            )

    async def settle(self, reservation: Reservation, *, cost_nano_usd: int, tokens: int) -> None:
        """Replace ``reservation`` with the call's real figures (raises :class:`RedisError`
        or :class:`TimeoutError`; a reservation left unsettled lapses on its own)."""
        async with asyncio.timeout(self.redis_timeout_s):
            await self._settle(
                keys=list(reservation.keys),
                args=[reservation.member, max(cost_nano_usd, 0), max(tokens, 0)],
            )


def monthly_budget_refusal(
    session: Session, project_id: str, monthly_nano_usd: int, *, now: datetime | None = None
) -> str | None:
    """Why a project may start no new run this month, or None: its calls since the month
    began (UTC, from the usage rows) cost at least ``monthly_nano_usd`` (0: no budget). For the
    trigger path ("a project over its monthly budget starts no new run"), which records the
    trigger as ignored with this reason."""
    if monthly_nano_usd <= 0:
        return None
    spent = spent_since(session, project_id, month_start(now or datetime.now(UTC)))
    if spent < monthly_nano_usd:
        return None
    return (
        f"budget exceeded: {_usd(spent)} of {_usd(monthly_nano_usd)} of the project's "
        "monthly budget"
    )
