"""The demo repository: a little code in a bare git repository (the stand-in's, served over
git smart HTTP), with a pull request's head branch."""

from __future__ import annotations

import subprocess
from pathlib import Path

FILES = {
    "README.md": "# Hello-World\n\nMy first repository on GitHub!\n",
    "hello.py": 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\n'
    'if __name__ == "__main__":\n    print(greet("World"))\n',
}


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


PR_BRANCH = "changes"
"""The head branch of the pull request in the fixture payloads (``pull_request.opened``)."""
PR_FILES = {"README.md": FILES["README.md"] + "\nA change proposed in a pull request.\n"}


def create_bare_repository(
    root: Path, branch: str = "main", *, pr_branch: str | None = None
) -> Path:
    """Create ``root/Hello-World.git`` (bare) with one commit on ``branch``; returns its path.

    ``pr_branch``: also create that branch, one commit ahead (:data:`PR_FILES`), as the head
    of a pull request."""
    bare = root / "Hello-World.git"
    _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    seed_repository(bare, root / "seed", branch, pr_branch=pr_branch)
    return bare


def seed_repository(
    bare: Path, seed: Path, branch: str = "main", *, pr_branch: str | None = None
) -> dict[str, str]:
    """Push :data:`FILES` onto ``branch`` of the (empty) bare repository ``bare``, and
    ``pr_branch`` one commit ahead (:data:`PR_FILES`) when given, from a work tree made at
    ``seed``. Returns each pushed branch's commit SHA. Raises
    ``subprocess.CalledProcessError`` when git fails."""
    _git("init", "--quiet", f"--initial-branch={branch}", str(seed))
    _commit(seed, FILES, "Initial commit")
    _git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=seed)
    heads = {branch: _git("rev-parse", "HEAD", cwd=seed)}
    if pr_branch is not None:
        _git("checkout", "--quiet", "-b", pr_branch, cwd=seed)
        _commit(seed, PR_FILES, "Propose a change")
        _git("push", "--quiet", str(bare), f"{pr_branch}:{pr_branch}", cwd=seed)
        heads[pr_branch] = _git("rev-parse", "HEAD", cwd=seed)
    return heads


def diff(bare: Path, base: str, head: str) -> str:
    """``git diff base...head`` in ``bare`` (what GitHub shows as a pull request's diff)."""
    return _git("diff", f"{base}...{head}", cwd=bare) + "\n"


def _commit(seed: Path, files: dict[str, str], message: str) -> None:
    """Write ``files`` into the work tree ``seed`` and commit them as Codertocat."""
    for name, text in files.items():
        (seed / name).write_text(text)
    _git("add", "--all", cwd=seed)
    identity = ("-c", "user.name=Codertocat", "-c", "user.email=codertocat@example.com")
    _git(*identity, "commit", "--quiet", "-m", message, cwd=seed)


def branch_commit(bare: Path, branch: str) -> str | None:
    """The commit ``branch`` points at in ``bare``, or None when it does not exist."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        cwd=bare,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


def commit_exists(bare: Path, sha: str) -> bool:
    """True when ``sha`` names a commit object in ``bare``."""
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=bare, capture_output=True, check=False
    )
    return proc.returncode == 0


def changed_files(bare: Path, sha: str) -> list[str]:
    """The paths commit ``sha`` of ``bare`` changed against its first parent."""
    proc = subprocess.run(
        ["git", "diff-tree", "--no-commit-id", "--name-only", "-r", sha],
        cwd=bare,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in proc.stdout.splitlines() if line]
