"""The git steps of a run: clone, branch, commit, push. Plain ``git`` subprocesses.

Git over HTTPS with a short-lived token (a GitHub installation token, or a PAT): the token is
sent as the password of user ``x-access-token`` in an ``Authorization`` header given through
git's ``GIT_CONFIG_COUNT`` / ``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n`` environment
(:class:`RemoteAuth`), and only to the commands that talk to the remote (clone, ls-remote,
fetch, push): nothing lands in ``.git/config`` (a token in the remote URL would), on a command
line, or in the engine's clone, whose remote is the worker's own repository.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gaffer.engines.base import EngineUser


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's stderr."""


@dataclass(frozen=True)
class RemoteAuth:
    """A token for the remote, as git environment entries (see the module docstring). An
    empty ``token`` means none (a local or public repository)."""

    token: str = field(default="", repr=False)

    def env(self) -> dict[str, str]:
        """The ``GIT_CONFIG_*`` entries (none without a token) and no terminal prompt."""
        if not self.token:
            return {}
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_TERMINAL_PROMPT": "0",
        }

    def scrub(self, text: str) -> str:
        """``text`` with the token and its header value replaced by ``***`` (git echoes a
        refused header in some errors)."""
        if not self.token:
            return text
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return text.replace(basic, "***").replace(self.token, "***")


NO_AUTH = RemoteAuth()


def git(
    *args: str,
    cwd: Path | None = None,
    user: EngineUser | None = None,
    home: Path | None = None,
    auth: RemoteAuth = NO_AUTH,
    strip: bool = True,
) -> str:
    """Run ``git args...`` (as ``user``, with ``HOME`` at ``home``, when given; with the
    remote's ``auth``) and return its stdout (stripped unless ``strip`` is False). Raises
    :class:`GitError`, whose message never holds the token."""
    extra = auth.env()
    env = None if home is None and not extra else {**os.environ, **extra}
    if home is not None and env is not None:
        env["HOME"] = str(home)
    as_user = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        **as_user,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        detail = auth.scrub((proc.stderr or proc.stdout).strip())
        raise GitError(f"git {' '.join(args)} failed ({proc.returncode}): {detail}")
    return str(proc.stdout).strip() if strip else str(proc.stdout)


def clone(url: str, base_branch: str, dest: Path, auth: RemoteAuth = NO_AUTH) -> None:
    """Clone ``base_branch`` of ``url`` (any URL or path git accepts) into ``dest``."""
    args = ("clone", "--quiet", "--branch", base_branch, "--single-branch", url, str(dest))
    git(*args, auth=auth)


def remote_has_branch(url: str, branch: str, auth: RemoteAuth = NO_AUTH) -> bool:
    """True when the repository at ``url`` has ``branch``. Raises :class:`GitError` when it
    cannot be asked."""
    return bool(git("ls-remote", "--heads", url, f"refs/heads/{branch}", auth=auth))


def fetch_branch(checkout: Path, branch: str, auth: RemoteAuth = NO_AUTH) -> bool:
    """Fetch ``branch`` of origin into the local branch of the same name (so that a clone of
    ``checkout`` sees it as ``origin/<branch>``); returns False when origin has no such
    branch. Raises :class:`GitError` for any other failure."""
    if not git("ls-remote", "--heads", "origin", branch, cwd=checkout, auth=auth):
        return False
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    git("fetch", "--quiet", "origin", refspec, cwd=checkout, auth=auth)
    return True


def changed_files(checkout: Path, work_tree: Path) -> list[str]:
    """The paths in ``work_tree`` (the engine's tree) that differ from ``checkout``'s HEAD,
    added, changed or deleted, read through the worker's own repository (see
    :func:`commit_all`). Leaves the index as it found it."""
    status = git(
        f"--work-tree={work_tree}", "status", "--porcelain", "--untracked-files=all", cwd=checkout
    )
    return [line[3:] for line in status.splitlines() if line.strip()]


def create_branch(checkout: Path, branch: str) -> None:
    """Create and check out ``branch`` at the current commit."""
    git("checkout", "--quiet", "-b", branch, cwd=checkout)


