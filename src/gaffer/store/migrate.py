"""Bring the database schema to the newest Alembic revision, safely from many processes at once.

Every gaffer process calls :func:`migrate` at start-up. Concurrent starts are serialised: with
SQLite by an exclusive ``flock`` on ``$GAFFER_HOME/migrate.lock``, with PostgreSQL by a session
advisory lock, so two processes never run the same migration twice.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gaffer.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
PG_ADVISORY_LOCK_ID = 0x6761_6666  # "gaff"


def alembic_config() -> Config:
    """An Alembic config pointing at gaffer's migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision id in the migrations directory."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def migrate(db: Database) -> None:
    """Upgrade the schema to head. Idempotent; safe to call from concurrent processes."""
    if db.settings.uses_sqlite:
        lock_path = db.settings.home / "migrate.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _upgrade(db)
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_ADVISORY_LOCK_ID})
        conn.commit()
        try:
            _upgrade(db)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_ADVISORY_LOCK_ID})
            conn.commit()


def _upgrade(db: Database) -> None:
    with db.engine.begin() as conn:
        if current_revision(conn) == head_revision():
            return
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
