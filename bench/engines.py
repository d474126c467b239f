"""Engine overhead: each installed agent CLI run bare vs the whole gaffer run, same model server.

For each engine whose CLI is installed (``claude-code``, ``codex``, ``opencode``, ``aider``), in
the same run and against the same local scripted model server (``tests/support/model_server``:
one turn that calls the CLI's shell tool to write a file, or an edit block for aider, then a
final answer):

* bare: the engine adapter runs the CLI once in a fresh git checkout (the same command line,
  environment and config files gaffer uses; no worker, no dispatcher), timed around the call;
* gaffer: a signed ``issues.labeled`` delivery to an in-process gaffer (ingest + dispatch, the
  ``local`` backend, SQLite, its embedded Redis) whose implementation agent is played by that
  engine; timed from the run's ``started_at`` (the dispatcher took the job) to ``finished_at``
  (the result recorded), and split from the run log's timestamps into *before* (job start to
  the engine's turn started: worker start, job load, clone, branch, engine's clone, prompt
  rendering) and *after* (the engine finished to the result recorded: commit, push, report).

Prints the median (and min..max) of ``--runs`` runs per engine and column. Timestamps of log
lines are the dispatcher's receive times (database writes batched every 0.25 s at most), so
*before*/*after* carry up to that much noise.

    .venv/bin/python bench/engines.py [--runs 3] [--engine claude-code ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from tests.support.harness import fixture_body, running_gaffer  # noqa: E402
from tests.support.model_server import Edit, ModelServer, Shell  # noqa: E402

from gaffer.engines import engine_class  # noqa: E402
from gaffer.engines.base import EngineError, Invocation, ModelEndpoint  # noqa: E402
from gaffer.engines.discovery import find_cli  # noqa: E402
from gaffer.logs import configure_logging  # noqa: E402
from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec  # noqa: E402
from gaffer.settings import Settings  # noqa: E402
from gaffer.store.agents import set_agent  # noqa: E402
from gaffer.store.credentials import set_credential  # noqa: E402
from gaffer.store.models import Run, RunLog  # noqa: E402
from gaffer.store.projects import get_project  # noqa: E402
from gaffer.worker.events import Reporter  # noqa: E402

ENGINES = ("claude-code", "codex", "opencode", "aider")
KEY = "sk-bench-" + secrets.token_hex(8)
MODEL = {"claude-code": "claude-haiku-4-5"}


def plan_for(engine: str) -> list[Any]:
    """One turn that writes a file (aider has no tools: an edit block), then the answer."""
    if engine == "aider":
        return [Edit("HELLO.md", "hello\n", then="Wrote HELLO.md.")]
    return [Shell("printf 'hello\\n' > HELLO.md", then="Wrote HELLO.md.")]


def base_url(engine: str, server: ModelServer) -> str:
    return server.anthropic_url if engine == "claude-code" else server.openai_url


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def bare_run(engine: str, server: ModelServer, root: Path) -> float:
    """One run of the engine adapter (the CLI itself) in a fresh checkout; seconds."""
    checkout, scratch = root / "tree", root / "scratch"
    checkout.mkdir(parents=True)
    (scratch / "home").mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", ".", cwd=checkout)
    (checkout / "README.md").write_text("# bench\n")
    git("add", ".", cwd=checkout)
    git("-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init", cwd=checkout)
    job = JobData(
        run_id=uuid.uuid4().hex,
        project_id="p",
        project_name="bench",
        agent_type="implementation",
        repository=RepositorySpec(full_name="o/r", clone_url=str(checkout)),
        engine=EngineSpec(name=engine),
        task=TaskSpec(
            agent_type="implementation",
            repository="o/r",
            work_item="1",
            trigger="bench",
            provider="bench",
        ),
        branch="gaffer/implementation/1",
        timeout_s=600,
    )
    invocation = Invocation(
        job=job,
        checkout=checkout,
        scratch=scratch,
        home=scratch / "home",
        reporter=Reporter(open("/dev/null", "w")),  # noqa: SIM115
        system_prompt="You are a careful engineer.",
        prompt="Write HELLO.md saying hello.",
        model=ModelEndpoint(MODEL.get(engine, "gpt-5-mini"), base_url(engine, server), KEY),
        max_turns=10,
    )
    server.script(plan_for(engine))
    started = time.monotonic()
    result = engine_class(engine)().run(invocation)
    elapsed = time.monotonic() - started
    if not result.ok or not (checkout / "HELLO.md").exists():
        raise RuntimeError(f"bare {engine} run failed: {result.error or result.exit_code}")
    return elapsed


def gaffer_runs(engine: str, server: ModelServer, home: Path, runs: int) -> list[dict[str, float]]:
    """``runs`` gaffer runs of the engine; each: total, before, after (seconds)."""
    settings = Settings(
        home=home, master_key=Fernet.generate_key().decode(), redis_url=None, max_workers=1
    )
    figures = []
    with running_gaffer(settings, ("ingest", "dispatch", "gateway")) as gaffer:
        project = gaffer.create_project(agents=["implementation"], command="true")
        with gaffer.rt.db.session() as session:
            found = get_project(session, project.name)
            default = "ANTHROPIC_API_KEY" if engine == "claude-code" else "OPENAI_API_KEY"
            set_credential(session, gaffer.rt.box, found.id, default, KEY)
            set_agent(
                session,
                found,
                "implementation",
                engine=engine,
                engine_settings={},
                overrides={
                    "model": MODEL.get(engine, "gpt-5-mini"),
                    "base_url": base_url(engine, server),
                },
            )
        for index in range(runs):
            server.script(plan_for(engine))
            payload = json.loads(fixture_body("issues.labeled"))
            payload["issue"]["number"] = 100 + index
            response = gaffer.deliver(
                json.dumps(payload).encode(),
                "issues",
                project.secret,
                delivery_id=str(uuid.uuid4()),
            )
            [run_id] = response.json()["runs"]
            view = gaffer.wait_for(run_id, timeout=600)
            if view["status"] != "SUCCEEDED":
                raise RuntimeError(
                    f"gaffer {engine} run {run_id} {view['status']}: {view['error']}"
                )
            figures.append(split(gaffer, run_id))
    return figures


def split(gaffer: Any, run_id: str) -> dict[str, float]:
    with gaffer.rt.db.session() as session:
        run = session.get(Run, run_id)
        lines = session.query(RunLog).filter(RunLog.run_id == run_id).order_by(RunLog.id).all()
        assert run is not None and run.started_at and run.finished_at
        turn = next(line.ts for line in lines if line.message.startswith("engine_turn_started"))
        done = [line.ts for line in lines if line.message.startswith("engine_finished")][-1]
        return {
            "total": (run.finished_at - run.started_at).total_seconds(),
            "before": (turn - run.started_at).total_seconds(),
            "after": (run.finished_at - done).total_seconds(),
        }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", action="append", choices=ENGINES)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging(Settings(master_key=None), quiet=True)
    chosen = args.engine or list(ENGINES)
    engines_bin = Settings(master_key=None).engines_dir / "bin"
    # The bare runs find the CLIs as the local backend's workers do: engines' bin/ on PATH.
    os.environ["PATH"] = f"{engines_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    report: dict[str, Any] = {}
    with ModelServer() as server, tempfile.TemporaryDirectory(prefix="gaffer-bench-") as tmp:
        for engine in chosen:
            cli = engine_class(engine).cli
            try:
                find_cli(cli or "", path=str(engines_bin))
            except EngineError as exc:
                report[engine] = {"skipped": str(exc)}
                continue
            bare = [
                bare_run(engine, server, Path(tmp) / f"{engine}-bare-{i}") for i in range(args.runs)
            ]
            runs = gaffer_runs(engine, server, Path(tmp) / f"{engine}-home", args.runs)
            report[engine] = {
                "bare_s": summary(bare),
                "gaffer_s": summary([r["total"] for r in runs]),
                "before_engine_s": summary([r["before"] for r in runs]),
                "after_engine_s": summary([r["after"] for r in runs]),
            }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"engines: {args.runs} runs each, median (min..max) seconds")
    columns = ("bare CLI", "gaffer run", "before engine", "after engine")
    print(f"{'engine':<12} " + " ".join(f"{c:>20}" for c in columns))
    for engine, row in report.items():
        if "skipped" in row:
            print(f"{engine:<12} skipped: {row['skipped']}")
            continue
        cells = [
            f"{row[k]['median']:.2f} ({row[k]['min']:.2f}..{row[k]['max']:.2f})"
            for k in ("bare_s", "gaffer_s", "before_engine_s", "after_engine_s")
        ]
        print(f"{engine:<12} " + " ".join(f"{c:>20}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
