"""The worker's steps, in order.

1. Load the job from ``JOB_DATA``, or from Redis when it was offloaded, using what was read from
   the environment at start-up (:mod:`gaffer.worker.job`).
2. Scrub the job and infrastructure settings from the environment, so the engine and everything
   it starts never see them.
3. Clone the repository's base branch into ``<workspace>/repo`` and create the run's branch
   ``gaffer/<agent>/<work-item>``; clone that into ``<workspace>/tree`` for the engine, as the
   engine's user when the backend names one (``GAFFER_ENGINE_USER``; see
   :class:`~gaffer.engines.base.EngineUser`).
4. Run the engine in ``<workspace>/tree`` (:mod:`gaffer.engines`).
5. Commit the files of the engine's tree in the worker's own repository, never through the
   engine's ``.git`` (hooks or filters an agent put there must not run as the worker), and
   push the branch.
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
from gaffer.engines.base import EngineUser, Invocation, describe_exit
from gaffer.worker.events import Reporter
from gaffer.worker.git import GitError, clone, clone_for_engine, commit_all, create_branch, push
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

    checkout = workspace / "repo"  # the worker's clone: its .git is only ever the worker's
    tree = workspace / "tree"  # the engine's clone, where it works
    scratch = workspace / "scratch"  # task and summary files, the engine's HOME
    try:
        user = _engine_user(startup.engine_user)
        for directory in (tree, scratch, scratch / "home"):
            directory.mkdir(parents=True, exist_ok=True)
            if user is not None:
                os.chown(directory, user.uid, user.gid)
        clone(job.repository.clone_url, job.repository.base_branch, checkout)
        create_branch(checkout, job.branch)
        clone_for_engine(checkout, job.branch, tree, user, scratch / "home")
        reporter.emit(
            "repository_cloned",
            repository=job.repository.full_name,
            branch=job.branch,
            engine_uid=os.getuid() if user is None else user.uid,
        )
        engine = get_engine(job.engine.name)
        if stop.requested:
            return _stopped(reporter, "stopped by SIGTERM before the engine started", None)
        result = engine.run(
            Invocation(
                job=job,
                checkout=tree,
                scratch=scratch,
                home=scratch / "home",
                reporter=reporter,
                system_prompt="",
                prompt="",
                user=user,
            )
        )
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
            work_tree=tree,
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


def _engine_user(text: str | None) -> EngineUser | None:
    """The user the backend asked the engine to run as (``GAFFER_ENGINE_USER``), or None.

    Raises :class:`EngineError` when it is malformed, or when the worker is not root and so
    cannot switch to it: a backend that asked for the engine to be kept apart is not given an
    engine that is not (fail closed).
    """
    if text is None:
        return None
    try:
        user = EngineUser.parse(text)
    except ValueError:
        raise EngineError(f"GAFFER_ENGINE_USER {text!r} is not uid[:gid]") from None
    if os.geteuid() != 0 and (user.uid, user.gid) != (os.geteuid(), os.getegid()):
        raise EngineError(f"cannot run the engine as {text}: the worker is not root")
    return user


def _stopped(reporter: Reporter, error: str, summary: str | None) -> int:
    """Report a run stopped by SIGTERM as failed (the dispatcher knows it was its own stop and
    records TIMED_OUT or CANCELED); returns the exit code."""
    reporter.emit("result", ok=False, error=error, branch=None, commit=None, summary=summary)
    return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