def clone_for_engine(
    checkout: Path, branch: str, tree: Path, user: EngineUser | None, home: Path
) -> None:
    """Clone ``branch`` of the worker's ``checkout`` into ``tree`` (an empty directory), as
    ``user`` when given: the engine's own repository, whose ``.git`` it may change as it likes.

    ``safe.directory`` in ``user``'s global config (``home``) lets it read the worker's
    repository: git refuses repositories of other owners by default, and a ``-c`` option does
    not reach the ``upload-pack`` of a local clone. Objects are copied, not hard-linked (the
    kernel's ``protected_hardlinks`` forbids linking another user's files).
    """
    for trusted in (checkout, checkout / ".git"):
        git("config", "--global", "--add", "safe.directory", str(trusted), user=user, home=home)
    git(
        "clone",
        "--quiet",
        "--no-hardlinks",
        "--branch",
        branch,
        str(checkout),
        str(tree),
        user=user,
        home=home,
    )


def commit_all(
    checkout: Path, message: str, author_name: str, author_email: str, work_tree: Path
) -> str | None:
    """Commit the files of ``work_tree`` (the engine's tree) in the worker's ``checkout`` as
    they are; returns the new commit SHA, or None if nothing changed.

    Only the files of ``work_tree`` are read; its ``.git`` (the engine's, which it could have
    filled with hooks, filters or an ``fsmonitor`` command) is never used: git runs with the
    worker's own repository and configuration.
    """
    git(f"--work-tree={work_tree}", "add", "--all", cwd=checkout)
    if not git(f"--work-tree={work_tree}", "status", "--porcelain", cwd=checkout):
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


_MARKER = re.compile(r"^(?P<path>.+):\d+: leftover conflict marker$")


def conflict_marker_files(checkout: Path, work_tree: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (the merge's conflicted files) in ``work_tree`` (the engine's tree)
    that still hold a conflict marker, as ``git diff --check`` reports them (``leftover conflict
    marker``; whitespace errors are not counted), read through the worker's own repository
    against its HEAD. Only the conflicted files are looked at: a line of seven ``=`` that the
    base branch brought in elsewhere (a reStructuredText title) is content, not a marker.
    Stages ``work_tree``'s files in the worker's index (as :func:`commit_all` does next)."""
    if not paths:
        return []
    git(f"--work-tree={work_tree}", "add", "--all", cwd=checkout)
    proc = subprocess.run(
        ["git", f"--work-tree={work_tree}", "diff", "--cached", "--check", "HEAD", "--", *paths],
        cwd=checkout,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 2):  # 2: --check found problems
        raise GitError(f"git diff --check failed ({proc.returncode}): {proc.stderr.strip()}")
    found = (_MARKER.match(line) for line in proc.stdout.splitlines())
    return sorted({match["path"] for match in found if match})


def changed_among(checkout: Path, work_tree: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` whose content in ``work_tree`` differs from the worker's HEAD (after
    staging ``work_tree``'s files in the worker's index, never through its ``.git``)."""
    if not paths:
        return []
    git(f"--work-tree={work_tree}", "add", "--all", cwd=checkout)
    out = git("diff", "--cached", "--name-only", "HEAD", "--", *paths, cwd=checkout)
    return out.splitlines()


def commit_merge(
    checkout: Path,
    message: str,
    author_name: str,
    author_email: str,
    work_tree: Path,
    merged: str,
) -> str:
    """Commit the files of ``work_tree`` (the engine's tree) in the worker's ``checkout`` as a
    merge commit of HEAD (first parent) and ``merged`` (second parent, a commit SHA), even when
    the files equal HEAD's; moves the checked-out branch to it and returns its SHA. As
    :func:`commit_all`, never uses ``work_tree``'s ``.git``."""
    git(f"--work-tree={work_tree}", "add", "--all", cwd=checkout)
    tree = git("write-tree", cwd=checkout)
    identity = ("-c", f"user.name={author_name}", "-c", f"user.email={author_email}")
    args = ("commit-tree", tree, "-p", "HEAD", "-p", merged, "-m", message)
    sha = git(*identity, *args, cwd=checkout)
    git("update-ref", "-m", "gaffer: merge", "HEAD", sha, cwd=checkout)
    return sha


def push(checkout: Path, branch: str, *, force: bool = True, auth: RemoteAuth = NO_AUTH) -> None:
    """Push HEAD to ``branch`` of origin. ``force``: replace it (gaffer's own ``gaffer/...``
    branches belong to gaffer); without it the push must fast-forward (a PR's own branch, which
    someone may have pushed to meanwhile: then git's refusal fails the run, nothing is lost)."""
    args = ["push", "--quiet", *(["--force"] if force else []), "origin"]
    git(*args, f"HEAD:refs/heads/{branch}", cwd=checkout, auth=auth)
