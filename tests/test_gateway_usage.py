"""``gaffer usage``: sums of the usage rows by model, agent or day, filtered by project and
time; run totals; the price table's matching and the operator's price file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gaffer.cli import context
from gaffer.cli.usage import parse_since, usage_command
from gaffer.gateway.pricing import PriceFileError, PriceTable
from gaffer.gateway.protocols import Usage
from gaffer.gateway.runs import RunInfo
from gaffer.gateway.usage import CallRecord, record_call, run_totals
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import Run, RunStatus
from gaffer.store.projects import create_project
from tests.conftest import MASTER_KEY


def _project(db: Database, name: str) -> str:
    with db.session() as session:
        project = create_project(
            session,
            SecretBox(MASTER_KEY.encode()),
            name=name,
            repository=f"o/{name}",
            clone_url="/x",
            webhook_secret="s",
            bot_login="b",
        )
        return project.id


def _run(db: Database, project_id: str, run_id: str, agent: str) -> RunInfo:
    with db.session() as session:
        session.add(
            Run(
                id=run_id,
                project_id=project_id,
                agent_type=agent,
                work_item="1",
                trigger="x",
                status=RunStatus.RUNNING,
                job_data={},
            )
        )
    return RunInfo(run_id, project_id, agent, RunStatus.RUNNING)


def _call(
    db: Database, run: RunInfo, model: str, tokens: tuple[int, int], cost: int | None, at: datetime
) -> None:
    record = CallRecord(run=run, api="anthropic", provider="anthropic", model=model, started_at=at)
    record.usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1])
    record.cost_nano_usd = cost
    record.status_code = 200
    record_call(db, record)


@pytest.fixture
def cli(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[Database, CliRunner, typer.Typer]:
    home = tmp_path / "home"
    monkeypatch.setenv("GAFFER_HOME", str(home))
    monkeypatch.setenv("GAFFER_MASTER_KEY", MASTER_KEY)
    if database_url:
        monkeypatch.setenv("DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    context.settings.cache_clear()
    db = Database(Settings(home=home, database_url=database_url, master_key=MASTER_KEY))
    migrate(db)
    app = typer.Typer()
    app.command()(usage_command)
    yield db, CliRunner(), app
    context.settings.cache_clear()
    db.dispose()


def test_usage_sums_by_model_agent_and_day(cli: tuple[Database, CliRunner, typer.Typer]) -> None:
    db, runner, app = cli
    now = datetime.now(UTC)
    alpha, beta = _project(db, "alpha"), _project(db, "beta")
    review = _run(db, alpha, "a" * 32, "review")
    impl = _run(db, alpha, "b" * 32, "implementation")
    other = _run(db, beta, "c" * 32, "review")
    _call(db, review, "claude-sonnet-4-5", (100, 10), 450_000, now)
    _call(db, review, "claude-sonnet-4-5", (200, 20), 900_000, now - timedelta(days=3))
    _call(db, impl, "gpt-5", (1000, 100), 2_250_000, now)
    _call(db, impl, "my-local-model", (5, 5), None, now)
    _call(db, other, "gpt-5", (1, 1), 11_250, now)

    result = runner.invoke(app, ["--project", "alpha", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total"]["calls"] == 4
    assert report["total"]["cost_usd"] == pytest.approx(0.0036)
    assert report["total"]["unpriced_calls"] == 1
    by_model = {g["key"]: g for g in report["groups"]}
    assert by_model["gpt-5"]["input_tokens"] == 1000  # beta's call is not counted
    assert by_model["claude-sonnet-4-5"]["calls"] == 2
    assert report["groups"][0]["key"] == "gpt-5", "largest cost first"

    result = runner.invoke(app, ["--by", "agent", "--since", "1d", "--json"])
    groups = {g["key"]: g for g in json.loads(result.output)["groups"]}
    assert groups["review"]["calls"] == 2  # alpha's recent one and beta's
    assert groups["implementation"]["tokens"] == 1110

    result = runner.invoke(app, ["--by", "day", "--json"])
    days = [g["key"] for g in json.loads(result.output)["groups"]]
    assert days == sorted({(now - timedelta(days=3)).date().isoformat(), now.date().isoformat()})

    table = runner.invoke(app, ["--project", "alpha"])
    assert table.exit_code == 0 and "claude-sonnet-4-5" in table.output and "total" in table.output

    with db.session() as session:
        totals = run_totals(session, "b" * 32)
    assert (totals.calls, totals.tokens, totals.cost_nano_usd, totals.unpriced) == (
        2,
        1110,
        2_250_000,
        1,
    )


def test_usage_refuses_bad_options(cli: tuple[Database, CliRunner, typer.Typer]) -> None:
    _, runner, app = cli
    result = runner.invoke(app, ["--by", "week"])
    assert result.exit_code != 0 and "one of model, agent, day" in str(result.exception)
    result = runner.invoke(app, ["--since", "yesterday"])
    assert "--since 'yesterday'" in str(result.exception)
    result = runner.invoke(app, ["--project", "nope"])
    assert "no project named 'nope'" in str(result.exception)


def test_since_accepts_days_dates_and_times() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T10:00:00+01:00").hour == 10


def test_prices_match_dated_names_and_the_operators_file_wins(tmp_path: Path) -> None:
    table = PriceTable.load()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost_nano_usd("claude-sonnet-4-5-20250929", usage) == 18 * 10**9
    assert table.cost_nano_usd("gpt-4o-mini-2024-07-18", usage) == 750_000_000
    assert table.cost_nano_usd("openai/gpt-4o", usage) == 12_500_000_000
    assert table.cost_nano_usd("qwen3-coder", usage) is None
    extra = tmp_path / "prices.yaml"
    extra.write_text(
        "models:\n  qwen3-coder: {input: 0.2, output: 0.8}\n  gpt-4o: {input: 1, output: 1}\n"
    )
    table = PriceTable.load(extra)
    assert table.cost_nano_usd("qwen3-coder", usage) == 1_000_000_000
    assert table.cost_nano_usd("gpt-4o", usage) == 2_000_000_000
    extra.write_text("models:\n  bad: {input: -1, output: 1}\n")
    with pytest.raises(PriceFileError, match=r"bad\.input"):
        PriceTable.load(extra)
    extra.write_text("models:\n  bad: {input: 1, outptu: 1}\n")
    with pytest.raises(PriceFileError, match="needs at least"):
        PriceTable.load(extra)
