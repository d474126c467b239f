"""The claude-code engine: the real ``claude`` CLI, in a real git checkout, against the scripted
model server (Anthropic Messages, streamed and plain). The CLI is the one
``scripts/install-engines claude-code`` puts in ``$GAFFER_ENGINES_DIR/bin``; a missing CLI
fails these tests (it is never a skip)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gaffer.engines.base import EngineUser, ModelEndpoint
from gaffer.engines.claude_code import ARGV_TEXT_MAX_BYTES, MAX_RETRIES, ClaudeCodeEngine
from gaffer.store.models import RunStatus
from tests.conftest import DockerGaffers, GafferFactory
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
from tests.support.model_server import ModelServer, RecordedRequest, Say, Shell, Usage

KEY = "sk-ant-test-" + uuid.uuid4().hex
CLAUDE = EngineSetup("claude-code", model="claude-test", credential="ANTHROPIC_API_KEY", key=KEY)
MAX_REQUESTS = MAX_RETRIES + 1
"""The most requests one failing model call may cost: the call and Claude Code's bounded
retries (its default, 10 with backoff, takes minutes against a dead server)."""
WRAPPER_LINE = "claude-test-wrapper: starting"


@pytest.fixture(scope="module")
def claude_cli() -> Path:
    return engine_cli("claude", "claude-code")


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


class Run(EngineRun):
    """A claude-code invocation of ``cli`` with the test's key, against ``base_url``, of at
    most 8 turns. Its wrapper records the argv of each call as a JSON line in ``argv.json``
    and prints one line that is not JSON."""

    argv_name = "argv.json"

    def __init__(self, root: Path, cli: Path, base_url: str) -> None:
        endpoint = ModelEndpoint(model="claude-test", base_url=base_url, api_key=KEY)
        super().__init__(
            root, cli, ClaudeCodeEngine(), engine_name="claude-code", model=endpoint, max_turns=8
        )

    def wrapper_script(self, cli: Path) -> str:
        return (
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"with open({str(self.argv_file)!r}, 'a') as f:\n"
            "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
            f"print({WRAPPER_LINE!r}, flush=True)\n"
            f"os.execv({str(cli)!r}, [{str(cli)!r}, *sys.argv[1:]])\n"
        )

    def argvs(self) -> list[list[str]]:
        return [json.loads(line) for line in self.argv_file.read_text().splitlines()]


@pytest.fixture
def run(tmp_path: Path, claude_cli: Path, server: ModelServer) -> Run:
    return Run(tmp_path, claude_cli, server.anthropic_url)


def messages_calls(server: ModelServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path == "/v1/messages"]


def test_a_turn_edits_the_file_and_reports_summary_and_figures(
    run: Run, server: ModelServer
) -> None:
    server.usage = Usage(input_tokens=120, output_tokens=30, cache_read=7, cache_write=3)
    env_dump = run.scratch / "agent-env.txt"
    server.script(
        [Shell(f"printf 'hi\\n' > HELLO.md; env > {env_dump}", then="Done: wrote HELLO.md")]
    )

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    status = ["git", "-C", str(run.checkout), "status", "--porcelain", "--untracked-files=all"]
    changed = subprocess.run(status, capture_output=True, text=True, check=True).stdout
    assert changed == "?? HELLO.md\n"  # Claude Code leaves nothing of its own in the checkout
    assert result.summary == "Done: wrote HELLO.md"
    calls = messages_calls(server)
    assert len(calls) == 2  # the tool call, then the final text once the result is in
    assert all(c.is_agent_turn for c in calls)
    assert result.figures is not None
    figures = result.figures.as_dict()
    cost = figures.pop("cost_usd")
    assert isinstance(cost, float) and cost > 0  # Claude Code's own estimate
    assert figures == {
        "turns": 2,
        "input_tokens": 120 * len(calls),
        "output_tokens": 30 * len(calls),
        "cache_read_tokens": 7 * len(calls),
        "cache_write_tokens": 3 * len(calls),
    }
    assert result.session_id and uuid.UUID(result.session_id)
    log = run.log()
    assert f"tool Bash: printf 'hi\\n' > HELLO.md; env > {env_dump}" in log, log
    assert any(line.startswith("result Bash: ") for line in log), log
    assert "assistant: Done: wrote HELLO.md" in log
    assert f"output: {WRAPPER_LINE}" in log  # a line that is not JSON
    # The model, the system prompt and the turn limit went where Claude Code takes them.
    assert {c.json["model"] for c in calls} == {"claude-test"}
    assert "You are gaffer's implementation agent." in json.dumps(calls[0].json["system"])
    (argv,) = run.argvs()
    assert argv[argv.index("--max-turns") + 1] == "8"
    assert argv[-2:] == ["--", "Write HELLO.md saying hi."]
    # The key reached the server in x-api-key, and nowhere else: not the argv, the log, the
    # engine's home, nor the environment of the commands the agent ran.
    assert all(c.headers.get("x-api-key") == KEY for c in calls)
    assert all("authorization" not in c.headers for c in calls)
    assert KEY not in json.dumps(argv)
    assert KEY not in run.out.getvalue()
    assert env_dump.is_file() and KEY not in env_dump.read_text()
    dump = env_dump.read_text().splitlines()
    assert f"ANTHROPIC_BASE_URL={server.anthropic_url}" in dump  # the agent's real env
    assert ("IS_SANDBOX=1" in dump) == (os.geteuid() == 0)  # only root needs it
    for path in (run.scratch / "home").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_an_unauthorised_key_fails_the_turn_with_claude_message(
    run: Run, server: ModelServer
) -> None:
    server.fail(status=401, times=None)
    server.script([Shell("touch NOPE", then="never")])

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error == "claude-code: Invalid API key · Fix external API key (HTTP 401)"
    assert 1 <= len(messages_calls(server)) <= MAX_REQUESTS
    assert not (run.checkout / "NOPE").exists()
    assert result.summary is None
    log = run.log()
    assert "error: Invalid API key · Fix external API key" in log, log
    assert any(line.startswith("error: model call failed (authentication_failed") for line in log)


def test_a_server_error_fails_the_turn_after_bounded_retries(run: Run, server: ModelServer) -> None:
    server.fail(status=500, times=None)

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None
    assert result.error.startswith("claude-code: API Error: 500 Internal server error"), result
    assert len(messages_calls(server)) == MAX_REQUESTS  # retried, and bounded


def test_a_rate_limit_fails_the_turn_with_claude_message(run: Run, server: ModelServer) -> None:
    server.fail(status=429, times=None)

    result = run.run()

    assert not result.ok
    assert result.error is not None and "429" in result.error
    assert "Number of request tokens has exceeded your per-minute rate limit" in result.error
    assert len(messages_calls(server)) <= MAX_REQUESTS


def test_a_transient_server_error_is_retried_and_the_turn_finishes(
    run: Run, server: ModelServer
) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done after a 500")])
    server.fail(status=500, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert result.summary == "Done after a 500"
    assert [c.status for c in messages_calls(server)] == [500, 200, 200]


def test_a_dead_model_server_fails_the_turn(run: Run) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    endpoint = replace(run.invocation.model, base_url=dead)

    result = run.run(model=endpoint)

    assert not result.ok
    assert result.error == "claude-code: API Error: Unable to connect to API (ConnectionRefused)"
    retries = [line for line in run.log() if line.startswith("error: model call failed")]
    assert len(retries) == MAX_RETRIES


def test_a_cut_stream_is_sent_again_unstreamed_and_the_turn_finishes(
    run: Run, server: ModelServer
) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done after a cut")])
    server.cut_stream(after_events=3, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert result.summary == "Done after a cut"
    calls = messages_calls(server)
    assert [bool(c.json.get("stream")) for c in calls] == [True, False, True]
    assert calls[0].json["messages"] == calls[1].json["messages"]  # the same request, resent


def test_the_turn_limit_is_claude_own(run: Run, server: ModelServer) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="never said")])

    result = run.run(max_turns=1)

    assert not result.ok
    assert result.error == "claude-code: Reached maximum number of turns (1)"
    assert (run.checkout / "HELLO.md").exists()  # the one turn it had ran its tool call


def test_a_continuation_resumes_the_session(run: Run, server: ModelServer) -> None:
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
    before = len(messages_calls(server))

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
    calls = messages_calls(server)[before:]
    # The resumed session sends the first turn's messages again: its tool call and its answer.
    history = json.dumps(calls[0].json["messages"])
    assert "printf 'hi\\\\n' > HELLO.md" in history and "Wrote HELLO.md" in history
    assert "You wrote no review file" in history
    argv = run.argvs()[-1]
    assert argv[argv.index("--resume") + 1] == first.session_id
    # Claude Code reports each invocation's own figures, not the session's running total.
    assert second.figures is not None
    assert second.figures.input_tokens == 100 * len(calls)


def test_a_continuation_without_a_session_id_continues_the_last_session(
    run: Run, server: ModelServer
) -> None:
    server.script([Say("First answer."), Say("Second answer.")])
    first = run.run()
    assert first.ok and first.session_id

    second = run.run(prompt="And then?", turn=2, resume=True, session_id=None)

    assert second.ok and second.summary == "Second answer.", (second, run.log())
    assert second.session_id == first.session_id
    assert "--continue" in run.argvs()[-1]
    history = json.dumps(messages_calls(server)[-1].json["messages"])
    assert "First answer." in history and "And then?" in history


def test_prompts_too_long_for_the_command_line_go_on_stdin_and_in_a_file(
    run: Run, server: ModelServer
) -> None:
    server.script([Say("Read it all.")])
    prompt = "Read this. " + "x" * (2 * ARGV_TEXT_MAX_BYTES) + " END-OF-PROMPT"
    system = "You are gaffer. " + "y" * (2 * ARGV_TEXT_MAX_BYTES) + " END-OF-SYSTEM"

    result = run.run(prompt=prompt, system_prompt=system)

    assert result.ok and result.summary == "Read it all.", (result, run.log())
    (argv,) = run.argvs()
    assert "--" not in argv and "--append-system-prompt" not in argv
    assert max(len(a.encode()) for a in argv) < ARGV_TEXT_MAX_BYTES
    system_file = Path(argv[argv.index("--append-system-prompt-file") + 1])
    assert system_file.is_relative_to(run.scratch / "home")
    assert stat.S_IMODE(system_file.stat().st_mode) == 0o600
    (call,) = messages_calls(server)
    assert "END-OF-PROMPT" in json.dumps(call.json["messages"])
    assert "END-OF-SYSTEM" in json.dumps(call.json["system"])


def test_the_repository_settings_cannot_redirect_the_key_but_its_claude_md_is_read(
    run: Run, server: ModelServer
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        elsewhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = {"env": {"ANTHROPIC_BASE_URL": elsewhere}}
    (run.checkout / ".claude").mkdir()
    for name in ("settings.json", "settings.local.json"):
        (run.checkout / ".claude" / name).write_text(json.dumps(settings))
    (run.checkout / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"x": {"command": "touch", "args": ["MCP-STARTED"]}}})
    )
    (run.checkout / "CLAUDE.md").write_text("CLAUDE-MD-MARKER: keep answers short.\n")
    run.commit("a repository that configures Claude Code")
    server.script([Say("Short.")])

    result = run.run()

    assert result.ok and result.summary == "Short.", (result, run.log())
    (call,) = messages_calls(server)  # the model server was called, not the settings' URL
    assert "CLAUDE-MD-MARKER" in json.dumps(call.json)
    assert not (run.checkout / "MCP-STARTED").exists()


@pytest.fixture
def user_root() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is 0700 root)."""
    with user_reachable_dir("gaffer-claude-user-") as root:
        yield root


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an engine user needs root")
def test_as_an_unprivileged_engine_user(
    user_root: Path, claude_cli: Path, server: ModelServer
) -> None:
    run = Run(user_root, claude_cli, server.anthropic_url)
    user = EngineUser(uid=64123, gid=64123)
    for path in (user_root, *user_root.rglob("*")):
        os.chown(path, user.uid, user.gid)
    probe = run.scratch / "probe.txt"
    server.script(
        [Shell(f"id -u > {probe}; env >> {probe}; printf 'hi\\n' > HELLO.md", then="Done")]
    )

    result = run.run(user=user)

    assert result.ok and result.summary == "Done", (result, run.log())
    uid, *environ = probe.read_text().splitlines()
    assert uid == str(user.uid)
    assert (run.checkout / "HELLO.md").stat().st_uid == user.uid
    # As a user, --dangerously-skip-permissions needs no IS_SANDBOX, and none is given.
    assert not any(line.startswith("IS_SANDBOX=") for line in environ)
    assert not any(KEY in line for line in environ)
    prefix = (run.scratch / "home" / ".gaffer" / "shell-without-key").stat()
    assert prefix.st_uid == user.uid and stat.S_IMODE(prefix.st_mode) == 0o700


