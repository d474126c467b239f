"""The account commands, and remote mode: the same commands through a running ``gaffer up``'s
API, printing what local mode prints."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest

from gaffer.cli import context, remote
from gaffer.cli.main import main
from gaffer.demo.repository import create_bare_repository
from tests.conftest import MASTER_KEY
from tests.support.harness import FIXTURES
from tests.support.process import GafferUp, gaffer, gaffer_env

PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return gaffer_env(
        tmp_path / "home",
        REDIS_URL=redis_url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        GAFFER_CONFIG_DIR=str(tmp_path / "config"),
    )


@dataclass
class Result:
    """What one command did: exit code, standard output and standard error."""

    returncode: int
    stdout: str
    stderr: str


class Cli:
    """Runs the real ``gaffer`` entry point (:func:`gaffer.cli.main.main`) in this process,
    with a given environment and standard input: each command costs no interpreter start (the
    machine is shared), and everything else is as in a ``gaffer`` process."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd

    def __call__(
        self, *args: str, env: Mapping[str, str], stdin: str = "", check: bool = True
    ) -> Result:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        context.settings.cache_clear()
        remote.client.cache_clear()
        self.capfd.readouterr()
        code = 0
        try:
            with (
                patch.object(sys, "argv", ["gaffer", *args]),
                patch.object(sys, "stdin", io.StringIO(stdin)),
            ):
                main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os.environ.clear()
            os.environ.update(saved)
            context.settings.cache_clear()
            remote.client.cache_clear()
        out, err = self.capfd.readouterr()
        result = Result(code, out, err)
        if check:
            assert code == 0, f"gaffer {' '.join(args)} exited {code}:\n{out}\n{err}"
        return result

    def json(self, *args: str, env: Mapping[str, str], stdin: str = "") -> Any:
        """Run ``args... --json`` and parse its output."""
        return json.loads(self(*args, "--json", env=env, stdin=stdin).stdout)


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capfd)


