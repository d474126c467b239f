"""The scripted model server, held to the real clients: each of the four real agent CLIs (from
$GAFFER_ENGINES_DIR/bin, installed by scripts/install-engines) edits a file in a git checkout
through it. Its wire answers are checked over HTTP in tests/test_model_wire.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.model_server import Edit, ModelServer, Shell

ENGINES_BIN = Path(os.environ.get("GAFFER_ENGINES_DIR", "/opt/gaffer-engines")) / "bin"


@pytest.fixture
def server() -> Any:
    with ModelServer() as running:
        yield running


def cli(name: str) -> str:
    path = ENGINES_BIN / name
    assert os.access(path, os.X_OK), f"{path} is missing: run scripts/install-engines"
    return str(path)


def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(
        ["git", "-C", str(repo), *ident, "commit", "-q", "--allow-empty", "-m", "init"], check=True
    )
    return repo


def base_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp_path),
    }


def run(argv: list[str], repo: Path, env: dict[str, str], stdin: str | None = None) -> str:
    proc = subprocess.run(
        argv,
        cwd=repo,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def test_claude_code_edits_a_file(server: ModelServer, tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])
    env = base_env(tmp_path) | {
        "ANTHROPIC_BASE_URL": server.anthropic_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "IS_SANDBOX": "1",  # --dangerously-skip-permissions as root
    }
    argv = [
        cli("claude"),
        "-p",
        "Write HELLO.md",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
    ]
    lines = [json.loads(line) for line in run(argv, repo, env).splitlines() if line.startswith("{")]
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is False
    assert result["result"] == "Done: wrote HELLO.md" and result["num_turns"] == 2
    assert result["usage"]["input_tokens"] == 240 and result["usage"]["output_tokens"] == 60
    assert (repo / "HELLO.md").read_text() == "hi\n"
    assert len(server.agent_requests) == 2


def test_codex_edits_a_file(server: ModelServer, tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    server.script([Edit("docs/HELLO.md", "hi there\n", then="Done: wrote docs/HELLO.md")])
    env = base_env(tmp_path)
    codex_home = Path(env["HOME"]) / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "gaffer-scripted"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        "check_for_update_on_startup = false\n"
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{server.openai_url}"\n'
        'env_key = "OPENAI_API_KEY"\nwire_api = "responses"\n'
        "request_max_retries = 1\nstream_max_retries = 1\n"
        "[analytics]\nenabled = false\n[features]\nplugins = false\n"
    )
    env |= {"CODEX_HOME": str(codex_home), "OPENAI_API_KEY": "sk-test"}
    argv = [
        cli("codex"),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "-",
    ]
    events = [
        json.loads(line)
        for line in run(argv, repo, env, stdin="Write docs/HELLO.md").splitlines()
        if line.startswith("{")
    ]
    messages = [
        e["item"]["text"]
        for e in events
        if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"
    ]
    assert messages == ["Done: wrote docs/HELLO.md"]
    assert any(
        e["type"] == "item.completed" and e["item"]["type"] == "command_execution" for e in events
    )
    assert next(e for e in events if e["type"] == "turn.completed")["usage"]["input_tokens"] == 240
    assert (repo / "docs" / "HELLO.md").read_text() == "hi there\n"


def test_opencode_edits_a_file(server: ModelServer, tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "scripted",
        "options": {"baseURL": server.openai_url, "apiKey": "sk-test"},
        "models": {"gaffer-scripted": {"name": "gaffer-scripted"}},
    }
    config = {
        "autoupdate": False,
        "share": "disabled",
        "provider": {"scripted": provider},
        "model": "scripted/gaffer-scripted",
        "small_model": "scripted/gaffer-scripted",
        "permission": {"edit": "allow", "bash": "allow"},
    }
    env = base_env(tmp_path) | {
        "OPENCODE_CONFIG_CONTENT": json.dumps(config),
        **{
            f"OPENCODE_DISABLE_{n}": "1"
            for n in ("MODELS_FETCH", "AUTOUPDATE", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "SHARE")
        },
    }
    out = run([cli("opencode"), "run", "--format", "json", "Write HELLO.md"], repo, env)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["part"]["tool"] for e in events if e["type"] == "tool_use"] == ["bash"]
    assert [e["part"]["text"] for e in events if e["type"] == "text"] == ["Done: wrote HELLO.md"]
    assert sum(e["part"]["tokens"]["input"] for e in events if e["type"] == "step_finish") == 240
    assert (repo / "HELLO.md").read_text() == "hi\n"
    assert [r.answer.kind for r in server.model_requests if r.answer] == ["side", "agent", "agent"]


@pytest.mark.parametrize("edit_format", ["whole", "diff"])
def test_aider_edits_a_file(server: ModelServer, tmp_path: Path, edit_format: str) -> None:
    repo = checkout(tmp_path)
    server.script([Edit("docs/HELLO.md", "hi there\n", then="Done: wrote docs/HELLO.md")])
    metadata = tmp_path / "models.json"
    model = {
        "max_input_tokens": 100000,
        "max_tokens": 4096,
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
        "litellm_provider": "openai",
        "mode": "chat",
    }
    metadata.write_text(json.dumps({"openai/gaffer-scripted": model}))
    env = base_env(tmp_path) | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-test"}
    argv = [
        cli("aider"),
        *("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-check-update"),
        *("--analytics-disable", "--no-gitignore", "--no-pretty", "--no-fancy-input"),
        *("--no-show-release-notes", "--map-tokens", "0", "--no-stream"),
        *("--model-metadata-file", str(metadata), "--openai-api-base", server.openai_url),
        *("--model", "openai/gaffer-scripted", "--edit-format", edit_format),
        *("--input-history-file", str(tmp_path / "input.history")),
        *("--chat-history-file", str(tmp_path / "chat.md")),
        *("--message", "Write docs/HELLO.md"),
    ]
    out = run(argv, repo, env)
    assert "Applied edit to docs/HELLO.md" in out
    assert "Tokens: 120 sent, 30 received." in out
    assert (repo / "docs" / "HELLO.md").read_text() == "hi there\n"
    assert len(server.agent_requests) == 1
