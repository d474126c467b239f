"""The store on SQLite and PostgreSQL: migrations, models, encrypted secrets, state changes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet

from gaffer.settings import Settings
from gaffer.store.crypto import MasterKeyError, SecretBox, load_master_key
from gaffer.store.db import Database
from gaffer.store.migrate import HEAD_REVISION, at_head, head_revision, migrate
from gaffer.store.models import Base, Project, RunStatus
from gaffer.store.projects import AgentSetup, create_project, get_project
from gaffer.store.runs import get_run, transition
from tests.support.store import add_runs


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Database:
    database = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(database)
    return database


def test_head_revision_constant_matches_the_migrations() -> None:
    assert head_revision() == HEAD_REVISION


def test_migrated_schema_matches_the_models(db: Database) -> None:
    assert at_head(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_is_idempotent(db: Database) -> None:
    migrate(db)
    migrate(db)
    assert at_head(db)


def test_webhook_secret_is_stored_encrypted(db: Database) -> None:
    box = SecretBox(Fernet.generate_key())
    with db.session() as session:
        create_project(
            session,
            box,
            name="p",
            repository="o/r",
            clone_url="/x",
            webhook_secret="s3cret-value",
            bot_login="bot",
            agents=[AgentSetup("review", "command", {"command": "true"}, ["a.b"])],
        )
    with db.session() as session:
        project = get_project(session, "p")
        assert b"s3cret-value" not in project.webhook_secret_encrypted
        assert box.decrypt(project.webhook_secret_encrypted) == "s3cret-value"
        other = SecretBox(Fernet.generate_key())
        with pytest.raises(MasterKeyError, match="does not decrypt"):
            other.decrypt(project.webhook_secret_encrypted)


def test_transition_is_compare_and_set(db: Database) -> None:
    add_runs(db, "a" * 32, status=RunStatus.QUEUED)
    with db.session() as session:
        assert transition(
            session, "a" * 32, from_statuses=[RunStatus.QUEUED], to_status=RunStatus.STARTING
        )
        # A second claim of the same QUEUED run loses.
        assert not transition(
            session, "a" * 32, from_statuses=[RunStatus.QUEUED], to_status=RunStatus.STARTING
        )
        assert transition(
            session,
            "a" * 32,
            from_statuses=[RunStatus.STARTING],
            to_status=RunStatus.CANCELED,
            error="x",
        )
    with db.session() as session:
        run = get_run(session, "aaaa")
        assert run.status == RunStatus.CANCELED
        assert run.finished_at is not None and run.finished_at.tzinfo is not None
        assert session.query(Project).count() == 1


def test_master_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, master_key=None, database_url=None)
    key = load_master_key(settings)
    assert stat.S_IMODE(os.stat(settings.master_key_path).st_mode) == 0o600
    assert load_master_key(settings) == key


def test_master_key_is_required_with_a_shared_database(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, master_key=None, database_url="postgresql://gaffer@127.0.0.1:1/x"
    )
    with pytest.raises(MasterKeyError, match="GAFFER_MASTER_KEY is required"):
        load_master_key(settings)
    with pytest.raises(MasterKeyError, match="not a valid master key"):
        load_master_key(Settings(home=tmp_path, master_key="short", database_url=None))


def test_settings_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "GAFFER_HOME",
        "GAFFER_BACKEND",
        "GAFFER_MAX_WORKERS",
        "GAFFER_RUN_TIMEOUT_S",
        "GAFFER_MASTER_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.home == tmp_path / ".gaffer"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / '.gaffer' / 'gaffer.db'}"
    assert settings.embedded_redis and settings.backend == "local"
    assert (settings.max_workers, settings.run_timeout_s) == (3, 1800)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("GAFFER_MAX_WORKERS", "7")
    assert Settings().effective_database_url == "postgresql+psycopg://u@h/db"
    assert Settings().max_workers == 7
