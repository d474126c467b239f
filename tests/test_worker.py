"""The worker process on its own: ``python -m gaffer.worker`` with a job in its env."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gaffer.backends.lines import MAX_LINE_BYTES
from gaffer.demo.repository import create_bare_repository
from gaffer.engines.base import SUMMARY_MAX_BYTES
from gaffer.engines.command import ENV_TEXT_MAX_BYTES
from gaffer.queue.jobs import JobData, branch_name
from tests.support.jobs import make_job, run_worker, worker_base_env


def run_job(
    job: JobData | None, workspace: Path, **extra_env: str
) -> tuple[int, list[dict[str, Any]]]:
    """Run a worker with ``job`` inline in ``JOB_DATA`` (none when None) and ``extra_env``."""
    env = worker_base_env()
    if job is not None:
        env["JOB_DATA"] = job.model_dump_json()
    return run_worker({**env, **extra_env}, workspace)


def show(bare: Path, ref: str) -> str:
    return subprocess.run(
        ["git", "show", ref], cwd=bare, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return create_bare_repository(tmp_path / "repo")


def test_missing_job_is_a_distinct_failure(tmp_path: Path) -> None:
    code, events = run_job(None, tmp_path / "ws")
    assert code == 2
    assert events[0] == {
        "event": "worker_job_data_missing",
        "reason": "neither JOB_DATA nor JOB_DATA_REDIS_KEY is set",
    }
    assert events[-1]["event"] == "result" and events[-1]["ok"] is False


def test_engine_sees_neither_the_job_nor_infrastructure(bare: Path, tmp_path: Path) -> None:
    job = make_job(bare, "env | sort > ENV.txt")
    code, events = run_job(
        job,
        tmp_path / "ws",
        DATABASE_URL="postgresql://secret",
        GAFFER_MASTER_KEY="k",
        REDIS_URL="redis://x",
    )
    assert code == 0, events
    result = events[-1]
    assert result["ok"] and result["branch"] == "gaffer/implementation/7"
    names = {
        line.split("=", 1)[0] for line in show(bare, f"{result['commit']}:ENV.txt").splitlines()
    }
    assert {"GAFFER_TASK_FILE", "GAFFER_WORK_ITEM_TITLE", "GAFFER_TRIGGER"} <= names
    assert not names & {"JOB_DATA", "DATABASE_URL", "GAFFER_MASTER_KEY", "REDIS_URL"}


def test_long_body_reaches_the_engine_capped_and_whole_in_the_task_file(
    bare: Path, tmp_path: Path
) -> None:
    body = "é" * 30_000  # 60,000 UTF-8 bytes: over the engine's env cap, inside JOB_DATA's room
    job = make_job(
        bare,
        'printf %s "$GAFFER_WORK_ITEM_BODY" > BODY.txt; cp "$GAFFER_TASK_FILE" TASK.json',
        body=body,
    )
    code, events = run_job(job, tmp_path / "ws")
    assert code == 0, events
    commit = events[-1]["commit"]
    capped = show(bare, f"{commit}:BODY.txt")
    assert len(capped.encode()) <= ENV_TEXT_MAX_BYTES
    assert capped.endswith("[truncated: full text in $GAFFER_TASK_FILE]")
    assert json.loads(show(bare, f"{commit}:TASK.json"))["body"] == body


def test_no_change_means_no_commit_and_no_push(bare: Path, tmp_path: Path) -> None:
    code, events = run_job(make_job(bare, "echo looked around"), tmp_path / "ws")
    assert code == 0
    assert events[-1] == {
        "event": "result",
        "ok": True,
        "error": None,
        "branch": None,
        "commit": None,
        "summary": "looked around",
        "figures": None,
        "outputs": {},
        "invocations": 1,
    }
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)"],
        cwd=bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert refs == ["refs/heads/main"]


@pytest.mark.parametrize(
    ("agent", "item", "branch"),
    [
        ("review", "2", "gaffer/review/2"),
        ("implementation", "ENG 12/x", "gaffer/implementation/ENG-12-x"),
        ("review", "..", "gaffer/review/item"),
    ],
)
def test_branch_names_are_valid_refs(agent: str, item: str, branch: str) -> None:
    assert branch_name(agent, item) == branch
    subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], check=True)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("exit 3", "engine command exited with code 3"),
        # The shell itself is killed: the OOM killer picking the engine looks exactly like this.
        ("kill -9 $$", "engine command killed by SIGKILL (exit -9), likely out of memory"),
        # A child of the shell is killed and the shell reports 128 + 9.
        ("sh -c 'kill -9 $$'; exit $?", "engine command killed by SIGKILL (exit 137), likely"),
        ("kill -TERM $$", "engine command killed by SIGTERM (exit -15)"),
    ],
)
def test_a_failed_engine_says_how_it_ended(
    bare: Path, tmp_path: Path, command: str, error: str
) -> None:
    code, events = run_job(make_job(bare, command), tmp_path / "ws")
    assert code == 1
    assert events[-1]["ok"] is False
    assert events[-1]["error"].startswith(error)


def test_an_enormous_summary_is_cut_so_the_result_line_survives(bare: Path, tmp_path: Path) -> None:
    """The engine's last line is the summary; at 1.2 MB it would make the result line longer
    than the dispatcher reads as one line, and a run that pushed its branch would read FAILED."""
    command = "echo done > DONE.txt; head -c 1200000 /dev/zero | tr '\\0' x; echo"
    code, events = run_job(make_job(bare, command), tmp_path / "ws")
    assert code == 0, events[-1]
    result = events[-1]
    assert result["ok"] is True and result["commit"]
    assert result["summary"].startswith("xxxx")
    assert result["summary"].endswith(" [summary truncated]")
    assert len(result["summary"].encode()) <= SUMMARY_MAX_BYTES
    assert len(json.dumps(result).encode()) < MAX_LINE_BYTES


def test_a_summary_file_that_is_not_utf8_does_not_lose_the_work(bare: Path, tmp_path: Path) -> None:
    command = "echo done > DONE.txt; printf 'caf\\351' > \"$GAFFER_SUMMARY_FILE\""
    code, events = run_job(make_job(bare, command), tmp_path / "ws")
    assert code == 0, events[-1]
    assert events[-1]["ok"] is True and events[-1]["commit"]
    assert events[-1]["summary"] == "caf\ufffd"