def test_users_tokens_and_audit_in_local_mode(cli: Cli, env: dict[str, str]) -> None:
    root = cli("users", "create", "root@x.test", "--superadmin", stdin=PASSWORD, env=env)
    assert root.stdout.startswith("created user root@x.test (") and "superadmin" in root.stdout
    ann = cli.json(
        "users", "create", "Ann@X.test", "--name", "Ann", "--org", "acme",
        stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert ann["email"] == "ann@x.test" and [m["role"] for m in ann["memberships"]] == ["member"]
    short = cli("users", "create", "bob@x.test", stdin="short", env=env, check=False)
    assert short.returncode == 1
    assert short.stderr.strip() == "error: the password must have at least 12 characters"
    dup = cli("users", "create", "ann@x.test", stdin=PASSWORD, env=env, check=False)
    assert dup.stderr.strip() == "error: a user with email 'ann@x.test' already exists"
    assert [u["email"] for u in cli.json("users", "list", env=env)] == [
        "ann@x.test",
        "root@x.test",
    ]
    admin = cli.json("users", "set-role", "ann@x.test", "admin", "--org", "acme", env=env)
    assert [m["role"] for m in admin["memberships"]] == ["admin"]

    made = cli.json("tokens", "create", "--user", "ann@x.test", "--name", "ci", env=env)
    assert made["token"].startswith("gfr_") and made["role"] == "member"
    listed = cli("tokens", "list", env=env).stdout + json.dumps(cli.json("tokens", "list", env=env))
    assert made["prefix"] in listed and made["token"] not in listed
    too_high = cli(
        "tokens", "create", "--user", "ann@x.test", "--name", "x", "--role", "superadmin",
        env=env, check=False,
    )  # fmt: skip
    assert "cannot be above the owner's role (admin)" in too_high.stderr
    cli("tokens", "revoke", made["prefix"], env=env)
    [state] = cli.json("tokens", "list", env=env)
    assert state["revoked_at"] is not None
    cli("users", "disable", "ann@x.test", env=env)

    rows = cli.json("audit", "list", env=env)
    assert [r["action"] for r in rows] == [
        "user.disable",
        "token.revoke",
        "token.create",
        "user.set_role",
        "user.create",
        "user.create",
    ]
    assert {(r["actor"], r["via"], r["actor_type"]) for r in rows} == {("local", "cli", "local")}
    everything = json.dumps(rows) + cli("audit", "list", env=env).stdout
    assert PASSWORD not in everything and made["token"] not in everything
    users_only = cli.json("audit", "list", "--action", "user.", "--limit", "2", env=env)
    assert [r["action"] for r in users_only] == ["user.disable", "user.set_role"]


@pytest.fixture
def up(env: dict[str, str]) -> Iterator[GafferUp]:
    server = GafferUp(env)
    yield server
    server.terminate()


def test_remote_mode_prints_what_local_mode_prints(
    cli: Cli, env: dict[str, str], tmp_path: Path, up: GafferUp
) -> None:
    # The first start of the embedded default made a superadmin and printed its password once.
    log = (Path(env["GAFFER_HOME"]) / "up.log").read_text()
    [line] = [line for line in log.splitlines() if "first superadmin created" in line]
    password = line.split("password (shown once): ")[1].strip()
    first = httpx.post(
        f"{up.url}/api/v1/auth/login", json={"email": "admin@localhost", "password": password}
    )
    assert first.status_code == 200 and first.json()["superadmin"] is True
    bare = create_bare_repository(tmp_path)
    cli(
        "projects", "create", "hello", "--repo", "Codertocat/Hello-World", "--clone-url",
        str(bare), "--trigger-label", "bug", "--command", "echo working; echo done > DONE.txt",
        env=env,
    )  # fmt: skip
    sent = cli.json(
        "webhook", "send", str(FIXTURES / "issues.labeled.json"), "--event", "issues",
        "--url", f"{up.url}/webhooks/github", env=env,
    )  # fmt: skip
    [run_id] = sent["runs"]
    cli("runs", "logs", run_id, "--follow", env=env)
    cli("users", "create", "root@x.test", "--superadmin", stdin=PASSWORD, env=env)
    cli(
        "users", "create", "eve@x.test", "--org", "elsewhere", "--role", "admin",
        stdin=PASSWORD, env=env,
    )  # fmt: skip
    token = cli.json(
        "tokens", "create", "--user", "root@x.test", "--name", "t", "--role", "superadmin",
        env=env,
    )["token"]  # fmt: skip
    remote_env = env | {"GAFFER_SERVER": up.url, "GAFFER_TOKEN": token}

    commands = [
        ["projects", "list"],
        ["projects", "show", "hello"],
        ["runs", "list"],
        ["runs", "list", "--project", "hello", "--status", "SUCCEEDED"],
        ["runs", "show", run_id[:8]],
        ["runs", "logs", run_id],
        ["runs", "logs", run_id, "--follow"],
        ["deliveries", "list"],
        ["runs", "cancel", run_id],
    ]
    for command in commands:
        for extra in ([], ["--json"]):
            local = cli(*command, *extra, env=env)
            there = cli(*command, *extra, env=remote_env)
            assert (there.stdout, there.stderr) == (local.stdout, local.stderr), command + extra
            assert local.stdout
    for command in (["projects", "show", "nope"], ["runs", "show", "ffffffff"]):
        local = cli(*command, env=env, check=False)
        there = cli(*command, env=remote_env, check=False)
        assert (there.returncode, there.stderr) == (local.returncode, local.stderr)
        assert there.returncode == 1 and there.stderr.startswith("error: no ")
    # One real process, to be sure the entry point takes the same road.
    assert gaffer("projects", "list", "--json", env=remote_env).stdout == (
        gaffer("projects", "list", "--json", env=env).stdout
    )

    # Writes in remote mode: a project and a manual run, seen by local mode.
    created = cli.json(
        "projects", "create", "hello2", "--repo", "o/r", "--clone-url", str(bare),
        "--command", "true", "--agent", "implementation", env=remote_env,
    )  # fmt: skip
    assert len(created.pop("webhook_secret")) == 64
    assert cli.json("projects", "show", "hello2", env=env) == created
    human = cli("projects", "create", "hello3", "--repo", "o/r", "--clone-url", "/x",
                "--command", "true", env=remote_env).stdout  # fmt: skip
    assert human.startswith("created project hello3 (") and "webhook secret (shown once): " in human
    started = cli.json(
        "runs", "start", "--project", "hello2", "--agent", "implementation", "--work-item", "9",
        env=remote_env,
    )  # fmt: skip
    assert started["skipped"] is None and started["buffered"] is False
    [new_run] = started["runs"]
    assert cli.json("runs", "show", new_run, env=env)["work_item"] == "9"
    refused = cli(
        "runs", "start", "--project", "hello2", "--agent", "review", "--work-item", "1",
        env=remote_env, check=False,
    )  # fmt: skip
    local_refused = cli(
        "runs", "start", "--project", "hello2", "--agent", "review", "--work-item", "1",
        env=env, check=False,
    )  # fmt: skip
    assert refused.stderr == local_refused.stderr != ""

    # Another organization's admin sees none of it, and cannot cancel it.
    eve = cli("login", "--server", up.url, "--email", "eve@x.test", stdin=PASSWORD, env=env)
    assert eve.stdout.strip() == f"logged in to {up.url} as eve@x.test"
    stored = tmp_path / "config" / "remote.json"
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert cli.json("projects", "list", env=env) == []
    assert cli.json("runs", "list", env=env) == []
    assert cli.json("deliveries", "list", env=env) == []
    refused = cli("runs", "cancel", run_id, env=env, check=False)
    assert refused.stderr.strip() == f"error: no run {run_id!r}"
    assert cli("logout", env=env).stdout.startswith("logged out of")
    assert not stored.exists()
    # Local mode again: eve's CLI token was revoked by the logout.
    [eves] = [t for t in cli.json("tokens", "list", env=env) if t["owner"] == "eve@x.test"]
    assert eves["revoked_at"] is not None and eves["role"] == "admin"
    # Writes of both modes are in the audit log, with who made them and how.
    rows = cli.json("audit", "list", "--limit", "200", env=env)
    made = {(r["action"], r["actor"], r["via"]) for r in rows}
    assert {
        ("project.create", "local", "cli"),
        ("run.cancel", "local", "cli"),
        ("run.cancel", "root@x.test", "api"),
        ("project.create", "root@x.test", "api"),
        ("run.start", "root@x.test", "api"),
        ("session.login", "eve@x.test", "api"),
        ("token.create", "eve@x.test", "api"),
        ("token.revoke", "eve@x.test", "api"),
    } <= made
    _agents_credentials_github_and_usage_print_alike(cli, env, remote_env, tmp_path)


def _agents_credentials_github_and_usage_print_alike(
    cli: Cli, env: dict[str, str], remote_env: dict[str, str], tmp_path: Path
) -> None:
    """``agents``, ``credentials``, ``github`` and ``usage`` print the same in both modes
    (each command runs locally, then remotely: writes are idempotent here), refuse the same
    bad input alike, are audited, and no secret reaches an output, the audit log or up.log."""
    key = f"sk-ant-{os.urandom(16).hex()}"
    token = f"ghp_{os.urandom(12).hex()}"
    key_line = os.urandom(16).hex()
    good = tmp_path / "task.j2"
    good.write_text("Implement {{ title }} carefully.")
    bad = tmp_path / "bad.j2"
    bad.write_text("Fix PR {{ pr_number }}")
    pem = tmp_path / "app.pem"
    pem.write_text(f"-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----\n")
    on = ["--project", "hello"]
    impl = [*on, "--agent", "implementation"]
    printed: list[str] = []

    def alike(*command: str, stdin: str = "", json_too: bool = True) -> None:
        for extra in ([["--json"]] if json_too else []) + [[]]:
            local = cli(*command, *extra, env=env, stdin=stdin)
            there = cli(*command, *extra, env=remote_env, stdin=stdin)
            assert (there.stdout, there.stderr) == (local.stdout, local.stderr), command
            assert local.stdout
            printed.append(local.stdout + local.stderr)

    def refused_alike(*command: str, stdin: str = "") -> str:
        local = cli(*command, env=env, stdin=stdin, check=False)
        there = cli(*command, env=remote_env, stdin=stdin, check=False)
        assert (there.returncode, there.stdout, there.stderr) == (1, "", local.stderr), command
        assert local.returncode == 1 and local.stderr.startswith("error: ")
        return local.stderr

    alike("agents", "list", *on)
    alike("agents", "set", *impl, "--model", "m-1", "--max-turns", "5",
          "--task-prompt-file", str(good), "--credential", "ANTHROPIC_API_KEY")  # fmt: skip
    alike("agents", "show", *impl)
    alike("agents", "reset", *impl, "--field", "model")
    assert "task_prompt: uses 'pr_number'" in refused_alike(
        "agents", "set", *impl, "--task-prompt-file", str(bad)
    )
    refused_alike("agents", "set", *impl, "--engine", "nope")
    refused_alike("agents", "show", *on, "--agent", "nope")
    refused_alike("agents", "reset", *impl, "--field", "bogus")
    refused_alike("agents", "list", "--project", "nope")

    alike("credentials", "set", "ANTHROPIC_API_KEY", *on, stdin=key + "\n")
    alike("credentials", "list", *on)
    refused_alike("credentials", "set", "ANTHROPIC_API_KEY", *on, stdin=" ")
    refused_alike("credentials", "set", "1BAD", *on, stdin=key)
    deleted = [cli("credentials", "delete", "ANTHROPIC_API_KEY", *on, env=env).stdout]
    cli("credentials", "set", "ANTHROPIC_API_KEY", *on, stdin=key, env=env)
    deleted.append(cli("credentials", "delete", "ANTHROPIC_API_KEY", *on, env=remote_env).stdout)
    assert deleted == ["ANTHROPIC_API_KEY deleted from hello\n"] * 2
    refused_alike("credentials", "delete", "ANTHROPIC_API_KEY", *on)

    assert "has no GitHub credentials" in refused_alike("github", "show", *on)
    alike("github", "set-token", *on, "--login", "hello-bot", stdin=token, json_too=False)
    alike("github", "show", *on)
    refused_alike("github", "set-token", *on, stdin="a b")
    refused_alike("github", "set-token", *on, "--api-url", "ftp://x", stdin=token)
    alike("github", "set-app", *on, "--app-id", "7", "--private-key-file", str(pem),
          json_too=False)  # fmt: skip
    alike("github", "show", *on)
    refused_alike("github", "set-app", *on, "--app-id", "0", "--private-key-file", str(pem))

    alike("usage")
    alike("usage", *on, "--by", "agent", "--since", "2026-01-01")
    alike("usage", "--by", "day")
    refused_alike("usage", "--project", "nope")
    refused_alike("usage", "--by", "week")

    rows = cli.json("audit", "list", "--limit", "500", env=env)
    made = [(r["action"], r["via"]) for r in rows]
    for action, times in (
        ("agent.set", 4),
        ("agent.reset", 4),
        ("credential.set", 5),
        ("credential.delete", 2),
        ("github_credentials.set", 4),
    ):
        assert made.count((action, "cli")) + made.count((action, "api")) == times, action
        assert (action, "api") in made and (action, "cli") in made
    log = (Path(env["GAFFER_HOME"]) / "up.log").read_text()
    for secret in (key, token, key_line):
        assert secret not in json.dumps(rows) + log + "".join(printed)
