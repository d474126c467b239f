"""``gaffer demo`` run the way a user runs it: the installed command, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.containers import PodmanService, new_instance
from tests.support.harness import FIXTURES

GAFFER = str(Path(sys.executable).parent / "gaffer")


def clean_env() -> dict[str, str]:
    """The user's environment without any gaffer configuration."""
    drop = {"DATABASE_URL", "REDIS_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GAFFER_")}


def redis_processes_under(path: Path) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if "redis-server" in line and str(path) in line]


def test_demo_succeeds_and_leaves_no_process(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    proc = subprocess.run(
        [GAFFER, "demo", "--json", "--home", str(home)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    answers = {
        d["label"]: (d["status_code"], d["decision"], len(d["runs"])) for d in report["deliveries"]
    }
    assert answers == {
        "issue labeled": (202, "queued", 1),
        "PR opened": (202, "queued", 1),
        "check suite, same PR+SHA": (202, "ignored", 0),
        "redelivery": (200, "duplicate", 0),
        "bad signature": (401, "rejected", 0),
        "nothing listens": (202, "ignored", 0),
    }
    check_suite = next(d for d in report["deliveries"] if d["event"] == "check_suite")
    assert "review of PR #2 at ec26c3e57ca3 was already dispatched" in check_suite["reason"]
    runs = [r for d in report["deliveries"] for r in d["runs"]]
    assert {r["status"] for r in runs} == {"SUCCEEDED"}
    # Implementation pushes its branch; review is read-only: it pushes nothing and leaves a
    # review, validated against its schema.
    assert {r["agent_type"]: r["branch"] for r in runs} == {
        "implementation": "gaffer/implementation/1",
        "review": None,
    }
    review = next(r for r in runs if r["agent_type"] == "review")
    assert review["outputs"]["review"]["event"] == "COMMENT"
    assert "Looked at #2" in review["outputs"]["review"]["body"]
    # The implementation run pushed PLAN.md with the title to the bare repository.
    implementation = next(r for r in runs if r["agent_type"] == "implementation")
    plan = subprocess.run(
        ["git", "show", f"{implementation['commit']}:PLAN.md"],
        cwd=home / "demo" / "Hello-World.git",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "## Spelling error in the README file" in plan
    # The private Redis server it started is gone.
    assert redis_processes_under(home) == []


def test_demo_fails_when_an_outcome_is_not_as_expected(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    labeled = json.loads((fixtures / "issues.labeled.json").read_text())
    labeled["label"]["name"] = "enhancement"  # no longer the demo's trigger label
    (fixtures / "issues.labeled.json").write_text(json.dumps(labeled))
    proc = subprocess.run(
        [GAFFER, "demo", "--fixtures", str(fixtures)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "issue labeled: decision ignored, expected queued" in proc.stdout
    assert "NOT as expected" in proc.stdout


def test_demo_with_missing_fixtures_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [GAFFER, "demo", "--fixtures", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_in_containers(tmp_path: Path, podman: PodmanService) -> None:
    instance = new_instance()
    env = clean_env() | {"DOCKER_HOST": podman.url, "GAFFER_INSTANCE": instance}
    proc = subprocess.run(
        [GAFFER, "demo", "--backend", "docker", "--json", "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        runs = [r for d in report["deliveries"] for r in d["runs"]]
        assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCEEDED"}
        # Each run ran in a container of this instance, which was removed afterwards.
        home = tmp_path / "home"
        logs = subprocess.run(
            [GAFFER, "runs", "logs", runs[0]["id"]],
            capture_output=True,
            text=True,
            env=env | {"GAFFER_HOME": str(home)},
            check=True,
        ).stdout
        assert "dispatching to the docker backend" in logs
        assert podman.managed(instance) == []
    finally:
        podman.remove_all(instance)


@pytest.mark.parametrize("engine", ["claude-code", "codex"])
def test_demo_with_a_real_engine_runs_the_cli_against_the_shipped_model(
    tmp_path: Path, engine: str
) -> None:
    """No provider key in the environment: the real CLI plays the agents against the scripted
    model server shipped in the package, through the gateway."""
    env = {k: v for k, v in clean_env().items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    proc = subprocess.run(
        [GAFFER, "demo", "--json", "--engine", engine, "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["engine"] == engine
    assert report["model"].startswith("the scripted local model server at http://127.0.0.1:")
    runs = {r["agent_type"]: r for d in report["deliveries"] for r in d["runs"]}
    assert runs["implementation"]["status"] == "SUCCEEDED"
    assert runs["implementation"]["changed"] == ["DEMO_CHANGE.md"]
    assert runs["review"]["outputs"]["review"]["event"] == "COMMENT"


def test_demo_says_how_to_install_a_missing_engine(tmp_path: Path) -> None:
    env = {**clean_env(), "GAFFER_ENGINES_DIR": str(tmp_path / "no-engines")}
    proc = subprocess.run(
        [GAFFER, "demo", "--engine", "opencode", "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "opencode is not installed" in proc.stderr
    assert "--install" in proc.stderr and "scripts/install-engines opencode" in proc.stderr
