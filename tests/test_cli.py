"""The CLI driven as a user drives it: real processes, real ``gaffer up``, real HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gaffer.demo.repository import create_bare_repository
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import utcnow
from gaffer.store.runs import append_logs
from tests.conftest import MASTER_KEY
from tests.support.harness import FIXTURES
from tests.support.process import GAFFER, GafferUp, gaffer, gaffer_env, gaffer_json
from tests.support.servers import PostgresServer
from tests.support.store import add_runs


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return gaffer_env(tmp_path / "home", REDIS_URL=redis_url, GAFFER_MASTER_KEY=MASTER_KEY)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return create_bare_repository(tmp_path)


@pytest.fixture
def up(env: dict[str, str]) -> Iterator[GafferUp]:
    server = GafferUp(env)
    yield server
    server.terminate()


def create(env: dict[str, str], bare: Path, command: str, name: str = "hello") -> dict[str, object]:
    return gaffer_json(  # type: ignore[no-any-return]
        "projects",
        "create",
        name,
        "--repo",
        "Codertocat/Hello-World",
        "--clone-url",
        str(bare),
        "--trigger-label",
        "bug",
        "--command",
        command,
        env=env,
    )


def send(
    env: dict[str, str], up: GafferUp, fixture: str, event: str, *extra: str
) -> dict[str, object]:
    proc = gaffer(
        "webhook",
        "send",
        str(FIXTURES / fixture),
        "--event",
        event,
        "--url",
        f"{up.url}/webhooks/github",
        "--json",
        *extra,
        env=env,
        check=False,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_projects_create_list_show(env: dict[str, str], bare: Path) -> None:
    created = create(env, bare, "true")
    assert created["name"] == "hello"
    assert len(str(created["webhook_secret"])) == 64
    listed = gaffer_json("projects", "list", env=env)
    assert [p["name"] for p in listed] == ["hello"]
    assert "webhook_secret" not in listed[0]
    shown = gaffer_json("projects", "show", "hello", env=env)
    agents = {a["agent_type"]: a["events"] for a in shown["agents"]}
    assert agents["implementation"] == ["issue_comment.created", "issues.labeled"]
    assert agents["review"] == [
        "check_suite.completed",
        "pull_request.opened",
        "pull_request.review_requested",
    ]
    human = gaffer("projects", "show", "hello", env=env).stdout
    assert "Codertocat/Hello-World" in human


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["projects", "show", "nope"], "no project named 'nope'"),
        (["runs", "show", "ffffffff"], "no run 'ffffffff'"),
        (
            [
                "projects",
                "create",
                "x",
                "--repo",
                "norepo",
                "--clone-url",
                "/x",
                "--command",
                "true",
            ],
            "repository must look like owner/repo",
        ),
        (
            ["projects", "create", "x", "--repo", "a/b", "--clone-url", "/x"],
            "the command engine needs --command",
        ),
        (
            [
                "projects",
                "create",
                "x",
                "--repo",
                "a/b",
                "--clone-url",
                "/x",
                "--command",
                "true",
                "--agent",
                "wizard",
            ],
            "unknown agent type(s): wizard",
        ),
        (["runs", "list", "--status", "DONE"], "unknown status(es): DONE (known: QUEUED,"),
        (["runs", "list", "--project", "nope"], "no project named 'nope'"),
        (["runs", "show", "abc"], "an id prefix needs at least 4 characters"),
        (
            ["projects", "create", "x", "--repo", "a/b", "--clone-url", "/x", "--engine", "claude"],
            "unknown engine 'claude' (known: aider, claude-code, codex, command, opencode)",
        ),
    ],
)
def test_user_errors_are_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    proc = gaffer(*args, env=env, check=False)
    assert proc.returncode == 1
    assert message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"GAFFER_MAX_WORKERS": "abc"}, "invalid settings: GAFFER_MAX_WORKERS: Input should be"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL: unsupported database"),
        (
            {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"},
            "the database cannot be used: connection failed",
        ),
        ({"REDIS_URL": "redis://127.0.0.1:1"}, "Redis cannot be reached: Error 111 connecting"),
    ],
)
def test_a_set_up_problem_is_one_line_naming_what_to_fix(
    env: dict[str, str], setting: dict[str, str], message: str
) -> None:
    proc = gaffer("runs", "cancel", "abcd", env={**env, **setting}, check=False)
    assert proc.returncode == 1
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_manual_run_whose_job_redis_refuses_is_said_to_be_recorded(
    env: dict[str, str], bare: Path, tmp_path: Path
) -> None:
    """The row is written, the job add fails: the user learns the run exists and will be
    queued by a dispatcher's repair, not a traceback that suggests nothing happened."""
    create(env, bare, "true")
    down = {**env, "REDIS_URL": f"unix://{tmp_path / 'no-redis.sock'}"}
    proc = gaffer(
        "runs", "start", "--project", "hello", "--agent", "implementation", "--work-item", "3",
        env=down, check=False,
    )  # fmt: skip
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stderr
    assert "is recorded (QUEUED), but Redis did not take its job" in said, said
    assert "Traceback" not in proc.stderr
    [run] = gaffer_json("runs", "list", env=env)
    assert run["status"] == "QUEUED" and run["id"] in said
    # Its log is empty, and says so.
    empty = gaffer("runs", "logs", run["id"], env=env)
    assert (empty.stdout, empty.stderr.strip()) == ("", "(no log lines; the run is QUEUED)")


