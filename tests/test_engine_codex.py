"""The codex engine: the real ``codex`` CLI, in a real git checkout, against the scripted model
server (OpenAI Responses, streamed). The CLI is the one ``scripts/install-engines codex`` puts
in ``$GAFFER_ENGINES_DIR/bin``; a missing CLI fails these tests (it is never a skip)."""

from __future__ import annotations

import json
import stat
import subprocess
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from gaffer.engines.base import EngineError, ModelEndpoint
from gaffer.engines.codex import API_KEY_ENV, CodexEngine
from tests.support.engine_runs import EngineRun, engine_cli
from tests.support.model_server import ModelServer, Say, Shell, Usage

KEY = "sk-test-" + uuid.uuid4().hex
MAX_REQUESTS = 4
"""The most requests a failing model call may cost: a dead server fails the turn in about a
second (Codex's defaults, 4 request retries and 5 stream retries with backoff, take minutes)."""


@pytest.fixture(scope="module")
def codex_cli() -> Path:
    return engine_cli("codex", "codex")


@pytest.fixture
def server() -> Any:
    with ModelServer() as server:
        yield server


class Run(EngineRun):
    """A codex invocation of ``cli`` with the test's key, against ``base_url``."""

    def __init__(self, root: Path, cli: Path, base_url: str) -> None:
        endpoint = ModelEndpoint(model="gpt-test", base_url=base_url, api_key=KEY)
        super().__init__(root, cli, CodexEngine(), engine_name="codex", model=endpoint)


@pytest.fixture
def run(tmp_path: Path, codex_cli: Path, server: Any) -> Run:
    return Run(tmp_path, codex_cli, server.openai_url)


def responses_calls(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/responses")]


def test_a_turn_edits_the_file_and_reports_summary_and_figures(run: Run, server: Any) -> None:
    server.usage = Usage(input_tokens=120, output_tokens=30, cache_read=20, cache_write=0)
    env_dump = run.scratch / "agent-env.txt"
    server.script([Shell(f"printf 'hi\\n' > HELLO.md; env > {env_dump}", then="Done: HELLO.md")])

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    status = ["git", "-C", str(run.checkout), "status", "--porcelain", "--untracked-files=all"]
    changed = subprocess.run(status, capture_output=True, text=True, check=True).stdout
    assert changed == "?? HELLO.md\n"  # Codex leaves nothing of its own in the checkout
    assert result.summary == "Done: HELLO.md"
    calls = responses_calls(server)
    assert len(calls) == 2  # the tool call, then the final text once the result is in
    assert result.figures is not None
    assert result.figures.as_dict() == {
        "turns": 1,
        "input_tokens": 120 * len(calls),  # without the cached input
        "output_tokens": 30 * len(calls),
        "cache_read_tokens": 20 * len(calls),
        "cache_write_tokens": 0,
    }
    assert result.session_id
    log = run.log()
    assert any(line.startswith("tool shell: ") and "HELLO.md" in line for line in log), log
    assert any(line.startswith("result shell: exit 0") for line in log), log
    assert "assistant: Done: HELLO.md" in log
    # The system prompt went to the model, after Codex's own instructions.
    assert "You are gaffer's implementation agent." in json.dumps(calls[0].json["input"])
    # The key reached the server, and nowhere else: not the argv, the log, the config file,
    # nor the environment of the commands the agent ran.
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)
    argv = run.argv_file.read_text()
    assert argv.splitlines()[:2] == ["exec", "--json"] and KEY not in argv
    assert KEY not in run.out.getvalue()
    config = run.scratch / "home" / ".codex" / "config.toml"
    assert KEY not in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert tomllib.loads(config.read_text())["model_providers"]["gaffer"]["env_key"] == API_KEY_ENV
    assert env_dump.is_file() and KEY not in env_dump.read_text()


def test_an_unauthorised_key_fails_the_turn_with_codex_message(run: Run, server: Any) -> None:
    server.fail(status=401, times=None)
    server.script([Shell("touch NOPE", then="never")])

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None and result.error.startswith("codex: ")
    assert "401" in result.error and "Incorrect API key provided" in result.error, result.error
    assert 1 <= len(responses_calls(server)) <= MAX_REQUESTS
    assert not (run.checkout / "NOPE").exists()
    assert any(line.startswith("error: ") and "401" in line for line in run.log())


