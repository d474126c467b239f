"""``gaffer usage``: what model calls cost, summed from the gateway's usage rows.

Register with ``app.command("usage")(usage_command)`` in :mod:`gaffer.cli.main`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import cast

import typer

from gaffer.cli import context
from gaffer.cli.output import console, print_json, table
from gaffer.gateway.usage import GroupBy, Totals, summarize
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project

BY_CHOICES = ("model", "agent", "day")
_DAYS = re.compile(r"(\d{1,5})d")


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``--since``: ``Nd`` (the last N days), a date ``YYYY-MM-DD`` (its midnight, UTC) or an
    ISO 8601 date and time (UTC when it names no zone). Raises :class:`CliError`."""
    now = now or datetime.now(UTC)
    if match := _DAYS.fullmatch(value.strip()):
        return now - timedelta(days=int(match.group(1)))
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise context.CliError(
            f"--since {value!r}: give Nd (last N days), YYYY-MM-DD or an ISO date and time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row(totals: Totals) -> list[object]:
    cost = f"{totals.cost_usd:,.4f}" + (
        f" (+{totals.unpriced} unpriced)" if totals.unpriced else ""
    )
    return [
        totals.key,
        totals.calls,
        f"{totals.input_tokens:,}",
        f"{totals.output_tokens:,}",
        f"{totals.cache_read_tokens:,}",
        f"{totals.cache_write_tokens:,}",
        cost,
    ]


def usage_command(
    project: str | None = typer.Option(None, help="Only this project (name or id)."),
    since: str | None = typer.Option(
        None, help="Only calls since: Nd (last N days), YYYY-MM-DD, or an ISO date and time."
    ),
    by: str = typer.Option("model", help="Group by model, agent or day (UTC)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sum the model calls made through the gateway: calls, tokens and cost in USD."""
    if by not in BY_CHOICES:
        raise context.CliError(f"--by {by!r}: one of {', '.join(BY_CHOICES)}")
    start = parse_since(since) if since is not None else None
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        project_id = get_project(session, project).id if project is not None else None
        grouping = cast(GroupBy, by)
        groups, total = summarize(session, project_id=project_id, since=start, by=grouping)
    if as_json:
        print_json(
            {
                "by": by,
                "project": project,
                "since": start.isoformat() if start else None,
                "groups": [g.as_dict() for g in groups],
                "total": total.as_dict(),
            }
        )
        return
    columns = [by, "calls", "input", "output", "cache read", "cache write", "cost USD"]
    console.print(table("usage", columns, [*(_row(g) for g in groups), _row(total)]))
