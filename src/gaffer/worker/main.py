"""The worker's steps, in order.

1. Load the job from ``JOB_DATA``, or from Redis when it was offloaded, using what was read from
   the environment at start-up (:mod:`gaffer.worker.job`).
2. Scrub the job, the engine's API key and infrastructure settings from the environment, so
   the engine and everything it starts never see them (the key goes to the engine's own
   environment only, under the name its CLI reads).
3. Check out by the agent's branch mode (:mod:`gaffer.worker.checkout`): the worker's clone in
   ``<workspace>/repo``, and a clone of it for the engine in ``<workspace>/tree``, as the
   engine's user when the backend names one (``GAFFER_ENGINE_USER``; see
   :class:`~gaffer.engines.base.EngineUser`), then run the project's set-up
   (:mod:`gaffer.worker.setup`); or, started from a snapshot, refresh both clones instead
   (:mod:`gaffer.worker.warm_start`).
4. An agent that merges the base branch (``resolve-conflicts``) begins the merge in the
   engine's clone first (:mod:`gaffer.worker.merge`): nothing to merge ends the run there; a
   clean merge is committed without the engine. Run the engine's turns
   (:mod:`gaffer.worker.turns`): render the prompts, run the engine, continue it while the
   finish rule is unmet.
5. Commit the files of the engine's tree in the worker's own repository, never through the
   engine's ``.git`` (hooks or filters an agent put there must not run as the worker; a merge
   is committed with the base branch's commit as its second parent), and
   push by the branch mode (``read-only``: never; a run that changed files says so).
   When the backend asked for it, make the container fit to be committed as a snapshot
   (:mod:`gaffer.worker.snapshot_prep`: no secret left in it).
6. Report the result as the last JSON line on stdout (:mod:`gaffer.worker.events`): ``ok``,
   ``error``, ``branch``, ``commit``, ``summary``, ``figures`` (the CLI's own, summed),
   ``outputs`` (validated output files), ``invocations``.

A SIGTERM (timeout, cancel, shutdown) is passed to the engine's process tree, which gets the
grace period to finish; the run then fails and nothing is pushed (:mod:`gaffer.worker.stop`).

Exit codes: 0 success, 1 the run failed (engine, git, finish rule), 2 the job could not be
loaded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from gaffer.engines import EngineError, get_engine
from gaffer.engines.base import EngineUser, ModelEndpoint, describe_exit
from gaffer.worker.checkout import CheckoutError, Workspace
from gaffer.worker.events import Reporter
from gaffer.worker.git import (
    GitError,
    RemoteAuth,
    changed_files,
    commit_all,
    commit_merge,
    push,
)
from gaffer.worker.job import JobLoadError, WorkerStartup, load_job, scrub_environment
from gaffer.worker.merge import MergeStart, merge_problem, merges_base, start_merge
from gaffer.worker.setup import SetupError, SnapshotStartup, scrub_snapshot_env
from gaffer.worker.stop import StopSignal
from gaffer.worker.turns import TurnsOutcome, run_turns
from gaffer.worker.warm_start import (
    build_snapshot,
    make_ready,
    prepare_snapshot,
    secrets_of,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_JOB = 2
READ_ONLY_SHOWN_FILES = 10
"""How many changed paths the log names for a read-only run that changed files."""


def main(workspace: Path | None = None, reporter: Reporter | None = None) -> int:
    """Run one job in ``workspace`` (default: the current directory); returns the exit code."""
    reporter = reporter or Reporter()
    root = (workspace or Path.cwd()).resolve()
    stop = StopSignal()
    stop.install()
    started = time.monotonic()
    startup = WorkerStartup.read(os.environ)
    snap = SnapshotStartup.read(os.environ)
    secrets = secrets_of(os.environ)
    scrub_snapshot_env(os.environ)
    try:
        loaded = load_job(startup)
    except JobLoadError as exc:
        scrub_environment(os.environ)
        reporter.emit(exc.event, reason=str(exc))
        _result(reporter, ok=False, error=f"{exc.event}: {exc}")
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
    ws = Workspace(root)
    outcome = TurnsOutcome()
    try:
        user = _engine_user(startup.engine_user)
        for directory in (ws.tree, ws.scratch, ws.home, ws.out, ws.context):
            directory.mkdir(parents=True, exist_ok=True)
            if user is not None:
                os.chown(directory, user.uid, user.gid)
        auth = RemoteAuth(startup.git_token or "")
        if snap.build:
            return build_snapshot(job, ws, user, snap, reporter, stop, secrets, auth)
        checkout = make_ready(job, ws, user, snap, reporter, stop, started, auth)
        engine = get_engine(job.engine.name)
        if stop.requested:
            return _stopped(reporter, "stopped by SIGTERM before the engine started", outcome)
        base_url = startup.engine_base_url or job.engine.base_url
        model = ModelEndpoint(job.engine.model, base_url, startup.engine_api_key)
        merge: MergeStart | None = None
        if merges_base(job):
            merge = start_merge(job, ws, checkout, user)
            reporter.emit(
                "merge_started",
                base=merge.base_branch,
                base_sha=merge.base_sha,
                conflicts=merge.conflicts,
                up_to_date=merge.up_to_date,
            )
            if merge.up_to_date:
                reporter.log(f"{checkout.branch} already has {merge.base_branch}: nothing to merge")
                _result(reporter, ok=True, outcome=outcome)
                return EXIT_OK
        if merge is not None and merge.clean:
            reporter.log(f"{merge.base_branch} merged without conflicts; the engine is not needed")
        else:
            outcome = run_turns(engine, job, ws, checkout, reporter, user, model, stop, merge)
        if outcome.stopped or stop.requested:
            # Half-done work is not committed: the run was stopped, not finished.
            error = "stopped by SIGTERM before it finished"
            result = outcome.result
            if result is not None and result.exit_code != 0:
                error += f" ({describe_exit(job.engine.name, result.exit_code)})"
            return _stopped(reporter, error, outcome)
        if outcome.error is not None:
            _result(reporter, ok=False, error=outcome.error, outcome=outcome)
            return EXIT_FAILED
        if checkout.push_branch is None:
            changed = changed_files(ws.checkout, ws.tree)
            if changed:
                shown = ", ".join(changed[:READ_ONLY_SHOWN_FILES])
                more = len(changed) - READ_ONLY_SHOWN_FILES
                shown += f" and {more} more" if more > 0 else ""
                reporter.log(
                    f"read-only agent: the engine changed {len(changed)} file(s) ({shown});"
                    " nothing is committed or pushed"
                )
            if snap.prepare:
                prepare_snapshot(job, ws, snap, reporter, secrets)
            _result(reporter, ok=True, outcome=outcome)
            return EXIT_OK
        message = f"gaffer: {job.agent_type} for {job.task.repository}#{job.task.work_item}"
        if job.task.title:
            message += f"\n\n{job.task.title}"
        identity = {
            "author_name": job.bot_login,
            "author_email": f"{job.bot_login}@users.noreply.github.com",
        }
        commit: str | None
        if merge is not None:
            problem = merge_problem(ws, merge)
            if problem is not None:
                _result(reporter, ok=False, error=f"unresolved merge: {problem}", outcome=outcome)
                return EXIT_FAILED
            message = f"Merge {merge.base_branch} into {checkout.branch}\n\n{message}"
            commit = commit_merge(
                ws.checkout, message, work_tree=ws.tree, merged=merge.base_sha, **identity
            )
        else:
            commit = commit_all(ws.checkout, message, work_tree=ws.tree, **identity)
        branch: str | None = None
        if commit is not None:
            push(ws.checkout, checkout.push_branch, force=checkout.force, auth=auth)
            branch = checkout.push_branch
            reporter.emit("branch_pushed", branch=branch, commit=commit)
        else:
            reporter.log("the engine changed nothing; no commit, no push")
        if snap.prepare:
            prepare_snapshot(job, ws, snap, reporter, secrets)
        _result(reporter, ok=True, branch=branch, commit=commit, outcome=outcome)
        return EXIT_OK
    except SetupError as exc:
        _result(reporter, ok=False, error=f"set-up failed: {exc}", outcome=outcome)
        return EXIT_FAILED
    except (GitError, EngineError, CheckoutError, OSError) as exc:
        error = RemoteAuth(startup.git_token or "").scrub(str(exc))
        _result(reporter, ok=False, error=error, outcome=outcome)
        return EXIT_FAILED


def _result(
    reporter: Reporter,
    *,
    ok: bool,
    error: str | None = None,
    branch: str | None = None,
    commit: str | None = None,
    outcome: TurnsOutcome | None = None,
) -> None:
    """Emit the ``result`` line (see the module docstring)."""
    fields: dict[str, Any] = {"summary": None, "figures": None, "outputs": {}, "invocations": 0}
    if outcome is not None:
        figures = outcome.figures.as_dict()
        fields = {
            "summary": outcome.result.reported_summary() if outcome.result else None,
            "figures": figures or None,
            "outputs": outcome.outputs,
            "invocations": outcome.invocations,
        }
    reporter.emit("result", ok=ok, error=error, branch=branch, commit=commit, **fields)


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


def _stopped(reporter: Reporter, error: str, outcome: TurnsOutcome) -> int:
    """Report a run stopped by SIGTERM as failed (the dispatcher knows it was its own stop and
    records TIMED_OUT or CANCELED); returns the exit code."""
    _result(reporter, ok=False, error=error, outcome=outcome)
    return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
