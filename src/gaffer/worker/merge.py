"""A real merge for agents that merge the base branch into a pull request (``merge_base``:
``resolve-conflicts``).

Before the engine starts, the worker merges the PR's base branch into the engine's clone
(:func:`start_merge`, as the engine's user, in the fresh clone no engine has touched yet:
``git merge --no-ff --no-commit <base sha>``), so the engine finds git's own merge state and the
conflict markers in the files. Then:

* base already in the head: nothing to merge, nothing to commit (:attr:`MergeStart.up_to_date`);
* a clean merge: the merged files are committed as the merge at once; the engine is not needed;
* conflicts: the engine resolves them; a conflicted file of the engine's tree that still holds
  a conflict marker (``git diff --check``'s ``leftover conflict marker``, looked for in the
  conflicted files only) keeps the finish rule unmet, and after the last turn fails the run
  naming the files; so does a tree that lost the merge (an engine that ran ``git merge
  --abort``: none of the files only the base changed differs from the head any more, and a
  merge commit of it would silently revert the base's changes). See :func:`merge_problem`.

The commit is a merge commit whose second parent is the base branch's commit
(:func:`gaffer.worker.git.commit_merge`), made in the worker's own repository from the files of
the engine's tree (never through the engine's ``.git``), and pushed onto the PR's head branch
without force (a descendant of the head: a fast-forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gaffer.engines.base import EngineUser
from gaffer.queue.jobs import JobData
from gaffer.worker.checkout import Checkout, CheckoutError, Workspace
from gaffer.worker.git import GitError, changed_among, conflict_marker_files, git

MARKERS_LEFT = "conflict markers remain in "
"""How a merge problem of unresolved conflict markers begins (then the files, comma-separated)."""
MERGE_LOST = "the merge is no longer in the checkout"
"""How the merge problem of a tree that lost the base's changes begins."""

MERGE_IDENTITY = ("-c", "user.name=gaffer", "-c", "user.email=gaffer@localhost")
"""Identity for git's merge machinery in the engine's clone (no commit is made there)."""


@dataclass(frozen=True)
class MergeStart:
    """How the merge of ``base_branch`` (at ``base_sha``) into the head began: ``conflicts``
    are the unmerged paths (empty: merged cleanly); ``base_only`` the files only the base
    changed since the merge base (the merge brings them in as the base has them);
    ``up_to_date``: the head already has the base (nothing to merge)."""

    base_branch: str
    base_sha: str
    conflicts: list[str]
    up_to_date: bool = False
    base_only: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when there was something to merge and it merged without conflicts."""
        return not self.up_to_date and not self.conflicts


def merges_base(job: JobData) -> bool:
    """True when the job's agent merges the base branch (``merge_base`` in its definition)."""
    return job.agent is not None and job.agent.merge_base


def start_merge(
    job: JobData, ws: Workspace, checkout: Checkout, user: EngineUser | None
) -> MergeStart:
    """Begin the merge of the PR's base branch in the engine's clone (see the module
    docstring). Raises :class:`~gaffer.worker.checkout.CheckoutError` when the run does not
    know the PR's base branch, and :class:`~gaffer.worker.git.GitError` when the merge cannot
    even start (unrelated histories, say)."""
    base = checkout.base_ref
    if base is None:
        raise CheckoutError(
            f"{job.agent_type} merges the pull request's base branch, and the run does not know"
            " it (the event did not name the PR's base branch, or origin has no such branch)"
        )
    base_sha = git("rev-parse", "--verify", f"refs/heads/{base}^{{commit}}", cwd=ws.checkout)
    try:
        git("merge-base", "--is-ancestor", base_sha, "HEAD", cwd=ws.checkout)
        return MergeStart(base, base_sha, [], up_to_date=True)
    except GitError:
        pass

    def in_tree(*args: str) -> str:
        return git(*args, cwd=ws.tree, user=user, home=ws.home)

    def changed_since(fork: str, commit: str) -> set[str]:
        return set(git("diff", "--name-only", fork, commit, cwd=ws.checkout).splitlines())

    fork = git("merge-base", "HEAD", base_sha, cwd=ws.checkout)
    base_only = changed_since(fork, base_sha) - changed_since(fork, "HEAD")
    try:
        in_tree(*MERGE_IDENTITY, "merge", "--no-ff", "--no-commit", base_sha)
    except GitError:
        unmerged = in_tree("diff", "--name-only", "--diff-filter=U")
        if not unmerged:
            raise
        conflicts = sorted(set(unmerged.splitlines()))
        return MergeStart(base, base_sha, conflicts, base_only=sorted(base_only - set(conflicts)))
    return MergeStart(base, base_sha, [], base_only=sorted(base_only))


def merge_problem(ws: Workspace, merge: MergeStart) -> str | None:
    """Why the engine's tree is not a resolved merge yet (None: it is): a conflicted file that
    still holds a conflict marker (:data:`MARKERS_LEFT`), or none of the files only the base
    changed differing from the head any more (:data:`MERGE_LOST`: the merge was aborted or
    undone, and committing the tree as the merge would revert the base's changes). Reads the
    engine's tree through the worker's own repository only."""
    markers = conflict_marker_files(ws.checkout, ws.tree, merge.conflicts)
    if markers:
        return f"{MARKERS_LEFT}{', '.join(markers)}"
    if merge.base_only and not changed_among(ws.checkout, ws.tree, merge.base_only):
        shown = ", ".join(merge.base_only[:5])
        return (
            f"{MERGE_LOST}: none of the changes {merge.base_branch} brings to files only it"
            f" changed ({shown}) is in the working tree (was the merge aborted?)"
        )
    return None
