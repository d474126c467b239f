"""``gaffer snapshots``, driven as a user drives it: the installed command, real processes, a
real database and, for ``prune``, the real container engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gaffer.demo.repository import create_bare_repository
from tests.conftest import MASTER_KEY
from tests.support.containers import PodmanService
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


def test_settings_round_trip_and_bad_input_writes_nothing(env: dict[str, str]) -> None:
    shown = gaffer_json("snapshots", "settings", "--project", "hello", env=env)
    assert shown["work_item"] is False and shown["project"] is False
    changed = gaffer_json(
        "snapshots",
        "settings",
        "--project",
        "hello",
        "--work-item",
        "on",
        "--ttl",
        "3600",
        "--setup-command",
        "make deps",
        "--setup-failure",
        "warn",
        env=env,
    )
    assert changed["work_item"] is True and changed["ttl_s"] == 3600
    assert changed["setup_command"] == "make deps" and changed["setup_failure"] == "warn"
    bad = subprocess.run(
        [GAFFER, "snapshots", "settings", "--project", "hello", "--setup-failure", "maybe",
         "--work-item", "off"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "setup_failure must be fail or warn" in bad.stderr
    again = gaffer_json("snapshots", "settings", "--project", "hello", env=env)
    assert again["work_item"] is True  # nothing was written


def test_list_delete_and_prune(env: dict[str, str], podman: PodmanService) -> None:
    env = {**env, "DOCKER_HOST": podman.url, "GAFFER_INSTANCE": "cli-test-snapshots"}
    assert gaffer_json("snapshots", "list", env=env) == []
    pruned = gaffer_json("snapshots", "prune", env=env)
    assert pruned == {"dropped_rows": [], "deleted_unregistered_images": [], "evicted": []}
    missing = subprocess.run(
        [GAFFER, "snapshots", "delete", "abcd"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no single snapshot matches" in missing.stderr
