"""The aider engine: the real ``aider`` CLI, in a real git checkout, against the scripted model
server (OpenAI Chat Completions, not streamed: ``--no-stream``). The CLI is the one
``scripts/install-engines aider`` puts in ``$GAFFER_ENGINES_DIR/bin``; a missing CLI fails these
tests (it is never a skip)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gaffer.engines.aider import OUTPUT_DIR, AiderEngine
from gaffer.engines.aider_output import MAX_MODEL_ATTEMPTS
from gaffer.engines.base import EngineError, EngineUser, ModelEndpoint
from gaffer.queue.jobs import EngineSpec
from tests.conftest import GafferFactory
from tests.support.engine_runs import (
    EngineRun,
    EngineSetup,
    deliver_issue,
    engine_cli,
    engine_project,
    git_show,
    user_reachable_dir,
)
from tests.support.harness import fixture_body
from tests.support.model_server import Edit, ModelServer, Say, Usage

KEY = "sk-test-" + uuid.uuid4().hex
AIDER = EngineSetup("aider", model="gpt-test", credential="OPENAI_API_KEY", key=KEY)


@pytest.fixture(scope="module")
def aider_cli() -> Path:
    return engine_cli("aider", "aider")


@pytest.fixture
def server() -> Any:
    with ModelServer() as server:
        yield server


class Run(EngineRun):
    """An aider invocation of ``cli`` with the test's key, against ``base_url``."""

    def __init__(self, root: Path, cli: Path, base_url: str) -> None:
        endpoint = ModelEndpoint(model="gpt-test", base_url=base_url, api_key=KEY)
        super().__init__(root, cli, AiderEngine(), engine_name="aider", model=endpoint)


@pytest.fixture
def run(tmp_path: Path, aider_cli: Path, server: Any) -> Run:
    return Run(tmp_path, aider_cli, server.openai_url)


