"""A project's set-up and refresh scripts, run by the worker before the engine.

The set-up is the project's set-up command when one is set (``gaffer snapshots settings
--setup-command``), else the repository's ``.gaffer/setup.sh`` when it has one, else nothing.
It runs after the checkout and before the engine, as the engine's user, in the engine's tree,
with ``HOME`` at the engine's home and the worker's environment after the scrub (no job, no API
key), through ``/bin/sh``. Each line it prints goes to the run log on the ``setup`` stream.
It has a time limit (``GAFFER_SETUP_TIMEOUT_S``, 900 s, or the project's); a set-up that exits
non-zero or overruns fails the run with its last lines, unless the project's
``setup_failure`` is ``warn`` (then it is logged and the run goes on).

After a warm start's refresh (:mod:`gaffer.worker.warm`) the repository's ``.gaffer/refresh.sh``
runs the same way, when it exists, instead of the set-up.

What the backend tells the worker about the set-up and snapshots comes in env vars, read once
at start-up by :meth:`SnapshotStartup.read` (before the environment is scrubbed) and removed
from the environment by :func:`scrub_snapshot_env`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from gaffer.engines.base import EngineUser
from gaffer.engines.process import user_options
from gaffer.worker.events import Reporter
from gaffer.worker.stop import StopSignal

SETUP_SCRIPT = ".gaffer/setup.sh"
REFRESH_SCRIPT = ".gaffer/refresh.sh"
LAST_LINES = 20
"""How many of a failed set-up's last output lines its error carries."""
SETUP_COMMAND_ENV = "GAFFER_SETUP_COMMAND"
SETUP_TIMEOUT_ENV = "GAFFER_SETUP_TIMEOUT_S"
SETUP_FAILURE_ENV = "GAFFER_SETUP_FAILURE"
SNAPSHOT_FROM_ENV = "GAFFER_SNAPSHOT_FROM"
SNAPSHOT_KIND_ENV = "GAFFER_SNAPSHOT_KIND"
SNAPSHOT_FILES_HASH_ENV = "GAFFER_SNAPSHOT_FILES_HASH"
SNAPSHOT_PREPARE_ENV = "GAFFER_SNAPSHOT_PREPARE"
SNAPSHOT_BUILD_ENV = "GAFFER_SNAPSHOT_BUILD"
SNAPSHOT_ENV = (
    SETUP_COMMAND_ENV,
    SETUP_TIMEOUT_ENV,
    SETUP_FAILURE_ENV,
    SNAPSHOT_FROM_ENV,
    SNAPSHOT_KIND_ENV,
    SNAPSHOT_FILES_HASH_ENV,
    SNAPSHOT_PREPARE_ENV,
    SNAPSHOT_BUILD_ENV,
)
DEFAULT_TIMEOUT_S = 900.0


class SetupError(RuntimeError):
    """The set-up (or refresh script) failed or overran; the message ends with its last lines."""