def test_a_server_error_fails_the_turn_after_bounded_retries(run: Run, server: Any) -> None:
    server.fail(status=500, times=None)

    result = run.run()

    assert not result.ok and result.exit_code != 0
    assert result.error is not None and result.error.startswith("codex: ")
    assert "high demand" in result.error, result.error  # Codex's own words for a 5xx
    assert 1 < len(responses_calls(server)) <= MAX_REQUESTS  # retried, and bounded


def test_an_exhausted_quota_fails_the_turn_with_codex_message(run: Run, server: Any) -> None:
    server.fail(status=429, times=None)

    result = run.run()

    assert not result.ok
    assert result.error is not None and "quota" in result.error.lower(), result.error
    assert len(responses_calls(server)) <= MAX_REQUESTS


def test_one_cut_stream_is_retried_and_the_turn_finishes(run: Run, server: Any) -> None:
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done after a cut")])
    server.cut_stream(after_events=1, times=1)

    result = run.run()

    assert result.ok, (result, run.log())
    assert (run.checkout / "HELLO.md").read_text() == "hi\n"
    assert result.summary == "Done after a cut"
    assert any("stream disconnected" in line for line in run.log()), run.log()


def test_streams_cut_every_time_fail_the_turn(run: Run, server: Any) -> None:
    server.cut_stream(after_events=1, times=None)

    result = run.run()

    assert not result.ok
    assert result.error is not None and "stream disconnected" in result.error, result.error
    assert len(responses_calls(server)) <= MAX_REQUESTS


def test_a_continuation_resumes_the_session(run: Run, server: Any) -> None:
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
    before = len(responses_calls(server))

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
    calls = responses_calls(server)[before:]
    # The resumed session sends the first turn's items again: its tool call and final text.
    history = json.dumps(calls[0].json["input"])
    assert "HELLO.md" in history and "Wrote HELLO.md" in history
    assert "You wrote no review file" in history
    argv = run.argv_file.read_text().splitlines()
    assert argv[-2:] == [first.session_id, "-"] and "resume" in argv
    # Codex reports the session's running totals; the turn reports only its own.
    assert second.figures is not None
    assert second.figures.input_tokens == 100 * len(calls)


def test_a_continuation_without_a_session_id_resumes_the_last_session(
    run: Run, server: Any
) -> None:
    server.script([Say("First answer."), Say("Second answer.")])
    first = run.run()
    assert first.ok and first.session_id

    second = run.run(prompt="And then?", turn=2, resume=True, session_id=None)

    assert second.ok and second.summary == "Second answer."
    assert second.session_id == first.session_id
    assert "--last" in run.argv_file.read_text().splitlines()
    history = json.dumps(responses_calls(server)[-1].json["input"])
    assert "First answer." in history and "And then?" in history


def test_a_text_only_answer_is_the_summary(run: Run, server: Any) -> None:
    server.script([Say("Nothing to change.")])

    result = run.run()

    assert result.ok and result.summary == "Nothing to change."
    assert (run.scratch / "codex-last-message-1.txt").read_text().strip() == "Nothing to change."


def test_without_a_key_codex_sends_no_authorization(run: Run, server: Any) -> None:
    server.script([Say("No key needed.")])
    endpoint = ModelEndpoint(model="gpt-test", base_url=server.openai_url, api_key=None)

    result = run.run(model=endpoint)

    assert result.ok and result.summary == "No key needed.", (result, run.log())
    assert all("authorization" not in c.headers for c in responses_calls(server))


def test_a_configured_path_that_is_not_the_cli_is_an_engine_error(run: Run) -> None:
    job = run.invocation.job.model_copy(deep=True)
    job.engine.settings["path"] = str(run.root / "no-such-codex")

    with pytest.raises(EngineError, match="no-such-codex is not an executable file"):
        run.run(job=job)


def test_a_patch_is_logged_as_a_file_change(run: Run, server: Any) -> None:
    # Codex applies a patch itself (a file_change item, not a command) when the model's shell
    # call is an apply_patch invocation.
    patch = "*** Begin Patch\n*** Add File: docs/NEW.md\n+hello\n*** End Patch\n"
    server.script([Shell(f"apply_patch <<'EOF'\n{patch}EOF\n", then="Patched.")])

    result = run.run()

    assert result.ok and result.summary == "Patched.", (result, run.log())
    assert (run.checkout / "docs" / "NEW.md").read_text() == "hello\n"
    assert "tool apply_patch: add docs/NEW.md (completed)" in run.log()
