"""``resolve-conflicts`` makes a real merge (issue 9): the worker (a real worker process, real
git, the command engine) merges the PR's base branch into its head before the engine starts,
the engine finds git's conflict markers, and the result is a merge commit with the base as its
second parent, pushed onto the PR's branch. A clean merge needs no engine; markers left behind
fail the run naming the files. Last, the same through a running gaffer: a run started by hand
(``gaffer runs start``) pushes the merge onto the PR's branch."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from gaffer.agents.effective import effective_agent
from gaffer.demo.repository import create_bare_repository
from gaffer.queue.jobs import JobData
from tests.conftest import GafferFactory
from tests.support.jobs import make_job, run_worker, worker_base_env
from tests.support.process import gaffer_json
from tests.test_github_runs import cli_env

HEAD = "changes"


def git(cwd: Path, *args: str) -> str:
    identity = ("-c", "user.name=Octo", "-c", "user.email=octo@example.com")
    proc = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def repository(tmp_path: Path, *, conflict: bool) -> Path:
    """A bare repository whose ``main`` and PR branch ``changes`` both moved on since they
    parted: both rewrote ``shared.txt`` (``conflict``), or main touched another file; main
    also adds ``HISTORY.rst``."""
    bare = create_bare_repository(tmp_path / "origin")
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    (seed / "shared.txt").write_text("one\ntwo\nthree\n")
    git(seed, "add", "shared.txt")
    git(seed, "commit", "--quiet", "-m", "shared file")
    git(seed, "push", "--quiet", "origin", "main")
    git(seed, "checkout", "--quiet", "-b", HEAD)
    (seed / "shared.txt").write_text("one\nTWO from the PR\nthree\n")
    git(seed, "commit", "--quiet", "-am", "the PR's change")
    git(seed, "push", "--quiet", "origin", HEAD)
    git(seed, "checkout", "--quiet", "main")
    # A file only main adds, whose reStructuredText title is underlined with seven "=": content
    # that git's --check would call a leftover conflict marker, though the merge never made it.
    (seed / "HISTORY.rst").write_text("History\n=======\n\n1.0: first\n")
    git(seed, "add", "HISTORY.rst")
    if conflict:
        (seed / "shared.txt").write_text("one\ntwo from main\nthree\n")
    else:
        (seed / "other.txt").write_text("main's own file\n")
        git(seed, "add", "other.txt")
    git(seed, "commit", "--quiet", "-am", "main moves on")
    git(seed, "push", "--quiet", "origin", "main")
    return bare


def conflicts_job(bare: Path, command: str) -> JobData:
    job = make_job(bare, command)
    job.agent_type = job.task.agent_type = "resolve-conflicts"
    job.agent = effective_agent("resolve-conflicts", "command", None).spec
    job.agent.continuation_turns = 1
    job.task.pr_number = 12
    job.task.head_branch = HEAD
    job.task.base_branch = "main"
    job.task.trigger = "manual"
    job.branch = HEAD
    return job


def run_job(job: JobData, workspace: Path) -> tuple[int, list[dict[str, Any]]]:
    return run_worker({**worker_base_env(), "JOB_DATA": job.model_dump_json()}, workspace)


def result(events: list[dict[str, Any]]) -> dict[str, Any]:
    return [e for e in events if e.get("event") == "result"][-1]


def test_conflicts_resolved_by_the_engine_become_a_merge_commit_on_the_prs_branch(
    tmp_path: Path,
) -> None:
    bare = repository(tmp_path, conflict=True)
    head_before = git(bare, "rev-parse", HEAD)
    base = git(bare, "rev-parse", "main")
    # The engine sees git's merge in progress and the markers, then resolves the file.
    command = (
        "git status --porcelain | grep -q '^UU shared.txt'"
        " && grep -q '^<<<<<<<' shared.txt"
        " && printf 'one\\nTWO from the PR and two from main\\nthree\\n' > shared.txt"
    )
    code, events = run_job(conflicts_job(bare, command), tmp_path / "ws")
    outcome = result(events)
    assert code == 0 and outcome["ok"], outcome
    [started] = [e for e in events if e.get("event") == "merge_started"]
    assert started["conflicts"] == ["shared.txt"] and started["base_sha"] == base
    merge = git(bare, "rev-parse", HEAD)
    assert merge == outcome["commit"]
    assert git(bare, "rev-list", "--parents", "-n", "1", merge).split()[1:] == [head_before, base]
    assert (
        git(bare, "show", f"{merge}:shared.txt") == "one\nTWO from the PR and two from main\nthree"
    )
    assert git(bare, "log", "-1", "--format=%s", merge) == f"Merge main into {HEAD}"
    assert git(bare, "show", f"{merge}:HISTORY.rst").startswith("History\n=======")


def test_a_clean_merge_is_committed_without_the_engine(tmp_path: Path) -> None:
    bare = repository(tmp_path, conflict=False)
    head_before = git(bare, "rev-parse", HEAD)
    base = git(bare, "rev-parse", "main")
    # An engine that would fail the run: it is not run at all.
    code, events = run_job(conflicts_job(bare, "exit 3"), tmp_path / "ws")
    outcome = result(events)
    assert code == 0 and outcome["ok"], outcome
    assert outcome["invocations"] == 0
    merge = git(bare, "rev-parse", HEAD)
    assert merge == outcome["commit"]
    assert git(bare, "rev-list", "--parents", "-n", "1", merge).split()[1:] == [head_before, base]
    assert git(bare, "show", f"{merge}:other.txt") == "main's own file"
    assert git(bare, "show", f"{merge}:shared.txt") == "one\nTWO from the PR\nthree"
    assert git(bare, "show", f"{merge}:HISTORY.rst").startswith("History\n=======")


def test_conflict_markers_left_behind_fail_the_run_naming_the_files(tmp_path: Path) -> None:
    bare = repository(tmp_path, conflict=True)
    head_before = git(bare, "rev-parse", HEAD)
    # The engine edits another file and leaves the conflict in shared.txt as it is.
    code, events = run_job(conflicts_job(bare, "echo notes > NOTES.md"), tmp_path / "ws")
    outcome = result(events)
    assert code == 1 and not outcome["ok"]
    assert outcome["error"] == (
        "resolve-conflicts agent left the merge unresolved after 2 turns:"
        " conflict markers remain in shared.txt"
    )
    assert outcome["invocations"] == 2
    assert git(bare, "rev-parse", HEAD) == head_before  # nothing pushed


def test_an_engine_that_aborts_the_merge_fails_the_run_instead_of_reverting_the_base(
    tmp_path: Path,
) -> None:
    # Without the merge, the tree is the PR's head: committed as the merge, it would drop
    # main's changes (HISTORY.rst, other.txt) from the branch, silently.
    bare = repository(tmp_path, conflict=True)
    head_before = git(bare, "rev-parse", HEAD)
    command = "git merge --abort 2>/dev/null; true"
    code, events = run_job(conflicts_job(bare, command), tmp_path / "ws")
    outcome = result(events)
    assert code == 1 and not outcome["ok"], outcome
    assert outcome["error"].startswith(
        "resolve-conflicts agent left the merge unresolved after 2 turns:"
        " the merge is no longer in the checkout: none of the changes main brings"
    ), outcome["error"]
    assert "HISTORY.rst" in outcome["error"]
    assert git(bare, "rev-parse", HEAD) == head_before  # nothing pushed


def test_a_head_that_already_has_the_base_has_nothing_to_merge(tmp_path: Path) -> None:
    bare = create_bare_repository(tmp_path / "origin", pr_branch=HEAD)
    head_before = git(bare, "rev-parse", HEAD)
    code, events = run_job(conflicts_job(bare, "exit 3"), tmp_path / "ws")
    outcome = result(events)
    assert code == 0 and outcome["ok"] and outcome["commit"] is None, outcome
    assert git(bare, "rev-parse", HEAD) == head_before


def test_a_resolve_conflicts_run_started_by_hand_pushes_a_merge_onto_the_pr(
    start_gaffer: GafferFactory, tmp_path: Path
) -> None:
    g = start_gaffer()
    project = g.create_project(
        command="printf 'both sides\\n' > shared.txt", agents=["resolve-conflicts"], pr_branch=HEAD
    )
    assert project.bare is not None
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(project.bare), str(seed))
    for branch, text in ((HEAD, "the PR's\n"), ("main", "main's\n")):  # both add shared.txt
        git(seed, "checkout", "--quiet", branch)
        (seed / "shared.txt").write_text(text)
        git(seed, "add", "shared.txt")
        git(seed, "commit", "--quiet", "-m", f"shared.txt on {branch}")
        git(seed, "push", "--quiet", "origin", branch)
    head_before, base = git(project.bare, "rev-parse", HEAD), git(project.bare, "rev-parse", "main")
    started = gaffer_json(
        "runs", "start", "--project", project.name, "--agent", "resolve-conflicts",
        "--work-item", "12", "--pr", "12", "--head-branch", HEAD, "--base-branch", "main",
        env=cli_env(g),
    )  # fmt: skip
    [run_id] = started["runs"]
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["branch"] == HEAD
    merge = git(project.bare, "rev-parse", HEAD)
    assert merge == run["commit"]
    assert git(project.bare, "rev-list", "--parents", "-n", "1", merge).split()[1:] == [
        head_before,
        base,
    ]
    assert git(project.bare, "show", f"{merge}:shared.txt") == "both sides"
