"""Cold start vs warm start from a work-item snapshot vs warm start from a project snapshot.

A repository whose set-up (``.gaffer/setup.sh``) really installs dependencies: a virtual
environment with numpy, pandas and requests (and theirs) installed by pip, offline, from a
local wheel directory committed to the repository (``--wheels``; made with the machine's own
``pip download`` when missing, so no registry is named here). Everything runs on the
``docker`` backend through a private ``podman system service``, with the command engine.

Runs, in one process (same repository, same engine command):

1. cold: work-item snapshots on, no snapshot yet (clone + set-up); its container becomes the
   work item's snapshot;
2. warm from the work-item snapshot: the next run on that work item (refresh, no set-up);
3. cold again on another work item with project snapshots on (work-item off), which builds
   the project snapshot after it;
4. warm from the project snapshot: a first run on a third work item.

Figures per run: worker up (the run's ``started_at`` to the worker's first line: container
creation and start), time to repository ready (the worker's ``repository_ready`` event:
seconds from the worker's start to set-up done) and to run end (the run's ``started_at`` to
``finished_at``), and the ratios cold / warm. Target: ready at least 10x faster warm.

    .venv/bin/python bench/warm_start.py [--wheels DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from tests.support.containers import (  # noqa: E402
    WORKER_IMAGE,
    PodmanService,
    build_worker_image,
    new_instance,
)
from tests.support.harness import Gaffer, running_gaffer  # noqa: E402
from tests.test_lifecycle import trigger  # noqa: E402

from gaffer.snapshots import registry  # noqa: E402
from gaffer.store.models import Run, RunLog  # noqa: E402

PACKAGES = ("pip", "numpy", "pandas", "requests")
SETUP = """set -e
python3 -m venv --without-pip .venv
pip_wheel=$(ls wheels/pip-*.whl)
python3 "$pip_wheel/pip" --python .venv/bin/python install --quiet --no-index \\
    --find-links wheels numpy pandas requests
.venv/bin/python -c "import numpy, pandas, requests; print('deps ready', numpy.__version__)"
"""
ENGINE = '.venv/bin/python -c "import pandas" && date > RUN.txt && echo "engine says hi"'
READY = re.compile(r"^repository_ready seconds=([0-9.]+)")


def wheels_dir(given: Path | None) -> Path:
    """The wheel directory: ``given``, or a cache filled with the machine's ``pip download``."""
    if given is not None:
        return given
    cache = Path(tempfile.gettempdir()) / "gaffer-bench-wheels"
    if not any(cache.glob("pandas-*.whl")):
        cache.mkdir(parents=True, exist_ok=True)
        pip = shutil.which("pip3") or shutil.which("pip")
        if pip is None:
            raise SystemExit("no pip on PATH to fetch the wheels: pass --wheels DIR")
        subprocess.run(
            [pip, "download", "--only-binary=:all:", "-q", "-d", str(cache), *PACKAGES],
            check=True,
        )
    return cache


def make_repository(gaffer: Gaffer, bare: Path, wheels: Path) -> None:
    work = gaffer.settings.home / "bench-work"
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    (work / ".gaffer").mkdir(exist_ok=True)
    (work / ".gaffer" / "setup.sh").write_text(SETUP)
    (work / "requirements.txt").write_text("numpy\npandas\nrequests\n")
    (work / ".gitignore").write_text(".venv/\n")
    shutil.copytree(wheels, work / "wheels")
    for args in (
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "bench repository"],
        ["push", "-q", "origin", "HEAD"],
    ):
        subprocess.run(["git", *args], cwd=work, check=True)


def measure(gaffer: Gaffer, run_id: str) -> dict[str, Any]:
    run = gaffer.wait_for(run_id, timeout=900)
    if run["status"] != "SUCCEEDED":
        raise SystemExit(f"run {run_id} {run['status']}: {run['error']}")
    logs = gaffer.logs(run_id)
    ready = next(float(m.group(1)) for _, line in logs if (m := READY.match(line)))
    warm = next((line for _, line in logs if line.startswith("warm_start ")), None)
    with gaffer.rt.db.session() as session:
        stored = session.get(Run, run_id)
        first = session.scalar(
            select(RunLog.ts)
            .where(RunLog.run_id == run_id, RunLog.message.startswith("job_loaded"))
            .limit(1)
        )
        assert stored is not None and stored.started_at is not None and first is not None
        worker_up = (first - stored.started_at).total_seconds()
    return {
        "worker_up_s": round(worker_up, 2),
        "ready_s": ready,
        "end_s": float(run["duration_s"]),
        "warm": warm is not None,
        "from": (re.search(r"kind=(\S+)", warm).group(1) if warm else None),  # type: ignore[union-attr]
    }


def wait_for_snapshot(gaffer: Gaffer, project_id: str, kind: str) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        with gaffer.rt.db.session() as session:
            for row in registry.list_rows(session, gaffer.settings.instance, project_id):
                if row.kind == kind and row.status == "ready" and row.image_id:
                    return
        time.sleep(0.5)
    raise SystemExit(f"no {kind} snapshot after 900 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wheels = wheels_dir(args.wheels)
    build_worker_image()
    podman = PodmanService()
    home = Path(tempfile.mkdtemp(prefix="gaffer-bench-warm-"))
    instance = new_instance()
    from gaffer.settings import Settings

    settings = Settings(
        home=home,
        backend="docker",
        docker_host=podman.url,
        instance=instance,
        worker_image=WORKER_IMAGE,
        run_timeout_s=1800,
        log_level="WARNING",
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        with running_gaffer(settings) as gaffer:
            project = gaffer.create_project(command=ENGINE, agents=["implementation"])
            assert project.bare is not None
            make_repository(gaffer, project.bare, wheels)
            with gaffer.rt.db.session() as session:
                registry.set_settings(session, project.id, work_item=True, project=False)
                session.commit()
            results["cold"] = measure(gaffer, trigger(gaffer, project, issue=1))
            wait_for_snapshot(gaffer, project.id, "work-item")
            results["warm_work_item"] = measure(gaffer, trigger(gaffer, project, issue=1))
            with gaffer.rt.db.session() as session:
                registry.set_settings(session, project.id, work_item=False, project=True)
                session.commit()
            results["cold_2"] = measure(gaffer, trigger(gaffer, project, issue=2))
            wait_for_snapshot(gaffer, project.id, "project")
            results["warm_project"] = measure(gaffer, trigger(gaffer, project, issue=3))
    finally:
        client = podman.client
        for item in client.api.images(filters={"label": [f"gaffer.snapshot.instance={instance}"]}):
            client.api.remove_image(item["Id"], force=True)
        podman.close()
        shutil.rmtree(home, ignore_errors=True)
    cold = results["cold"]
    report = {
        "runs": results,
        "ratios": {
            kind: {
                "ready": round(cold["ready_s"] / results[kind]["ready_s"], 1),
                "end": round(cold["end_s"] / results[kind]["end_s"], 1),
            }
            for kind in ("warm_work_item", "warm_project")
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'run':<16}{'from':<12}{'worker up s':>12}{'ready s':>10}{'end s':>10}")
    for name, r in results.items():
        print(
            f"{name:<16}{r['from'] or 'cold':<12}{r['worker_up_s']:>12.2f}"
            f"{r['ready_s']:>10.2f}{r['end_s']:>10.2f}"
        )
    for kind, ratio in report["ratios"].items():
        print(f"cold / {kind}: ready {ratio['ready']}x, run end {ratio['end']}x")


if __name__ == "__main__":
    main()
