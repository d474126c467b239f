"""``gaffer audit list``: who changed what, newest first (``--json`` for scripts)."""

from __future__ import annotations

import json
from typing import Any

import typer

from gaffer.accounts.audit import AuditFilter, event_view, list_events
from gaffer.accounts.users import organization_of
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, short, table
from gaffer.runtime import open_runtime

audit_app = typer.Typer(help="Read the audit log.", no_args_is_help=True)


@audit_app.command("list")
def list_command(
    organization: str | None = typer.Option(None, "--org", help="Organization (name or id)."),
    action: str | None = typer.Option(None, help="An action, or a prefix ending in '.'."),
    actor: str | None = typer.Option(None, help="An email, or a user or token id."),
    target: str | None = typer.Option(None, help="Target id."),
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List audit rows: when, actor, action, target, change."""
    client = remote.client()
    views: list[dict[str, Any]]
    if client is not None:
        org_id = None
        if organization:
            orgs = client.get("/organizations")
            org_id = next((o["id"] for o in orgs if organization in (o["id"], o["name"])), None)
            if org_id is None:
                raise context.CliError(f"no organization {organization!r}")
        views = client.get(
            "/audit",
            organization_id=org_id,
            action=action,
            actor=actor,
            target_id=target,
            limit=limit,
        )["items"]
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            org_id = organization_of(session, organization).id if organization else None
            where = AuditFilter(
                organization_id=org_id,
                action=action,
                actor=actor,
                target_id=target,
                limit=limit,
            )
            views = [event_view(e) for e in list_events(session, where)]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["ts"][:19],
            v["actor"],
            v["via"],
            v["action"],
            f"{v['target_type']} {short(v['target_id'])}",
            json.dumps(v["change"], sort_keys=True)[:80],
        )
        for v in views
    ]
    console.print(table("audit", ["when", "actor", "via", "action", "target", "change"], rows))
