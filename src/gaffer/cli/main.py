"""``gaffer``: the root command, ``up`` and ``keygen``; sub-commands live in sibling modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from gaffer.agents.definition import definitions
from gaffer.cli import context
from gaffer.cli import project_images as _project_images  # noqa: F401 (its commands)
from gaffer.cli.agents import agents_app
from gaffer.cli.audit import audit_app
from gaffer.cli.credentials import credentials_app
from gaffer.cli.deliveries import deliveries_app
from gaffer.cli.demo import demo_command
from gaffer.cli.engines import engines_command
from gaffer.cli.github import github_app
from gaffer.cli.login import login_command, logout_command
from gaffer.cli.output import err_console
from gaffer.cli.projects import projects_app
from gaffer.cli.runs import runs_app
from gaffer.cli.snapshots import snapshots_app
from gaffer.cli.tokens import tokens_app
from gaffer.cli.usage import usage_command
from gaffer.cli.users import users_app
from gaffer.cli.webhook import webhook_app
from gaffer.errors import UserError
from gaffer.logs import configure_logging
from gaffer.settings import Settings

if TYPE_CHECKING:
    from gaffer.runtime import Runtime

app = typer.Typer(
    name="gaffer",
    help="Self-hosted orchestrator for AI coding agents: webhooks in, agent runs out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _setup() -> None:
    """Commands log warnings to stderr only; ``up`` turns on its own logging."""
    configure_logging(context.settings(), quiet=True)


app.add_typer(projects_app, name="projects")
app.add_typer(runs_app, name="runs")
app.add_typer(webhook_app, name="webhook")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(agents_app, name="agents")
app.add_typer(credentials_app, name="credentials")
app.add_typer(github_app, name="github")
app.add_typer(snapshots_app, name="snapshots")
app.command("demo")(demo_command)
app.command("engines")(engines_command)
app.command("usage")(usage_command)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
app.command("login")(login_command)
app.command("logout")(logout_command)


@app.command()
def up(
    host: str = typer.Option("127.0.0.1", help="Address ingest listens on."),
    port: int = typer.Option(8080, help="Port ingest listens on (0: any free port)."),
    role: list[str] = typer.Option(
        None, help="Run only these roles (ingest, dispatch, drain); default all."
    ),
    ready_file: Path | None = typer.Option(
        None, help="Write the ingest URL to this file once ready (for scripts)."
    ),
) -> None:
    """Run ingest (the webhook server), dispatch (the workers) and drain (the burst buffer)."""
    from gaffer.aio import run_async
    from gaffer.runtime import open_runtime
    from gaffer.server import ROLES, Listening, serve

    settings = context.settings()
    definitions()  # a bad agent definition stops start-up with one line naming it
    roles = set(role or ROLES)
    unknown = roles - ROLES
    if unknown:
        raise context.CliError(f"unknown role(s): {', '.join(sorted(unknown))}")
    configure_logging(settings)

    def ready(listening: Listening | None) -> None:
        where = listening.url if listening else "(dispatch only)"
        err_console.print(f"gaffer is up: {where}  roles={','.join(sorted(roles))}")
        if ready_file is not None:
            ready_file.write_text((listening.url if listening else "") + "\n")

    with open_runtime(settings) as runtime:
        _first_superadmin(runtime)
        run_async(serve(runtime, host=host, port=port, roles=roles, on_ready=ready))


def _first_superadmin(runtime: Runtime) -> None:
    """On the embedded default's first start, make the first superadmin and print its
    password once (to the terminal, never to the log)."""
    from gaffer.accounts.bootstrap import ensure_first_superadmin

    made = ensure_first_superadmin(runtime.db)
    if made is not None:
        email, password = made
        err_console.print(
            f"first superadmin created: {email}  password (shown once): {password}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def keygen() -> None:
    """Print a new master key for GAFFER_MASTER_KEY."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())


def main() -> None:
    """Console entry point: run the app; print what a user can fix as one line (exit 1).

    User errors, invalid settings (named by their environment variable), and a database,
    Redis or data directory that cannot be reached are such; anything else is a bug and keeps
    its traceback.
    """
    try:
        app()
    except UserError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(f"invalid settings: {settings_problems(exc)}")
    except (DBAPIError, NoSuchModuleError, ArgumentError) as exc:
        _fail(f"the database cannot be used: {_first_line(exc)}")
    except RedisError as exc:
        _fail(f"Redis cannot be reached: {_first_line(exc)}")
    except OSError as exc:
        _fail(str(exc))


def settings_problems(exc: ValidationError) -> str:
    """``exc``'s errors as ``VARIABLE: message; ...``, each named by the environment variable
    a user sets (``GAFFER_MAX_WORKERS``, ``DATABASE_URL``), not by the field."""
    problems = []
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else ""
        if where in Settings.model_fields:
            where = f"GAFFER_{where.upper()}"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _first_line(exc: BaseException) -> str:
    # DBAPIError's text carries the statement and a link after the driver's first line.
    origin = getattr(exc, "orig", None) or exc
    lines = str(origin).strip().splitlines()
    return lines[0] if lines else type(origin).__name__


def _fail(message: str) -> None:
    # soft_wrap: one line however narrow the terminal, so it can be searched and copied whole.
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    sys.exit(1)
