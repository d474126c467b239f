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
    # The repository lives on the GitHub stand-in (in the data directory), served over git
    # smart HTTP: the implementation run cloned and pushed PLAN.md (the title) to it.
    repository = Path(report["github"]["repository"])
    assert repository.is_relative_to(home)
    implementation = next(r for r in runs if r["agent_type"] == "implementation")
    plan = git(repository, "show", f"{implementation['commit']}:PLAN.md")
    assert "## Spelling error in the README file" in plan
    # What the notifier posted, read back from the stand-in: every write sent, the PR opened
    # from the pushed branch, the review submitted at the PR's head, both acks final.
    assert report["github"]["problems"] == []  # no call the stand-in does not know
    for run in runs:
        # Each write sent, but a "started" ack update the final one replaced before it went
        # out (a run quicker than the notifier) is superseded: the comment holds the outcome.
        statuses = {(e["kind"], e["status"]) for e in run["outbox"]}
        assert statuses - {("ack_update", "superseded")} == {
            (e["kind"], "sent") for e in run["outbox"]
        }, run["outbox"]
    web = report["github"]["url"] + "/Codertocat/Hello-World"
    pull = implementation["github"]["pull_request"]
    assert pull == {
        "number": 3,
        "title": "Spelling error in the README file",
        "url": f"{web}/pull/3",
        "head": "gaffer/implementation/1",
        "base": "master",
        "body": pull["body"],
    }
    assert "Closes #1" in pull["body"]
    head = git(repository, "rev-parse", "changes")
    posted = review["github"]["review"]
    assert posted["pull_number"] == 2 and posted["event"] == "COMMENTED"
    assert posted["inline_comments"] == 1 and posted["commit_id"] == head
    assert review["github"]["pull_request"] is None and implementation["github"]["review"] is None
    ack = implementation["github"]["ack"]
    assert ack["number"] == 1 and ack["text"].startswith("**✅ Done**")
    assert implementation["id"] in ack["text"] and f"PR: {web}/pull/3" in ack["text"]
    assert "gaffer:run=" not in ack["text"]  # the hidden marker is not part of the text shown
    assert review["github"]["ack"]["number"] == 2
    assert review["github"]["ack"]["text"].startswith("**✅ Done**")
    # The check suite names the PR's head as the stand-in has it (the seeded commit).
    check_suite = next(d for d in report["deliveries"] if d["event"] == "check_suite")
    assert f"review of PR #2 at {head[:12]} was already dispatched" in check_suite["reason"]
    # The private Redis server it started is gone.
    assert redis_processes_under(home) == []


def git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repository, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_demo_fails_when_an_outcome_is_not_as_expected_and_shows_what_was_posted(
    tmp_path: Path,
) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    (fixtures / "push.event.json").write_text("{not json")  # now rejected, not ignored
    proc = subprocess.run(
        [GAFFER, "demo", "--fixtures", str(fixtures)],
        capture_output=True,
        text=True,
        env=clean_env() | {"COLUMNS": "250"},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "nothing listens: status 400, expected 202" in proc.stdout
    assert "NOT as expected" in proc.stdout
    # The runs went on: the table shows, read back from the stand-in, the PR the
    # implementation opened, the review submitted, and each ack comment's final text.
    table = proc.stdout
    assert "on GitHub (the local stand-in at http://127.0.0.1:" in table
    rows = {line.split("│")[2].strip(): line for line in table.splitlines() if line.count("│") == 4}
    assert "Spelling error in the README file" in rows["pull request #3"]
    assert "COMMENTED, 1 inline comment" in rows["review on PR #2"]
    for item in ("#1", "#2"):
        assert "**✅ Done** · gaffer run" in rows[f"ack comment on {item}"]
    assert "/Codertocat/Hello-World/pull/3 · took" in table  # the ack links the PR
    assert "/Codertocat/Hello-World/pull/2#pullrequestreview-" in table


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
        # The containers (on the host's network) cloned from and pushed to the stand-in.
        posted = {r["agent_type"]: r["github"] for r in runs}
        assert posted["implementation"]["pull_request"]["head"] == "gaffer/implementation/1"
        assert posted["review"]["review"]["event"] == "COMMENTED"
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
    assert runs["implementation"]["github"]["pull_request"]["number"] == 3
    assert runs["review"]["github"]["review"]["event"] == "COMMENTED"


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
