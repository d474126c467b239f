"""The outbox and its notifier against the fake GitHub: written with the run state, sent in
order, delivered after an outage, never twice (even after a crash before the record)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import update

from gaffer.providers.github_api import GitHubClient, TokenCredentials
from gaffer.providers.github_api.credential_store import (
    load_credentials,
    masked,
    record_installation_id,
    set_credentials,
)
from gaffer.providers.github_api.credentials import AppCredentials
from gaffer.providers.github_api.notifier import Notifier, NotifierConfig
from gaffer.providers.github_api.outbox_kinds import send_entry
from gaffer.providers.github_api.senders.ack import AckStatus
from gaffer.settings import Settings
from gaffer.store import outbox
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import OutboxEntry, OutboxStatus, Run, RunStatus, utcnow
from gaffer.store.projects import create_project
from gaffer.store.runs import transition
from tests.support.fake_github.fixtures import FAST_RETRY, GitHubWorld, fake_github, github_world
from tests.support.store import add_runs

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]

RUN = "r" * 32
FAST = NotifierConfig(base_backoff_s=0.05, max_backoff_s=0.2, max_attempts=5, poll_s=0.05)


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Database:
    database = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(database)
    return database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = Database(Settings(home=tmp_path, database_url=None, master_key=None))
    migrate(database)
    return database


def _entries(db: Database) -> list[OutboxEntry]:
    with db.session() as session:
        return list(outbox.entries_for_run(session, RUN))


def test_an_entry_is_written_only_with_the_run_state_it_follows_from(db: Database) -> None:
    project_id = add_runs(db, RUN, status=RunStatus.RUNNING)
    with pytest.raises(RuntimeError), db.session() as session:
        transition(session, RUN, from_statuses=[RunStatus.RUNNING], to_status=RunStatus.SUCCEEDED)
        outbox.enqueue(
            session,
            run_id=RUN,
            project_id=project_id,
            kind="notice",
            payload={"number": 1, "body": "done"},
        )
        raise RuntimeError("the transaction fails")
    assert _entries(db) == []
    with db.session() as session:
        transition(session, RUN, from_statuses=[RunStatus.RUNNING], to_status=RunStatus.SUCCEEDED)
        outbox.enqueue(
            session,
            run_id=RUN,
            project_id=project_id,
            kind="notice",
            payload={"number": 1, "body": "done"},
        )
    (entry,) = _entries(db)
    assert entry.status == OutboxStatus.PENDING


def test_claims_are_compare_and_set_and_runs_are_sent_in_order(db: Database) -> None:
    project_id = add_runs(db, RUN)
    with db.session() as session:
        first = outbox.enqueue(
            session, run_id=RUN, project_id=project_id, kind="ack", payload={}
        ).id
        second = outbox.enqueue(
            session, run_id=RUN, project_id=project_id, kind="notice", payload={}
        ).id
        for text in ("a", "b", "c"):
            outbox.enqueue(
                session,
                run_id=RUN,
                project_id=project_id,
                kind="ack_update",
                payload={"t": text},
                coalesce_key="ack",
            )
    now = utcnow()
    with db.session() as session:
        assert outbox.due_ids(session, now) == [first]  # later ones wait for the first
        assert outbox.claim(session, first, now, 60) is not None
        assert outbox.claim(session, first, now, 60) is None  # taken
        assert outbox.due_ids(session, now) == []
        # its sender died: the lease lapses and another notifier takes it over
        assert outbox.claim(session, first, now + timedelta(seconds=61), 60) is not None
        outbox.mark_sent(session, first, {"id": 1})
        assert outbox.due_ids(session, now) == [second]
    statuses = [(e.kind, e.status, e.payload) for e in _entries(db)][2:]
    assert [s for _, s, _ in statuses] == [
        OutboxStatus.SUPERSEDED,
        OutboxStatus.SUPERSEDED,
        OutboxStatus.PENDING,
    ]


def _client_factory(world: GitHubWorld):  # type: ignore[no-untyped-def]
    async def make(entry: OutboxEntry) -> GitHubClient:
        return world.client("new")

    return make


async def test_notifier_delivers_a_runs_writes_in_order_with_the_pr_link(
    github_world: GitHubWorld, sqlite_db: Database, tmp_path: Path
) -> None:
    from tests.support.fake_github.gitops import push_files

    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    token = await github_world.client("new").token()
    push_files(fake.web_url, repo.full_name, token, tmp_path / "w", "main", {"a": "1\n"})
    sha = push_files(
        fake.web_url,
        repo.full_name,
        token,
        tmp_path / "w",
        "gaffer/implementation/1",
        {"a": "2\n"},
        base="main",
    )
    project_id = add_runs(sqlite_db, RUN)
    status = AckStatus(run_id=RUN, agent="implementation", state="queued")
    with sqlite_db.session() as s:
        for kind, payload in [
            ("ack", {"number": issue.number, "status": status.model_dump()}),
            ("check_run_start", {"head_sha": sha, "agent": "implementation"}),
            (
                "pull_request",
                {
                    "head": "gaffer/implementation/1",
                    "base": "main",
                    "title": "Fix",
                    "body": f"Closes #{issue.number}",
                },
            ),
            (
                "check_run_complete",
                {
                    "head_sha": sha,
                    "agent": "implementation",
                    "conclusion": "success",
                    "title": "Done",
                    "summary": "ok",
                },
            ),
        ]:
            outbox.enqueue(s, run_id=RUN, project_id=project_id, kind=kind, payload=payload)
        final = status.model_copy(update={"state": "succeeded"})
        outbox.enqueue(
            s,
            run_id=RUN,
            project_id=project_id,
            kind="ack_update",
            payload={"number": issue.number, "status": final.model_dump()},
            coalesce_key="ack",
        )
    notifier = Notifier(sqlite_db, _client_factory(github_world), FAST)
    assert await notifier.send_due() == 5
    assert all(e.status == OutboxStatus.SENT for e in _entries(sqlite_db))
    (comment,) = repo.comments.values()
    (pull,) = repo.pulls.values()
    assert "Done" in comment.body and f"/pull/{pull.number}" in comment.body
    (check,) = repo.check_runs.values()
    assert check.status == "completed" and check.conclusion == "success"
    shown = {e.kind: e.result for e in _entries(sqlite_db)}
    assert shown["pull_request"] is not None and shown["pull_request"]["url"].endswith(
        f"/pull/{pull.number}"
    )


async def test_github_down_for_the_whole_run_delays_every_write_and_loses_none(
    github_world: GitHubWorld, sqlite_db: Database
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    await github_world.client("new").token()  # the token was minted before the outage
    project_id = add_runs(sqlite_db, RUN)
    with sqlite_db.session() as s:
        for i in range(3):
            outbox.enqueue(
                s,
                run_id=RUN,
                project_id=project_id,
                kind="notice",
                payload={"number": issue.number, "body": f"note {i}", "marker_kind": f"note-{i}"},
            )
    fake.fail_for(3600, 503)
    notifier = Notifier(sqlite_db, _client_factory(github_world), FAST)
    for _ in range(100):  # passes until the first entry was tried 3 times (backoff between)
        assert await notifier.send_due() == 0
        if _entries(sqlite_db)[0].attempts >= 3:
            break
        await asyncio.sleep(0.05)
    (first, *rest) = _entries(sqlite_db)
    assert first.status == OutboxStatus.PENDING and first.attempts == 3
    assert first.last_error is not None and "503" in first.last_error
    assert all(e.attempts == 0 for e in rest)  # in order: the later ones wait
    fake.faults.clear()  # GitHub is back
    with sqlite_db.session() as s:  # due now rather than after the backoff
        s.execute(update(OutboxEntry).values(next_attempt_at=utcnow()))
    assert await notifier.send_due() == 3
    assert sorted(c.body.split("\n")[0] for c in repo.comments.values()) == [
        "note 0",
        "note 1",
        "note 2",
    ]


async def test_a_crash_between_the_write_and_its_record_does_not_post_twice(
    github_world: GitHubWorld, sqlite_db: Database
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    project_id = add_runs(sqlite_db, RUN)
    payload = {
        "number": issue.number,
        "status": AckStatus(run_id=RUN, agent="implementation", state="queued").model_dump(),
    }
    with sqlite_db.session() as s:
        entry_id = outbox.enqueue(
            s, run_id=RUN, project_id=project_id, kind="ack", payload=payload
        ).id
        assert outbox.claim(s, entry_id, utcnow(), lease_s=60) is not None
        s.execute(update(OutboxEntry).values(lease_until=utcnow() - timedelta(seconds=1)))
    # The crashed dispatcher had made the write; GitHub has the comment, gaffer no record.
    await send_entry(github_world.client(), RUN, "ack", payload, {})
    assert len(repo.comments) == 1
    notifier = Notifier(sqlite_db, _client_factory(github_world), FAST)
    assert await notifier.send_due() == 1  # taken over after the lease lapsed
    assert len(repo.comments) == 1 and len(repo.reactions) == 1
    (entry,) = _entries(sqlite_db)
    assert entry.status == OutboxStatus.SENT and entry.attempts == 2


async def test_a_refused_write_fails_for_good_with_githubs_answer_and_the_rest_go_on(
    github_world: GitHubWorld, sqlite_db: Database
) -> None:
    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    project_id = add_runs(sqlite_db, RUN)
    with sqlite_db.session() as s:
        outbox.enqueue(
            s,
            run_id=RUN,
            project_id=project_id,
            kind="pull_request",
            payload={"head": "no-such-branch", "base": "main", "title": "t", "body": "b"},
        )
        outbox.enqueue(
            s,
            run_id=RUN,
            project_id=project_id,
            kind="notice",
            payload={"number": issue.number, "body": "after"},
        )
    notifier = Notifier(sqlite_db, _client_factory(github_world), FAST)
    assert await notifier.send_due() == 1
    failed, sent = _entries(sqlite_db)
    assert failed.status == OutboxStatus.FAILED and failed.attempts == 1
    assert failed.last_error is not None and "422" in failed.last_error
    assert sent.status == OutboxStatus.SENT
    shown = [outbox.describe(e) for e in (failed, sent)]
    assert shown[0]["status"] == "failed" and "422" in shown[0]["error"]
    assert shown[1]["status"] == "sent" and "#issuecomment-" in shown[1]["url"]


def test_credentials_are_stored_encrypted_and_shown_masked(sqlite_db: Database) -> None:
    project_id = add_runs(sqlite_db)
    box = SecretBox(Fernet.generate_key())
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    with sqlite_db.session() as s:
        set_credentials(
            s, box, project_id, AppCredentials(app_id=7, private_key_pem=SecretStr(pem))
        )
        assert record_installation_id(s, project_id, 99)
    with sqlite_db.session() as s:
        loaded = load_credentials(s, box, project_id)
        assert loaded is not None
        creds, api_url = loaded
        assert isinstance(creds, AppCredentials) and creds.installation_id == 99
        assert creds.private_key_pem.get_secret_value().strip() == pem and api_url is None
        shown = masked(s, project_id)
        assert shown is not None and "MIIB" not in str(shown) and shown["app_id"] == 7
        set_credentials(
            s,
            box,
            project_id,
            TokenCredentials(token=SecretStr("ghp_x"), login="me"),
            api_url="https://ghe.example/api/v3",
        )
        assert "ghp_x" not in str(masked(s, project_id))


NOTIFIER_CHILD = """
import asyncio, json, sys
import redis.asyncio as aioredis
from pydantic import SecretStr
from gaffer.providers.github_api import AppCredentials, GitHubClient, TokenCache, permissions_for
from gaffer.providers.github_api.notifier import Notifier, NotifierConfig
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database

