"""The worker's steps, in order.

1. Load the job from ``JOB_DATA``, or from Redis when it was offloaded, using what was read from
   the environment at start-up (:mod:`gaffer.worker.job`).
2. Scrub the job and infrastructure settings from the environment, so the engine and everything
   it starts never see them.
3. Clone the repository's base branch into ``<workspace>/repo`` and create the run's branch
   ``gaffer/<agent>/<work-item>``.
4. Run the engine (:mod:`gaffer.engines`).
5. Commit what the engine changed and push the branch.
6. Report the result as the last JSON line on stdout (:mod:`gaffer.worker.events`).

A SIGTERM (timeout, cancel, shutdown) is passed to the engine's process tree, which gets the
grace period to finish; the run then fails and nothing is pushed (:mod:`gaffer.worker.stop`).

Exit codes: 0 success, 1 the run failed (engine, git), 2 the job could not be loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gaffer.engines import EngineError, get_engine
from gaffer.engines.base import describe_exit
from gaffer.worker.events import Reporter
from gaffer.worker.git import GitError, clone, commit_all, create_branch, push
from gaffer.worker.job import JobLoadError, WorkerStartup, load_job, scrub_environment
from gaffer.worker.stop import StopSignal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_JOB = 2


def main(workspace: Path | None = None, reporter: Reporter | None = None) -> int:
    """Run one job in ``workspace`` (default: the current directory); returns the exit code."""
    reporter = reporter or Reporter()
    workspace = (workspace or Path.cwd()).resolve()
    stop = StopSignal()
    stop.install()
    startup = WorkerStartup.read(os.environ)
    try:
        loaded = load_job(startup)
    except JobLoadError as exc:
        scrub_environment(os.environ)
        reporter.emit(exc.event, reason=str(exc))
        error = f"{exc.event}: {exc}"
        reporter.emit("result", ok=False, error=error, branch=None, commit=None, summary=None)
        return EXIT_BAD_JOB
    scrub_environment(os.environ)
    job = loaded.job
    reporter.emit(
        "job_loaded",
        run_id=job.run_id,
        agent=job.agent_type,
        branch=job.branch,
        source=loaded.source,
        bytes=loaded.bytes,
        sha256=loaded.sha256,
    )

    checkout = workspace / "repo"
    scratch = workspace / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        clone(job.repository.clone_url, job.repository.base_branch, checkout)
        create_branch(checkout, job.branch)
        reporter.emit("repository_cloned", repository=job.repository.full_name, branch=job.branch)
        engine = get_engine(job.engine.name)
        if stop.requested:
            return _stopped(reporter, "stopped by SIGTERM before the engine started", None)
        result = engine.run(job, checkout, scratch, reporter)
        reporter.emit("engine_finished", exit_code=result.exit_code)
        if stop.requested:
            # Half-done work is not committed: the run was stopped, not finished.
            error = "stopped by SIGTERM before it finished"
            if result.exit_code != 0:
                error += f" ({describe_exit(job.engine.name, result.exit_code)})"
            return _stopped(reporter, error, result.reported_summary())
        if result.exit_code != 0:
            error = describe_exit(job.engine.name, result.exit_code)
            reporter.emit(
                "result",
                ok=False,
                error=error,
                branch=None,
                commit=None,
                summary=result.reported_summary(),
            )
            return EXIT_FAILED
        message = f"gaffer: {job.agent_type} for {job.task.repository}#{job.task.work_item}"
        if job.task.title:
            message += f"\n\n{job.task.title}"
        commit = commit_all(
            checkout,
            message,
            author_name=job.bot_login,
            author_email=f"{job.bot_login}@users.noreply.github.com",
        )
        branch: str | None = None
        if commit is not None:
            push(checkout, job.branch)
            branch = job.branch
            reporter.emit("branch_pushed", branch=branch, commit=commit)
        else:
            reporter.log("the engine changed nothing; no commit, no push")
        reporter.emit(
            "result",
            ok=True,
            error=None,
            branch=branch,
            commit=commit,
            summary=result.reported_summary(),
        )
        return EXIT_OK
    except (GitError, EngineError, OSError) as exc:
        reporter.emit("result", ok=False, error=str(exc), branch=None, commit=None, summary=None)
        return EXIT_FAILED


def _stopped(reporter: Reporter, error: str, summary: str | None) -> int:
    """Report a run stopped by SIGTERM as failed (the dispatcher knows it was its own stop and
    records TIMED_OUT or CANCELED); returns the exit code."""
    reporter.emit("result", ok=False, error=error, branch=None, commit=None, summary=summary)
    return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
