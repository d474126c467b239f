"""Database engine and sessions for SQLite (embedded default) and PostgreSQL.

SQLite is opened in WAL mode with a 30 s busy timeout, because ingest, dispatch and the CLI are
separate connections (often separate processes) writing the same file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gaffer.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create a SQLAlchemy engine for ``url`` (already normalised by :class:`Settings`).

    SQLite connections may be used from the thread pool, so ``check_same_thread`` is off.
    PostgreSQL connections are pre-pinged so a database restart costs one failed checkout,
    not a stream of errors.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """The engine and session factory of one process.

    Use :meth:`session` as a context manager; it commits on success and rolls back on error.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.uses_sqlite:
            settings.home.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.effective_database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
