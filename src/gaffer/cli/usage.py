"""``gaffer usage``: what model calls cost, summed from the gateway's usage rows.

Register with ``app.command("usage")(usage_command)`` in :mod:`gaffer.cli.main`. In remote
mode the report comes from ``GET /api/v1/usage``; both modes build it with
:mod:`gaffer.manage.usage`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import typer

from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, table
from gaffer.manage.usage import COLUMNS, grouping, usage_report, usage_rows
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project

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


def usage_command(
    project: str | None = typer.Option(None, help="Only this project (name or id)."),
    since: str | None = typer.Option(
        None, help="Only calls since: Nd (last N days), YYYY-MM-DD, or an ISO date and time."
    ),
    by: str = typer.Option("model", help="Group by model, agent or day (UTC)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sum the model calls made through the gateway: calls, tokens and cost in USD."""
    grouping(by)
    start = parse_since(since) if since is not None else None
    client = remote.client()
    if client is not None:
        report = client.get(
            "/usage", project=project, since=start.isoformat() if start else None, by=by
        )
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            project_id = get_project(session, project).id if project is not None else None
            report = usage_report(
                session, by=by, project=project, project_id=project_id, since=start
            )
    if as_json:
        print_json(report)
        return
    console.print(table("usage", [by, *COLUMNS], usage_rows(report)))
