"""``gaffer agents``, ``gaffer credentials`` and ``gaffer engines``, driven as a user drives
them: the installed command, real processes, a real database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gaffer.demo.repository import create_bare_repository
from tests.conftest import MASTER_KEY
from tests.support.process import GAFFER, gaffer, gaffer_env, gaffer_json


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    env = gaffer_env(tmp_path / "home", REDIS_URL=redis_url, GAFFER_MASTER_KEY=MASTER_KEY)
    bare = create_bare_repository(tmp_path)
    gaffer(
        "projects",
        "create",
        "hello",
        "--repo",
        "Codertocat/Hello-World",
        "--clone-url",
        str(bare),
        "--command",
        "true",
        env=env,
    )
    return env


def test_agents_list_shows_every_agent_type_with_its_mode_and_rule(env: dict[str, str]) -> None:
    views = {
        v["agent_type"]: v for v in gaffer_json("agents", "list", "--project", "hello", env=env)
    }
    assert set(views) == {
        "planning",
        "implementation",
        "review",
        "respond-to-review",
        "respond-to-ci",
        "respond-to-pr-comment",
        "resolve-conflicts",
        "debug",
    }
    assert views["debug"]["enabled"] is False  # off by default
    assert views["review"]["enabled"] is True
    review = views["review"]["fields"]
    assert review["branch_mode"] == {"value": "read-only", "source": "package"}
    assert review["finish_rule"] == {"value": "review", "source": "package"}
    table = gaffer("agents", "list", "--project", "hello", env=env).stdout
    assert "respond-to-ci" in table and "pr-head" in table


def test_agents_set_show_and_reset_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    prompt = tmp_path / "task.j2"
    prompt.write_text("Review PR {{ pr_number }} with care.")
    view = gaffer_json(
        "agents",
        "set",
        "--project",
        "hello",
        "--agent",
        "review",
        "--engine",
        "claude-code",
        "--model",
        "claude-sonnet-4-5",
        "--max-turns",
        "12",
        "--task-prompt-file",
        str(prompt),
        env=env,
    )
    fields = view["fields"]
    assert fields["engine"]["value"] == "claude-code"
    assert fields["model"] == {"value": "claude-sonnet-4-5", "source": "project override"}
    assert fields["max_turns"] == {"value": 12, "source": "project override"}
    assert fields["task_prompt"]["value"] == "Review PR {{ pr_number }} with care."
    assert fields["credential"] == {"value": "ANTHROPIC_API_KEY", "source": "engine default"}
    shown = gaffer("agents", "show", "--project", "hello", "--agent", "review", env=env).stdout
    assert "project override" in shown and "claude-sonnet-4-5" in shown
    view = gaffer_json(
        "agents", "reset", "--project", "hello", "--agent", "review", "--field", "model", env=env
    )
    assert view["fields"]["model"] == {"value": None, "source": "package"}
    assert view["fields"]["max_turns"]["source"] == "project override"
    view = gaffer_json("agents", "reset", "--project", "hello", "--agent", "review", env=env)
    assert {f["source"] for k, f in view["fields"].items() if k != "engine"} <= {
        "package",
        "engine default",
    }


def test_a_template_with_an_unknown_variable_is_refused_and_nothing_is_written(
    env: dict[str, str], tmp_path: Path
) -> None:
    before = gaffer_json(
        "agents", "show", "--project", "hello", "--agent", "implementation", env=env
    )
    prompt = tmp_path / "bad.j2"
    prompt.write_text("Fix PR {{ pr_number }}")  # implementation runs are on issues
    proc = gaffer(
        "agents",
        "set",
        "--project",
        "hello",
        "--agent",
        "implementation",
        "--model",
        "m",
        "--task-prompt-file",
        str(prompt),
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "task_prompt: uses 'pr_number', which is not among the agent's variables" in (
        proc.stderr
    )
    after = gaffer_json(
        "agents", "show", "--project", "hello", "--agent", "implementation", env=env
    )
    assert after == before  # the model was not written either


def test_credentials_are_read_from_stdin_and_never_shown(env: dict[str, str]) -> None:
    secret = "sk-ant-api03-" + "x" * 40 + "Zq9Y"
    proc = subprocess.run(
        [GAFFER, "credentials", "set", "--project", "hello", "ANTHROPIC_API_KEY"],
        input=secret + "\n",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert secret not in proc.stdout + proc.stderr
    listed = gaffer_json("credentials", "list", "--project", "hello", env=env)
    assert [(c["name"], c["masked"]) for c in listed] == [("ANTHROPIC_API_KEY", "…Zq9Y")]
    table = gaffer("credentials", "list", "--project", "hello", env=env).stdout
    assert secret not in table and "…Zq9Y" in table
    # Nothing readable in the database file either (encrypted with the master key).
    database = Path(env["GAFFER_HOME"]) / "gaffer.db"
    assert secret.encode() not in database.read_bytes()
    empty = subprocess.run(
        [GAFFER, "credentials", "set", "--project", "hello", "OTHER"],
        input="",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 1 and "empty" in empty.stderr
    gaffer("credentials", "delete", "--project", "hello", "ANTHROPIC_API_KEY", env=env)
    assert gaffer_json("credentials", "list", "--project", "hello", env=env) == []


def test_engines_lists_each_engine_and_how_to_install_a_missing_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    views = {v["name"]: v for v in gaffer_json("engines", env=env)}
    assert set(views) == {"command", "claude-code", "codex", "opencode", "aider"}
    assert views["command"]["installed"] is True
    # An empty engines dir and a PATH without the CLIs: each is reported missing, with a hint.
    bare_env = {**env, "GAFFER_ENGINES_DIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    missing = {v["name"]: v for v in gaffer_json("engines", env=bare_env)}
    for name in ("claude-code", "codex", "opencode", "aider"):
        assert missing[name]["installed"] is False
        assert "install-engines" in missing[name]["install"]