def test_duplicate_project_name(env: dict[str, str], bare: Path) -> None:
    create(env, bare, "true")
    proc = gaffer(
        "projects",
        "create",
        "hello",
        "--repo",
        "a/b",
        "--clone-url",
        "/x",
        "--command",
        "true",
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "a project named 'hello' already exists" in proc.stderr


def test_webhook_send_then_runs_list_show_logs(
    env: dict[str, str], bare: Path, up: GafferUp
) -> None:
    create(env, bare, "echo working; echo done > DONE.txt")
    answer = send(env, up, "issues.labeled.json", "issues")
    assert answer["status_code"] == 202 and answer["decision"] == "queued"
    [run_id] = answer["runs"]  # type: ignore[misc]

    # logs --follow tails the run until it ends.
    follow = gaffer("runs", "logs", run_id[:8], "--follow", env=env, timeout=120)
    assert "engine  working" in follow.stdout
    assert "branch_pushed branch=gaffer/implementation/1" in follow.stdout

    shown = gaffer_json("runs", "show", run_id, env=env)
    assert shown["status"] == "SUCCEEDED" and shown["branch"] == "gaffer/implementation/1"
    listed = gaffer_json("runs", "list", "--project", "hello", env=env)
    assert [r["id"] for r in listed] == [run_id]
    assert gaffer_json("runs", "list", "--status", "FAILED", env=env) == []
    lines = gaffer("runs", "logs", run_id, "--json", env=env).stdout.splitlines()
    assert lines and all(line.startswith("{") for line in lines)

    # Redelivery and unsigned, through the same command.
    again = send(env, up, "issues.labeled.json", "issues", "--delivery-id", answer["delivery_id"])  # type: ignore[arg-type]
    assert (again["status_code"], again["decision"]) == (200, "duplicate")
    unsigned = send(env, up, "issues.labeled.json", "issues", "--unsigned")
    assert unsigned["status_code"] == 401
    decisions = [d["decision"] for d in gaffer_json("deliveries", "list", env=env)]
    assert decisions == ["rejected", "duplicate", "queued"]
    # The shortened id a listing shows finds the delivery and its redelivery.
    prefix = str(answer["delivery_id"])[:12]
    found = gaffer_json("deliveries", "list", "--delivery-id", prefix, env=env)
    assert [d["decision"] for d in found] == ["duplicate", "queued"]


def test_runs_cancel_stops_a_running_run(env: dict[str, str], bare: Path, up: GafferUp) -> None:
    create(env, bare, "sleep 3600")
    [run_id] = send(env, up, "issues.labeled.json", "issues")["runs"]  # type: ignore[misc]
    deadline = time.monotonic() + 60
    while gaffer_json("runs", "show", run_id, env=env)["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = gaffer_json("runs", "cancel", run_id, env=env)
    assert result["status"] == "CANCELED"
    assert gaffer_json("runs", "show", run_id, env=env)["error"] == "canceled while running"


def test_up_stops_cleanly_on_sigterm(env: dict[str, str]) -> None:
    server = GafferUp(env)
    assert server.terminate() == 0


def test_webhook_send_to_nothing_is_a_clear_error(env: dict[str, str], bare: Path) -> None:
    create(env, bare, "true")
    proc = gaffer(
        "webhook",
        "send",
        str(FIXTURES / "push.event.json"),
        "--event",
        "push",
        "--url",
        "http://127.0.0.1:9/webhooks/github",
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "could not reach" in proc.stderr


def test_keygen_prints_a_usable_key(env: dict[str, str], tmp_path: Path, bare: Path) -> None:
    key = gaffer("keygen", env=env).stdout.strip()
    other = dict(env, GAFFER_MASTER_KEY=key, GAFFER_HOME=str(tmp_path / "other"))
    create(other, bare, "true")
    wrong = dict(other, GAFFER_MASTER_KEY=MASTER_KEY)
    proc = gaffer(
        "webhook",
        "send",
        str(FIXTURES / "push.event.json"),
        "--event",
        "push",
        env=wrong,
        check=False,
    )
    assert proc.returncode == 1
    assert "does not decrypt with this master key" in proc.stderr


def test_logs_follow_prints_the_batch_committed_with_the_final_status(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A dispatcher commits a run's last log lines and its final status together. A follower
    that reads the logs, and then the status, in between prints nothing more and stops: the
    last lines are lost. Here the commit is held (a lock on ``runs``) until the follower is
    blocked reading in between."""
    url = postgres_server.create_database()
    home = tmp_path / "home"
    db = Database(Settings(home=home, database_url=url, master_key=MASTER_KEY))
    migrate(db)
    run_id = "f" * 32
    add_runs(db, run_id)
    with db.session() as session:
        append_logs(session, run_id, [("engine", "the first line", utcnow())])

    env = gaffer_env(home, DATABASE_URL=url, GAFFER_MASTER_KEY=MASTER_KEY)
    follower = subprocess.Popen(
        [GAFFER, "runs", "logs", run_id, "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert "the first line" in follower.stdout.readline()
        with db.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            conn.execute(
                text(
                    "INSERT INTO run_logs (run_id, ts, stream, message) "
                    "VALUES (:run_id, :ts, 'engine', 'the last line')"
                ),
                {"run_id": run_id, "ts": utcnow()},
            )
            conn.execute(
                text("UPDATE runs SET status = 'SUCCEEDED', finished_at = :ts WHERE id = :id"),
                {"ts": utcnow(), "id": run_id},
            )
            _wait_until_blocked(db, follower)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert "the last line" in out


def _wait_until_blocked(db: Database, follower: subprocess.Popen[str]) -> None:
    """Wait until a session of this database waits for a lock (the follower's read)."""
    deadline = time.monotonic() + 30
    while True:
        with db.engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        if waiting:
            return
        assert follower.poll() is None, "the follower stopped"
        assert time.monotonic() < deadline, "the follower never read the runs table"
        time.sleep(0.05)