# -- end to end: a project whose agent uses the claude-code engine --------------------------


def test_a_claude_code_run_through_gaffer_commits_pushes_and_records_its_figures(
    start_gaffer: GafferFactory, claude_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=claude_cli.parent.parent)
    project = engine_project(gaffer, server, CLAUDE)
    server.usage = Usage(input_tokens=200, output_tokens=20, cache_read=5, cache_write=1)
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])

    run_id = deliver_issue(gaffer, project)
    run = gaffer.wait_for(run_id)

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run_id))
    assert project.bare is not None
    assert git_show(project.bare, f"{run['commit']}:HELLO.md") == "hi\n"
    assert run["branch"] == "gaffer/implementation/1"
    assert run["summary"] == "Done: wrote HELLO.md"
    calls = messages_calls(server)
    assert len(calls) == 2
    usage = dict(run["engine_usage"])
    assert usage.pop("cost_usd") > 0
    assert usage == {
        "turns": 2,
        "input_tokens": 400,
        "output_tokens": 40,
        "cache_read_tokens": 10,
        "cache_write_tokens": 2,
        "invocations": 1,
    }
    # The agent's rendered prompts reached the model; the key only in x-api-key.
    title = json.loads(fixture_body("issues.labeled"))["issue"]["title"]
    assert title in json.dumps(calls[0].json["messages"])
    assert all(c.headers.get("x-api-key") == KEY for c in calls)
    engine_lines = [m for stream, m in gaffer.logs(run_id) if stream == "engine"]
    assert "tool Bash: printf 'hi\\n' > HELLO.md" in engine_lines, engine_lines
    assert "assistant: Done: wrote HELLO.md" in engine_lines
    assert all(KEY not in m for _, m in gaffer.logs(run_id))


