"""``gaffer projects update|validate-image|registry-auth``: a project's worker image (issue 13).

Local mode acts as the installation's superadmin (:meth:`Principal.local`); remote mode
(``GAFFER_SERVER``) calls ``PATCH /api/v1/projects/{p}`` and the routes of
:mod:`gaffer.api.project_images` with the caller's role. The set or clear and its audit row are
committed before the validation is enqueued; a failed enqueue is reported (exit 1) and the
change stays, ``pending`` (``gaffer projects validate-image P`` enqueues it again, and the
dispatcher enqueues every pending project when it starts).
"""

from __future__ import annotations

from typing import Any

import typer
from redis.exceptions import RedisError

from gaffer.accounts.principal import Principal
from gaffer.cli import context, remote
from gaffer.cli.output import console, print_json
from gaffer.cli.projects import projects_app
from gaffer.cli.prompts import read_secret
from gaffer.images import queue
from gaffer.images.queue import ValidationRequest
from gaffer.images.state import (
    WorkerImageChange,
    WorkerImageStatus,
    clear_worker_image,
    describe,
    image_view,
    set_registry_auth,
    set_worker_image,
)
from gaffer.images.validator import InvalidImageReferenceError, parse_image_reference
from gaffer.runs.views import project_view
from gaffer.runtime import open_runtime
from gaffer.store.projects import get_project


def enqueue_validation(redis_url: str | None, change: WorkerImageChange) -> None:
    """Enqueue the validation a set needs. Raises :class:`context.CliError` when it cannot be
    enqueued (the change is committed already, and the message says so)."""
    if not change.needs_validation or change.after is None:
        return
    try:
        if redis_url is None:
            raise RedisError("no Redis configured (GAFFER_REDIS_URL)")
        queue.enqueue_sync(redis_url, ValidationRequest(change.project_id, change.after))
    except (RedisError, OSError) as exc:
        raise context.CliError(
            f"the worker image of {change.project_name!r} is set to {change.after} (pending), "
            f"but its validation could not be enqueued: {exc}; retry with "
            f"gaffer projects validate-image {change.project_name}"
        ) from exc


def check_reference(reference: str) -> None:
    """Raises :class:`context.CliError` for a malformed reference (nothing written)."""
    try:
        parse_image_reference(reference)
    except InvalidImageReferenceError as exc:
        raise context.CliError(str(exc)) from exc


def _print(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    console.print(f"[bold]worker_image[/bold]: {view.get('worker_image') or '-'}", highlight=False)
    console.print(f"[bold]worker_image_status[/bold]: {describe(view)}", highlight=False)


@projects_app.command("update")
def update(
    name: str = typer.Argument(..., help="Project name or id."),
    worker_image: str | None = typer.Option(
        None, "--worker-image", help="The project's own worker image (validated, then pinned)."
    ),
    clear_worker_image_: bool = typer.Option(
        False, "--clear-worker-image", help="Back to the global default worker image."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Change a project's worker image (superadmin)."""
    if worker_image is not None and clear_worker_image_:
        raise context.CliError("--worker-image and --clear-worker-image exclude each other")
    if worker_image is None and not clear_worker_image_:
        raise context.CliError("nothing to change: give --worker-image REF or --clear-worker-image")
    if worker_image is not None:
        check_reference(worker_image)
    client = remote.client()
    if client is not None:
        body: dict[str, Any] = (
            {"worker_image": worker_image} if worker_image else {"clear_worker_image": True}
        )
        _print(client.request("PATCH", client.path("projects", name), json_body=body), as_json)
        return
    with open_runtime(context.settings()) as rt:
        with rt.db.session() as session:
            project = get_project(session, name)
            if worker_image is not None:
                change = set_worker_image(session, Principal.local(), project, worker_image)
            else:
                change = clear_worker_image(session, Principal.local(), project)
            view = project_view(project)
        enqueue_validation(rt.redis_url, change)
    _print(view, as_json)


@projects_app.command("validate-image")
def validate_image(
    name: str = typer.Argument(..., help="Project name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate the project's worker image again (superadmin); it is pending until then."""
    client = remote.client()
    if client is not None:
        _print(client.post(client.path("projects", name, "validate-image")), as_json)
        return
    with open_runtime(context.settings()) as rt:
        with rt.db.session() as session:
            project = get_project(session, name)
            if project.worker_image is None:
                raise context.CliError(f"project {project.name!r} has no worker image of its own")
            project.worker_image_status = WorkerImageStatus.PENDING.value
            project.worker_image_digest = None
            project.worker_image_error = None
            reference = project.worker_image
            change = WorkerImageChange(project.id, project.name, reference, reference)
            view = image_view(project)
        enqueue_validation(rt.redis_url, change)
    _print(view, as_json)


@projects_app.command("registry-auth")
def registry_auth_command(
    name: str = typer.Argument(..., help="Project name or id."),
    username: str | None = typer.Option(
        None, "--username", help="Registry user; the password is read from standard input."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the registry credentials."),
) -> None:
    """Set the registry credentials used to pull the project's worker image (superadmin).

    Stored encrypted and write-only; the password is read from standard input (or a hidden
    prompt), never from the command line. They are used for the pull only, never given to a
    worker."""
    if (username is None) == (not clear):
        raise context.CliError("give --username USER (password on stdin) or --clear")
    password = read_secret("Registry password") if username is not None else None
    client = remote.client()
    if client is not None:
        client.request(
            "PUT",
            client.path("projects", name, "registry-auth"),
            json_body={"username": username, "password": password},
        )
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            project = get_project(session, name)
            set_registry_auth(session, Principal.local(), rt.box, project, username, password)
    console.print(f"registry credentials of {name} {'removed' if clear else 'set'}")
