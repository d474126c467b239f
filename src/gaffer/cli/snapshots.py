"""``gaffer snapshots list|delete|prune|settings``: the snapshot images of this installation and
a project's set-up and snapshot settings (README "Warm starts").

``list`` reads the registry (the database); ``delete`` and ``prune`` also delete the images
through the container engine at ``DOCKER_HOST``, as a dispatcher would. ``settings`` changes
only the fields it is given and prints the result.
"""

from __future__ import annotations

from typing import Any

import docker
import typer

from gaffer.aio import run_async
from gaffer.backends.docker import API_VERSION
from gaffer.cli import context
from gaffer.cli.output import console, print_json, short, table
from gaffer.runtime import open_runtime
from gaffer.snapshots import registry
from gaffer.snapshots.registry import snapshot_view
from gaffer.snapshots.service import Snapshots
from gaffer.store.models import SnapshotSettings
from gaffer.store.projects import get_project

snapshots_app = typer.Typer(
    help="Snapshot images that runs start warm from, and set-up settings.", no_args_is_help=True
)


def _client() -> docker.DockerClient:
    settings = context.settings()
    host = settings.docker_host or docker.constants.DEFAULT_UNIX_SOCKET
    return docker.DockerClient(base_url=host, version=API_VERSION, timeout=60)


@snapshots_app.command("list")
def list_command(
    project: str | None = typer.Option(None, "--project", help="Only this project (name or id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the snapshots in the registry, oldest first."""
    settings = context.settings()
    with open_runtime(settings, redis=False) as rt, rt.db.session() as session:
        project_id = get_project(session, project).id if project else None
        rows = [
            snapshot_view(r) for r in registry.list_rows(session, settings.instance, project_id)
        ]
    if as_json:
        print_json(rows)
        return
    console.print(
        table(
            "snapshots",
            ["id", "project", "kind", "work item", "size MB", "status", "created"],
            [
                (
                    short(r["id"]),
                    short(r["project_id"]),
                    r["kind"],
                    r["work_item"] or "",
                    f"{r['size_bytes'] / 1e6:.1f}",
                    r["status"],
                    r["created_at"],
                )
                for r in rows
            ],
        )
    )


@snapshots_app.command("delete")
def delete_command(
    snapshot_id: str = typer.Argument(..., help="Snapshot id (a unique prefix of 4+ works)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete one snapshot: its image, then its row."""
    settings = context.settings()
    with open_runtime(settings, redis=False) as rt:
        with rt.db.session() as session:
            matches = [
                r.id
                for r in registry.list_rows(session, settings.instance)
                if r.id.startswith(snapshot_id)
            ]
        if len(snapshot_id) < 4 or len(matches) != 1:
            raise context.CliError(
                f"no single snapshot matches {snapshot_id!r}"
                + (f" ({len(matches)} do)" if matches else "")
            )
        service = Snapshots(settings, rt.db, _client())
        row = run_async(service.delete(matches[0]))
    assert row is not None
    if as_json:
        print_json({"deleted": snapshot_view(row)})
        return
    console.print(f"deleted {row.image} ({row.kind} {row.work_item})", highlight=False)


@snapshots_app.command("prune")
def prune_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reconcile the registry with the images, then apply the TTL, count and size caps."""
    settings = context.settings()
    with open_runtime(settings, redis=False) as rt:
        service = Snapshots(settings, rt.db, _client())
        plan = run_async(service.reconcile())
        evicted = run_async(service.prune())
    result = {
        "dropped_rows": plan.drop,
        "deleted_unregistered_images": plan.delete,
        "evicted": [{**snapshot_view(r), "reason": why} for r, why in evicted],
    }
    if as_json:
        print_json(result)
        return
    console.print(
        f"{len(plan.drop)} row(s) without image dropped, {len(plan.delete)} unregistered"
        f" image(s) deleted, {len(evicted)} snapshot(s) evicted",
        highlight=False,
    )
    for row, why in evicted:
        console.print(f"  {row.image}: {why}", highlight=False)


def _on_off(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("on", "off"):
        raise context.CliError(f"expected on or off, got {value!r}")
    return value == "on"


def _settings_view(row: SnapshotSettings | None) -> dict[str, Any]:
    if row is None:
        return {"work_item": False, "project": False, "ttl_s": None, "setup_command": None,
                "setup_failure": "fail", "setup_timeout_s": None}  # fmt: skip
    return {name: getattr(row, name) for name in registry.SETTING_FIELDS}


@snapshots_app.command("settings")
def settings_command(
    project: str = typer.Option(..., "--project", help="Project name or id."),
    work_item: str | None = typer.Option(None, "--work-item", help="Work-item snapshots: on/off."),
    project_snapshots: str | None = typer.Option(
        None, "--project-snapshots", help="Project snapshots: on/off."
    ),
    ttl_s: float | None = typer.Option(None, "--ttl", min=1, help="TTL of its snapshots (s)."),
    setup_command: str | None = typer.Option(
        None, "--setup-command", help="Set-up command (instead of .gaffer/setup.sh); '' clears."
    ),
    setup_failure: str | None = typer.Option(None, "--setup-failure", help="fail or warn."),
    setup_timeout_s: float | None = typer.Option(
        None, "--setup-timeout", min=1, help="Set-up time limit (s)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show or change a project's set-up and snapshot settings (only the options given)."""
    fields: dict[str, Any] = {}
    for name, value in (
        ("work_item", _on_off(work_item)),
        ("project", _on_off(project_snapshots)),
        ("ttl_s", ttl_s),
        ("setup_failure", setup_failure),
        ("setup_timeout_s", setup_timeout_s),
    ):
        if value is not None:
            fields[name] = value
    if setup_command is not None:
        fields["setup_command"] = setup_command or None
    with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
        found = get_project(session, project)
        if fields:
            try:
                row: SnapshotSettings | None = registry.set_settings(session, found.id, **fields)
            except ValueError as exc:
                raise context.CliError(str(exc)) from None
            session.commit()
        else:
            row = registry.settings_of(session, found.id)
        view = _settings_view(row)
    if as_json:
        print_json({"project": project, **view})
        return
    for name, value in view.items():
        console.print(f"{name}: {value}", highlight=False)
