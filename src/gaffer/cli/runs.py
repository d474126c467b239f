"""``gaffer runs list|show|logs|cancel``.

``show`` and ``cancel`` also answer for a run that still waits in the burst buffer (status
BUFFERED; buffered runs are found by their full id only): see :mod:`gaffer.buffer.access`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from redis.exceptions import RedisError

from gaffer.cli import context, remote, remote_runs
from gaffer.cli.local_audit import cli_audit
from gaffer.cli.output import console, err_console, print_json, short, styled_status, table
from gaffer.runs.views import log_view, run_detail, run_view
from gaffer.runtime import Runtime, open_runtime
from gaffer.store.models import Run, RunStatus, new_id
from gaffer.store.projects import get_project
from gaffer.store.runs import RunNotFoundError, get_run, list_runs, read_logs

if TYPE_CHECKING:
    from gaffer.buffer.access import RunAccess
    from gaffer.runs.engine import CancelResult
    from gaffer.runs.intake import Submission

T = TypeVar("T")

runs_app = typer.Typer(help="Inspect and cancel runs.", no_args_is_help=True)

FOLLOW_POLL_S = 0.5


@runs_app.command("list")
def list_command(
    project: str | None = typer.Option(None, help="Only this project (name or id)."),
    status: list[str] = typer.Option(None, help="Only runs in these statuses."),
    limit: int = typer.Option(50, help="At most this many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, newest first."""
    statuses = [s.upper() for s in status or []]
    bad = [s for s in statuses if s not in RunStatus.__members__]
    if bad:
        raise context.CliError(
            f"unknown status(es): {', '.join(bad)} (known: {', '.join(RunStatus.__members__)})"
        )
    client = remote.client()
    if client is not None:
        views = remote_runs.list_views(client, project, statuses, limit)
    else:
        with open_runtime(context.settings(), redis=False) as rt, rt.db.session() as session:
            if project is not None:
                get_project(session, project)  # an unknown name is an error, not an empty list
            views = [
                run_view(r)
                for r in list_runs(session, project=project, status=statuses, limit=limit)
            ]
    if as_json:
        print_json(views)
        return
    rows = [
        (
            short(v["id"]),
            v["agent_type"],
            v["work_item"],
            styled_status(v["status"]),
            v["trigger"],
            v["created_at"][:19],
            v["branch"],
            short(v["commit"]),
        )
        for v in views
    ]
    console.print(
        table(
            "runs",
            ["id", "agent", "item", "status", "trigger", "created", "branch", "commit"],
            rows,
        )
    )