args = json.loads(sys.stdin.read())

async def main() -> None:
    redis = aioredis.from_url(args["redis_url"])
    db = Database(Settings(home=args["home"], database_url=None, master_key=None))

    async def clients(entry):
        return GitHubClient(
            AppCredentials(app_id=args["app_id"], private_key_pem=SecretStr(args["pem"])),
            args["repository"], permissions=permissions_for("new"),
            base_url=args["base_url"], cache=TokenCache(redis, SecretBox(args["key"].encode())),
            timeout_s=60,
        )

    print("sending", flush=True)
    await Notifier(db, clients, NotifierConfig(lease_s=1)).send_due()

asyncio.run(main())
"""


async def test_a_notifier_killed_after_github_made_the_write_does_not_post_it_twice(
    github_world: GitHubWorld, tmp_path: Path, redis_url: str
) -> None:
    import json
    import sys

    fake, repo = github_world.fake, github_world.repo
    db = Database(Settings(home=tmp_path / "home", database_url=None, master_key=None))
    migrate(db)
    issue = fake.add_issue(repo, "Bug")
    project_id = add_runs(db, RUN)
    with db.session() as s:
        outbox.enqueue(
            s,
            run_id=RUN,
            project_id=project_id,
            kind="answer",
            payload={"number": issue.number, "body": "The answer."},
        )
    await github_world.client("new").token()  # cached: the child only posts
    fake.hang_after_next(60, match=r"POST /repos/acme/widgets/issues/\d+/comments")
    args = {
        "redis_url": redis_url,
        "home": str(tmp_path / "home"),
        "app_id": github_world.credentials.app_id,
        "pem": github_world.credentials.private_key_pem.get_secret_value(),
        "repository": repo.full_name,
        "base_url": fake.api_url,
        "key": github_world.key,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        NOTIFIER_CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stderr is not None
    child.stdin.write(json.dumps(args).encode())  # the key and PEM on stdin, never argv
    await child.stdin.drain()
    child.stdin.close()
    try:
        for _ in range(1200):  # until GitHub has the comment (the child waits for the answer)
            if repo.comments:
                break
            assert child.returncode is None, (await child.stderr.read()).decode()[-2000:]
            await asyncio.sleep(0.05)
        assert len(repo.comments) == 1
    finally:
        child.kill()  # SIGKILL: no cleanup, the entry stays "sending" without its record
        await child.wait()
    (entry,) = _entries(db)
    assert entry.status == OutboxStatus.SENDING and entry.result is None
    notifier = Notifier(db, _client_factory(github_world), FAST)
    for _ in range(100):  # the lease (1 s) lapses, then this notifier takes the entry over
        if await notifier.send_due():
            break
        await asyncio.sleep(0.1)
    (entry,) = _entries(db)
    assert entry.status == OutboxStatus.SENT and entry.attempts == 2
    assert len(repo.comments) == 1  # found by its marker, not posted again
    fake.faults.clear()


async def test_the_notifier_builds_clients_from_the_projects_stored_credentials(
    github_world: GitHubWorld, sqlite_db: Database
) -> None:
    from gaffer.providers.github_api.factory import NoGitHubCredentialsError, outbox_clients

    fake, repo = github_world.fake, github_world.repo
    issue = fake.add_issue(repo, "Bug")
    with sqlite_db.session() as s:
        project = create_project(
            s,
            github_world.box,
            name="w",
            repository=repo.full_name,
            clone_url="/x",
            webhook_secret="s",
            bot_login="b",
        )
        project_id = project.id
        s.add(
            Run(
                id=RUN,
                project_id=project_id,
                agent_type="review",
                work_item="1",
                trigger="github:x",
                status=RunStatus.RUNNING,
                job_data={},
            )
        )
        outbox.enqueue(
            s,
            run_id=RUN,
            project_id=project_id,
            kind="notice",
            payload={"number": issue.number, "body": "hello"},
        )
    factory = outbox_clients(sqlite_db, github_world.box, github_world.redis, FAST_RETRY)
    notifier = Notifier(sqlite_db, factory, FAST)
    assert await notifier.send_due() == 0  # no credentials yet: retried, not lost
    (entry,) = _entries(sqlite_db)
    assert entry.status == OutboxStatus.PENDING and "no GitHub credentials" in (
        entry.last_error or ""
    )
    with pytest.raises(NoGitHubCredentialsError):
        await factory(entry)
    with sqlite_db.session() as s:
        set_credentials(
            s, github_world.box, project_id, github_world.credentials, api_url=fake.api_url
        )
        s.execute(update(OutboxEntry).values(next_attempt_at=utcnow()))
    assert await notifier.send_due() == 1
    assert [c.body.split("\n")[0] for c in repo.comments.values()] == ["hello"]
    assert fake.minted[-1].permissions["contents"] == "read"