@dataclass(frozen=True)
class SnapshotStartup:
    """The set-up and snapshot instructions the backend put in the worker's env.

    ``setup_command``: the project's set-up command (None: ``.gaffer/setup.sh``);
    ``setup_timeout_s``: its limit in seconds; ``setup_warn``: a failing set-up is a warning;
    ``snapshot_from``: the snapshot image this container started from (None: a cold start);
    ``snapshot_kind``: ``work-item`` or ``project``; ``files_hash``: a project snapshot's hash
    of the set-up and lock files, to tell whether it is still current; ``prepare``: make the
    container fit to be committed once the run succeeded; ``build``: only clone the base branch,
    set up and prepare (a project snapshot's build).
    Empty values count as unset: a committed snapshot's image carries each variable emptied.
    """

    setup_command: str | None = None
    setup_timeout_s: float = DEFAULT_TIMEOUT_S
    setup_warn: bool = False
    snapshot_from: str | None = None
    snapshot_kind: str | None = None
    files_hash: str | None = None
    prepare: bool = False
    build: bool = False

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> SnapshotStartup:
        """Read the ``GAFFER_SETUP_*`` and ``GAFFER_SNAPSHOT_*`` variables (bad numbers fall
        back to the default)."""
        try:
            timeout = float(environ.get(SETUP_TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
        except ValueError:
            timeout = DEFAULT_TIMEOUT_S
        return cls(
            setup_command=environ.get(SETUP_COMMAND_ENV) or None,
            setup_timeout_s=timeout if timeout > 0 else DEFAULT_TIMEOUT_S,
            setup_warn=environ.get(SETUP_FAILURE_ENV) == "warn",
            snapshot_from=environ.get(SNAPSHOT_FROM_ENV) or None,
            snapshot_kind=environ.get(SNAPSHOT_KIND_ENV) or None,
            files_hash=environ.get(SNAPSHOT_FILES_HASH_ENV) or None,
            prepare=environ.get(SNAPSHOT_PREPARE_ENV) == "1",
            build=environ.get(SNAPSHOT_BUILD_ENV) == "1",
        )


def scrub_snapshot_env(environ: MutableMapping[str, str]) -> None:
    """Remove the variables :meth:`SnapshotStartup.read` reads (the engine needs none)."""
    for name in SNAPSHOT_ENV:
        environ.pop(name, None)


def setup_command(tree: Path, startup: SnapshotStartup) -> tuple[list[str], str] | None:
    """The set-up to run in ``tree`` as ``(argv, description)``, or None when there is none
    (see the module docstring for which wins)."""
    if startup.setup_command:
        return ["/bin/sh", "-c", startup.setup_command], "the project's set-up command"
    if (tree / SETUP_SCRIPT).is_file():
        return ["/bin/sh", SETUP_SCRIPT], SETUP_SCRIPT
    return None


def refresh_command(tree: Path) -> tuple[list[str], str] | None:
    """``.gaffer/refresh.sh`` of ``tree`` as ``(argv, description)``, or None."""
    if (tree / REFRESH_SCRIPT).is_file():
        return ["/bin/sh", REFRESH_SCRIPT], REFRESH_SCRIPT
    return None


def run_script(
    argv: list[str],
    what: str,
    *,
    tree: Path,
    home: Path,
    user: EngineUser | None,
    reporter: Reporter,
    timeout_s: float,
    stop: StopSignal,
) -> float:
    """Run ``argv`` in ``tree`` as ``user`` (see the module docstring); returns its duration in
    seconds. Raises :class:`SetupError` when it exits non-zero, overruns ``timeout_s`` (its
    process group is killed) or the worker is stopped meanwhile."""
    env = {**os.environ, "HOME": str(home)}
    started = time.monotonic()
    last: deque[str] = deque(maxlen=LAST_LINES)
    reporter.log(f"set-up: running {what}")
    try:
        process = subprocess.Popen(
            argv,
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            **user_options(user),  # type: ignore[call-overload]
        )
    except OSError as exc:
        raise SetupError(f"{what} could not be started: {exc}") from exc
    deadline = started + timeout_s
    timed_out = False
    stdout = process.stdout
    assert stdout is not None

    def pump() -> None:
        for raw in stdout:
            line = raw.rstrip("\n")
            last.append(line)
            reporter.log(line, stream="setup")

    reader = threading.Thread(target=pump, name="gaffer-setup-output", daemon=True)
    reader.start()
    while process.poll() is None:
        if time.monotonic() > deadline or stop.requested:
            timed_out = not stop.requested
            _kill_group(process)
            break
        time.sleep(0.05)
    process.wait()
    reader.join(5)
    elapsed = time.monotonic() - started
    tail = "\n".join(last)
    if stop.requested:
        raise SetupError(f"{what} was stopped by SIGTERM")
    if timed_out:
        raise SetupError(f"{what} took longer than {timeout_s:g} s; last lines:\n{tail}")
    if process.returncode != 0:
        raise SetupError(f"{what} exited with code {process.returncode}; last lines:\n{tail}")
    reporter.emit("setup_done", script=what, seconds=round(elapsed, 3))
    return elapsed


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()
