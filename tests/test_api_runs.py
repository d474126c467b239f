"""``/api/v1/runs`` over real HTTP: filters and cursor pages, logs and their SSE stream, start,
retry and cancel with their audit rows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from gaffer.store.models import Run, RunStatus, new_id, utcnow
from gaffer.store.runs import append_logs, transition
from tests.conftest import GafferFactory
from tests.support.accounts import World, seed
from tests.support.harness import Gaffer


@pytest.fixture
def served(start_gaffer: GafferFactory) -> Iterator[tuple[Gaffer, World, httpx.Client]]:
    gaffer = start_gaffer(roles=("ingest",))
    world = seed(gaffer.rt.db, gaffer.rt.box)
    headers = {"Authorization": f"Bearer {world.tokens['member']}"}
    with httpx.Client(base_url=gaffer.url + "/api/v1", timeout=30, headers=headers) as client:
        yield gaffer, world, client


def add_run(gaffer: Gaffer, project_id: str, status: RunStatus, age_s: float, item: str) -> str:
    run_id = new_id()
    with gaffer.rt.db.session() as session:
        session.add(
            Run(
                id=run_id,
                project_id=project_id,
                agent_type="review",
                work_item=item,
                trigger="manual:manual",
                status=status,
                created_at=utcnow() - timedelta(seconds=age_s),
                job_data={},
            )
        )
    return run_id


def test_runs_list_filters_and_pages_with_a_cursor(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    gaffer, world, api = served
    made = [
        add_run(gaffer, world.projects["acme"], RunStatus.FAILED, age_s=10 + i, item=str(i % 2))
        for i in range(7)
    ]
    add_run(gaffer, world.projects["other"], RunStatus.FAILED, age_s=1, item="0")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"status": "FAILED", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made and pages == 3  # newest first, every run once, none of other's
    odd = api.get("/runs", params={"work_item": "1", "agent_type": "review"}).json()["items"]
    assert [r["id"] for r in odd] == made[1::2]
    both = api.get("/runs", params=[("status", "FAILED"), ("status", "SUCCEEDED")]).json()
    assert len(both["items"]) == 8
    assert api.get("/runs", params={"cursor": "garbage!"}).status_code == 400
    assert api.get("/runs", params={"status": "NOPE"}).status_code == 422


def test_logs_follow_streams_lines_until_the_run_ends(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    gaffer, world, api = served
    run_id = add_run(gaffer, world.projects["acme"], RunStatus.RUNNING, 0, "5")
    with gaffer.rt.db.session() as session:
        append_logs(session, run_id, [("engine", "first", utcnow())])

    def finish() -> None:
        time.sleep(1.0)
        with gaffer.rt.db.session() as session:
            append_logs(session, run_id, [("engine", "second", utcnow())])
        time.sleep(0.6)
        with gaffer.rt.db.session() as session:
            append_logs(session, run_id, [("worker", "last", utcnow())])
            transition(
                session, run_id, from_statuses=[RunStatus.RUNNING], to_status=RunStatus.SUCCEEDED
            )

    writer = threading.Thread(target=finish)
    writer.start()
    events: list[tuple[str, dict[str, object]]] = []
    with api.stream("GET", f"/runs/{run_id}/logs", params={"follow": "1"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    writer.join()
    assert [e["message"] for k, e in events if k == "line"] == ["first", "second", "last"]
    assert events[-1] == ("end", {"status": "SUCCEEDED"})
    plain = api.get(f"/runs/{run_id}/logs", params={"after": events[0][1]["id"]}).json()
    assert [line["message"] for line in plain["lines"]] == ["second", "last"]
    assert plain["status"] == "SUCCEEDED"
    resumed = api.get(
        f"/runs/{run_id}/logs",
        params={"follow": "1"},
        headers={"Last-Event-ID": str(events[1][1]["id"])},
    )
    assert "last" in resumed.text and "first" not in resumed.text


def test_start_retry_and_cancel_are_audited(served: tuple[Gaffer, World, httpx.Client]) -> None:
    _, world, api = served
    started = api.post(
        "/runs",
        json={"project": "acme-project", "agent_type": "implementation", "work_item": "42"},
        headers={"X-Request-ID": "start-1"},
    )
    assert started.status_code == 200, started.text
    [run_id] = started.json()["runs"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "QUEUED"
    busy = api.post(f"/runs/{run_id}/retry")
    assert busy.status_code == 409
    canceled = api.post(f"/runs/{run_id}/cancel").json()
    assert canceled["status"] == "CANCELED"
    retried = api.post(f"/runs/{run_id}/retry").json()
    [again] = retried["runs"]
    view = api.get(f"/runs/{again}").json()
    assert (view["work_item"], view["trigger"], view["status"]) == ("42", "manual:retry", "QUEUED")
    bad = api.post(
        "/runs", json={"project": "acme-project", "agent_type": "nonesuch", "work_item": "1"}
    )
    assert bad.status_code == 400
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    rows = api.get("/audit", params={"action": "run."}, headers=admin).json()["items"]
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("run.retry", again),
        ("run.cancel", run_id),
        ("run.start", run_id),
    ]
    assert rows[2]["request_id"] == "start-1" and rows[2]["actor"] == "member@acme.test"
    assert rows[0]["change"]["retry_of"] == run_id
