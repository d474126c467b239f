"""``gaffer projects create|list|show``."""

from __future__ import annotations

import secrets
from typing import Any

import typer

from gaffer.accounts.principal import Principal
from gaffer.agents import AgentType
from gaffer.cli import context, remote
from gaffer.cli.local_audit import cli_audit
from gaffer.cli.output import console, err_console, print_json, table
from gaffer.engines import ENGINES
from gaffer.images.state import describe as describe_image
from gaffer.images.state import set_worker_image
from gaffer.runs.views import project_view
from gaffer.runtime import open_runtime
from gaffer.store.projects import AgentSetup, create_project, get_project, list_projects
from gaffer.triggers.github import default_agent_setups, default_agents

projects_app = typer.Typer(help="Create and inspect projects.", no_args_is_help=True)


def agent_setups(agents: list[str], engine: str, command: str | None) -> list[AgentSetup]:
    """Setups for ``agents`` (all known agent types when empty) with their default events.

    Raises :class:`context.CliError` for an unknown agent type or engine, or the ``command``
    engine without a command.
    """
    if engine not in ENGINES:
        raise context.CliError(f"unknown engine {engine!r} (known: {', '.join(sorted(ENGINES))})")
    known = {a.value for a in AgentType}
    chosen = agents or default_agents()
    unknown = sorted(set(chosen) - known)
    if unknown:
        raise context.CliError(
            f"unknown agent type(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    if engine == "command" and not command:
        raise context.CliError("the command engine needs --command '<shell command>'")
    return default_agent_setups(engine, {"command": command} if command else {}, chosen)


@projects_app.command("create")
def create(
    name: str = typer.Argument(..., help="Project name (unique)."),
    repo: str = typer.Option(..., "--repo", help="Repository full name, owner/repo."),
    clone_url: str = typer.Option(..., help="URL or path git clones the repository from."),
    base_branch: str = typer.Option("main", help="Branch runs start from."),
    bot_login: str = typer.Option("gaffer-bot", help="The bot's login (mentions, loop guard)."),
    trigger_label: str = typer.Option("gaffer", help="Issue label that starts implementation."),
    secret: str | None = typer.Option(
        None, help="Webhook secret; a random one is generated and printed when omitted."
    ),
    organization: str = typer.Option("default", "--org", help="Organization (created if new)."),
    agent: list[str] = typer.Option(None, help="Agent types to enable (default: all)."),
    engine: str = typer.Option("command", help="Engine that plays the agents."),
    command: str | None = typer.Option(None, help="Shell command of the command engine."),
    worker_image: str | None = typer.Option(
        None, "--worker-image", help="The project's own worker image (validated, then pinned)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a project, its agents and their triggers."""
    from gaffer.cli.project_images import check_reference, enqueue_validation

    setups = agent_setups(agent or [], engine, command)
    if worker_image is not None:
        check_reference(worker_image)
    client = remote.client()
    if client is not None:
        body: dict[str, Any] = {
            "name": name,
            "repository": repo,
            "clone_url": clone_url,
            "organization": organization,
            "base_branch": base_branch,
            "bot_login": bot_login,
            "trigger_label": trigger_label,
            "webhook_secret": secret,
            "agents": agent or [],
            "engine": engine,
            "command": command,
        }
        if worker_image is not None:
            body["worker_image"] = worker_image
        view = client.post("/projects", body)
        webhook_secret = view.pop("webhook_secret") or secret or ""
        warning = view.pop("warning", None)
        _print_created(view, webhook_secret, secret is None, as_json, warning)
        return
    webhook_secret = secret or secrets.token_hex(32)
    with open_runtime(context.settings(), redis=worker_image is not None) as rt:
        change = None
        with rt.db.session() as session:
            try:
                project = create_project(
                    session,
                    rt.box,
                    name=name,
                    repository=repo,
                    clone_url=clone_url,
                    webhook_secret=webhook_secret,
                    bot_login=bot_login,
                    base_branch=base_branch,
                    trigger_label=trigger_label,
                    organization=organization,
                    agents=setups,
                )
            except ValueError as exc:
                raise context.CliError(str(exc)) from exc
            if worker_image is not None:
                change = set_worker_image(session, Principal.local(), project, worker_image)
            view = project_view(project)
            cli_audit(
                session,
                "project.create",
                target_type="project",
                target_id=project.id,
                organization_id=project.organization_id,
                change={k: v for k, v in view.items() if k not in ("id", "created_at")}
                | {"webhook_secret": "set"},
            )
        warning = None
        if change is not None:
            try:
                enqueue_validation(rt.redis_url, change)
            except context.CliError as exc:
                # Created: the generated secret must still be shown, so a warning, not an error.
                warning = str(exc)
    _print_created(view, webhook_secret, secret is None, as_json, warning)


def _print_created(
    view: dict[str, Any],
    webhook_secret: str,
    generated: bool,
    as_json: bool,
    warning: str | None = None,
) -> None:
    """Print a created project; a generated webhook secret is shown (once). ``warning`` (the
    worker image's validation could not be enqueued) goes to stderr, in both modes alike."""
    if warning is not None:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    if generated:
        view["webhook_secret"] = webhook_secret
    if as_json:
        print_json(view)
        return
    console.print(
        f"created project [bold]{view['name']}[/bold] ({view['id']}) for {view['repository']}"
    )
    if generated:
        console.print(f"webhook secret (shown once): [bold]{webhook_secret}[/bold]")


@projects_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List projects."""
    client = remote.client()
    if client is not None:
        views = client.get("/projects")
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            views = [project_view(p) for p in list_projects(session)]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["name"],
            v["repository"],
            v["base_branch"],
            v["bot_login"],
            ", ".join(a["agent_type"] for a in v["agents"] if a["enabled"]),
        )
        for v in views
    ]
    console.print(table("projects", ["name", "repository", "base", "bot", "agents"], rows))


@projects_app.command("show")
def show(
    name: str = typer.Argument(..., help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a project with its agents and triggers."""
    client = remote.client()
    if client is not None:
        view = client.get(client.path("projects", name))
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            view = project_view(get_project(session, name))
    if as_json:
        print_json(view)
        return
    for key in (
        "name",
        "id",
        "repository",
        "clone_url",
        "base_branch",
        "bot_login",
        "trigger_label",
    ):
        console.print(f"[bold]{key}[/bold]: {view[key]}", highlight=False)
    console.print(f"[bold]worker_image[/bold]: {describe_image(view)}", highlight=False)
    rows = [
        (a["agent_type"], "yes" if a["enabled"] else "no", a["engine"], ", ".join(a["events"]))
        for a in view["agents"]
    ]
    console.print(table("agents", ["agent", "enabled", "engine", "events"], rows))
