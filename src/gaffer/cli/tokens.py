"""``gaffer tokens create|list|revoke``: API tokens (``gfr_...``), shown once when made.

Remote mode manages the caller's own tokens; local mode (the installation's superadmin) makes
tokens for ``--user`` and lists and revokes anyone's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from gaffer.accounts.errors import NotFoundError
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.accounts.tokens import create_token, list_tokens, revoke_token, token_view
from gaffer.accounts.users import find_user, organization_of
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, table
from gaffer.runtime import open_runtime
from gaffer.store.models import utcnow

tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)


@tokens_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the token is for."),
    role: str = typer.Option("member", help="member, admin or superadmin (at most the owner's)."),
    organization: str | None = typer.Option(
        None, "--org", help="Limit the token to this organization (name or id)."
    ),
    expires_in_days: int = typer.Option(90, help="Lifetime in days (0: never expires)."),
    user: str | None = typer.Option(None, "--user", help="Owner (local mode: required)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make a token and print it once (it is stored hashed: it cannot be shown again)."""
    if expires_in_days < 0:
        raise context.CliError("--expires-in-days must be 0 or more")
    parsed = Role.parse(role)
    client = remote.client()
    if client is not None:
        if user is not None:
            raise context.CliError("--user is for local mode; remote tokens are your own")
        org_id = None
        if organization:
            orgs = client.get("/organizations")
            org_id = next((o["id"] for o in orgs if organization in (o["id"], o["name"])), None)
            if org_id is None:
                raise context.CliError(f"no organization {organization!r}")
        view = client.post(
            "/tokens",
            {
                "name": name,
                "role": parsed.value,
                "organization_id": org_id,
                "expires_in_days": expires_in_days or None,
            },
        )
    else:
        if user is None:
            raise context.CliError("local mode needs --user EMAIL: whose token it is")
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            owner = find_user(session, user)
            if owner is None:
                raise NotFoundError(f"no user {user!r}")
            token, plain = create_token(
                session,
                Principal.local(),
                owner,
                name=name,
                role=parsed,
                organization_id=organization_of(session, organization).id if organization else None,
                expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
            )
            view = token_view(token) | {"token": plain}
    if as_json:
        print_json(view)
        return
    console.print(f"created token {view['prefix']}... ({view['id']}) for {view['owner']}")
    console.print(f"token (shown once): [bold]{view['token']}[/bold]", highlight=False)


@tokens_app.command("list")
def list_command(
    everyone: bool = typer.Option(False, "--all", help="Every user's tokens (superadmin)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List tokens (never the tokens themselves: their prefixes)."""
    client = remote.client()
    views: list[dict[str, Any]]
    if client is not None:
        views = client.get("/tokens", all="true" if everyone else None)
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            views = [token_view(t) for t in list_tokens(session, Principal.local(), everyone=True)]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["prefix"],
            v["name"],
            v["owner"],
            v["role"],
            v["organization_id"],
            (v["expires_at"] or "never")[:19],
            (v["last_used_at"] or "-")[:19],
            "revoked" if v["revoked_at"] else "",
        )
        for v in views
    ]
    console.print(
        table(
            "tokens",
            ["prefix", "name", "owner", "role", "org", "expires", "last used", "state"],
            rows,
        )
    )


@tokens_app.command("revoke")
def revoke(
    token: str = typer.Argument(..., help="Token id or its shown prefix (gfr_...)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Revoke a token: it stops working at once."""
    client = remote.client()
    if client is not None:
        view = client.request("DELETE", f"/tokens/{token}")
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            view = token_view(revoke_token(session, Principal.local(), token))
    if as_json:
        print_json(view)
        return
    console.print(f"revoked token {view['prefix']}... ({view['id']})", highlight=False)
