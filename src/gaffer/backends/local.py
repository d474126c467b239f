"""The ``local`` backend: each worker is ``python -m gaffer.worker`` in its own process group.

* A fresh workspace directory ``$GAFFER_HOME/workspaces/<run id>`` is the worker's cwd and HOME.
* ``start_new_session`` puts the worker (and the engine it starts) in a process group of its own,
  so a timeout or cancel can signal the whole group with ``killpg``.
* stdout and stderr are merged into one pipe, read in chunks and cut into lines with a per-line
  cap (:mod:`gaffer.backends.lines`).
* A worker cannot be re-attached after its dispatcher died (its pipe went with it):
  :meth:`LocalBackend.recover` kills what is left of the group, after checking through
  ``/proc`` that the group still belongs to that run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from gaffer.backends.base import RUN_ID_ENV, Backend, BackendError, LogCursor, WorkerHandle
from gaffer.backends.lines import reader_chunks, split_lines
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings


class LocalWorker(WorkerHandle):
    """A worker process group started by :class:`LocalBackend`."""

    def __init__(self, process: asyncio.subprocess.Process, workspace: Path, keep: bool) -> None:
        self.process = process
        self.workspace = workspace
        self.keep_workspace = keep
        self.ref = str(process.pid)  # the group id: start_new_session makes pid == pgid

    def output(self) -> AsyncIterator[str]:
        """The process's merged stdout/stderr pipe, cut into capped lines, until it closes
        (when the worker and every process of its group holding the pipe have exited)."""
        assert self.process.stdout is not None
        return split_lines(reader_chunks(self.process.stdout))

    async def wait(self) -> int:
        """The worker process's exit code (-N when signal N killed it). Never raises."""
        return await self.process.wait()

    async def stop(self, grace_s: float) -> None:
        """SIGTERM the whole process group, SIGKILL it after ``grace_s`` s if the worker still
        runs; returns once the worker exited. A group already gone is fine."""
        _killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=grace_s)
        except TimeoutError:
            _killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def cleanup(self) -> None:
        """SIGKILL whatever is left of the process group, wait for the worker, and remove the
        workspace (unless ``keep_workspaces``). Safe after :meth:`stop` or an exit."""
        # Whatever the engine left running in the group goes with the worker.
        _killpg(self.process.pid, signal.SIGKILL)
        if self.process.returncode is None:
            await self.process.wait()
        if not self.keep_workspace:
            await asyncio.to_thread(shutil.rmtree, self.workspace, True)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _belongs_to_run(pid: int, run_id: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{RUN_ID_ENV}={run_id}".encode() in environ.split(b"\0")


class LocalBackend(Backend):
    """Runs workers as local process groups (see the module docstring)."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def workspace(self, run_id: str) -> Path:
        """The workspace directory of a run."""
        return self.settings.workspaces_dir / run_id

    def base_env(self, job: JobData) -> dict[str, str]:
        """PATH (this Python's bin first, so ``python`` is gaffer's, then the agent CLIs of
        ``engines_dir``), HOME (the workspace)."""
        python_bin = str(Path(sys.executable).parent)
        engines_bin = str(self.settings.engines_dir / "bin")
        path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        return {
            "PATH": f"{python_bin}:{engines_bin}:{path}",
            "HOME": str(self.workspace(job.run_id) / "home"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "GIT_TERMINAL_PROMPT": "0",
            RUN_ID_ENV: job.run_id,
        }

    async def start(self, job: JobData, env: Mapping[str, str]) -> WorkerHandle:
        """Start ``python -m gaffer.worker`` in a fresh workspace.

        Raises :class:`BackendError`; ``E2BIG`` ("Argument list too long") means an env string
        exceeded the kernel's ``MAX_ARG_STRLEN`` (128 KiB).
        """
        workspace = self.workspace(job.run_id)
        await asyncio.to_thread(shutil.rmtree, workspace, True)
        (workspace / "home").mkdir(parents=True)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gaffer.worker",
                cwd=workspace,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            await asyncio.to_thread(shutil.rmtree, workspace, True)
            reason = "argument list too long" if exc.errno == errno.E2BIG else str(exc)
            raise BackendError(f"could not start the local worker: {reason}") from exc
        return LocalWorker(process, workspace, keep=self.settings.keep_workspaces)

    async def recover(
        self, run_id: str, worker_ref: str | None, *, logs_from: LogCursor | None = None
    ) -> WorkerHandle | None:
        """Kill the run's leftover process group, if any, and remove its workspace (its pipe
        died with the old dispatcher, so there is nothing to re-attach to)."""
        if worker_ref and worker_ref.isdigit():
            pgid = int(worker_ref)
            members = await asyncio.to_thread(_group_members, pgid)
            if any(_belongs_to_run(pid, run_id) for pid in members):
                _killpg(pgid, signal.SIGKILL)
        await asyncio.to_thread(shutil.rmtree, self.workspace(run_id), True)
        return None
