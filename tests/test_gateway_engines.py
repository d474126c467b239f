"""Every model call through gaffer, with the real CLIs (issue "Every model call through
gaffer"): each engine is started with the gateway as its base URL and a per-run token as its
key; the provider key reaches only the upstream (the scripted model server); the run's usage is
the upstream's exact figures, priced; a run over its cost budget is stopped FAILED."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaffer.gateway.usage import run_totals
from gaffer.store.models import GatewayCall, Run
from tests.conftest import GafferFactory
from tests.support.engine_runs import EngineSetup, engine_project
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.support.model_server import Edit, ModelServer, Shell, Usage
from tests.support.store import spend_this_month

PROVIDER_KEY = "sk-provider-" + uuid.uuid4().hex
ENGINES = {
    # engine: (model, credential, price per million input / output tokens in prices.yaml)
    "claude-code": ("claude-haiku-4-5", "ANTHROPIC_API_KEY", 1.00, 5.00),
    "codex": ("gpt-5-mini", "OPENAI_API_KEY", 0.25, 2.00),
    "opencode": ("gpt-5-mini", "OPENAI_API_KEY", 0.25, 2.00),
    "aider": ("gpt-5-mini", "OPENAI_API_KEY", 0.25, 2.00),
}
USAGE = Usage(input_tokens=1000, output_tokens=200)


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(engine: str) -> Iterator[ModelServer]:
    with ModelServer(model=ENGINES[engine][0]) as server:
        server.usage = USAGE
        yield server


def project_on(gaffer: Gaffer, engine: str, server: ModelServer) -> ProjectInfo:
    """A project whose implementation agent plays on ``engine`` with its model of
    :data:`ENGINES`, the provider key stored under its credential name."""
    model, credential, _, _ = ENGINES[engine]
    setup = EngineSetup(engine, model=model, credential=credential, key=PROVIDER_KEY)
    return engine_project(gaffer, server, setup)


def engine_environs(run_id: str) -> list[bytes]:
    """The environments of the run's processes that are not the worker itself (read from
    /proc: the engine and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"GAFFER_RUN_ID={run_id}".encode() in environ and b"gaffer.worker" not in cmdline:
            found.append(environ)
    return found


def test_each_engine_calls_through_the_gateway_and_never_holds_the_provider_key(
    start_gaffer: GafferFactory, engine: str, server: ModelServer
) -> None:
    gaffer = start_gaffer(keep_workspaces=True)
    project = project_on(gaffer, engine, server)
    plan = (
        [Edit("HELLO.md", "hello\n", then="Wrote HELLO.md.")]
        if engine == "aider"
        else [Shell("printf 'hello\\n' > HELLO.md", then="Wrote HELLO.md.")]
    )
    server.script(plan)
    server.stall(seconds=4, times=1)  # hold the first call: the engine is alive meanwhile
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    environs: list[bytes] = []
    deadline = time.monotonic() + 120
    while not environs and time.monotonic() < deadline:
        if server.requests:
            environs = engine_environs(run_id)
        time.sleep(0.1)
    assert environs, "the engine's process was never seen"
    for environ in environs:
        assert PROVIDER_KEY.encode() not in environ
    run = gaffer.wait_for(run_id, timeout=180)
    assert run["status"] == "SUCCEEDED", run["error"]
    # The upstream got the provider key on every call, from the gateway; never a run token.
    model_calls = server.model_requests
    assert model_calls
    for request in model_calls:
        sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        assert PROVIDER_KEY in sent
    # No file the engine's HOME holds (its config) has the provider key either.
    home = gaffer.settings.workspaces_dir / run_id / "scratch" / "home"
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert PROVIDER_KEY.encode() not in path.read_bytes(), path
    # Usage: a row per call with the upstream's exact figures, priced from the table.
    with gaffer.rt.db.session() as session:
        rows = session.query(GatewayCall).filter(GatewayCall.run_id == run_id).all()
        totals = run_totals(session, run_id)
    assert len(rows) == len(model_calls)
    assert {(r.input_tokens, r.output_tokens) for r in rows} == {(1000, 200)}
    _, _, price_in, price_out = ENGINES[engine]
    per_call_nano = round((1000 * price_in + 200 * price_out) * 1000)
    assert totals.cost_nano_usd == per_call_nano * len(rows)
    assert totals.calls == len(rows)


@pytest.fixture
def claude_server() -> Iterator[ModelServer]:
    with ModelServer(model=ENGINES["claude-code"][0]) as server:
        server.usage = USAGE
        yield server


def test_a_run_over_its_cost_budget_is_stopped_and_failed_with_the_reason(
    start_gaffer: GafferFactory, monkeypatch: pytest.MonkeyPatch, claude_server: ModelServer
) -> None:
    """One engine suffices: the budget is the gateway's, whatever the CLI."""
    monkeypatch.setenv("GAFFER_GATEWAY_MAX_RUN_COST_USD", "0.000001")
    gaffer = start_gaffer()
    project = project_on(gaffer, "claude-code", claude_server)
    claude_server.script([Shell("printf 'hello\\n' > HELLO.md", then="done")])
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id, timeout=180)
    assert run["status"] == "FAILED"
    assert run["error"].startswith("budget exceeded:"), run["error"]
    assert "per run" in run["error"]
    # Nothing reached the upstream: the call was refused before it was forwarded.
    assert claude_server.model_requests == []


def test_a_project_over_its_monthly_budget_starts_no_new_run(
    start_gaffer: GafferFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAFFER_GATEWAY_PROJECT_MONTHLY_USD", "1")
    gaffer = start_gaffer()
    project = gaffer.create_project(agents=["implementation"])
    # Earlier this month the project's calls cost $1.50.
    spend_this_month(gaffer.rt.db, project.id, 1_500_000_000)
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    assert response.status_code == 202
    answer = response.json()
    assert answer["decision"] == "ignored" and answer["runs"] == []
    assert "budget exceeded: $1.50 of $1.00 of the project's monthly budget" in answer["reason"]
    with gaffer.rt.db.session() as session:
        assert session.query(Run).filter(Run.project_id == project.id).count() == 1
