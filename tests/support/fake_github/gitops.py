"""git commands for tests against the fake's git smart HTTP (isolated from the host's config)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gaffer.providers.github_api.git_auth import clone_url, git_auth_env


def git(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run git with no system/global config and a fixed identity."""
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


def push_files(
    web_url: str,
    repository: str,
    token: str,
    work: Path,
    branch: str,
    files: dict[str, str],
    base: str | None = None,
) -> str:
    """Commit ``files`` on ``branch`` (from ``base`` when given, else a new history) in the
    checkout ``work`` (created on first use) and push it; returns the commit SHA."""
    url = clone_url(web_url, repository)
    auth = git_auth_env(token)
    if not (work / ".git").exists():
        work.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", branch, cwd=work)
    if base is not None:
        git("fetch", "-q", url, base, cwd=work, env=auth)
        git("checkout", "-q", "-B", branch, "FETCH_HEAD", cwd=work)
    for name, text in files.items():
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-qm", f"change on {branch}", cwd=work)
    git("push", "-q", url, f"HEAD:refs/heads/{branch}", cwd=work, env=auth)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()
