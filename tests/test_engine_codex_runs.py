"""Codex runs through gaffer, end to end on the local backend: real deliveries, real worker
processes, the real ``codex`` CLI (from ``$GAFFER_ENGINES_DIR/bin``, the local backend's PATH)
against the scripted model server, real git. The project's ``OPENAI_API_KEY`` credential is
the key Codex sends."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaffer.store.models import RunStatus
from tests.conftest import DockerGaffers, GafferFactory
from tests.support.engine_runs import EngineSetup, deliver_fixture, engine_cli, engine_project
from tests.support.model_server import ModelServer, Say, Shell, Usage

KEY = "sk-test-" + uuid.uuid4().hex
CODEX = EngineSetup("codex", model="gpt-test", credential="OPENAI_API_KEY", key=KEY)
PR_HEAD = "changes"  # the head branch of the fixture PRs


@pytest.fixture(scope="module", autouse=True)
def codex_cli() -> None:
    engine_cli("codex", "codex")


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


def git(bare: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=bare, capture_output=True, text=True, check=True
    ).stdout.strip()


def codex_processes(workspace: Path) -> list[int]:
    """Processes whose CODEX_HOME is inside ``workspace`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"CODEX_HOME={workspace}".encode()) for v in environ):
            found.append(int(entry.name))
    return found


def test_a_codex_implementation_run_is_committed_and_pushed(
    start_gaffer: GafferFactory, server: ModelServer
) -> None:
    gaffer = start_gaffer()
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.usage = Usage(input_tokens=200, output_tokens=40, cache_read=50, cache_write=0)
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])

    run = gaffer.wait_for(deliver_fixture(gaffer, project, "issues.labeled", "issues"))

    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["summary"] == "Done: wrote HELLO.md"
    assert project.bare is not None
    assert git(project.bare, "show", f"{run['branch']}:HELLO.md") == "hi"
    assert git(project.bare, "rev-parse", run["branch"]) == run["commit"]
    # Only what the agent wrote is committed: nothing of Codex's own.
    files = git(project.bare, "show", "--name-only", "--format=", run["commit"]).split()
    assert files == ["HELLO.md"]
    calls = server.agent_requests
    assert len(calls) == 2
    assert run["engine_usage"] == {
        "invocations": 1,
        "turns": 1,
        "input_tokens": 200 * len(calls),
        "output_tokens": 40 * len(calls),
        "cache_read_tokens": 50 * len(calls),
        "cache_write_tokens": 0,
    }
    # The rendered prompts reached the model; the key only in the Authorization header.
    first = json.dumps(calls[0].json["input"])
    assert "Spelling error in the README file" in first
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)
    logs = gaffer.logs(run["id"])
    assert ("engine", "assistant: Done: wrote HELLO.md") in logs
    assert any(s == "engine" and m.startswith("tool shell: ") for s, m in logs), logs
    assert all(KEY not in m for _, m in logs)


def test_a_codex_review_agent_writes_its_review_on_a_resumed_turn(
    start_gaffer: GafferFactory, server: ModelServer
) -> None:
    gaffer = start_gaffer()
    project = engine_project(gaffer, server, CODEX, "review", pr_branch=PR_HEAD)
    review = {"event": "COMMENT", "body": "Looks fine.", "comments": []}
    server.script(
        [
            Say("I read the change."),  # turn 1 ends with no review file
            Shell(
                f"printf '%s' '{json.dumps(review)}' > \"$GAFFER_REVIEW_FILE\"",
                then="Review written.",
            ),
        ]
    )

    run = gaffer.wait_for(deliver_fixture(gaffer, project, "pull_request.opened", "pull_request"))

    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["outputs"] == {"review": review}
    assert run["summary"] == "Review written."
    assert run["engine_usage"]["invocations"] == 2
    assert run["branch"] is None and run["commit"] is None
    # The second turn continued the session: the model saw the first turn again.
    resumed = json.dumps(server.agent_requests[1].json["input"])
    assert "I read the change." in resumed and "review file is missing" in resumed


def test_a_401_fails_the_run_in_codex_words(
    start_gaffer: GafferFactory, server: ModelServer
) -> None:
    gaffer = start_gaffer()
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.fail(status=401, times=None)

    run = gaffer.wait_for(deliver_fixture(gaffer, project, "issues.labeled", "issues"))

    assert run["status"] == "FAILED"
    assert "unexpected status 401 Unauthorized: Incorrect API key" in run["error"], run["error"]
    assert len(server.model_requests) <= 4
    assert project.bare is not None
    assert git(project.bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_a_codex_run_whose_model_stalls_times_out(
    start_gaffer: GafferFactory, server: ModelServer
) -> None:
    gaffer = start_gaffer(stall_timeout_s=2.0)
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.stall(seconds=120)

    run = gaffer.wait_for(deliver_fixture(gaffer, project, "issues.labeled", "issues"))

    assert run["status"] == RunStatus.TIMED_OUT.value, run
    assert run["error"] == "stalled: no engine output for 2 s"
    assert len(server.model_requests) == 1


def test_a_codex_run_canceled_mid_turn_stops_codex_and_pushes_nothing(
    start_gaffer: GafferFactory, server: ModelServer
) -> None:
    gaffer = start_gaffer()
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done")])
    server.stall(seconds=120)  # the model call hangs: Codex is mid-turn

    run_id = deliver_fixture(gaffer, project, "issues.labeled", "issues")
    deadline = time.monotonic() + 60
    while not server.model_requests:
        assert time.monotonic() < deadline, "codex never called the model"
        time.sleep(0.05)
    workspace = gaffer.settings.workspaces_dir / run_id
    assert codex_processes(workspace), "codex is not running"

    gaffer.cancel(run_id)
    run = gaffer.wait_for(run_id)

    assert run["status"] == RunStatus.CANCELED.value, run
    assert project.bare is not None
    assert git(project.bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    deadline = time.monotonic() + 30
    while codex_processes(workspace):
        assert time.monotonic() < deadline, "codex outlived its canceled run"
        time.sleep(0.1)


def test_a_codex_run_in_a_container_is_committed_and_pushed(
    docker_gaffers: DockerGaffers, server: ModelServer
) -> None:
    # The host's network, so that the container reaches the model server on 127.0.0.1.
    gaffer = docker_gaffers.start(worker_network="host")
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.script([Shell("printf 'hi\\n' > HELLO.md; id -u > UID.txt", then="Done in a box")])

    run = gaffer.wait_for(deliver_fixture(gaffer, project, "issues.labeled", "issues"))

    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["summary"] == "Done in a box"
    assert project.bare is not None
    assert git(project.bare, "show", f"{run['branch']}:HELLO.md") == "hi"
    assert git(project.bare, "show", f"{run['branch']}:UID.txt") == "1000"  # not root
    assert run["engine_usage"]["turns"] == 1 and run["engine_usage"]["input_tokens"] > 0
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in server.agent_requests)
    assert ("system", "dispatching to the docker backend") in gaffer.logs(run["id"])


def test_a_codex_run_in_a_container_canceled_mid_turn_pushes_nothing(
    docker_gaffers: DockerGaffers, server: ModelServer
) -> None:
    gaffer = docker_gaffers.start(worker_network="host")
    project = engine_project(gaffer, server, CODEX, "implementation")
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done")])
    server.stall(seconds=120)  # Codex waits on its model call

    run_id = deliver_fixture(gaffer, project, "issues.labeled", "issues")
    deadline = time.monotonic() + 90
    while not server.model_requests:
        assert time.monotonic() < deadline, "codex never called the model"
        time.sleep(0.05)
    gaffer.cancel(run_id)
    run = gaffer.wait_for(run_id)

    assert run["status"] == RunStatus.CANCELED.value, run
    assert project.bare is not None
    assert git(project.bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    docker_gaffers.wait_until_removed()
