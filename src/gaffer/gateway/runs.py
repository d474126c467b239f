"""Which run a call belongs to, and whether that run still lives (a terminal run's token is
refused): one indexed read of the ``runs`` row per call, so a run that ended a moment ago is
refused at its next call, in whatever process it ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, select

from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus


@dataclass(frozen=True)
class RunInfo:
    """The run a call is made for: ids, agent type and status as read at the call."""

    run_id: str
    project_id: str
    agent_type: str
    status: RunStatus

    @property
    def ended(self) -> bool:
        """True once the run is in a terminal status."""
        return RunStatus(self.status).terminal


class RunDirectory(Protocol):
    """Looks up runs for the gateway."""

    async def run(self, run_id: str) -> RunInfo | None:
        """The run, or None when there is no such run. Raises the database's error
        (:class:`sqlalchemy.exc.SQLAlchemyError`) when it cannot be reached."""
        ...


_RUN_QUERY = select(Run.project_id, Run.agent_type, Run.status).where(Run.id == bindparam("run_id"))
"""Built once, so each call reuses its compiled form."""


class StoredRuns:
    """:class:`RunDirectory` over gaffer's database. The engine is synchronous: a PostgreSQL
    read goes to a thread; a SQLite read (one indexed row from a local file in WAL mode, which
    writers never block, well under a millisecond) is made on the event loop itself, which
    costs less than the hand-off to a thread and back that it would otherwise add to every
    call's time to first byte."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inline = db.settings.uses_sqlite

    def _read(self, run_id: str) -> RunInfo | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(_RUN_QUERY, {"run_id": run_id}).first()
        if row is None:
            return None
        return RunInfo(run_id, row.project_id, row.agent_type, RunStatus(row.status))

    async def run(self, run_id: str) -> RunInfo | None:
        """See :meth:`RunDirectory.run`."""
        if self.inline:
            return self._read(run_id)
        return await asyncio.to_thread(self._read, run_id)
