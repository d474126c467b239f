"""The opencode engine: the real ``opencode`` CLI, in a real git checkout, against the scripted
model server (OpenAI Chat Completions, streamed). The CLI is the one
``scripts/install-engines opencode`` puts in ``$GAFFER_ENGINES_DIR/bin``; a missing CLI fails
these tests (it is never a skip)."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gaffer.engines.base import EngineError, EngineUser, ModelEndpoint
from gaffer.engines.opencode import KEY_FILE, OpencodeEngine
from gaffer.engines.opencode_events import MAX_MODEL_ATTEMPTS
from gaffer.queue.jobs import EngineSpec
from gaffer.store.models import RunStatus
from tests.conftest import GafferFactory
from tests.support.engine_runs import (
    EngineRun,
    EngineSetup,
    deliver_issue,
    engine_cli,
    engine_project,
    git_show,
    user_reachable_dir,
    wait_for_pid_file,
    wait_until_gone,
)
from tests.support.harness import fixture_body
from tests.support.model_server import ModelServer, Say, Shell, Usage

KEY = "sk-test-" + uuid.uuid4().hex
OPENCODE = EngineSetup("opencode", model="gpt-test", credential="OPENAI_API_KEY", key=KEY)


@pytest.fixture(scope="module")
def opencode_cli() -> Path:
    return engine_cli("opencode", "opencode")


@pytest.fixture
def server() -> Any:
    with ModelServer() as server:
        yield server


class Run(EngineRun):
    """An opencode invocation of ``cli`` with the test's key, against ``base_url``."""

    def __init__(self, root: Path, cli: Path, base_url: str) -> None:
        endpoint = ModelEndpoint(model="gpt-test", base_url=base_url, api_key=KEY)
        super().__init__(root, cli, OpencodeEngine(), engine_name="opencode", model=endpoint)


@pytest.fixture
def run(tmp_path: Path, opencode_cli: Path, server: Any) -> Run:
    return Run(tmp_path, opencode_cli, server.openai_url)


