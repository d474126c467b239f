"""``gaffer deliveries list``: what each webhook delivery was answered, and why."""

from __future__ import annotations

import typer

from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, short, table
from gaffer.runs.views import delivery_view
from gaffer.runtime import open_runtime
from gaffer.store.deliveries import list_deliveries

deliveries_app = typer.Typer(help="Inspect received webhook deliveries.", no_args_is_help=True)


@deliveries_app.command("list")
def list_command(
    delivery_id: str | None = typer.Option(
        None, help="Only this X-GitHub-Delivery id (or those starting with it)."
    ),
    limit: int = typer.Option(50, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List webhook deliveries with their status code, decision and reason."""
    client = remote.client()
    if client is not None:
        views = client.get("/deliveries", delivery_id=delivery_id, limit=limit)
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            views = [
                delivery_view(d)
                for d in list_deliveries(session, delivery_id=delivery_id, limit=limit)
            ]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["received_at"][:19],
            v["event"],
            v["action"],
            short(v["delivery_id"]),
            v["status_code"],
            v["decision"],
            v["reason"],
            " ".join(short(r, 8) or "" for r in v["run_ids"]),
        )
        for v in views
    ]
    console.print(
        table(
            "deliveries",
            ["received", "event", "action", "delivery", "code", "decision", "reason", "runs"],
            rows,
        )
    )
