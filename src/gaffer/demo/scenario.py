"""The demo scenario: real GitHub payloads, signed, over HTTP, into runs whose results
appear on a local GitHub stand-in.

:func:`run_demo` starts the stand-in shipped in the package (:mod:`gaffer.demo.on_github`:
``Codertocat/Hello-World`` with issue #1 and PR #2, served over git smart HTTP, the demo's
GitHub App installed on it), sets up the project with that App's credentials, starts ingest and
dispatch in this process, delivers the payloads of ``tests/fixtures/github-webhooks`` (an issue
labeled, a PR opened, a check suite completed on the same PR and head SHA (whose review is
already claimed), one redelivery, one bad signature, one event nothing listens to) through the
signed ingest path, waits for the runs and for the notifier to post their writes (ack comments,
the implementation's PR, the review), reads back what is on the stand-in, and checks each
outcome against what was expected (:mod:`gaffer.demo.expectations`), including that each pushed
branch is in the repository at the reported commit.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gaffer.demo import DEFAULT_FIXTURES
from gaffer.demo.engine import DemoModel
from gaffer.demo.expectations import check, reported_pushes
from gaffer.demo.on_github import (
    DEFAULT_BRANCH,
    REPOSITORY,
    DemoGitHub,
    read_back,
    start_demo_github,
    wait_for_outbox,
)
from gaffer.demo.repository import changed_files
from gaffer.engines import DEFAULT_CREDENTIALS
from gaffer.providers.github import delivery_headers
from gaffer.providers.github_api.credential_store import set_credentials
from gaffer.runtime import Runtime
from gaffer.server import Listening, serve
from gaffer.store.agents import set_agent
from gaffer.store.credentials import set_credential
from gaffer.store.models import Run, RunStatus
from gaffer.store.projects import create_project
from gaffer.triggers.github import default_agent_setups

PROJECT = "hello-world"
BOT_LOGIN = "gaffer-bot"
TRIGGER_LABEL = "bug"  # the label of the issues.labeled fixture


@dataclass(frozen=True)
class Delivery:
    """One delivery of the scenario and what it must produce."""

    label: str
    fixture: str
    event: str
    expect_decision: str
    expect_status: int
    expect_runs: int
    signing: str = "valid"  # valid | wrong-secret
    redelivery_of: str | None = None


SCENARIO: tuple[Delivery, ...] = (
    Delivery("issue labeled", "issues.labeled.json", "issues", "queued", 202, 1),
    Delivery("PR opened", "pull_request.opened.json", "pull_request", "queued", 202, 1),
    # Same PR and head SHA as the PR opened: the review is claimed already, exactly once.
    Delivery(
        "check suite, same PR+SHA", "check_suite.completed.json", "check_suite", "ignored", 202, 0
    ),
    Delivery(
        "redelivery",
        "issues.labeled.json",
        "issues",
        "duplicate",
        200,
        0,
        redelivery_of="issue labeled",
    ),
    Delivery(
        "bad signature",
        "pull_request.opened.json",
        "pull_request",
        "rejected",
        401,
        0,
        signing="wrong-secret",
    ),
    Delivery("nothing listens", "push.event.json", "push", "ignored", 202, 0),
)


@dataclass
class DeliveryOutcome:
    """What happened to one delivery, and to each run it created."""

    delivery: Delivery
    delivery_id: str
    status_code: int
    decision: str
    reason: str
    run_ids: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the delivery and its runs matched the expectation."""
        return not self.problems


