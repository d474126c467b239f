"""``gaffer agents list|show|set|reset``: a project's agents and their effective definitions.

Every field of an agent's effective definition comes from the package (the YAML shipped with
gaffer) or from a project override set here; ``show`` says which. Prompts are given as files
(``--task-prompt-file``), checked against the agent's variables before anything is written.
In remote mode (:mod:`gaffer.cli.remote`) the same views come from
``/api/v1/projects/{p}/agents``; both modes build them with :mod:`gaffer.manage.agents`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gaffer.accounts.principal import Principal
from gaffer.agents.effective import OVERRIDABLE
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json, table
from gaffer.manage.agents import AgentChange, agent_view, agent_views, change_agent, reset_overrides
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project

agents_app = typer.Typer(
    help="A project's agents: engines, models, prompts and limits.", no_args_is_help=True
)

PROMPT_PREVIEW_CHARS = 72


def _views(project: str) -> list[dict[str, Any]]:
    client = remote.client()
    if client is not None:
        views: list[dict[str, Any]] = client.get(client.path("projects", project, "agents"))
        return views
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        return agent_views(get_project(session, project))


def _view(project: str, agent: str) -> dict[str, Any]:
    client = remote.client()
    if client is not None:
        view: dict[str, Any] = client.get(client.path("projects", project, "agents", agent))
        return view
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        return agent_view(get_project(session, project), agent)


@agents_app.command("list")
def list_command(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the agent types with their engine, model, branch mode, finish rule and overrides."""
    views = _views(project)
    if as_json:
        print_json(views)
        return
    rows = []
    for view in views:
        fields = view["fields"]
        overridden = sorted(k for k, v in fields.items() if v["source"] == "project override")
        rows.append(
            (
                view["agent_type"],
                "yes" if view["enabled"] else "no",
                fields["engine"]["value"],
                fields["model"]["value"],
                fields["branch_mode"]["value"],
                fields["finish_rule"]["value"],
                ", ".join(k for k in overridden if k != "engine") or None,
            )
        )
    console.print(
        table(
            f"agents of {project}",
            ["agent", "enabled", "engine", "model", "branch", "finish rule", "overrides"],
            rows,
        )
    )


@agents_app.command("show")
def show(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    agent: str = typer.Option(..., "--agent", help="Agent type."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an agent's effective definition and where each field came from."""
    view = _view(project, agent)
    if as_json:
        print_json(view)
        return
    console.print(
        f"[bold]{view['agent_type']}[/bold] on {view['project']}: "
        f"{'enabled' if view['enabled'] else 'disabled'}; events: "
        f"{', '.join(view['events']) or '-'}",
        highlight=False,
    )
    rows = []
    for key, field in view["fields"].items():
        value = field["value"]
        if isinstance(value, str) and ("\n" in value or len(value) > PROMPT_PREVIEW_CHARS):
            first = value.strip().splitlines()[0] if value.strip() else ""
            value = f"{first[:PROMPT_PREVIEW_CHARS]}… ({len(value)} chars)"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        rows.append((key, value, field["source"]))
    console.print(table(None, ["field", "value", "source"], rows))


def _read_prompt(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise context.CliError(f"cannot read {path}: {exc}") from exc


@agents_app.command("set")
def set_command(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    agent: str = typer.Option(..., "--agent", help="Agent type."),
    engine: str | None = typer.Option(None, help="Engine that plays the agent."),
    command: str | None = typer.Option(None, help="Shell command (the command engine)."),
    model: str | None = typer.Option(None, help="Model name the engine asks for."),
    base_url: str | None = typer.Option(None, help="Provider API base URL."),
    credential: str | None = typer.Option(
        None, help="Project credential holding the API key (see gaffer credentials)."
    ),
    max_turns: int | None = typer.Option(None, help="Most model turns per engine run."),
    continuation_turns: int | None = typer.Option(
        None, help="Engine runs again while the finish rule is unmet."
    ),
    system_prompt_file: Path | None = typer.Option(None, help="Jinja2 system prompt template."),
    task_prompt_file: Path | None = typer.Option(None, help="Jinja2 task prompt template."),
    enable: bool | None = typer.Option(None, "--enable/--disable", help="Turn the agent on/off."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Override an agent's engine, model, prompts or limits on a project (checked first:
    nothing is written when a value is refused)."""
    overrides: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "credential": credential,
        "max_turns": max_turns,
        "continuation_turns": continuation_turns,
        "system_prompt": _read_prompt(system_prompt_file),
        "task_prompt": _read_prompt(task_prompt_file),
    }
    if engine == "command" and command is None:
        raise context.CliError("the command engine needs --command '<shell command>'")
    change = AgentChange(
        engine=engine,
        command=command,
        overrides={k: v for k, v in overrides.items() if v is not None},
        enabled=enable,
    )
    client = remote.client()
    if client is not None:
        body = {**change.overrides, "engine": engine, "command": command, "enabled": enable}
        path = client.path("projects", project, "agents", agent)
        view = client.patch(path, {k: v for k, v in body.items() if v is not None})
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            found = get_project(session, project)
            view = change_agent(session, Principal.local(), found, agent, change)
    if as_json:
        print_json(view)
        return
    console.print(
        f"{agent} on {project}: set {', '.join(change.changed()) or 'nothing'}", highlight=False
    )


@agents_app.command("reset")
def reset(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    agent: str = typer.Option(..., "--agent", help="Agent type."),
    field: list[str] = typer.Option(
        None, help=f"Only these overrides ({', '.join(OVERRIDABLE)}); default all."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Drop a project's overrides of an agent: back to the package's definition."""
    client = remote.client()
    if client is not None:
        path = client.path("projects", project, "agents", agent, "overrides")
        view = client.delete(path, field=field or None)
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            found = get_project(session, project)
            view = reset_overrides(session, Principal.local(), found, agent, field or [])
    if as_json:
        print_json(view)
        return
    console.print(
        f"{agent} on {project}: reset {', '.join(field) if field else 'every override'}",
        highlight=False,
    )