def test_a_turn_edits_the_file_and_reports_summary_and_figures(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=120, output_tokens=30, cache_read=20, cache_write=0)
    env_dump = run.scratch / "agent-env.txt"
    server.script([Shell(f"printf 'hi\\n' > HELLO.md; env > {env_dump}", then="Done: HELLO.md")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert result.summary == "Done: HELLO.md"
    agent_calls = server.agent_requests
    assert len(agent_calls) == 2  # the tool call, then the final text once the result is in
    assert len(server.model_requests) == 2  # no side call: the session has a --title
    assert result.figures is not None
    assert result.figures.as_dict() == {
        "turns": 2,  # opencode's steps: one per model call of the agent
        "input_tokens": 120 * 2,
        "output_tokens": 30 * 2,
        "cache_read_tokens": 20 * 2,
        "cache_write_tokens": 0,
    }  # no cost: the model has no price, and opencode's 0 is not reported as one
    assert result.session_id and result.session_id.startswith("ses_")
    log = run.log()
    assert any(line.startswith("tool bash: printf") and "HELLO.md" in line for line in log), log
    assert any(line.startswith("result bash: ") for line in log), log
    assert "assistant: Done: HELLO.md" in log
    # The model and the system prompt reached the server, after opencode's own prompt.
    first = agent_calls[0].json
    assert first["model"] == "gpt-test"
    system = [m for m in first["messages"] if m["role"] == "system"]
    assert "You are gaffer's implementation agent." in json.dumps(system)
    assert "Write HELLO.md saying hi." in json.dumps(first["messages"])  # the prompt, by stdin
    # The key reached the server, and nowhere else: not the argv, the log, the config, the
    # CLI's environment nor the agent's commands'; its file is gone once the turn is over.
    calls = server.model_requests
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)
    argv = run.argv_file.read_text()
    assert argv.splitlines()[:3] == ["run", "--format", "json"] and KEY not in argv
    assert KEY not in run.out.getvalue()
    assert KEY not in run.env_file.read_text()
    assert env_dump.is_file() and KEY not in env_dump.read_text()
    cli_env = run.cli_env()
    config = json.loads(cli_env["OPENCODE_CONFIG_CONTENT"])
    key_file = run.scratch / "home" / KEY_FILE
    assert config["provider"]["gaffer"]["options"] == {
        "baseURL": server.openai_url,
        "apiKey": "{file:" + str(key_file) + "}",
    }
    assert not key_file.exists()
    assert cli_env["HOME"] == str(run.scratch / "home")


def test_the_agent_cannot_read_the_key_file(run: Run, server: Any) -> None:
    stolen = run.scratch / "stolen.txt"
    key_file = run.scratch / "home" / KEY_FILE
    server.script([Shell(f"cat {key_file} > {stolen} 2>&1; true", then="Tried")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert "No such file" in stolen.read_text() and KEY not in stolen.read_text()
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in server.model_requests)


def test_what_an_agent_left_in_opencode_global_config_is_gone_next_turn(
    run: Run, server: Any
) -> None:
    marker = run.scratch / "mcp-ran"
    config_dir = run.scratch / "home" / ".config" / "opencode"
    config_dir.mkdir(parents=True)
    (config_dir / "opencode.json").write_text(
        json.dumps({"mcp": {"x": {"type": "local", "command": ["touch", str(marker)]}}})
    )
    server.script([Say("Nothing.")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert not (config_dir / "opencode.json").exists()
    assert not marker.exists()


def test_a_repository_config_cannot_change_the_provider(run: Run, server: Any) -> None:
    # An agent-controlled opencode.json must not redirect the key or the permissions.
    (run.checkout / "opencode.json").write_text(
        json.dumps({"provider": {"gaffer": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}}})
    )
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert len(server.agent_requests) == 2


def test_an_unauthorised_key_fails_the_turn_with_opencode_message(run: Run, server: Any) -> None:
    server.fail(status=401, times=None)
    server.script([Shell("touch NOPE", then="never")])

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None and result.error.startswith("opencode: ")
    assert "Incorrect API key provided" in result.error and "HTTP 401" in result.error
    assert len(server.model_requests) == 1  # a 401 is not retried; no title call
    assert not (run.checkout / "NOPE").exists()
    assert any(line.startswith("error: ") and "401" in line for line in run.log())
    assert KEY not in run.out.getvalue()


def test_a_server_error_fails_the_turn_after_one_retry(run: Run, server: Any) -> None:
    server.fail(status=500, times=None, message="The server had an error (scripted)")

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None and result.error.startswith("opencode: ")
    assert "The server had an error (scripted)" in result.error, result.error
    assert f"failed {MAX_MODEL_ATTEMPTS} times" in result.error
    assert len(server.model_requests) == MAX_MODEL_ATTEMPTS  # retried once, then stopped


def test_a_server_error_that_passes_is_retried(run: Run, server: Any) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done after a 500")])
    server.fail(status=500, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert result.summary == "Done after a 500"
    assert [r.status for r in server.model_requests] == [500, 200, 200]


def test_one_cut_stream_is_retried_and_the_turn_finishes(run: Run, server: Any) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done after a cut")])
    server.cut_stream(after_events=1, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert result.summary == "Done after a cut"
    assert len(server.model_requests) == 3  # the cut call, its retry, the final answer


def test_streams_cut_every_time_fail_the_turn(run: Run, server: Any) -> None:
    server.cut_stream(after_events=1, times=None)

    result = run.run()

    assert not result.ok
    assert result.error is not None and result.error.startswith("opencode: "), result.error
    # Stopped when the attempt after the last allowed one starts (a cut is not always logged
    # as a stream error): at most one request more than the attempts allowed.
    assert 1 < len(server.model_requests) <= MAX_MODEL_ATTEMPTS + 1


def test_a_continuation_continues_the_session(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=100, output_tokens=10, cache_read=0, cache_write=0)
    review = run.scratch / "review.json"
    server.script(
        [
            Shell("printf 'hi\\n' > HELLO.md", then="Wrote HELLO.md"),
            Shell(
                f"""printf '{{"event":"COMMENT","body":"ok","comments":[]}}' > {review}""",
                then="Review written",
            ),
        ]
    )
    first = run.run()
    assert first.ok and first.session_id, (first, run.log())
    before = len(server.agent_requests)

    second = run.run(
        prompt="You wrote no review file: write it to $GAFFER_REVIEW_FILE.",
        turn=2,
        resume=True,
        session_id=first.session_id,
        env={"GAFFER_REVIEW_FILE": str(review)},
    )

    assert second.ok, (second, run.log())
    assert second.session_id == first.session_id
    assert second.summary == "Review written"
    assert json.loads(review.read_text())["event"] == "COMMENT"
    calls = server.agent_requests[before:]
    # The continued session sends the first turn's messages again, then the new prompt.
    history = json.dumps(calls[0].json["messages"])
    assert "HELLO.md" in history and "Wrote HELLO.md" in history
    assert "You wrote no review file" in history
    argv = run.argv_file.read_text().splitlines()
    assert argv[-2:] == ["--session", first.session_id]
    assert second.figures is not None and second.figures.input_tokens == 100 * len(calls)


def test_a_text_only_answer_is_the_summary(run: Run, server: Any) -> None:
    server.script([Say("Nothing to change.")])

    result = run.run()

    assert result.ok and result.summary == "Nothing to change."
    assert result.figures is not None and result.figures.turns == 1


def test_a_priced_model_reports_opencode_cost(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read=0)
    server.script([Say("Priced.")])
    settings = {**run.invocation.job.engine.settings, "cost": {"input": 2.0, "output": 8.0}}
    job = run.invocation.job.model_copy(
        update={"engine": EngineSpec(name="opencode", settings=settings)}
    )

    result = run.run(job=job)

    assert result.ok, (result, run.log())
    assert result.figures is not None
    assert result.figures.cost_usd == pytest.approx(2.0 + 0.8)


# -- end to end: a project whose agent uses the opencode engine ----------------------------


def test_an_opencode_run_through_gaffer_commits_pushes_and_records_its_figures(
    start_gaffer: GafferFactory, opencode_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=opencode_cli.parent.parent)
    project = engine_project(gaffer, server, OPENCODE)
    server.usage = Usage(input_tokens=200, output_tokens=20, cache_read=5)
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])

    run_id = deliver_issue(gaffer, project)
    run = gaffer.wait_for(run_id)

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run_id))
    assert project.bare is not None
    assert git_show(project.bare, f"{run['commit']}:HELLO.md") == "hi\n"
    assert run["branch"] == "gaffer/implementation/1"
    assert run["summary"] == "Done: wrote HELLO.md"
    calls = server.model_requests
    assert len(calls) == 2
    assert run["engine_usage"] == {
        "turns": 2,
        "input_tokens": 400,
        "output_tokens": 40,
        "cache_read_tokens": 10,
        "cache_write_tokens": 0,
        "invocations": 1,
    }
    # The agent's rendered prompts reached the model; the key only in the header.
    title = json.loads(fixture_body("issues.labeled"))["issue"]["title"]
    assert title in json.dumps(calls[0].json["messages"])
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)
    engine_lines = [m for stream, m in gaffer.logs(run_id) if stream == "engine"]
    assert "tool bash: printf 'hi\\n' > HELLO.md" in engine_lines, engine_lines
    assert "assistant: Done: wrote HELLO.md" in engine_lines
    assert all(KEY not in m for _, m in gaffer.logs(run_id))


