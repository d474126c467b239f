"""Spawn latency: from a webhook accepted to the worker started, and to the run finished.

For each backend (``local`` and ``docker``, in the same run, one after the other), starts gaffer
in this process (ingest + dispatch, a temporary data dir, SQLite, its embedded Redis), creates a
project whose engine does nothing (the ``command`` engine running ``true``), and sends
``issues.labeled`` deliveries (each for another issue) one at a time, each after the previous run
finished:

* accepted: the 202 answer to the signed delivery arrived (taken here, wall clock);
* worker started: the backend's ``start`` returned (the process or container runs; the
  dispatcher's ``worker started`` log line);
* first line: the dispatcher received the worker's first report line (``job_loaded``): the worker
  runs gaffer's code and its output reaches the run log (for ``docker`` through the engine's log
  stream);
* finished: the run's ``finished_at`` (its outcome recorded), after a clone of the local bare
  repository, the no-op engine, and the commit step (nothing to push).

One warm-up run per backend is not counted. Prints p50/p95 (nearest rank) side by side.
For ``docker``, ``DOCKER_HOST`` is used when set; otherwise a ``podman system service`` is
started on a private socket (as the tests do). The worker image is built first if it is not up to
date (``scripts/build-images``).

    .venv/bin/python bench/spawn.py [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from gaffer.aio import run_async
from gaffer.demo.repository import create_bare_repository
from gaffer.logs import configure_logging
from gaffer.providers.github import delivery_headers
from gaffer.runtime import Runtime, open_runtime
from gaffer.server import Listening, serve
from gaffer.settings import Settings
from gaffer.store.models import Run, RunLog, RunStatus, utcnow
from gaffer.store.projects import create_project
from gaffer.triggers.github import default_agent_setups

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "github-webhooks" / "issues.labeled.json"
BACKENDS = ("local", "docker")
METRICS = (
    ("started", "worker started"),
    ("first_line", "first line"),
    ("finished", "run finished"),
)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@contextmanager
def docker_host() -> Iterator[str]:
    """DOCKER_HOST if set, else a private ``podman system service`` for the bench's duration."""
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    workdir = Path(tempfile.mkdtemp(prefix="gaffer-bench-podman-"))
    url = f"unix://{workdir / 'podman.sock'}"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,  # conmon writes files (an "oom" marker) to its cwd
    )
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "podman.sock").exists():
            if service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("podman system service did not start")
            time.sleep(0.05)
        yield url
    finally:
        service.terminate()
        service.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def setup_project(rt: Runtime) -> str:
    bare = create_bare_repository(rt.settings.home / "repo")
    secret = secrets.token_hex(16)
    with rt.db.session() as session:
        create_project(
            session,
            rt.box,
            name="bench",
            repository="Codertocat/Hello-World",
            clone_url=str(bare),
            webhook_secret=secret,
            bot_login="gaffer-bench",
            trigger_label="bug",
            agents=default_agent_setups("command", {"command": "true"}),
        )
    return secret


def first_log(rt: Runtime, run_id: str, prefix: str) -> datetime:
    """When the run's first log line starting with ``prefix`` was recorded."""
    with rt.db.session() as session:
        ts = session.scalar(
            select(RunLog.ts)
            .where(RunLog.run_id == run_id, RunLog.message.startswith(prefix))
            .order_by(RunLog.id)
            .limit(1)
        )
        if ts is None:
            raise RuntimeError(f"run {run_id} has no log line {prefix!r}")
        return ts


def state(rt: Runtime, run_id: str) -> tuple[RunStatus, datetime | None]:
    """The run's status and ``finished_at``."""
    with rt.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return RunStatus(run.status), run.finished_at


async def measure(rt: Runtime, url: str, secret: str, runs: int) -> dict[str, list[float]]:
    payload = json.loads(FIXTURE.read_bytes())
    figures: dict[str, list[float]] = {metric: [] for metric, _ in METRICS}
    async with httpx.AsyncClient(timeout=60) as http:
        for index in range(runs + 1):
            # A fresh issue each time: a run holds its work item's lock until its worker is
            # cleaned up, and the next run must not wait for that.
            payload["issue"]["number"] = 1000 + index
            body = json.dumps(payload).encode()
            headers = delivery_headers(body, "issues", secret, str(uuid.uuid4()))
            response = await http.post(f"{url}/webhooks/github", content=body, headers=headers)
            accepted = utcnow()
            if response.status_code != 202:
                raise RuntimeError(f"delivery answered {response.status_code}: {response.text}")
            [run_id] = response.json()["runs"]
            deadline = time.monotonic() + 120
            while True:
                status, done = await asyncio.to_thread(state, rt, run_id)
                if status.terminal:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run_id} still {status} after 120 s")
                await asyncio.sleep(0.01)
            if status != RunStatus.SUCCEEDED or done is None:
                raise RuntimeError(f"run {run_id} ended {status}")
            if index == 0:
                continue  # warm-up
            started = await asyncio.to_thread(first_log, rt, run_id, "worker started (")
            first_line = await asyncio.to_thread(first_log, rt, run_id, "job_loaded")
            for metric, at in (
                ("started", started),
                ("first_line", first_line),
                ("finished", done),
            ):
                figures[metric].append((at - accepted).total_seconds() * 1000)
    return figures


async def bench_backend(backend: str, runs: int, host: str | None) -> dict[str, list[float]]:
    home = Path(tempfile.mkdtemp(prefix=f"gaffer-bench-{backend}-"))
    settings = Settings(
        home=home,
        database_url=None,
        redis_url=None,
        master_key=None,
        backend=backend,  # type: ignore[arg-type]
        docker_host=host,
        instance=f"bench-{uuid.uuid4().hex[:8]}",
    )
    configure_logging(settings, quiet=True)
    try:
        with open_runtime(settings) as rt:
            secret = await asyncio.to_thread(setup_project, rt)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[Listening | None] = loop.create_future()
            server = asyncio.create_task(
                serve(rt, port=0, stop=stop, on_ready=lambda where: ready.set_result(where))
            )
            try:
                done, _ = await asyncio.wait({ready, server}, return_when="FIRST_COMPLETED")
                if server in done:
                    await server
                listening = ready.result()
                assert listening is not None
                return await measure(rt, listening.url, secret, runs)
            finally:
                stop.set()
                await server
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="measured runs per backend")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    subprocess.run([str(ROOT / "scripts" / "build-images")], check=True)
    results: dict[str, dict[str, list[float]]] = {}
    with docker_host() as host:
        for backend in BACKENDS:
            results[backend] = run_async(bench_backend(backend, args.runs, host))

    summary: dict[str, dict[str, dict[str, float]]] = {
        backend: {
            metric: {"p50": percentile(values, 50), "p95": percentile(values, 95)}
            for metric, values in figures.items()
        }
        for backend, figures in results.items()
    }
    if args.json:
        print(json.dumps({"runs": args.runs, "summary": summary, "samples": results}, indent=2))
        return
    print(f"spawn latency over {args.runs} runs per backend (ms, after one warm-up run)")
    print(
        f"{'from webhook accepted to':<28}"
        + "".join(f"{b + ' p50':>13}{b + ' p95':>13}" for b in BACKENDS)
    )
    for metric, label in METRICS:
        cells = "".join(
            f"{summary[b][metric]['p50']:>13.0f}{summary[b][metric]['p95']:>13.0f}"
            for b in BACKENDS
        )
        print(f"{label:<28}{cells}")


if __name__ == "__main__":
    main()
