"""``gaffer github set-app|set-token|show``: a project's GitHub credentials.

The App's private key is read from a file (``--private-key-file``), the token from stdin
(``printf %s "$TOKEN" | gaffer github set-token --project P``): a secret is never taken
from the command line. Both are stored encrypted with the master key and shown masked.
``--api-url`` is the REST root of the project's GitHub (GitHub Enterprise Server
``https://HOST/api/v3``, a test server); the default is ``https://api.github.com``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import SecretStr, ValidationError

from gaffer.cli import context
from gaffer.cli.output import console, print_json
from gaffer.providers.github_api.credential_store import masked, set_credentials
from gaffer.providers.github_api.credentials import AppCredentials, Credentials, TokenCredentials
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project

github_app = typer.Typer(
    help="A project's GitHub credentials (an App or a token), stored encrypted.",
    no_args_is_help=True,
)


def _api_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("https://", "http://")):
        raise context.CliError(f"--api-url must be an http(s) URL, not {value!r}")
    return value.rstrip("/")


def _store(project: str, credentials: Credentials, api_url: str | None) -> str:
    """Store the credentials; a token naming its account makes that account the project's
    bot login (the loop guard). Returns the project's name."""
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        found = get_project(session, project)
        set_credentials(session, rt.box, found.id, credentials, api_url=api_url)
        if isinstance(credentials, TokenCredentials) and credentials.login:
            found.bot_login = credentials.login
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
    try:
        creds = AppCredentials(
            app_id=app_id, private_key_pem=SecretStr(pem), installation_id=installation_id
        )
    except ValidationError as exc:
        raise context.CliError(_first_error(exc)) from None
    name = _store(project, creds, _api_url(api_url))
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
    try:
        creds = TokenCredentials(token=SecretStr(sys.stdin.read()), login=login)
    except ValidationError as exc:
        raise context.CliError(_first_error(exc)) from None
    name = _store(project, creds, _api_url(api_url))
    console.print(f"GitHub token set on {name}", highlight=False)


@github_app.command("show")
def show(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the project's GitHub credentials, masked."""
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        found = get_project(session, project)
        shown = masked(session, found.id)
    if shown is None:
        raise context.CliError(f"project {project!r} has no GitHub credentials")
    if as_json:
        print_json(shown)
        return
    for key, value in shown.items():
        console.print(f"{key}: {value}", highlight=False)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return str(first.get("msg", "invalid value")).removeprefix("Value error, ")
