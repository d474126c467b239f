"""What the demo expects of each delivery, run, and of what the runs left on its GitHub.

:func:`check` compares one delivery's answer and runs with the scenario's expectation and
appends each difference to ``outcome.problems`` (a demo with any problem exits 1): the answer's
status and decision, how many runs, each run SUCCEEDED, a pushing run's branch in the
repository at a commit a run reported, a read-only run's output, and on the stand-in (each run's
``github`` and ``outbox``, filled by the scenario): every GitHub write sent, the ack comment
updated to the outcome, the PR opened from a pushed branch, the review submitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gaffer.demo.repository import branch_commit, commit_exists
from gaffer.store.models import RunStatus

if TYPE_CHECKING:
    from gaffer.demo.scenario import DeliveryOutcome

IN_PROGRESS_OR_QUEUED = {s.value for s in RunStatus if not s.terminal}
REVIEW_STATES = {
    "COMMENT": "COMMENTED",
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
}
"""A review file's ``event`` -> the state GitHub gives the submitted review."""
DONE = "**✅ Done**"
"""How the ack comment of a succeeded run begins (``senders/ack.py``)."""


def check(outcome: DeliveryOutcome, bare: Path, pushed_by_runs: dict[str, set[str]]) -> None:
    """Compare one delivery with its expectation. ``pushed_by_runs`` maps each branch to the
    commits runs reported for it: the branch must be at one of them (the last push wins when
    two runs share a branch)."""
    expected = outcome.delivery
    if outcome.status_code != expected.expect_status:
        outcome.problems.append(f"status {outcome.status_code}, expected {expected.expect_status}")
    if outcome.decision != expected.expect_decision:
        outcome.problems.append(f"decision {outcome.decision}, expected {expected.expect_decision}")
    if len(outcome.run_ids) != expected.expect_runs:
        outcome.problems.append(f"{len(outcome.run_ids)} runs, expected {expected.expect_runs}")
    for run in outcome.runs:
        if run["status"] in IN_PROGRESS_OR_QUEUED:
            outcome.problems.append(
                f"run {run['id'][:8]} still {run['status']} when --timeout ran out"
                " (give the runs more time with a larger --timeout)"
            )
            continue
        if run["status"] != RunStatus.SUCCEEDED:
            outcome.problems.append(f"run {run['id'][:8]} {run['status']}: {run.get('error')}")
            continue
        outcome.problems.extend(github_problems(run))
        if run.get("read_only"):
            if run.get("branch"):
                outcome.problems.append(f"read-only run {run['id'][:8]} pushed {run['branch']}")
            elif not run.get("outputs"):
                outcome.problems.append(f"read-only run {run['id'][:8]} left no output")
            continue
        if not run.get("branch") or not run.get("commit"):
            outcome.problems.append(f"run {run['id'][:8]} pushed no branch")
            continue
        if not commit_exists(bare, run["commit"]):
            outcome.problems.append(f"commit {run['commit'][:12]} is not in the repository")
        pushed = branch_commit(bare, run["branch"])
        if pushed not in pushed_by_runs.get(run["branch"], set()):
            outcome.problems.append(
                f"branch {run['branch']} is at {pushed}, not at a commit a run reported"
            )


def github_problems(run: dict[str, Any]) -> list[str]:
    """What is missing on the stand-in for the succeeded ``run`` (its ``github`` read-back
    and ``outbox`` states, see :mod:`gaffer.demo.on_github`)."""
    short = run["id"][:8]
    problems = []
    for entry in run.get("outbox") or []:
        # superseded: a later update of the same comment replaced it before it was sent (the
        # "started" ack text when the run finished first); the later one is what counts.
        if entry["status"] not in ("sent", "superseded"):
            problems.append(
                f"run {short}: GitHub write {entry['kind']} {entry['status']}"
                + (f": {entry['error']}" if entry.get("error") else "")
            )
    github = run.get("github") or {}
    ack = github.get("ack")
    if ack is None:
        problems.append(f"run {short}: no ack comment on #{run['work_item']}")
    elif not ack["text"].startswith(DONE):
        first = ack["text"].splitlines()[0] if ack["text"] else ""
        problems.append(f"run {short}: the ack comment was not updated to the outcome: {first}")
    if run.get("branch") and not run.get("read_only") and github.get("pull_request") is None:
        problems.append(f"run {short}: no pull request from {run['branch']}")
    review = (run.get("outputs") or {}).get("review")
    if isinstance(review, dict):
        posted = github.get("review")
        if posted is None:
            problems.append(f"run {short}: no review submitted on #{run['work_item']}")
        elif posted["event"] != REVIEW_STATES.get(str(review.get("event")), posted["event"]):
            problems.append(
                f"run {short}: the review is {posted['event']}, its file said {review['event']}"
            )
    return problems


def reported_pushes(outcomes: list[DeliveryOutcome]) -> dict[str, set[str]]:
    """Branch → the commits that runs reported pushing to it."""
    pushes: dict[str, set[str]] = {}
    for run in (r for o in outcomes for r in o.runs):
        if run.get("branch") and run.get("commit"):
            pushes.setdefault(run["branch"], set()).add(run["commit"])
    return pushes