def test_a_bad_key_fails_the_run_with_claude_message(
    start_gaffer: GafferFactory, claude_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=claude_cli.parent.parent)
    project = engine_project(gaffer, server, CLAUDE)
    server.fail(status=401, times=None)

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "FAILED"
    assert run["error"] == (
        "engine claude-code failed: claude-code: Invalid API key · Fix external API key (HTTP 401)"
    )
    assert len(messages_calls(server)) <= MAX_REQUESTS  # no continuation turn after a 401


def test_a_claude_code_run_canceled_mid_run_stops_the_cli_and_its_commands(
    start_gaffer: GafferFactory, claude_cli: Path, server: ModelServer, tmp_path: Path
) -> None:
    gaffer = start_gaffer(engines_dir=claude_cli.parent.parent)
    project = engine_project(gaffer, server, CLAUDE)
    pid_file = tmp_path / "agent-command.pid"
    server.script([Shell(f"echo $$ > {pid_file}; exec sleep 600", then="never")])

    run_id = deliver_issue(gaffer, project)
    gaffer.wait_for(run_id, [RunStatus.RUNNING])
    pid = wait_for_pid_file(gaffer, run_id, pid_file)
    result = gaffer.cancel(run_id)

    run = gaffer.wait_for(run_id)
    assert run["status"] == "CANCELED", (result, run["error"])
    assert project.bare is not None and run["commit"] is None
    # The agent's command went with the engine, although Claude Code ran it in a session of
    # its own, out of the worker's process group.
    wait_until_gone(pid, f"the agent's command {pid} outlived the run")
    assert any("process(es) the agent's commands left running" in m for _, m in gaffer.logs(run_id))


