"""A warm start: the run's container started from a snapshot image, whose workspace already has
both clones (the worker's ``repo`` and the engine's ``tree``, set up), so they are refreshed
instead of cloned.

The refresh, by the agent's branch mode (the same branches as a cold checkout,
:mod:`gaffer.worker.checkout`):

1. the worker's repository fetches the branches the run needs from origin (its remote is the
   project's clone URL, as in a cold clone; no credential is in ``.git/config``);
2. it checks out the run's branch at the remote's state: ``new``: created again from the
   current base branch (gaffer's branch, pushed with force, as a cold start does); ``pr-head``:
   the PR's head branch as origin has it; ``read-only``: the PR's head, else the base; then
   ``git clean`` so no file of an earlier run is left;
3. the engine's tree (as the engine user, in its own repository) fetches that branch from the
   worker's repository, checks it out, resets to it and removes untracked files, keeping the
   ignored ones: what the set-up installed (``.venv``, ``node_modules``...) stays.

Any git failure raises :class:`~gaffer.worker.git.GitError` and the run fails as a cold one
would.
"""

from __future__ import annotations

from pathlib import Path

from gaffer.engines.base import EngineUser
from gaffer.queue.jobs import JobData
from gaffer.worker.checkout import Checkout, CheckoutError, Workspace, branch_mode
from gaffer.worker.git import NO_AUTH, RemoteAuth, fetch_branch, git


def has_workspace(ws: Workspace) -> bool:
    """True when ``ws`` holds the two clones a snapshot carries."""
    return (ws.checkout / ".git").is_dir() and (ws.tree / ".git").is_dir()


def _fetch_remote(repository: Path, branch: str, auth: RemoteAuth = NO_AUTH) -> bool:
    """Fetch ``branch`` of origin as ``origin/<branch>``; False when origin has none."""
    heads = git("ls-remote", "--heads", "origin", f"refs/heads/{branch}", cwd=repository, auth=auth)
    if not heads:
        return False
    git(
        "fetch",
        "--quiet",
        "--force",
        "origin",
        f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
        cwd=repository,
        auth=auth,
    )
    return True


def refresh_checkout(
    job: JobData, ws: Workspace, user: EngineUser | None, auth: RemoteAuth = NO_AUTH
) -> Checkout:
    """Refresh the snapshot's clones for ``job`` (see the module docstring).

    Raises :class:`CheckoutError` (as :func:`~gaffer.worker.checkout.prepare_checkout` does)
    and :class:`~gaffer.worker.git.GitError`.
    """
    mode = branch_mode(job)
    task = job.task
    repo = ws.checkout
    base = job.repository.base_branch
    same_repository = (
        task.head_repository is None
        or task.head_repository.casefold() == job.repository.full_name.casefold()
    )
    head = task.head_branch if same_repository else None
    if mode == "pr-head":
        if not same_repository or not task.head_branch:
            raise CheckoutError(
                f"{job.agent_type} works on the pull request's own branch, which this run"
                " cannot push to or does not know"
            )
        branch = start = push_branch = task.head_branch
        force = False
        found = _fetch_remote(repo, start, auth)
    elif mode == "read-only":
        push_branch, force = None, False
        if head and _fetch_remote(repo, head, auth):
            branch = start = head
            found = True
        else:
            branch = start = base
            found = _fetch_remote(repo, base, auth)
    else:
        branch, start, push_branch, force = job.branch, base, job.branch, True
        found = _fetch_remote(repo, base, auth)
    if not found:
        raise CheckoutError(f"origin has no branch {start}")
    git("checkout", "--quiet", "--force", "-B", branch, f"origin/{start}", cwd=repo)
    git("clean", "--quiet", "-fdx", cwd=repo)
    base_ref = None
    if task.pr_number is not None and task.base_branch and task.base_branch != branch:
        base_ref = task.base_branch if fetch_branch(repo, task.base_branch, auth) else None
    _refresh_tree(ws, branch, base_ref, user)
    return Checkout(mode, branch, push_branch, force, base_ref)


def _refresh_tree(
    ws: Workspace, branch: str, base_ref: str | None, user: EngineUser | None
) -> None:
    """Bring the engine's tree to ``branch`` of the worker's repository, as ``user``."""
    home = ws.home
    for trusted in (ws.checkout, ws.checkout / ".git"):
        git("config", "--global", "--add", "safe.directory", str(trusted), user=user, home=home)
    refspecs = [f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
    if base_ref is not None:
        refspecs.append(f"+refs/heads/{base_ref}:refs/remotes/origin/{base_ref}")
    tree = ws.tree
    git("fetch", "--quiet", "--force", "origin", *refspecs, cwd=tree, user=user, home=home)
    git(
        "checkout",
        "--quiet",
        "--force",
        "-B",
        branch,
        f"origin/{branch}",
        cwd=tree,
        user=user,
        home=home,
    )
    git("reset", "--quiet", "--hard", f"origin/{branch}", cwd=tree, user=user, home=home)
    git("clean", "--quiet", "-fd", cwd=tree, user=user, home=home)
