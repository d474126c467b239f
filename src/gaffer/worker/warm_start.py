"""Getting the repository ready: a cold checkout and the set-up, or a warm start's refresh; and
the snapshot steps around them (a project snapshot's build, the preparation for a commit).

Run log milestones (worker events): ``repository_cloned`` (cold) or ``warm_start`` (which
snapshot, its kind, ``refresh_s``: how long the refresh took); ``snapshot_stale`` when a project
snapshot's set-up and lock files no longer match the base branch (the set-up runs again);
``setup_done``; ``repository_ready`` (``seconds`` since the worker started: the figure
``bench/warm_start.py`` compares); ``snapshot_ready`` / ``snapshot_refused``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

from gaffer.engines.base import ENGINE_API_KEY_ENV, EngineUser
from gaffer.queue.jobs import JobData
from gaffer.snapshots.keys import files_hash
from gaffer.worker.checkout import Checkout, Workspace, prepare_checkout
from gaffer.worker.events import Reporter
from gaffer.worker.git import NO_AUTH, GitError, RemoteAuth, clone, clone_for_engine
from gaffer.worker.job import WORKER_REDIS_URL_ENV
from gaffer.worker.setup import (
    SetupError,
    SnapshotStartup,
    refresh_command,
    run_script,
    setup_command,
)
from gaffer.worker.snapshot_prep import find_secret, remove_private_files
from gaffer.worker.stop import StopSignal
from gaffer.worker.warm import has_workspace, refresh_checkout

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|GIT_CONFIG_VALUE", re.IGNORECASE)
EXIT_OK = 0


def secrets_of(environ: Mapping[str, str]) -> list[str]:
    """The values in the worker's start-up environment that must never be in an image: the
    engine's API key, the worker's Redis URL (it carries the per-job user's password), and any
    variable whose name says token, secret, password or API key (git's credential headers
    included)."""
    names = {ENGINE_API_KEY_ENV, WORKER_REDIS_URL_ENV}
    return [v for k, v in environ.items() if v and (k in names or SECRET_NAME.search(k))]


def _setup(
    ws: Workspace,
    user: EngineUser | None,
    snap: SnapshotStartup,
    reporter: Reporter,
    stop: StopSignal,
    *,
    refresh: bool = False,
) -> None:
    """Run the set-up (or, ``refresh``, the refresh script); a failure is raised, or only
    logged when the project says so (``setup_failure = warn``)."""
    found = refresh_command(ws.tree) if refresh else setup_command(ws.tree, snap)
    if found is None:
        return
    argv, what = found
    try:
        run_script(
            argv,
            what,
            tree=ws.tree,
            home=ws.home,
            user=user,
            reporter=reporter,
            timeout_s=snap.setup_timeout_s,
            stop=stop,
        )
    except SetupError as exc:
        if not snap.setup_warn or stop.requested:
            raise
        reporter.emit("setup_failed_ignored", reason=str(exc).splitlines()[0])
        reporter.log(f"warning: {exc} (the project's set-up failure setting is warn)")


def make_ready(
    job: JobData,
    ws: Workspace,
    user: EngineUser | None,
    snap: SnapshotStartup,
    reporter: Reporter,
    stop: StopSignal,
    started: float,
    auth: RemoteAuth = NO_AUTH,
) -> Checkout:
    """Check out and set up (cold), or refresh (warm, see :mod:`gaffer.worker.warm`); then
    emit ``repository_ready``. Raises what the checkout and the set-up raise."""
    if snap.snapshot_from is not None and has_workspace(ws):
        began = time.monotonic()
        checkout = refresh_checkout(job, ws, user, auth)
        refresh_s = time.monotonic() - began
        reporter.emit(
            "warm_start",
            snapshot=snap.snapshot_from,
            kind=snap.snapshot_kind,
            branch=checkout.branch,
            mode=checkout.mode,
            refresh_s=round(refresh_s, 3),
        )
        reporter.log(
            f"warm start from the {snap.snapshot_kind} snapshot {snap.snapshot_from};"
            f" refreshed in {refresh_s:.2f} s"
        )
        stale = False
        if snap.snapshot_kind == "project":
            base = f"origin/{job.repository.base_branch}"
            current = files_hash(ws.checkout, base, snap.setup_command)
            stale = current != snap.files_hash
            if stale:
                reporter.emit("snapshot_stale", snapshot=snap.snapshot_from, files_hash=current)
                reporter.log("the project snapshot's set-up or lock files changed: set-up again")
        _setup(ws, user, snap, reporter, stop, refresh=not stale)
    else:
        if snap.snapshot_from is not None:
            reporter.log(f"snapshot {snap.snapshot_from} has no workspace: cold checkout")
        checkout = prepare_checkout(job, ws, user, auth)
        reporter.emit(
            "repository_cloned",
            repository=job.repository.full_name,
            branch=checkout.branch,
            mode=checkout.mode,
            engine_uid=os.getuid() if user is None else user.uid,
        )
        _setup(ws, user, snap, reporter, stop)
    reporter.emit("repository_ready", seconds=round(time.monotonic() - started, 3))
    return checkout


def prepare_snapshot(
    job: JobData,
    ws: Workspace,
    snap: SnapshotStartup,
    reporter: Reporter,
    secrets: list[str],
) -> None:
    """Make the finished container fit for a commit (see :mod:`gaffer.worker.snapshot_prep`)
    and emit ``snapshot_ready`` or ``snapshot_refused``. Never raises for a refusal."""
    remove_private_files(ws)
    leaked = find_secret(ws.root, secrets)
    if leaked is not None:
        reporter.emit("snapshot_refused", reason=f"a secret of the run is in {leaked}")
        return
    try:
        files = files_hash(ws.checkout, f"origin/{job.repository.base_branch}", snap.setup_command)
    except GitError:
        files = None
    reporter.emit("snapshot_ready", files_hash=files)


def build_snapshot(
    job: JobData,
    ws: Workspace,
    user: EngineUser | None,
    snap: SnapshotStartup,
    reporter: Reporter,
    stop: StopSignal,
    secrets: list[str],
    auth: RemoteAuth = NO_AUTH,
) -> int:
    """A project snapshot's build: clone the base branch (both clones), set up, prepare, and
    report ``snapshot_ready`` with the base branch's files hash; no engine runs. Returns the
    exit code; raises what the clone and the set-up raise."""
    base = job.repository.base_branch
    clone(job.repository.clone_url, base, ws.checkout, auth)
    clone_for_engine(ws.checkout, base, ws.tree, user, ws.home)
    reporter.emit("repository_cloned", repository=job.repository.full_name, branch=base)
    snap = SnapshotStartup(
        setup_command=snap.setup_command,
        setup_timeout_s=snap.setup_timeout_s,
        setup_warn=False,
    )
    _setup(ws, user, snap, reporter, stop)
    if stop.requested:
        raise SetupError("stopped by SIGTERM")
    remove_private_files(ws)
    leaked = find_secret(ws.root, secrets)
    if leaked is not None:
        reporter.emit("snapshot_refused", reason=f"a secret of the run is in {leaked}")
        reporter.emit("result", ok=False, error="snapshot refused: a secret is in the workspace")
        return 1
    files = files_hash(ws.checkout, "HEAD", snap.setup_command)
    reporter.emit("snapshot_ready", files_hash=files)
    reporter.emit("result", ok=True, error=None, branch=None, commit=None, summary=None)
    return EXIT_OK
