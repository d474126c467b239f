"""A private repository cloned and pushed through git smart HTTP (git http-backend behind the
fake's Basic auth) with an installation token passed only through GIT_CONFIG_* variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gaffer.providers.github_api.git_auth import clone_url, git_auth_env
from tests.support.fake_github.fixtures import GitHubWorld, fake_github, github_world

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]


def _git(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or Path("/tmp")),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_TERMINAL_PROMPT": "0",
        **(env or {}),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=full, capture_output=True, text=True, check=check
    )


def _seed(world: GitHubWorld, tmp_path: Path, token: str) -> Path:
    work = tmp_path / "seed"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("hello\n")
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "first", cwd=work)
    url = clone_url(world.fake.web_url, world.repo.full_name)
    _git("push", "-q", url, "main", cwd=work, env=git_auth_env(token))
    return work


async def test_private_repository_clone_and_push_with_token_in_env_only(
    github_world: GitHubWorld, tmp_path: Path
) -> None:
    token = await github_world.client("new").token()
    _seed(github_world, tmp_path, token)
    url = clone_url(github_world.fake.web_url, github_world.repo.full_name)
    assert token not in url

    refused = _git("clone", "-q", url, str(tmp_path / "anon"), check=False)
    assert refused.returncode != 0  # private: no anonymous clone

    checkout = tmp_path / "clone"
    _git("clone", "-q", url, str(checkout), env=git_auth_env(token))
    assert (checkout / "README.md").read_text() == "hello\n"
    config = (checkout / ".git" / "config").read_text()
    assert token not in config and "extraheader" not in config.lower()
    assert "x-access-token" not in config

    (checkout / "new.txt").write_text("x\n")
    _git("add", ".", cwd=checkout)
    _git("commit", "-qm", "second", cwd=checkout)
    _git(
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/gaffer/implementation/1",
        cwd=checkout,
        env=git_auth_env(token),
    )
    heads = _git("--git-dir", str(github_world.repo.git_dir), "branch", "--list").stdout
    assert "gaffer/implementation/1" in heads


async def test_a_read_only_token_clones_but_cannot_push(
    github_world: GitHubWorld, tmp_path: Path
) -> None:
    _seed(github_world, tmp_path, await github_world.client("new").token())
    token = await github_world.client("read-only").token()
    url = clone_url(github_world.fake.web_url, github_world.repo.full_name)
    checkout = tmp_path / "ro"
    _git("clone", "-q", url, str(checkout), env=git_auth_env(token))
    (checkout / "x").write_text("x")
    _git("add", ".", cwd=checkout)
    _git("commit", "-qm", "x", cwd=checkout)
    pushed = _git(
        "push", "origin", "HEAD:refs/heads/nope", cwd=checkout, env=git_auth_env(token), check=False
    )
    assert pushed.returncode != 0
    assert token not in pushed.stderr


def test_git_auth_env_appends_to_existing_config_entries() -> None:
    env = git_auth_env("ghs_abc", {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"})
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_1"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_1"].startswith("Authorization: Basic ")
    with pytest.raises(ValueError):
        git_auth_env("bad token")
