"""Reads, cancels and edits of a run wherever it is: a row in the database or a buffer entry.

``gaffer runs show|cancel`` and the JSON API go through :class:`RunAccess` (issue 5, "Reads and
cancels of buffered runs"):

* **show**: the database row if there is one (id or unique prefix), else the buffer entry by
  exact id, answered from its snapshot with status ``BUFFERED`` (``CANCELED`` once a cancel
  marked it, ``SYSTEM_FAILURE`` if it was dead-lettered) and a ``buffer`` section (state,
  attempts). An entry that was acknowledged meanwhile is read again from the database.
* **cancel**: a row is cancelled by the run engine. A queued entry is marked cancelled (the
  drainer then records a CANCELED run without a job). An entry in flight is being materialised
  right now: the cancel waits up to ``wait_s`` (2 s) for its row and cancels that; if no row
  appears in time, :class:`BufferedRunBusyError` (HTTP 503) says to try again.
* **tags / metadata**: only while the run waits in the buffer (see
  :class:`gaffer.buffer.scripts.BufferStore`); afterwards :class:`RunNotEditableError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from gaffer.buffer.entries import Entry
from gaffer.buffer.scripts import BufferStore, Mutation
from gaffer.errors import UserError
from gaffer.runs.engine import CancelResult, RunEngine
from gaffer.runs.views import run_view
from gaffer.store.db import Database
from gaffer.store.models import Run, RunStatus
from gaffer.store.runs import RunNotFoundError, get_run

BUFFERED = "BUFFERED"
"""The status reported for a run that waits in the burst buffer (it has no row yet)."""
MATERIALIZE_WAIT_S = 2.0
ROW_KEYS = (
    "id",
    "project_id",
    "agent_type",
    "work_item",
    "pr_number",
    "head_sha",
    "trigger",
    "delivery_id",
)
POLL_S = 0.05


class BufferedRunBusyError(UserError, RuntimeError):
    """The run is being moved from the buffer to the database right now and did not get there
    within the wait; the cancel may be retried (HTTP 503)."""


class RunNotEditableError(UserError, RuntimeError):
    """Tags or metadata were asked of a run that no longer waits in the buffer, or the edit
    conflicts (tag cap, metadata version); HTTP 409."""


def buffered_view(entry: Entry) -> dict[str, Any]:
    """A buffered run as JSON-ready data, with the keys of :func:`gaffer.runs.views.run_view`."""
    status = BUFFERED
    if entry.status == "dead":
        status = str(RunStatus.SYSTEM_FAILURE)
    elif entry.cancelled:
        status = str(RunStatus.CANCELED)
    row = entry.new_run().row()
    return {
        **{k: row[k] for k in ROW_KEYS},
        "status": status,
        "created_at": None,
        "started_at": None,
        "finished_at": None,
        "duration_s": None,
        "exit_code": None,
        "error": entry.error or None,
        "branch": None,
        "commit": None,
        "summary": None,
        "engine_usage": None,
        "outputs": None,
        "batch_id": row["batch_id"],
        "batch_index": row["batch_index"],
        "tags": row["tags"],
        "metadata": row["run_metadata"],
        "accepted_at": entry.accepted_at.isoformat(),
        "buffer": {
            "state": entry.status,
            "attempts": entry.attempts,
            "cancelled": entry.cancelled,
            "metadata_version": entry.version,
        },
    }


class RunAccess:
    """Reads, cancels and edits runs in the database and the buffer (module docstring).

    ``store`` None: no buffer (only rows are found). ``run_engine`` is needed for cancels.
    """

    def __init__(
        self,
        db: Database,
        store: BufferStore | None,
        run_engine: RunEngine | None = None,
        *,
        wait_s: float = MATERIALIZE_WAIT_S,
    ) -> None:
        self.db = db
        self.store = store
        self.run_engine = run_engine
        self.wait_s = wait_s

    def _row_view(self, run_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            return run_view(get_run(session, run_id))

    def _row_exists(self, run_id: str) -> bool:
        with self.db.session() as session:
            return session.get(Run, run_id) is not None

    async def show(self, run_id: str) -> dict[str, Any]:
        """The run as JSON-ready data. Raises :class:`RunNotFoundError` (and
        ``AmbiguousRunIdError`` for a prefix), and database or Redis errors."""
        try:
            return await asyncio.to_thread(self._row_view, run_id)
        except RunNotFoundError:
            if self.store is None:
                raise
        entry = await self.store.get(run_id)
        if entry is None or entry.status == "done":
            # Materialised between the two reads (or never buffered): the row decides.
            return await asyncio.to_thread(self._row_view, run_id)
        return buffered_view(entry)

    async def cancel(self, run_id: str) -> CancelResult:
        """Cancel the run (module docstring). Raises :class:`RunNotFoundError`,
        :class:`BufferedRunBusyError`, and database or Redis errors."""
        engine = self.run_engine
        if engine is None:
            raise RuntimeError("RunAccess.cancel needs a run engine")
        try:
            return await engine.cancel(run_id)
        except RunNotFoundError:
            if self.store is None:
                raise
        deadline = time.monotonic() + self.wait_s
        while True:
            mutation = await self.store.cancel(run_id)
            if mutation.outcome == "ok":
                return CancelResult(
                    run_id,
                    RunStatus.CANCELED,
                    "canceled in the burst buffer; the run is recorded CANCELED as it drains",
                )
            if mutation.outcome == "dead":
                return CancelResult(
                    run_id, RunStatus.SYSTEM_FAILURE, "the run could not be created (dead letter)"
                )
            if mutation.outcome in ("done", "missing"):
                # Materialised (or failed into a terminal row): cancel the row. A missing entry
                # with no row was never there.
                return await engine.cancel(run_id)
            if await asyncio.to_thread(self._row_exists, run_id):
                return await engine.cancel(run_id)
            if time.monotonic() >= deadline:
                raise BufferedRunBusyError(
                    f"run {run_id} is being created from the burst buffer right now and did not "
                    f"appear within {self.wait_s:g} s; try the cancel again in a few seconds"
                )
            await asyncio.sleep(POLL_S)

    async def add_tags(self, run_id: str, tags: Sequence[str], cap: int) -> dict[str, Any]:
        """Append tags to a buffered run; returns its view. Raises :class:`RunNotFoundError`
        and :class:`RunNotEditableError`."""
        store = await self._editable(run_id)
        self._check(run_id, await store.add_tags(run_id, tags, cap), cap)
        return await self.show(run_id)

    async def set_metadata(
        self, run_id: str, metadata: dict[str, Any], version: int
    ) -> dict[str, Any]:
        """Replace a buffered run's metadata if its ``metadata_version`` is ``version``;
        returns its view. Raises :class:`RunNotFoundError` and :class:`RunNotEditableError`."""
        store = await self._editable(run_id)
        self._check(run_id, await store.set_metadata(run_id, metadata, version), 0)
        return await self.show(run_id)

    async def _editable(self, run_id: str) -> BufferStore:
        if self.store is None:
            raise RunNotEditableError("the burst buffer is not available here")
        await self.show(run_id)  # RunNotFoundError for an unknown id
        return self.store

    @staticmethod
    def _check(run_id: str, mutation: Mutation, cap: int) -> None:
        if mutation.outcome == "ok":
            return
        if mutation.outcome == "tag_cap":
            have = len(json.loads(str(mutation.value)))
            raise RunNotEditableError(
                f"run {run_id} would carry more than {cap} tags (it has {have})"
            )
        if mutation.outcome == "version_conflict":
            raise RunNotEditableError(
                f"run {run_id}: metadata version is {mutation.value}, not the one given"
            )
        raise RunNotEditableError(
            f"run {run_id} no longer waits in the burst buffer ({mutation.outcome}); "
            "tags and metadata can only change before the run is created"
        )
