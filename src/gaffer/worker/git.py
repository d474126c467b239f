"""The git steps of a run: clone, branch, commit, push. Plain ``git`` subprocesses."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's stderr."""


def git(*args: str, cwd: Path | None = None) -> str:
    """Run ``git args...`` and return its stdout (stripped). Raises :class:`GitError`."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise GitError(f"git {' '.join(args)} failed ({proc.returncode}): {detail}")
    return proc.stdout.strip()


def clone(url: str, base_branch: str, dest: Path) -> None:
    """Clone ``base_branch`` of ``url`` (any URL or path git accepts) into ``dest``."""
    git("clone", "--quiet", "--branch", base_branch, "--single-branch", url, str(dest))


def create_branch(checkout: Path, branch: str) -> None:
    """Create and check out ``branch`` at the current commit."""
    git("checkout", "--quiet", "-b", branch, cwd=checkout)


def commit_all(checkout: Path, message: str, author_name: str, author_email: str) -> str | None:
    """Commit every change in the working tree; returns the new commit SHA, or None if clean."""
    git("add", "--all", cwd=checkout)
    if not git("status", "--porcelain", cwd=checkout):
        return None
    git(
        "-c",
        f"user.name={author_name}",
        "-c",
        f"user.email={author_email}",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        cwd=checkout,
    )
    return git("rev-parse", "HEAD", cwd=checkout)


def push(checkout: Path, branch: str) -> None:
    """Push ``branch`` to origin, replacing it: gaffer's branches belong to gaffer."""
    git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=checkout)
