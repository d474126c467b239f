"""``gaffer credentials set|list|delete``: a project's named secrets (engine API keys...).

The value is read from stdin (``printf %s "$KEY" | gaffer credentials set --project P
ANTHROPIC_API_KEY``), never from the command line, where ``ps`` and the shell's history would
show it; listings show names and masked values only. In remote mode the value goes in the
body of ``PUT /api/v1/projects/{p}/credentials/{name}``; both modes build their views with
:mod:`gaffer.manage.credentials`.
"""

from __future__ import annotations

import sys

import typer

from gaffer.accounts.principal import Principal
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, table
from gaffer.manage.credentials import credential_rows, put_credential, remove_credential
from gaffer.runtime import open_runtime
from gaffer.store.credentials import validate_name
from gaffer.store.projects import get_project

credentials_app = typer.Typer(
    help="A project's secrets (engine API keys), stored encrypted.", no_args_is_help=True
)


@credentials_app.command("set")
def set_command(
    name: str = typer.Argument(..., help="Credential name, e.g. ANTHROPIC_API_KEY."),
    project: str = typer.Option(..., "--project", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Set a credential from stdin (the value is never taken from the command line)."""
    validate_name(name)
    if sys.stdin.isatty():
        console.print(f"value of {name} (end with Ctrl-D):", highlight=False)
    value = sys.stdin.read()
    client = remote.client()
    if client is not None:
        row = client.put(client.path("projects", project, "credentials", name), {"value": value})
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            found = get_project(session, project)
            row = put_credential(session, rt.box, Principal.local(), found, name, value)
    if as_json:
        print_json({"project": project, "name": row["name"], "masked": row["masked"]})
        return
    console.print(f"{name} set on {project} ({row['masked']})", highlight=False)


@credentials_app.command("list")
def list_command(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a project's credentials, masked."""
    client = remote.client()
    if client is not None:
        rows = client.get(client.path("projects", project, "credentials"))
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            rows = credential_rows(session, rt.box, get_project(session, project))
    if as_json:
        print_json(rows)
        return
    console.print(
        table(
            f"credentials of {project}",
            ["name", "value", "updated"],
            [(r["name"], r["masked"], r["updated_at"]) for r in rows],
        )
    )


@credentials_app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Credential name."),
    project: str = typer.Option(..., "--project", help="Project name or id."),
) -> None:
    """Delete a credential."""
    client = remote.client()
    if client is not None:
        client.delete(client.path("projects", project, "credentials", name))
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            remove_credential(session, Principal.local(), get_project(session, project), name)
    console.print(f"{name} deleted from {project}", highlight=False)