@dataclass
class DemoReport:
    """The demo's result: one outcome per delivery; ``ok`` only if all are as expected."""

    home: Path
    url: str
    outcomes: list[DeliveryOutcome]
    elapsed_s: float
    engine: str = "command"
    model: str = ""
    github_url: str = ""
    repository: Path | None = None  # the stand-in's bare repository
    github_problems: list[str] = field(default_factory=list)  # calls the stand-in could not take

    @property
    def ok(self) -> bool:
        """True when every delivery and run matched its expectation and the stand-in saw no
        call it does not know."""
        return all(o.ok for o in self.outcomes) and not self.github_problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``gaffer demo --json``)."""
        return {
            "ok": self.ok,
            "home": str(self.home),
            "url": self.url,
            "engine": self.engine,
            "model": self.model,
            "elapsed_s": round(self.elapsed_s, 3),
            "github": {
                "url": self.github_url,
                "repository": str(self.repository) if self.repository else None,
                "problems": self.github_problems,
            },
            "deliveries": [
                {
                    "label": o.delivery.label,
                    "event": o.delivery.event,
                    "fixture": o.delivery.fixture,
                    "delivery_id": o.delivery_id,
                    "status_code": o.status_code,
                    "decision": o.decision,
                    "reason": o.reason,
                    "expected": {
                        "decision": o.delivery.expect_decision,
                        "status_code": o.delivery.expect_status,
                        "runs": o.delivery.expect_runs,
                    },
                    "runs": o.runs,
                    "ok": o.ok,
                    "problems": o.problems,
                }
                for o in self.outcomes
            ],
        }


ProgressCallback = Callable[[list[dict[str, Any]]], None]


def setup_project(
    rt: Runtime,
    github: DemoGitHub,
    engine: str = "command",
    model: DemoModel | None = None,
) -> str:
    """Create the project on the stand-in's repository with its App credentials (as
    ``gaffer github set-app --api-url`` stores them), its agents on ``engine``, calling
    ``model``; returns the webhook secret."""
    secret = secrets.token_hex(32)
    with rt.db.session() as session:
        project = create_project(
            session,
            rt.box,
            name=PROJECT,
            repository=REPOSITORY,
            clone_url=github.clone_url,
            base_branch=DEFAULT_BRANCH,
            webhook_secret=secret,
            bot_login=BOT_LOGIN,
            trigger_label=TRIGGER_LABEL,
            agents=default_agent_setups("command", {"command": "python -m gaffer.demo.agent"}),
        )
        set_credentials(
            session, rt.box, project.id, github.credentials(), api_url=github.hub.api_url
        )
        if engine != "command" and model is not None:
            credential = DEFAULT_CREDENTIALS.get(engine) or "OPENAI_API_KEY"
            set_credential(session, rt.box, project.id, credential, model.key)
            overrides = {"model": model.model, "base_url": model.base_url}
            for config in list(project.agents):
                if engine == "aider" and config.agent_type == "review":
                    continue  # aider has no tools to write a review file: the demo agent does
                set_agent(
                    session,
                    project,
                    config.agent_type,
                    engine=engine,
                    engine_settings={},
                    overrides={k: v for k, v in overrides.items() if v is not None},
                )
    return secret


async def run_demo(
    rt: Runtime,
    *,
    fixtures: Path = DEFAULT_FIXTURES,
    timeout_s: float = 180.0,
    on_progress: ProgressCallback | None = None,
    engine: str = "command",
    model: DemoModel | None = None,
) -> DemoReport:
    """Run the scenario on ``rt`` (a fresh data dir) and report; see the module docstring.

    Raises FileNotFoundError when a fixture is missing.
    """
    started = time.monotonic()
    for delivery in SCENARIO:
        if not (fixtures / delivery.fixture).is_file():
            raise FileNotFoundError(f"fixture {fixtures / delivery.fixture} not found")
    workdir = rt.settings.home / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    github = await asyncio.to_thread(start_demo_github, workdir / "github", fixtures)
    try:
        return await _run_on(rt, github, fixtures, timeout_s, on_progress, engine, model, started)
    finally:
        github.hub.stop()


async def _run_on(
    rt: Runtime,
    github: DemoGitHub,
    fixtures: Path,
    timeout_s: float,
    on_progress: ProgressCallback | None,
    engine: str,
    model: DemoModel | None,
    started: float,
) -> DemoReport:
    secret = await asyncio.to_thread(setup_project, rt, github, engine, model)
    stop = asyncio.Event()
    ready: asyncio.Future[Listening | None] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(rt, port=0, stop=stop, on_ready=lambda where: ready.set_result(where))
    )
    try:
        waiting: set[asyncio.Future[Any]] = {ready, server}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            await server
            raise RuntimeError("gaffer stopped during start-up")
        listening = ready.result()
        assert listening is not None
        deadline = time.monotonic() + timeout_s
        outcomes = await _deliver_all(listening.url, fixtures, secret, github.payload)
        await _wait_for_runs(rt, outcomes, timeout_s, on_progress)
        # The notifier (dispatch role) posts the runs' writes: wait for them to be sent.
        run_ids = [r for o in outcomes for r in o.run_ids]
        outbox = await wait_for_outbox(rt, run_ids, deadline)
    finally:
        stop.set()
        await server
    bare = github.git_dir
    for outcome in outcomes:
        for run in outcome.runs:
            run["outbox"] = outbox.get(run["id"], [])
            run["github"] = read_back(github, run)
    pushes = reported_pushes(outcomes)
    for outcome in outcomes:
        check(outcome, bare, pushes)
        for run in outcome.runs:
            if run.get("commit"):
                run["changed"] = changed_files(bare, run["commit"])
    return DemoReport(
        rt.settings.home,
        listening.url,
        outcomes,
        time.monotonic() - started,
        engine=engine,
        model=model.label if model is not None else "none (the command engine runs a script)",
        github_url=github.hub.api_url,
        repository=bare,
        github_problems=[
            f"the GitHub stand-in answered {v.method} {v.path} {v.status}: {v.errors}"
            for v in github.hub.violations
        ],
    )


async def _deliver_all(
    url: str, fixtures: Path, secret: str, payload: Callable[[bytes], bytes]
) -> list[DeliveryOutcome]:
    outcomes: list[DeliveryOutcome] = []
    by_label: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for delivery in SCENARIO:
            body = payload((fixtures / delivery.fixture).read_bytes())
            if delivery.redelivery_of:
                delivery_id = by_label[delivery.redelivery_of]
            else:
                delivery_id = str(uuid.uuid4())
            by_label[delivery.label] = delivery_id
            key = secret if delivery.signing == "valid" else secrets.token_hex(32)
            response = await client.post(
                f"{url}/webhooks/github",
                content=body,
                headers=delivery_headers(body, delivery.event, key, delivery_id),
            )
            answer = response.json()
            outcomes.append(
                DeliveryOutcome(
                    delivery=delivery,
                    delivery_id=delivery_id,
                    status_code=response.status_code,
                    decision=answer.get("decision", ""),
                    reason=answer.get("reason", ""),
                    run_ids=list(answer.get("runs") or []),
                )
            )
    return outcomes


def _run_dicts(rt: Runtime, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    with rt.db.session() as session:
        result = {}
        for run_id in run_ids:
            run = session.get(Run, run_id)
            if run is not None:
                result[run_id] = {
                    "id": run.id,
                    "agent_type": run.agent_type,
                    "work_item": run.work_item,
                    "status": str(run.status),
                    "branch": run.branch,
                    "commit": run.commit_sha,
                    "error": run.error,
                    "summary": run.summary,
                    "outputs": run.outputs or {},
                    "read_only": (run.job_data.get("agent") or {}).get("branch_mode")
                    == "read-only",
                }
        return result


async def _wait_for_runs(
    rt: Runtime,
    outcomes: list[DeliveryOutcome],
    timeout_s: float,
    on_progress: ProgressCallback | None,
) -> None:
    run_ids = [r for o in outcomes for r in o.run_ids]
    deadline = time.monotonic() + timeout_s
    while True:
        runs = await asyncio.to_thread(_run_dicts, rt, run_ids)
        if on_progress is not None:
            on_progress([runs[r] for r in run_ids if r in runs])
        finished = all(r in runs and RunStatus(runs[r]["status"]).terminal for r in run_ids)
        if finished or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    for outcome in outcomes:
        outcome.runs = [runs.get(r, {"id": r, "status": "MISSING"}) for r in outcome.run_ids]