def test_a_bad_key_fails_the_run_with_opencode_message(
    start_gaffer: GafferFactory, opencode_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=opencode_cli.parent.parent)
    project = engine_project(gaffer, server, OPENCODE)
    server.fail(status=401, times=None)

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "FAILED"
    assert run["error"].startswith("engine opencode failed: opencode: Incorrect API key provided")
    assert run["error"].endswith("(HTTP 401)")
    assert len(server.model_requests) == 1  # not retried, and no continuation turn after it


def test_a_continuation_turn_continues_the_session_and_the_review_agent_writes_its_review(
    start_gaffer: GafferFactory, opencode_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=opencode_cli.parent.parent)
    project = engine_project(gaffer, server, OPENCODE, "review", pr_branch="changes")
    review = {"event": "COMMENT", "body": "Looks right.", "comments": []}
    server.script(
        [
            Say("I read the diff; it looks right."),  # and forgets the review file
            Shell(f"printf '%s' '{json.dumps(review)}' > \"$GAFFER_REVIEW_FILE\"", then="Filed."),
        ]
    )
    payload = fixture_body("pull_request.opened")

    response = gaffer.deliver(payload, "pull_request", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run_id))
    assert run["outputs"] == {"review": review}
    assert run["summary"] == "Filed."
    assert run["commit"] is None  # a read-only agent pushes nothing
    assert run["engine_usage"]["invocations"] == 2
    # The second invocation continued the first one's session.
    first, *rest = server.agent_requests
    history = json.dumps(rest[0].json["messages"])
    assert "I read the diff; it looks right." in history
    assert "the review file is missing or invalid" in history
    assert "the review file is missing" not in json.dumps(first.json["messages"])


