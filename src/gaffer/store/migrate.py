"""Bring the database schema to the newest Alembic revision, safely from many processes at once.

Every gaffer process calls :func:`migrate` at start-up. Concurrent starts are serialised: with
SQLite by an exclusive ``flock`` on ``$GAFFER_HOME/migrate.lock``, with PostgreSQL by a session
advisory lock, so two processes never run the same migration twice.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gaffer.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
PG_ADVISORY_LOCK_ID = 0x6761_6666  # "gaff"
HEAD_REVISION = "0010"
"""The newest revision, kept in step with ``migrations/versions`` (a test checks it). Every CLI
command calls :func:`migrate`; when the database is already here, Alembic is not even imported."""


def alembic_config() -> Config:
    """An Alembic config pointing at gaffer's migrations (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision id in the migrations directory (read by Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def at_head(db: Database) -> bool:
    """True when the database records :data:`HEAD_REVISION` (one cheap query)."""
    try:
        with db.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return False
    return version == HEAD_REVISION


def migrate(db: Database) -> None:
    """Upgrade the schema to head. Idempotent; safe to call from concurrent processes."""
    if at_head(db):
        return
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
    from alembic import command

    with db.engine.begin() as conn:
        if current_revision(conn) == head_revision():
            return
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