async def _with_access(rt: Runtime, use: Callable[[RunAccess], Awaitable[T]]) -> T:
    """Call ``use`` with a :class:`RunAccess` on this runtime's database, buffer and queue."""
    from gaffer.buffer.access import RunAccess
    from gaffer.buffer.scripts import BufferStore
    from gaffer.coordination.client import connect
    from gaffer.queue.queues import RunQueue
    from gaffer.runs.engine import RunEngine

    redis_url = rt.require_redis()
    redis = connect(redis_url)
    queue = RunQueue(redis_url, rt.settings.queue_name)
    try:
        engine = RunEngine(rt.settings, rt.db, queue, redis)
        return await use(RunAccess(rt.db, BufferStore(redis), engine))
    finally:
        await queue.close()
        await redis.aclose()


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of 4+ characters)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run (from the burst buffer if it waits there: status BUFFERED)."""
    settings = context.settings()
    client = remote.client()
    if client is not None:
        view = remote_runs.show_view(client, run_id)
    else:
        try:
            with open_runtime(settings, redis=False) as rt, rt.db.session() as session:
                view = run_detail(session, get_run(session, run_id))
        except RunNotFoundError:
            # Not in the database: it may still wait in the burst buffer.
            with open_runtime(settings) as rt:
                view = asyncio.run(_with_access(rt, lambda access: access.show(run_id)))
    if as_json:
        print_json(view)
        return
    posted = view.pop("posted", None) or []
    for key, value in view.items():
        shown = styled_status(value) if key == "status" else ("-" if value is None else value)
        console.print(f"[bold]{key}[/bold]: {shown}", highlight=False)
    if posted:
        rows = [(p["kind"], p["status"], p["url"], p["attempts"], p["error"]) for p in posted]
        console.print(table("posted", ["write", "status", "url", "attempts", "error"], rows))


def _print_line(view: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view), flush=True)
    else:
        print(f"{str(view['ts'])[11:23]} {view['stream']:>6}  {view['message']}", flush=True)


@runs_app.command("logs")
def logs(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of 4+ characters)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Print a run's log; with --follow, tail it until the run finishes."""
    client = remote.client()
    if client is not None:
        count, remote_status = remote_runs.print_logs(
            client, run_id, follow, lambda view: _print_line(view, as_json)
        )
        if count == 0 and not as_json:
            err_console.print(f"(no log lines; the run is {remote_status})", highlight=False)
        return
    with open_runtime(context.settings(), redis=False) as rt:
        with rt.db.session() as session:
            run_id = get_run(session, run_id).id
        last_id = 0
        while True:
            with rt.db.session() as session:
                # The status first: the last lines are committed with the final status (or
                # before it), so lines read after a final status include them all.
                status = RunStatus(get_run(session, run_id).status)
                lines = read_logs(session, run_id, after_id=last_id)
            for line in lines:
                _print_line(log_view(line), as_json)
                last_id = line.id
            if lines:
                continue
            if not follow or status.terminal:
                break
            time.sleep(FOLLOW_POLL_S)
    if last_id == 0 and not as_json:
        err_console.print(f"(no log lines; the run is {status})", highlight=False)


async def _cancel(rt: Runtime, run_id: str, wait_s: float) -> tuple[CancelResult, str]:
    result = await _with_access(rt, lambda access: access.cancel(run_id))
    status = str(result.status)
    deadline = time.monotonic() + wait_s
    while not RunStatus(status).terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        with rt.db.session() as session:
            status = str(get_run(session, result.run_id).status)
    return result, status


async def _start(
    rt: Runtime, project_name: str, request_fields: dict[str, Any], run_id: str
) -> Submission:
    from gaffer.buffer.gate import BufferGate
    from gaffer.buffer.scripts import BufferStore
    from gaffer.coordination.client import connect
    from gaffer.queue.queues import RunQueue
    from gaffer.runs.engine import NewRun, RunEngine
    from gaffer.runs.intake import RunIntake
    from gaffer.runs.requests import AgentRequest
    from gaffer.store.projects import ProjectSnapshot, get_project

    with rt.db.session() as session:
        project = ProjectSnapshot.of(get_project(session, project_name), rt.box)
    if request_fields["agent_type"] not in project.agents:
        raise context.CliError(
            f"agent {request_fields['agent_type']!r} is not enabled on project {project.name!r}"
        )
    request = AgentRequest(
        project_id=project.id, provider="manual", trigger="manual", **request_fields
    )
    redis_url = rt.require_redis()
    redis = connect(redis_url)
    queue = RunQueue(redis_url, rt.settings.queue_name)
    try:
        intake = RunIntake(
            rt.settings,
            RunEngine(rt.settings, rt.db, queue, redis),
            redis,
            gate=BufferGate(rt.settings, redis),
            buffer=BufferStore(redis),
        )
        return await intake.submit(
            project,
            [NewRun(run_id, request)],
            in_same_transaction=lambda session, submission: cli_audit(
                session,
                "run.start",
                target_type="run",
                target_id=run_id,
                organization_id=project.organization_id,
                change=request_fields | {"project": project.name, "runs": submission.run_ids},
            ),
        )
    finally:
        await queue.close()
        await redis.aclose()


