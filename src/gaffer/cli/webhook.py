"""``gaffer webhook send``: sign a payload with a project's secret and post it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import typer

from gaffer.cli import context
from gaffer.cli.output import console, print_json
from gaffer.providers.github import delivery_headers
from gaffer.runtime import open_runtime
from gaffer.store.projects import ProjectSnapshot, get_project, list_projects

webhook_app = typer.Typer(help="Test a webhook set-up.", no_args_is_help=True)


def _project_snapshot(project: str | None) -> ProjectSnapshot:
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        if project is None:
            projects = list_projects(session)
            if len(projects) != 1:
                raise context.CliError(f"{len(projects)} projects exist; name one with --project")
            return ProjectSnapshot.of(projects[0], rt.box)
        return ProjectSnapshot.of(get_project(session, project), rt.box)


@webhook_app.command("send")
def send(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON payload file."),
    event: str = typer.Option(..., "--event", "-e", help="X-GitHub-Event, e.g. issues."),
    project: str | None = typer.Option(
        None, help="Project whose secret signs (default: the only one)."
    ),
    url: str = typer.Option(
        "http://127.0.0.1:8080/webhooks/github", help="Webhook URL of a running gaffer."
    ),
    delivery_id: str | None = typer.Option(None, help="X-GitHub-Delivery (default: a new uuid)."),
    unsigned: bool = typer.Option(False, help="Send without a signature (expect 401)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sign FILE with the project's webhook secret and POST it as GitHub would."""
    import httpx

    body = file.read_bytes()
    snapshot = _project_snapshot(project)
    delivery = delivery_id or str(uuid.uuid4())
    headers = delivery_headers(body, event, None if unsigned else snapshot.secret, delivery)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise context.CliError(f"could not reach {url}: {exc}") from exc
    try:
        answer = response.json()
    except json.JSONDecodeError:
        answer = {"body": response.text}
    if as_json:
        print_json({"status_code": response.status_code, "delivery_id": delivery, **answer})
    else:
        console.print(
            f"{response.status_code} {answer.get('decision', '')}: {answer.get('reason', '')}",
            highlight=False,
        )
        for run_id in answer.get("runs") or []:
            console.print(f"  run {run_id}")
    if response.status_code >= 400:
        raise typer.Exit(1)