def test_commands_the_agent_left_running_are_killed_when_the_turn_ends(
    run: Run, server: ModelServer
) -> None:
    pid_file = run.scratch / "background.pid"
    server.script(
        [Shell(f"nohup sleep 600 >/dev/null 2>&1 & echo $! > {pid_file}", then="Left it running")]
    )

    result = run.run()

    assert result.ok and result.summary == "Left it running", (result, run.log())
    pid = int(pid_file.read_text())
    wait_until_gone(pid, f"the agent's background command {pid} outlived it")
    assert "killed 1 process(es) the agent's commands left running" in run.log()


def test_a_continuation_turn_resumes_the_session_and_the_review_agent_writes_its_review(
    start_gaffer: GafferFactory, claude_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=claude_cli.parent.parent)
    project = engine_project(gaffer, server, CLAUDE, "review", pr_branch="changes")
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
    # The second invocation resumed the first one's session: the model saw its first answer
    # and the message saying what was missing.
    first, *rest = [c for c in messages_calls(server) if c.is_agent_turn]
    history = json.dumps(rest[0].json["messages"])
    assert "I read the diff; it looks right." in history
    assert "the review file is missing or invalid" in history
    assert "the review file is missing" not in json.dumps(first.json["messages"])


def test_a_model_that_stalls_times_the_run_out(
    start_gaffer: GafferFactory, claude_cli: Path, server: ModelServer
) -> None:
    gaffer = start_gaffer(engines_dir=claude_cli.parent.parent, stall_timeout_s=3.0)
    project = engine_project(gaffer, server, CLAUDE)
    server.stall(seconds=120, times=None)

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "TIMED_OUT"
    assert run["error"] == "stalled: no engine output for 3 s"
    assert len(messages_calls(server)) == 1  # held, never answered