def _start_local(project: str, fields: dict[str, Any], run_id: str) -> Submission:
    from gaffer.aio import run_async

    with open_runtime(context.settings()) as rt:
        try:
            return run_async(_start(rt, project, fields, run_id))
        except RedisError as exc:
            with rt.db.session() as session:
                if session.get(Run, run_id) is None:
                    raise
            # The row is written: the periodic repair of any dispatcher adds its job.
            raise context.CliError(
                f"run {run_id} is recorded (QUEUED), but Redis did not take its job ({exc}); "
                "a dispatcher queues it once Redis is back"
            ) from exc


@runs_app.command("start")
def start(
    project: str = typer.Option(..., help="Project name or id."),
    agent: str = typer.Option(..., help="Agent type, e.g. implementation or review."),
    work_item: str = typer.Option(..., help="Issue, card or PR number the run works on."),
    pr: int | None = typer.Option(None, help="Pull request number (reviews need it)."),
    sha: str | None = typer.Option(None, help="Head commit SHA (reviews need it)."),
    title: str = typer.Option("", help="Work item title given to the engine."),
    body: str = typer.Option("", help="Work item body given to the engine."),
    head_branch: str | None = typer.Option(
        None, help="The PR's head branch (agents that push onto the PR need it)."
    ),
    base_branch: str | None = typer.Option(None, help="The PR's base branch."),
    comment: str | None = typer.Option(None, help="The comment the agent answers."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start a run by hand (a manual trigger). Goes through the same dispatch claims as
    webhooks: a review of a PR and head SHA already reviewed is not started twice; and through
    the burst buffer gate: a project that floods has it held (``buffered``)."""
    fields = {
        "agent_type": agent,
        "work_item": work_item,
        "pr_number": pr,
        "head_sha": sha,
        "title": title,
        "body": body,
        "head_branch": head_branch,
        "base_branch": base_branch,
        "comment_body": comment,
    }
    run_id = new_id()
    client = remote.client()
    if client is not None:
        submission = remote_runs.start(client, project, fields)
    else:
        submission = _start_local(project, fields, run_id)
    result = {
        "runs": submission.run_ids,
        "skipped": submission.reasons or None,
        "buffered": submission.buffered,
    }
    if as_json:
        print_json(result)
    elif submission.run_ids and submission.buffered:
        console.print(
            f"buffered run {submission.run_ids[0]} (held in the burst buffer: "
            f"{submission.buffer_reason})"
        )
    elif submission.run_ids:
        console.print(f"queued run {submission.run_ids[0]}")
    else:
        console.print(f"not started: {submission.reasons}", highlight=False)
    if submission.redis_down:
        raise typer.Exit(1)
    if not submission.run_ids:
        raise typer.Exit(2)


@runs_app.command("cancel")
def cancel(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of 4+ characters)."),
    wait: float = typer.Option(30.0, help="Seconds to wait for the run to stop (0: don't wait)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a run: at once if it is queued or buffered, by stopping its worker if it is
    running. A run being created from the burst buffer at that moment is waited for (2 s)."""
    client = remote.client()
    if client is not None:
        answer, status = remote_runs.cancel(client, run_id, wait)
        canceled_id, message = str(answer["id"]), str(answer["message"])
    else:
        with open_runtime(context.settings()) as rt:
            result, status = asyncio.run(_cancel(rt, run_id, wait))
            with rt.db.session() as session:
                run = session.get(Run, result.run_id)
                cli_audit(
                    session,
                    "run.cancel",
                    target_type="run",
                    target_id=result.run_id,
                    organization_id=run.project.organization_id if run is not None else None,
                    change={"status": str(result.status), "message": result.message},
                )
        canceled_id, message = result.run_id, result.message
    if as_json:
        print_json({"id": canceled_id, "status": status, "message": message})
        return
    console.print(f"{canceled_id}: {styled_status(status)}  ({message})")
    if not RunStatus(status).terminal:
        raise typer.Exit(2)
