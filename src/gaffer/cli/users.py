"""``gaffer users create|list|set-role|disable|enable``.

Local mode acts as the installation's superadmin (``gaffer users create --superadmin`` makes
the first superadmin); remote mode calls ``/api/v1/users`` with the caller's role. Passwords
are read from standard input or a hidden prompt, never from the command line.
"""

from __future__ import annotations

from typing import Any

import typer

from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.accounts.users import (
    create_user,
    list_users,
    organization_of,
    set_disabled,
    set_role,
    user_view,
    visible_user,
)
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, short, table
from gaffer.cli.prompts import read_secret
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_or_create_organization

users_app = typer.Typer(help="Manage users and their roles.", no_args_is_help=True)

ROLE_CHOICES = ("member", "admin", "superadmin", "none")


def _print_user(view: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print_json(view)
        return
    roles = ", ".join(f"{short(m['organization_id'], 8)}:{m['role']}" for m in view["memberships"])
    extra = " superadmin" if view["superadmin"] else ""
    state = " (disabled)" if view["disabled"] else ""
    console.print(
        f"{verb} user {view['email']} ({view['id']}){extra} {roles}{state}".rstrip(),
        highlight=False,
    )


@users_app.command("create")
def create(
    email: str = typer.Argument(..., help="The user's email (their login)."),
    name: str = typer.Option("", "--name", help="Display name."),
    organization: str | None = typer.Option(None, "--org", help="Organization (name or id)."),
    role: str | None = typer.Option(None, help="Role in --org: member or admin."),
    superadmin: bool = typer.Option(False, "--superadmin", help="Installation-wide superadmin."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a user; the password is read from standard input (or prompted for)."""
    if organization and role is None:
        role = "member"
    if role is not None and role not in ("member", "admin"):
        raise context.CliError("--role is member or admin (superadmin: --superadmin)")
    if role is not None and not organization:
        raise context.CliError("--role needs --org")
    password = read_secret("Password", confirm=True)
    client = remote.client()
    if client is not None:
        view = client.post(
            "/users",
            {
                "email": email,
                "password": password,
                "display_name": name,
                "organization": organization,
                "role": role,
                "superadmin": superadmin,
            },
        )
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            org_id = get_or_create_organization(session, organization).id if organization else None
            user = create_user(
                session,
                Principal.local(),
                email=email,
                password=password,
                display_name=name,
                organization_id=org_id,
                role=Role(role) if role else None,
                superadmin=superadmin,
            )
            view = user_view(user)
    _print_user(view, as_json, "created")


@users_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List users (remote: those of the organizations you are admin of)."""
    client = remote.client()
    if client is not None:
        views = client.get("/users")
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            views = [user_view(u, orgs) for u, orgs in list_users(session, Principal.local())]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["email"],
            v["display_name"],
            "yes" if v["superadmin"] else "",
            ", ".join(f"{short(m['organization_id'], 8)}:{m['role']}" for m in v["memberships"]),
            "yes" if v["disabled"] else "",
        )
        for v in views
    ]
    console.print(table("users", ["email", "name", "superadmin", "roles", "disabled"], rows))


@users_app.command("set-role")
def set_role_command(
    user: str = typer.Argument(..., help="Email or id."),
    role: str = typer.Argument(..., help="member, admin, superadmin, or none (remove)."),
    organization: str | None = typer.Option(
        None, "--org", help="Organization (member/admin); none for superadmin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Give a user a role in an organization, or the superadmin role (``none`` removes)."""
    if role not in ROLE_CHOICES:
        raise context.CliError(f"unknown role {role!r} (known: {', '.join(ROLE_CHOICES)})")
    client = remote.client()
    if client is not None:
        view = client.request(
            "PUT", f"/users/{user}/role", json_body={"role": role, "organization": organization}
        )
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            principal = Principal.local()
            target = visible_user(session, principal, user)
            org_id = organization_of(session, organization).id if organization else None
            set_role(
                session,
                principal,
                target,
                None if role == "none" else Role(role),
                organization_id=org_id,
            )
            view = user_view(target)
    _print_user(view, as_json, "updated")


def _set_disabled(user: str, disabled: bool, as_json: bool) -> None:
    client = remote.client()
    if client is not None:
        view = client.post(f"/users/{user}/{'disable' if disabled else 'enable'}")
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            principal = Principal.local()
            target = visible_user(session, principal, user)
            set_disabled(session, principal, target, disabled)
            view = user_view(target)
    _print_user(view, as_json, "disabled" if disabled else "enabled")


@users_app.command("disable")
def disable(
    user: str = typer.Argument(..., help="Email or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Disable a user: no sign-in, sessions ended, tokens stop working."""
    _set_disabled(user, True, as_json)


@users_app.command("enable")
def enable(
    user: str = typer.Argument(..., help="Email or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Enable a disabled user again."""
    _set_disabled(user, False, as_json)