def test_a_turn_edits_the_file_and_reports_summary_and_figures(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=120, output_tokens=30)
    server.script([Edit("HELLO.md", "hi\n", then="Done: wrote HELLO.md")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert result.summary == "Done: wrote HELLO.md"
    calls = server.model_requests
    assert len(calls) == 1 and calls[0].is_agent_turn
    assert calls[0].json.get("stream") in (None, False)  # --no-stream: the server's counts
    assert result.figures is not None
    assert result.figures.as_dict() == {"turns": 1, "input_tokens": 120, "output_tokens": 30}
    log = run.log()
    assert "tool edit: HELLO.md" in log, log
    assert any(line.startswith("assistant: ") and "Done: wrote HELLO.md" in line for line in log)
    assert any(line.startswith("output: Tokens: 120 sent, 30 received") for line in log), log
    # The model, the system prompt (a read-only file) and the prompt reached the server.
    body = json.dumps(calls[0].json["messages"])
    assert calls[0].json["model"] == "gpt-test"
    assert "You are gaffer's implementation agent." in body
    assert "Write HELLO.md saying hi." in body
    # The key reached the server, and nowhere else: not the argv, not the log.
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    argv = run.argv_file.read_text()
    assert KEY not in argv and "--openai-api-key" not in argv
    assert argv.splitlines()[:2] == ["--model", "openai/gpt-test"]
    assert KEY not in run.out.getvalue()
    cli_env = run.cli_env()
    assert cli_env["OPENAI_API_KEY"] == KEY
    assert cli_env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    # aider's history stays out of the repository.
    assert not list(run.checkout.glob(".aider*"))
    assert (run.scratch / "aider-chat-history.md").is_file()


def test_a_priced_model_reports_aider_cost(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=1_000_000, output_tokens=100_000)
    server.script([Say("Priced.")])
    settings = {**run.invocation.job.engine.settings, "cost": {"input": 2.0, "output": 8.0}}
    job = run.invocation.job.model_copy(
        update={"engine": EngineSpec(name="aider", settings=settings)}
    )

    result = run.run(job=job)

    assert result.ok, (result, run.log())
    assert result.summary == "Priced."
    assert result.figures is not None
    assert result.figures.cost_usd == pytest.approx(2.0 + 0.8)


def test_an_unauthorised_key_fails_the_turn_with_aider_message(run: Run, server: Any) -> None:
    server.fail(status=401, times=None)
    server.script([Edit("NOPE.md", "no\n", then="never")])

    result = run.run()

    assert result.exit_code == 0  # aider itself says nothing went wrong
    assert not result.ok
    assert result.error is not None and result.error.startswith("aider: "), result.error
    assert "AuthenticationError" in result.error and "Incorrect API key" in result.error
    assert len(server.model_requests) == 1  # not retried
    assert not (run.checkout / "NOPE.md").exists()
    assert KEY not in run.out.getvalue()


def test_a_server_error_fails_the_turn_after_one_retry(run: Run, server: Any) -> None:
    server.fail(status=500, times=None, message="The server had an error (scripted)")

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None and result.error.startswith("aider: "), result.error
    assert "stopped retrying" in result.error
    assert "The server had an error (scripted)" in result.error
    assert len(server.model_requests) == MAX_MODEL_ATTEMPTS


def test_a_server_error_that_passes_is_retried(run: Run, server: Any) -> None:
    server.script([Edit("HELLO.md", "hi\n", then="Done after a 500")])
    server.fail(status=500, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert result.summary == "Done after a 500"
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert [r.status for r in server.model_requests] == [500, 200]


def test_a_continuation_restores_the_chat(run: Run, server: Any) -> None:
    review = run.scratch / "review.json"
    server.script(
        [
            Edit("HELLO.md", "hi\n", then="Wrote HELLO.md"),
            Edit("NOTES.md", "more\n", then="Wrote NOTES.md"),
        ]
    )
    first = run.run()
    assert first.ok, (first, run.log())

    second = run.run(
        prompt="You wrote no NOTES.md: write it.",
        turn=2,
        resume=True,
        env={"GAFFER_REVIEW_FILE": str(review)},
    )

    assert second.ok, (second, run.log())
    assert second.summary == "Wrote NOTES.md"
    assert (run.checkout / "NOTES.md").read_text() == "more\n"
    history = json.dumps(server.model_requests[-1].json["messages"])
    assert "Wrote HELLO.md" in history and "You wrote no NOTES.md" in history
    assert "--restore-chat-history" in run.argv_file.read_text().splitlines()


def test_a_repository_env_file_cannot_set_a_proxy(run: Run, server: Any) -> None:
    # aider always loads the repository's .env: a proxy there would see the key.
    (run.checkout / ".env").write_text(
        "HTTP_PROXY=http://127.0.0.1:9\nhttp_proxy=http://127.0.0.1:9\n"
    )
    server.script([Say("Fine.")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert len(server.model_requests) == 1


# -- end to end: a project whose agent uses the aider engine -------------------------------


def test_an_aider_run_through_gaffer_commits_pushes_and_records_its_figures(
    start_gaffer: GafferFactory, aider_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=aider_cli.parent.parent)
    project = engine_project(gaffer, server, AIDER)
    server.usage = Usage(input_tokens=200, output_tokens=20)
    server.script([Edit("HELLO.md", "hi\n", then="Done: wrote HELLO.md")])

    run_id = deliver_issue(gaffer, project)
    run = gaffer.wait_for(run_id)

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run_id))
    assert project.bare is not None
    assert git_show(project.bare, f"{run['commit']}:HELLO.md") == "hi\n"
    files = git_show(project.bare, "--name-only", "--format=", run["commit"]).split()
    assert files == ["HELLO.md"]  # no aider history or config in the commit
    assert run["summary"] == "Done: wrote HELLO.md"
    calls = server.model_requests
    assert len(calls) == 1
    assert run["engine_usage"] == {
        "turns": 1,
        "input_tokens": 200,
        "output_tokens": 20,
        "invocations": 1,
    }
    title = json.loads(fixture_body("issues.labeled"))["issue"]["title"]
    assert title in json.dumps(calls[0].json["messages"])
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    engine_lines = [m for stream, m in gaffer.logs(run_id) if stream == "engine"]
    assert "tool edit: HELLO.md" in engine_lines, engine_lines
    assert all(KEY not in m for _, m in gaffer.logs(run_id))


def test_a_bad_key_fails_the_run_with_aider_message(
    start_gaffer: GafferFactory, aider_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=aider_cli.parent.parent)
    project = engine_project(gaffer, server, AIDER)
    server.fail(status=401, times=None)

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "FAILED"
    assert run["error"].startswith("engine aider failed: aider: litellm.AuthenticationError")
    assert "Incorrect API key provided" in run["error"]
    assert len(server.model_requests) == 1  # not retried, and no continuation turn after it


def test_a_continuation_turn_makes_the_review_agent_write_its_review(
    start_gaffer: GafferFactory, aider_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=aider_cli.parent.parent)
    project = engine_project(gaffer, server, AIDER, "review", pr_branch="changes")
    review = {"event": "COMMENT", "body": "Looks right.", "comments": []}
    server.script(
        [
            Say("I read the diff; it looks right."),  # and forgets the review file
            # aider edits repository files only: the review file is a stand-in in the checkout.
            Edit(f"{OUTPUT_DIR}/review.json", json.dumps(review), then="Filed."),
        ]
    )
    payload = fixture_body("pull_request.opened")

    response = gaffer.deliver(payload, "pull_request", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run_id))
    assert run["outputs"] == {"review": review}
    assert run["summary"] == "Filed."
    assert run["commit"] is None  # read-only, and the stand-in is not left in the checkout
    assert run["engine_usage"]["invocations"] == 2
    first, *rest = server.agent_requests
    assert f"{OUTPUT_DIR}/review.json" in json.dumps(first.json["messages"])
    history = json.dumps(rest[0].json["messages"])
    assert "I read the diff; it looks right." in history  # the restored chat
    assert "the review file is missing or invalid" in history


@pytest.fixture
def user_root() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is 0700 root)."""
    with user_reachable_dir("gaffer-aider-user-") as root:
        yield root


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an engine user needs root")
def test_as_an_unprivileged_engine_user(user_root: Path, aider_cli: Path, server: Any) -> None:
    run = Run(user_root, aider_cli, server.openai_url)
    user = EngineUser(uid=64123, gid=64123)
    for path in (user_root, *user_root.rglob("*")):
        os.chown(path, user.uid, user.gid)
    server.script([Edit("HELLO.md", "hi\n", then="Done")])

    result = run.run(user=user)

    assert result.ok and result.summary == "Done", (result, run.log())
    assert (run.checkout / "HELLO.md").stat().st_uid == user.uid
    assert result.figures is not None and result.figures.turns == 1


def test_malformed_settings_are_an_engine_error(run: Run, server: Any) -> None:
    settings = {**run.invocation.job.engine.settings, "context_window": "big"}
    job = run.invocation.job.model_copy(
        update={"engine": EngineSpec(name="aider", settings=settings)}
    )

    with pytest.raises(EngineError, match=r"settings\.context_window"):
        run.run(job=job)

    assert server.requests == []
