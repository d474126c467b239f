"""``gaffer github set-app|set-token|show``: a project's GitHub credentials.

The App's private key is read from a file (``--private-key-file``), the token from stdin
(``printf %s "$TOKEN" | gaffer github set-token --project P``): a secret is never taken
from the command line. Both are stored encrypted with the master key and shown masked.
``--api-url`` is the REST root of the project's GitHub (GitHub Enterprise Server
``https://HOST/api/v3``, a test server); the default is ``https://api.github.com``.
In remote mode the secret goes in the body of ``PUT /api/v1/projects/{p}/github/app`` (or
``/token``); both modes check and store with :mod:`gaffer.manage.github`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from gaffer.accounts.principal import Principal
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json
from gaffer.manage import github
from gaffer.providers.github_api.credentials import Credentials
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project

github_app = typer.Typer(
    help="A project's GitHub credentials (an App or a token), stored encrypted.",
    no_args_is_help=True,
)


def _store(
    project: str, credentials: Credentials, api_url: str | None, body: dict[str, Any]
) -> str:
    """Store the credentials (``body``: the same, as the API's request body in remote mode).
    Returns the project's name."""
    client = remote.client()
    if client is not None:
        kind = "app" if credentials.kind == "app" else "token"
        answer = client.put(client.path("projects", project, "github", kind), body)
        name: str = answer["project"]
        return name
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        found = get_project(session, project)
        github.store(session, rt.box, Principal.local(), found, credentials, api_url)
        return found.name


@github_app.command("set-app")
def set_app(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    app_id: int = typer.Option(..., "--app-id", help="The GitHub App's id."),
    private_key_file: Path = typer.Option(
        ..., "--private-key-file", help="The App's private key (PEM file)."
    ),
    installation_id: int | None = typer.Option(
        None,
        "--installation-id",
        help="The App's installation id (learned from webhooks when not set).",
    ),
    api_url: str | None = typer.Option(None, "--api-url", help="REST root (GHES, tests)."),
) -> None:
    """Use a GitHub App for the project's GitHub calls and the workers' git."""
    try:
        pem = private_key_file.read_text()
    except OSError as exc:
        raise context.CliError(f"cannot read {private_key_file}: {exc.strerror}") from None
    creds = github.app_credentials(app_id, pem, installation_id)
    url = github.api_url(api_url)
    body = {
        "app_id": app_id,
        "private_key_pem": pem,
        "installation_id": installation_id,
        "api_url": url,
    }
    name = _store(project, creds, url, body)
    console.print(f"GitHub App {app_id} set on {name}", highlight=False)


@github_app.command("set-token")
def set_token(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    login: str | None = typer.Option(
        None,
        "--login",
        help="The account the token acts as (becomes the project's bot login).",
    ),
    api_url: str | None = typer.Option(None, "--api-url", help="REST root (GHES, tests)."),
) -> None:
    """Use a token (fine-grained PAT) read from stdin."""
    if sys.stdin.isatty():
        console.print("token (end with Ctrl-D):", highlight=False)
    token = sys.stdin.read()
    creds = github.token_credentials(token, login)
    url = github.api_url(api_url)
    name = _store(project, creds, url, {"token": token, "login": login, "api_url": url})
    console.print(f"GitHub token set on {name}", highlight=False)


@github_app.command("show")
def show(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the project's GitHub credentials, masked."""
    client = remote.client()
    if client is not None:
        shown = client.get(client.path("projects", project, "github"))
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            shown = github.shown(session, get_project(session, project))
        if shown is None:
            raise context.CliError(github.none_set(project))
    if as_json:
        print_json(shown)
        return
    for key, value in shown.items():
        console.print(f"{key}: {value}", highlight=False)
