"""Reads and cancels of buffered runs (queued, in flight, materialised), on real Redis and a
real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gaffer.buffer.access import BufferedRunBusyError, RunAccess, RunNotEditableError
from gaffer.store.models import RunStatus
from gaffer.store.projects import ProjectSnapshot
from gaffer.store.runs import RunNotFoundError
from tests.conftest import SettingsFactory
from tests.support.buffering import BufferParts, buffer_parts, new_runs

pytestmark = pytest.mark.anyio


@pytest.fixture
async def parts(
    make_settings: SettingsFactory, database_url: str | None
) -> AsyncIterator[BufferParts]:
    settings = make_settings(database_url=database_url, project_cache_ttl_s=0.0)
    async with buffer_parts(settings) as opened:
        yield opened


def access_of(parts: BufferParts, wait_s: float = 2.0) -> RunAccess:
    return RunAccess(parts.db, parts.store, parts.engine, wait_s=wait_s)


async def one_buffered(parts: BufferParts, **extra: Any) -> tuple[ProjectSnapshot, str]:
    """A project with one buffered run; returns the project and the run id."""
    p = parts.project("p")
    [run] = new_runs(p.id, 1, **extra)
    await parts.accept(p, [run])
    return p, run.run_id


async def drain_one(parts: BufferParts, p: ProjectSnapshot, lease: str = "L") -> None:
    """What a drainer does with the project's next entry: pop it and replay it."""
    popped = await parts.store.pop(p.organization_id, 1, lease)
    await parts.replayer().replay(p.id, popped.entries, lease)


async def assert_canceled_without_job(parts: BufferParts, run_id: str) -> None:
    [row] = parts.rows()
    assert (row.id, row.status) == (run_id, RunStatus.CANCELED)
    assert await parts.queue.state(run_id) == "unknown"


async def test_show_answers_from_the_snapshot_then_from_the_row(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts, batch_id="b", tags=("t",))
    access = access_of(parts)
    view = await access.show(run_id)
    assert view["status"] == "BUFFERED"
    assert (view["agent_type"], view["work_item"], view["pr_number"]) == ("review", "0", 0)
    assert (view["batch_id"], view["batch_index"], view["tags"]) == ("b", 0, ["t"])
    assert view["buffer"] == {
        "state": "queued",
        "attempts": 0,
        "cancelled": False,
        "metadata_version": 0,
    }
    popped = await parts.store.pop(p.organization_id, 1, "L")
    assert (await access.show(run_id))["buffer"]["state"] == "in_flight"
    await parts.replayer().replay(p.id, popped.entries, "L")
    view = await access.show(run_id)
    assert view["status"] == "QUEUED" and view["buffer"] is None
    assert view["accepted_at"] is not None and view["tags"] == ["t"]
    with pytest.raises(RunNotFoundError):
        await access.show("0" * 32)


async def test_cancel_of_a_queued_buffered_run_marks_it(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts)
    result = await access_of(parts).cancel(run_id)
    assert result.status == RunStatus.CANCELED and "burst buffer" in result.message
    assert (await access_of(parts).show(run_id))["status"] == "CANCELED"
    await drain_one(parts, p)
    await assert_canceled_without_job(parts, run_id)


async def test_cancel_in_flight_waits_for_the_row_and_cancels_it(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts)
    popped = await parts.store.pop(p.organization_id, 1, "L")

    async def drainer_finishes_later() -> None:
        await asyncio.sleep(0.3)
        await parts.replayer().replay(p.id, popped.entries, "L")

    late = asyncio.create_task(drainer_finishes_later())
    result = await access_of(parts).cancel(run_id)
    await late
    assert result.status == RunStatus.CANCELED
    assert result.message == "canceled before it started"
    await assert_canceled_without_job(parts, run_id)


async def test_cancel_in_flight_that_never_materialises_is_busy(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts)
    await parts.store.pop(p.organization_id, 1, "hung-drainer")
    with pytest.raises(BufferedRunBusyError, match="try the cancel again"):
        await access_of(parts, wait_s=0.3).cancel(run_id)
    # Once the lease lapses and the entry is back in the queue, the cancel marks it.
    await parts.store.reclaim(lease_ms=0)
    assert (await access_of(parts).cancel(run_id)).status == RunStatus.CANCELED


async def test_cancel_of_a_materialised_buffered_run_cancels_the_row(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts)
    await drain_one(parts, p)
    assert (await parts.store.get(run_id)) is not None  # within the ack grace
    result = await access_of(parts).cancel(run_id)
    assert result.status == RunStatus.CANCELED
    [row] = parts.rows()
    assert row.status == RunStatus.CANCELED


async def test_tags_and_metadata_only_while_buffered(parts: BufferParts) -> None:
    p, run_id = await one_buffered(parts)
    access = access_of(parts)
    assert (await access.add_tags(run_id, ["a", "b"], 2))["tags"] == ["a", "b"]
    with pytest.raises(RunNotEditableError, match="more than 2 tags"):
        await access.add_tags(run_id, ["c"], 2)
    view = await access.set_metadata(run_id, {"x": 1}, 0)
    assert view["metadata"] == {"x": 1} and view["buffer"]["metadata_version"] == 1
    with pytest.raises(RunNotEditableError, match="metadata version is 1"):
        await access.set_metadata(run_id, {"x": 2}, 0)
    await drain_one(parts, p)
    [row] = parts.rows()
    assert (row.tags, row.run_metadata) == (["a", "b"], {"x": 1})
    with pytest.raises(RunNotEditableError, match="no longer waits"):
        await access.add_tags(run_id, ["c"], 5)
