"""The usage report ``gaffer usage`` prints and ``GET /api/v1/usage`` answers: model calls
summed by model, agent type or UTC day (:func:`gaffer.gateway.usage.summarize`), and the table
rows made from it, so both roads print the same figures."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy.orm import Session

from gaffer.accounts.errors import InvalidInputError
from gaffer.gateway.usage import GroupBy, summarize

BY_CHOICES = ("model", "agent", "day")
COLUMNS = ("calls", "input", "output", "cache read", "cache write", "cost USD")
"""The table's columns after the group's own (``by``)."""


def grouping(by: str) -> GroupBy:
    """``by`` if it is one of :data:`BY_CHOICES`; raises :class:`InvalidInputError`."""
    if by not in BY_CHOICES:
        raise InvalidInputError(f"--by {by!r}: one of {', '.join(BY_CHOICES)}")
    return cast(GroupBy, by)


def usage_report(
    session: Session,
    *,
    by: str,
    project: str | None,
    project_id: str | None,
    since: datetime | None,
    project_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """``{"by", "project", "since", "groups", "total"}``: ``project`` as the caller named it,
    ``since`` ISO 8601, each group and the total as
    :meth:`gaffer.gateway.usage.Totals.as_dict` (tokens as counts, ``cost_usd`` in USD).
    ``project_ids`` limits the sum to those projects (None: every project). Raises
    :class:`InvalidInputError` for an unknown ``by``."""
    groups, total = summarize(
        session, project_id=project_id, since=since, by=grouping(by), project_ids=project_ids
    )
    return {
        "by": by,
        "project": project,
        "since": since.isoformat() if since else None,
        "groups": [g.as_dict() for g in groups],
        "total": total.as_dict(),
    }


def usage_rows(report: dict[str, Any]) -> list[list[object]]:
    """The table rows of a :func:`usage_report`: each group, then the total."""
    return [_row(g) for g in [*report["groups"], report["total"]]]


def _row(totals: dict[str, Any]) -> list[object]:
    unpriced = totals["unpriced_calls"]
    cost = f"{totals['cost_usd']:,.4f}" + (f" (+{unpriced} unpriced)" if unpriced else "")
    return [
        totals["key"],
        totals["calls"],
        f"{totals['input_tokens']:,}",
        f"{totals['output_tokens']:,}",
        f"{totals['cache_read_tokens']:,}",
        f"{totals['cache_write_tokens']:,}",
        cost,
    ]
