"""The run's repositories, by the agent's branch mode.

The worker keeps two clones (see :mod:`gaffer.worker.main`): its own (``repo``), through which it
commits and pushes, and the engine's (``tree``), cloned from the worker's. Which branch they are
on, and where the result goes, is the agent's branch mode:

* ``new``: the project's base branch, then a new branch ``gaffer/<agent>/<work-item>``, pushed
  with ``--force`` (the branch is gaffer's own);
* ``pr-head``: the pull request's own head branch, pushed onto without force (if someone pushed
  meanwhile, git refuses and the run fails; nothing is overwritten). A PR from a fork is refused:
  its branch is in another repository, not the project's to push to;
* ``read-only``: the PR's head branch (or the base branch when the run is not on a PR), never
  pushed.

For runs on a PR the PR's base branch is fetched too, so that the engine's clone has it as
``origin/<base>`` (a review diffs against it; resolving conflicts merges it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gaffer.engines.base import EngineUser
from gaffer.queue.jobs import BranchMode, JobData
from gaffer.worker.git import (
    NO_AUTH,
    RemoteAuth,
    clone,
    clone_for_engine,
    create_branch,
    fetch_branch,
    remote_has_branch,
)


class CheckoutError(RuntimeError):
    """The run's branch cannot be checked out as its branch mode requires (the message says
    why: no head branch known, a PR from a fork)."""


@dataclass(frozen=True)
class Workspace:
    """The directories of a run inside the worker's workspace.

    ``checkout``: the worker's clone; ``tree``: the engine's clone; ``scratch``: files that are
    never committed (``home``: the engine's HOME, ``out``: output files, ``context``: context
    files).
    """

    root: Path

    @property
    def checkout(self) -> Path:
        return self.root / "repo"

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def home(self) -> Path:
        return self.scratch / "home"

    @property
    def out(self) -> Path:
        return self.scratch / "out"

    @property
    def context(self) -> Path:
        return self.scratch / "context"


@dataclass(frozen=True)
class Checkout:
    """What was checked out: the ``branch`` the engine works on, the ``push_branch`` the result
    goes to (None: nothing is pushed), whether that push may ``force``, and the PR's base
    branch made available (``base_ref``, or None)."""

    mode: BranchMode
    branch: str
    push_branch: str | None
    force: bool
    base_ref: str | None


def branch_mode(job: JobData) -> BranchMode:
    """The job's branch mode (``new`` for a job written before agent definitions)."""
    return job.agent.branch_mode if job.agent is not None else "new"


def _same_repository(job: JobData) -> bool:
    head = job.task.head_repository
    return head is None or head.casefold() == job.repository.full_name.casefold()


def prepare_checkout(
    job: JobData, ws: Workspace, user: EngineUser | None, auth: RemoteAuth = NO_AUTH
) -> Checkout:
    """Clone and branch for ``job`` (see the module docstring; ``auth`` for the remote), then
    clone that for the engine (as ``user``; its clone never sees ``auth``). Raises
    :class:`CheckoutError` and :class:`~gaffer.worker.git.GitError`."""
    mode = branch_mode(job)
    task = job.task
    url = job.repository.clone_url
    head = task.head_branch if _same_repository(job) else None
    if mode == "pr-head":
        if not _same_repository(job):
            raise CheckoutError(
                f"the pull request comes from the fork {task.head_repository}: its branch is not"
                f" the project's to push to, so {job.agent_type} cannot run on it"
            )
        if not task.head_branch:
            raise CheckoutError(
                f"{job.agent_type} works on the pull request's own branch, and the run does not"
                " know it (the event did not name the PR's head branch)"
            )
        clone(url, task.head_branch, ws.checkout, auth)
        branch, push_branch, force = task.head_branch, task.head_branch, False
    elif mode == "read-only":
        # The PR's head when the repository has it (a review reads the PR's code), else the
        # base branch (a PR from a fork, or a work item that is no PR).
        has_head = bool(head) and remote_has_branch(url, head or "", auth)
        branch = head if head and has_head else job.repository.base_branch
        clone(url, branch, ws.checkout, auth)
        push_branch, force = None, False
    else:
        clone(url, job.repository.base_branch, ws.checkout, auth)
        create_branch(ws.checkout, job.branch)
        branch, push_branch, force = job.branch, job.branch, True
    base_ref = None
    if task.pr_number is not None and task.base_branch and task.base_branch != branch:
        fetched = fetch_branch(ws.checkout, task.base_branch, auth)
        base_ref = task.base_branch if fetched else None
    clone_for_engine(ws.checkout, branch, ws.tree, user, ws.home)
    return Checkout(mode, branch, push_branch, force, base_ref)
