"""A running gaffer for tests: ``serve()`` (real uvicorn, real dispatcher) in a background thread.

Tests talk to it the way GitHub and users do: signed HTTP deliveries to its URL, and reads of
the records it writes. Workers are real ``python -m gaffer.worker`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from gaffer.demo.repository import create_bare_repository
from gaffer.providers.github import delivery_headers
from gaffer.queue.queues import RunQueue
from gaffer.runs.engine import CancelResult, RunEngine
from gaffer.runs.views import delivery_view, run_view
from gaffer.runtime import Runtime, open_runtime
from gaffer.server import ROLES, Listening, serve
from gaffer.settings import Settings
from gaffer.store.models import Run, RunStatus
from gaffer.store.projects import create_project
from gaffer.store.runs import read_logs
from gaffer.triggers.github import default_agent_setups

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github-webhooks"

OUTPUTS_EPILOGUE = """
__gaffer_rc=$?
write_output() { [ -n "$1" ] && [ ! -e "$1" ] && printf '%s' "$2" > "$1"; }
write_output "$GAFFER_REVIEW_FILE" '{"event": "COMMENT", "body": "looked at it"}'
write_output "$GAFFER_REPLY_FILE" '{"body": "done"}'
write_output "$GAFFER_PLAN_FILE" '{"title": "a plan", "body": "steps"}'
exit $__gaffer_rc
"""


def with_outputs(command: str) -> str:
    """``command`` followed by writing a valid review, reply and plan file where the agent
    has them and the command wrote none, keeping the command's exit status: tests of the
    machinery (leases, containers, logs) run every agent type on one shell command, and each
    agent's finish rule must be met by it (see :mod:`gaffer.worker.turns`)."""
    return f"{command}{OUTPUTS_EPILOGUE}"


WAIT_S = 90.0


def fixture_body(name: str) -> bytes:
    """The raw bytes of a GitHub payload fixture, e.g. ``"issues.labeled"``."""
    return (FIXTURES / f"{name}.json").read_bytes()


@dataclass
class ProjectInfo:
    """A project created for a test: its name, id, webhook secret and bare repository."""

    name: str
    id: str
    secret: str
    bare: Path | None


class Gaffer:
    """A gaffer process-in-a-thread with its own runtime. Use :func:`running_gaffer`."""

    def __init__(self, settings: Settings, roles: Iterable[str] = ROLES) -> None:
        self.settings = settings
        self.roles = frozenset(roles)
        self._runtime_cm = open_runtime(settings)
        self.rt: Runtime = self._runtime_cm.__enter__()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.http = httpx.Client(timeout=60)

    # -- lifecycle ------------------------------------------------------------------------

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(listening: Listening | None) -> None:
                self.url = listening.url if listening else ""
                self._ready.set()

            await serve(self.rt, port=0, roles=self.roles, stop=self._stop, on_ready=ready)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    def start(self) -> Gaffer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise RuntimeError("gaffer failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(90)
        self.http.close()
        self._runtime_cm.__exit__(None, None, None)

    # -- set-up ---------------------------------------------------------------------------

    def create_project(
        self,
        *,
        command: str = "echo ok > RESULT.txt",
        agents: Iterable[str] | None = None,
        name: str | None = None,
        repository: str = "Codertocat/Hello-World",
        bot_login: str = "gaffer-bot",
        trigger_label: str = "bug",
        with_repository: bool = True,
        raw_command: bool = False,
        pr_branch: str | None = None,
    ) -> ProjectInfo:
        """Create a project (and a bare repository to clone) with agents on ``command``,
        extended by :func:`with_outputs` unless ``raw_command``."""
        if not raw_command:
            command = with_outputs(command)
        name = name or f"p-{uuid.uuid4().hex[:8]}"
        bare = None
        clone_url = "/nonexistent"
        if with_repository:
            root = self.settings.home / "repos" / name
            root.mkdir(parents=True)
            bare = create_bare_repository(root, pr_branch=pr_branch)
            clone_url = str(bare)
        secret = secrets.token_hex(16)
        with self.rt.db.session() as session:
            project = create_project(
                session,
                self.rt.box,
                name=name,
                repository=repository,
                clone_url=clone_url,
                webhook_secret=secret,
                bot_login=bot_login,
                trigger_label=trigger_label,
                agents=default_agent_setups("command", {"command": command}, agents),
            )
            return ProjectInfo(name, project.id, secret, bare)

    # -- deliveries -----------------------------------------------------------------------

    def deliver(
        self,
        body: bytes,
        event: str,
        secret: str | None,
        *,
        delivery_id: str | None = None,
        path: str = "/webhooks/github",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a delivery signed with ``secret`` (unsigned when None)."""
        sent = delivery_headers(body, event, secret, delivery_id or str(uuid.uuid4()))
        sent.update(headers or {})
        return self.http.post(self.url + path, content=body, headers=sent)

    # -- reads ----------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        with self.rt.db.session() as session:
            run = session.get(Run, run_id)
            assert run is not None, f"no run {run_id}"
            return run_view(run)

    def wait_for(
        self, run_id: str, statuses: Iterable[RunStatus] | None = None, timeout: float = WAIT_S
    ) -> dict[str, Any]:
        """Wait until the run is in one of ``statuses`` (default: any terminal status)."""
        wanted = {str(s) for s in statuses} if statuses is not None else None
        deadline = time.monotonic() + timeout
        while True:
            view = self.run(run_id)
            status = RunStatus(view["status"])
            if (wanted is None and status.terminal) or (wanted and view["status"] in wanted):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {view['status']} after {timeout}s")
            time.sleep(0.05)

    def logs(self, run_id: str) -> list[tuple[str, str]]:
        with self.rt.db.session() as session:
            return [(line.stream, line.message) for line in read_logs(session, run_id)]

    def deliveries(self, delivery_id: str) -> list[dict[str, Any]]:
        from gaffer.store.deliveries import list_deliveries

        with self.rt.db.session() as session:
            return [delivery_view(d) for d in list_deliveries(session, delivery_id=delivery_id)]

    def cancel(self, run_id: str) -> CancelResult:
        """Cancel through a run engine of the test's own, as ``gaffer runs cancel`` does."""

        async def go() -> CancelResult:
            redis_url = self.rt.require_redis()
            redis = aioredis.from_url(redis_url)
            queue = RunQueue(redis_url, self.settings.queue_name)
            try:
                return await RunEngine(self.settings, self.rt.db, queue, redis).cancel(run_id)
            finally:
                await queue.close()
                await redis.aclose()

        return asyncio.run(go())


@contextlib.contextmanager
def running_gaffer(settings: Settings, roles: Iterable[str] = ROLES) -> Iterator[Gaffer]:
    """A started :class:`Gaffer`, stopped when the block ends."""
    gaffer = Gaffer(settings, roles).start()
    try:
        yield gaffer
    finally:
        gaffer.stop()