def test_a_model_that_stalls_times_the_run_out(
    start_gaffer: GafferFactory, opencode_cli: Path, server: ModelServer
) -> None:
    # opencode prints nothing of the agent's while it starts (its INFO log is not copied to the
    # run log), which takes seconds on a busy machine: the stall timeout must outlast that.
    gaffer = start_gaffer(engines_dir=opencode_cli.parent.parent, stall_timeout_s=45.0)
    project = engine_project(gaffer, server, OPENCODE)
    server.stall(seconds=300, times=None)

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "TIMED_OUT"
    assert run["error"] == "stalled: no engine output for 45 s"
    assert len(server.model_requests) == 1  # held, never answered


@pytest.fixture
def user_root() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is 0700 root)."""
    with user_reachable_dir("gaffer-opencode-user-") as root:
        yield root


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an engine user needs root")
def test_as_an_unprivileged_engine_user(
    user_root: Path, opencode_cli: Path, server: ModelServer
) -> None:
    run = Run(user_root, opencode_cli, server.openai_url)
    user = EngineUser(uid=64123, gid=64123)
    for path in (user_root, *user_root.rglob("*")):
        os.chown(path, user.uid, user.gid)
    probe = run.scratch / "probe.txt"
    server.script([Shell(f"id -u > {probe}; printf 'hi\\n' > HELLO.md", then="Done")])

    result = run.run(user=user)

    assert result.ok and result.summary == "Done", (result, run.log())
    assert probe.read_text().strip() == str(user.uid)
    assert (run.checkout / "HELLO.md").stat().st_uid == user.uid
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in server.model_requests)
    seeded = run.scratch / "home" / ".config" / "opencode" / "package.json"
    assert seeded.stat().st_uid == user.uid and stat.S_IMODE(seeded.stat().st_mode) == 0o600
    assert not (run.scratch / "home" / KEY_FILE).exists()


def test_an_opencode_run_canceled_mid_run_stops_the_cli_and_its_commands(
    start_gaffer: GafferFactory, opencode_cli: Path, server: ModelServer, tmp_path: Path
) -> None:
    gaffer = start_gaffer(engines_dir=opencode_cli.parent.parent)
    project = engine_project(gaffer, server, OPENCODE)
    pid_file = tmp_path / "agent-command.pid"
    server.script([Shell(f"echo $$ > {pid_file}; exec sleep 600", then="never")])

    run_id = deliver_issue(gaffer, project)
    gaffer.wait_for(run_id, [RunStatus.RUNNING])
    pid = wait_for_pid_file(gaffer, run_id, pid_file)
    result = gaffer.cancel(run_id)

    run = gaffer.wait_for(run_id)
    assert run["status"] == "CANCELED", (result, run["error"])
    assert project.bare is not None and run["commit"] is None
    wait_until_gone(pid, f"the agent's command {pid} outlived the run")
    assert any("process(es) the agent's commands left running" in m for _, m in gaffer.logs(run_id))


def test_a_malformed_cost_setting_is_an_engine_error(run: Run, server: ModelServer) -> None:
    settings = {**run.invocation.job.engine.settings, "cost": {"input": "cheap"}}
    job = run.invocation.job.model_copy(
        update={"engine": EngineSpec(name="opencode", settings=settings)}
    )

    with pytest.raises(EngineError, match=r"settings\.cost"):
        run.run(job=job)

    assert server.requests == []
