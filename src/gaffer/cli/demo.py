"""``gaffer demo``: the main job end to end, with no configuration.

It runs against the local GitHub stand-in shipped in the package (:mod:`gaffer.demo.github`),
never GitHub itself: the second table shows, read back from the stand-in, the pull request the
implementation run opened, the review the review run submitted, and each ack comment's final
text.

The demo ignores ``DATABASE_URL``/``REDIS_URL``/``GAFFER_HOME`` from the environment: it works
in a fresh data directory of its own (SQLite, a private Redis) so it never touches a real
set-up.
With ``--backend docker`` each run's worker is a container of ``GAFFER_WORKER_IMAGE`` (built by
``scripts/build-images``) on the engine at ``DOCKER_HOST``; the demo's private Redis socket is
bind-mounted into the containers, which share the host's network (the
stand-in and the gateway listen on its loopback).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import typer
from rich.live import Live
from rich.markup import escape

from gaffer.cli.context import CliError
from gaffer.cli.output import console, err_console, print_json, short, styled_status, table
from gaffer.demo import DEFAULT_FIXTURES
from gaffer.logs import configure_logging
from gaffer.settings import BackendName, Settings

BACKENDS = get_args(BackendName)

if TYPE_CHECKING:
    from gaffer.demo.scenario import DemoReport


def _progress_table(runs: list[dict[str, Any]]) -> Any:
    rows = [
        (short(r["id"], 8), r["agent_type"], r["work_item"], styled_status(r["status"]))
        for r in runs
    ]
    done = sum(1 for r in runs if r["status"] not in ("QUEUED", "STARTING", "RUNNING"))
    return table(f"runs: {done}/{len(runs)} finished", ["run", "agent", "item", "status"], rows)


def _result_cell(run: dict[str, Any] | None) -> str | None:
    """What a run left: the branch it pushed, or its outputs (a review's event...)."""
    if run is None:
        return None
    if run.get("branch"):
        changed = ", ".join(run.get("changed") or [])
        return f"{run['branch']} @ {short(run['commit'], 8)}" + (f": {changed}" if changed else "")
    outputs = run.get("outputs") or {}
    if "review" in outputs:
        return f"review: {outputs['review'].get('event')}"
    if outputs:
        return ", ".join(sorted(outputs))
    return None


def _github_rows(report: DemoReport) -> list[tuple[str, str, str]]:
    """One row per thing a run left on the stand-in: its ack comment (final text), the pull
    request it opened, the review it submitted."""
    rows: list[tuple[str, str, str]] = []
    for run in (r for o in report.outcomes for r in o.runs):
        github = run.get("github") or {}
        label = f"{short(run['id'], 8)} {run['agent_type']}"
        pull, review, ack = github.get("pull_request"), github.get("review"), github.get("ack")
        if pull is not None:
            where = f"{pull['title']}\n{pull['url']}"
            rows.append((label, f"pull request #{pull['number']}", where))
            label = ""
        if review is not None:
            count = review["inline_comments"]
            inline = f"{count} inline comment" + ("" if count == 1 else "s")
            rows.append(
                (
                    label,
                    f"review on PR #{review['pull_number']}",
                    f"{review['event']}, {inline}, at {short(review['commit_id'], 8)}\n"
                    f"{review['url']}",
                )
            )
            label = ""
        if ack is not None:
            text = "\n".join(line for line in ack["text"].splitlines() if line.strip())
            rows.append((label, f"ack comment on #{ack['number']}", text))
        elif label:
            rows.append((label, "nothing", "-"))
    return [(escape(a), escape(b), escape(c)) for a, b, c in rows]


def _print_report(report: DemoReport) -> None:
    rows = []
    for outcome in report.outcomes:
        mark = "[green]✓[/green]" if outcome.ok else "[red]✗[/red]"
        runs: list[dict[str, Any] | None] = list(outcome.runs) or [None]
        for run in runs:
            pushed = _result_cell(run)
            rows.append(
                (
                    f"{mark} {outcome.delivery.label}",
                    f"{outcome.status_code} {outcome.decision}",
                    f"{short(run['id'], 8)} {run['agent_type']}" if run else None,
                    styled_status(run["status"]) if run else None,
                    pushed,
                )
            )
    console.print(
        table(
            "gaffer demo: delivery → decision → run → outcome",
            ["delivery", "answer", "run", "outcome", "result"],
            rows,
        )
    )
    github_rows = _github_rows(report)
    if github_rows:
        console.print(
            table(
                f"on GitHub (the local stand-in at {report.github_url})",
                ["run", "posted", "as read back"],
                github_rows,
            )
        )
    for outcome in report.outcomes:
        if not outcome.run_ids and outcome.reason:
            console.print(f"  {outcome.delivery.label}: {outcome.reason}", highlight=False)
    for outcome in report.outcomes:
        for problem in outcome.problems:
            console.print(f"[red]✗ {outcome.delivery.label}: {problem}[/red]", highlight=False)
    for problem in report.github_problems:
        console.print(f"[red]✗ {escape(problem)}[/red]", highlight=False)
    console.print(f"engine: {report.engine}; model: {report.model}", highlight=False)
    verdict = "[green]all as expected[/green]" if report.ok else "[red]NOT as expected[/red]"
    console.print(f"{verdict} in {report.elapsed_s:.1f} s")


def demo_command(
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    home: Path | None = typer.Option(None, help="Data directory (default: a fresh temporary one)."),
    keep: bool = typer.Option(False, help="Keep the data directory to inspect it afterwards."),
    fixtures: Path = typer.Option(DEFAULT_FIXTURES, help="Directory of GitHub payload fixtures."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for the runs."),
    backend: str = typer.Option(
        "local",
        help="Worker backend: local (process groups) or docker (containers of "
        "GAFFER_WORKER_IMAGE, through DOCKER_HOST).",
    ),
    engine: str = typer.Option(
        "command",
        help="Engine that plays the agents: command (a script), or a real CLI: "
        "claude-code, codex, opencode, aider.",
    ),
    install: bool = typer.Option(False, help="Install the engine's CLI first if missing."),
) -> None:
    """Deliver real GitHub payloads to a local gaffer and show the runs they become and what
    they post on a local GitHub stand-in."""
    from gaffer.aio import run_async
    from gaffer.demo.engine import DEMO_ENGINES, demo_model, ensure_installed
    from gaffer.demo.scenario import SCENARIO, run_demo
    from gaffer.runtime import open_runtime

    if backend not in BACKENDS:
        raise CliError(f"unknown backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if engine != "command" and engine not in DEMO_ENGINES:
        raise CliError(f"unknown engine {engine!r}: choose command, {', '.join(DEMO_ENGINES)}")
    missing = sorted({d.fixture for d in SCENARIO if not (fixtures / d.fixture).is_file()})
    if missing:
        raise CliError(f"fixture(s) not found in {fixtures}: {', '.join(missing)}")
    demo_home = home or Path(tempfile.mkdtemp(prefix="gaffer-demo-"))
    settings = Settings(
        home=demo_home,
        database_url=None,
        redis_url=None,
        master_key=None,
        backend=backend,
        # Containers reach this process's GitHub stand-in and gateway on the host's loopback.
        worker_network="host" if backend == "docker" else "bridge",
    )
    if engine != "command" and backend == "local":
        ensure_installed(engine, settings.engines_dir, install)
    configure_logging(settings, quiet=True)
    live = None if as_json else Live(_progress_table([]), console=err_console, transient=True)
    try:
        with open_runtime(settings) as rt, demo_model(engine) as model:
            if live is not None:
                live.start()
            report = run_async(
                run_demo(
                    rt,
                    fixtures=fixtures,
                    timeout_s=timeout,
                    on_progress=(lambda runs: live.update(_progress_table(runs))) if live else None,
                    engine=engine,
                    model=model if engine != "command" else None,
                )
            )
    finally:
        if live is not None:
            live.stop()
        if home is None and not keep:
            shutil.rmtree(demo_home, ignore_errors=True)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
        if keep or home is not None:
            console.print(f"inspect it: GAFFER_HOME={demo_home} ./gaffer runs list")
    if not report.ok:
        raise typer.Exit(1)