def test_a_claude_code_run_in_a_container_is_committed_and_pushed(
    docker_gaffers: DockerGaffers, server: ModelServer
) -> None:
    # The host's network, so that the container reaches the model server on 127.0.0.1.
    gaffer = docker_gaffers.start(worker_network="host")
    project = engine_project(gaffer, server, CLAUDE)
    server.usage = Usage(input_tokens=50, output_tokens=5, cache_read=0, cache_write=0)
    server.script(
        [Shell("printf 'hi\\n' > HELLO.md; id -u > UID.txt; env > ENV.txt", then="Done in a box")]
    )

    run = gaffer.wait_for(deliver_issue(gaffer, project))

    assert run["status"] == "SUCCEEDED", (run["error"], gaffer.logs(run["id"]))
    assert run["summary"] == "Done in a box"
    assert project.bare is not None
    assert git_show(project.bare, f"{run['commit']}:HELLO.md") == "hi\n"
    assert git_show(project.bare, f"{run['commit']}:UID.txt") == "1000\n"  # not root
    environ = git_show(project.bare, f"{run['commit']}:ENV.txt").splitlines()
    # As uid 1000, --dangerously-skip-permissions needs no IS_SANDBOX; the key stays out.
    assert not any(line.startswith("IS_SANDBOX=") for line in environ)
    assert not any(KEY in line for line in environ)
    usage = dict(run["engine_usage"])
    usage.pop("cost_usd")
    assert usage == {
        "turns": 2,
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "invocations": 1,
    }
    assert all(c.headers.get("x-api-key") == KEY for c in messages_calls(server))
    assert ("system", "dispatching to the docker backend") in gaffer.logs(run["id"])
