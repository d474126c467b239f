"""Usage rows: one per model call (``gateway_calls``), run totals, and sums for ``gaffer usage``.

Costs are nano-USD integers in the store (see :mod:`gaffer.gateway.pricing`); the ``*_usd``
properties turn them into dollars.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from gaffer.gateway.pricing import NANO_PER_USD
from gaffer.gateway.protocols.base import Usage
from gaffer.gateway.runs import RunInfo
from gaffer.store.db import Database
from gaffer.store.models import GatewayCall

GroupBy = Literal["model", "agent", "day"]


@dataclass
class CallRecord:
    """What the gateway learnt of one call; :func:`record_call` writes it as a row (see
    :class:`gaffer.store.models.GatewayCall` for each field)."""

    run: RunInfo
    api: str
    provider: str
    model: str | None
    started_at: datetime
    status_code: int | None = None
    outcome: str = "ok"
    usage: Usage = field(default_factory=Usage)
    cost_nano_usd: int | None = None
    duration_ms: int = 0
    ttfb_ms: int | None = None


def call_row(record: CallRecord) -> dict[str, object]:
    """``record`` as the column values of a ``gateway_calls`` row."""
    return {
        "run_id": record.run.run_id,
        "project_id": record.run.project_id,
        "agent_type": record.run.agent_type,
        "api": record.api,
        "provider": record.provider,
        "model": record.usage.model or record.model,
        "status_code": record.status_code,
        "outcome": record.outcome,
        "input_tokens": record.usage.input_tokens,
        "output_tokens": record.usage.output_tokens,
        "cache_read_tokens": record.usage.cache_read_tokens,
        "cache_write_tokens": record.usage.cache_write_tokens,
        "cost_nano_usd": record.cost_nano_usd,
        "duration_ms": record.duration_ms,
        "ttfb_ms": record.ttfb_ms,
        "response_id": record.usage.response_id,
        "started_at": record.started_at,
    }


def record_calls(db: Database, records: Sequence[CallRecord]) -> None:
    """Insert ``records`` as ``gateway_calls`` rows in one transaction (one multi-row
    statement; blocking; raises the database's error)."""
    if not records:
        return
    with db.engine.begin() as conn:
        conn.execute(insert(GatewayCall), [call_row(r) for r in records])


def record_call(db: Database, record: CallRecord) -> None:
    """Insert one ``record`` (see :func:`record_calls`)."""
    record_calls(db, [record])


@dataclass
class Totals:
    """Sums over calls: ``calls``, the four token counts, ``cost_nano_usd`` (unknown prices
    count 0) and ``unpriced`` (calls whose model has no price)."""

    key: str = ""
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_nano_usd: int = 0
    unpriced: int = 0

    @property
    def tokens(self) -> int:
        """All four token counts added up."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    @property
    def cost_usd(self) -> float:
        """``cost_nano_usd`` in USD."""
        return self.cost_nano_usd / NANO_PER_USD

    def add(self, row: GatewayCall) -> None:
        """Add one call's figures."""
        self.calls += 1
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cache_read_tokens += row.cache_read_tokens
        self.cache_write_tokens += row.cache_write_tokens
        if row.cost_nano_usd is None:
            self.unpriced += 1
        else:
            self.cost_nano_usd += row.cost_nano_usd

    def as_dict(self) -> dict[str, int | float | str]:
        """The figures as JSON-ready values (``cost_usd`` in dollars)."""
        return {
            "key": self.key,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 9),
            "unpriced_calls": self.unpriced,
        }


def _sum(rows: Iterable[GatewayCall], key: str = "") -> Totals:
    totals = Totals(key=key)
    for row in rows:
        totals.add(row)
    return totals


def run_totals(session: Session, run_id: str) -> Totals:
    """The totals of one run's calls (all zero when it made none)."""
    rows = session.execute(select(GatewayCall).where(GatewayCall.run_id == run_id)).scalars()
    return _sum(rows, run_id)


def spent_since(session: Session, project_id: str, since: datetime) -> int:
    """nano-USD a project's calls started at or after ``since`` cost."""
    query = select(func.coalesce(func.sum(GatewayCall.cost_nano_usd), 0)).where(
        GatewayCall.project_id == project_id, GatewayCall.started_at >= since
    )
    return int(session.execute(query).scalar_one() or 0)


def run_spent(session: Session, run_id: str) -> tuple[int, int, int]:
    """``(cost nano-USD, tokens, calls)`` of a run's recorded calls."""
    query = select(
        func.coalesce(func.sum(GatewayCall.cost_nano_usd), 0),
        func.coalesce(
            func.sum(
                GatewayCall.input_tokens
                + GatewayCall.output_tokens
                + GatewayCall.cache_read_tokens
                + GatewayCall.cache_write_tokens
            ),
            0,
        ),
        func.count(GatewayCall.id),
    ).where(GatewayCall.run_id == run_id)
    cost, tokens, calls = session.execute(query).one()
    return int(cost or 0), int(tokens or 0), int(calls or 0)


def summarize(
    session: Session,
    *,
    project_id: str | None = None,
    since: datetime | None = None,
    by: GroupBy = "model",
    project_ids: Collection[str] | None = None,
) -> tuple[list[Totals], Totals]:
    """Calls grouped ``by`` model, agent type or UTC day (``YYYY-MM-DD``), largest cost first
    (days in date order), and the grand total, optionally only one project's (or only those of
    ``project_ids``: an API caller's visible projects) and only calls started at or after
    ``since``."""
    query = select(GatewayCall)
    if project_id is not None:
        query = query.where(GatewayCall.project_id == project_id)
    if project_ids is not None:
        query = query.where(GatewayCall.project_id.in_(list(project_ids)))
    if since is not None:
        query = query.where(GatewayCall.started_at >= since)
    groups: dict[str, Totals] = {}
    total = Totals(key="total")
    for row in session.execute(query).scalars():
        if by == "model":
            key = row.model or "(unknown)"
        elif by == "agent":
            key = row.agent_type
        else:
            key = row.started_at.date().isoformat()
        groups.setdefault(key, Totals(key=key)).add(row)
        total.add(row)
    ordered = sorted(groups.values(), key=lambda t: t.key if by == "day" else -t.cost_nano_usd)
    return ordered, total
