"""scripts/install-engines: the CLIs in $GAFFER_ENGINES_DIR/bin are the versions pinned in
tools/engines/, a second run changes nothing, and bad input gets one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install-engines"
SPEC = ROOT / "tools" / "engines"
ENGINES_DIR = Path(os.environ.get("GAFFER_ENGINES_DIR", "/opt/gaffer-engines"))


def pins() -> dict[str, str]:
    """Executable -> the version tools/engines/ pins for it."""
    npm = json.loads((SPEC / "package.json").read_text())["dependencies"]
    aider = re.search(r"^aider-chat==(\S+)", (SPEC / "aider-requirements.in").read_text(), re.M)
    assert aider is not None
    return {
        "claude": npm["@anthropic-ai/claude-code"],
        "codex": npm["@openai/codex"],
        "opencode": npm["opencode-ai"],
        "aider": aider.group(1),
    }


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_the_installed_clis_are_the_pinned_versions() -> None:
    first = install()
    assert first.returncode == 0, first.stderr
    for cli, version in pins().items():
        exe = ENGINES_DIR / "bin" / cli
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert re.search(rf"(^|\s){re.escape(version)}(\s|$)", out), (cli, version, out)
    lock = json.loads((SPEC / "package-lock.json").read_text())["packages"]
    assert lock["node_modules/@anthropic-ai/claude-code"]["version"] == pins()["claude"]
    assert "resolved" not in json.dumps(lock)  # no registry host in the lock


def test_a_second_run_finds_everything_up_to_date() -> None:
    assert install().returncode == 0
    again = install("claude-code", "aider")
    assert again.returncode == 0
    assert "up to date" in again.stderr and "installing" not in again.stderr


def test_an_unknown_engine_is_refused_in_one_line() -> None:
    proc = install("gpt-engineer")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "install-engines: unknown engine 'gpt-engineer' (known: claude-code codex opencode aider)"
    ]
