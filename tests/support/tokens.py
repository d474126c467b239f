"""Where a token must never be: every file of a run's workspace, and its remotes' URLs."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path


def token_forms(tokens: list[str]) -> list[bytes]:
    """Each token as sent (raw, and in the ``x-access-token:`` Basic header's base64)."""
    forms: list[bytes] = []
    for token in tokens:
        forms.append(token.encode())
        forms.append(base64.b64encode(f"x-access-token:{token}".encode()))
    return forms


def assert_no_token_in_workspace(workspace: Path, tokens: list[str]) -> list[Path]:
    """Assert that no file under ``workspace`` (configs, ``FETCH_HEAD``, reflogs, packed refs,
    the engine's HOME and scratch files: all a snapshot of it would hold) holds a token, the
    Basic header or ``x-access-token``, and that ``git remote -v`` of every repository in it
    shows plain URLs (no user info). Returns the repositories' ``.git`` directories."""
    assert tokens, "no token to look for"
    forms = [*token_forms(tokens), b"x-access-token", b"extraheader", b"extraHeader"]
    files = [p for p in workspace.rglob("*") if p.is_file() and not p.is_symlink()]
    assert files, f"nothing kept in {workspace}"
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form not in data, f"{form[:12]!r}... found in {path}"
    git_dirs = sorted(p.parent for p in files if p.name == "HEAD" and p.parent.name == ".git")
    assert git_dirs, f"no repository in {workspace}"
    for git_dir in git_dirs:
        remotes = subprocess.run(
            ["git", "--git-dir", str(git_dir), "remote", "-v"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in remotes.splitlines():
            url = line.split()[1]
            assert "@" not in url.split("://", 1)[-1].split("/", 1)[0], line  # no user info
    return git_dirs
