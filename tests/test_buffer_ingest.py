"""A burst through real HTTP ingest: buffered answers, reads and cancels through the CLI (real
processes) and the API, deferred delivery records, ``/metrics``, and the drain to finished runs.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import redis

from gaffer.buffer import keys
from gaffer.store.models import RunStatus
from tests.conftest import MASTER_KEY, GafferFactory
from tests.support.harness import Gaffer, fixture_body
from tests.support.process import gaffer, gaffer_env, gaffer_json
from tests.support.servers import PostgresServer

LABELED = fixture_body("issues.labeled")
TOKEN = "s3cret-api-token"
BUFFER = {
    "buffer_enabled": True,
    "buffer_organizations": "*",
    "buffer_threshold": 2,
    "buffer_window_ms": 60_000,
    "buffer_hold_ms": 60_000,
}


def wait_until(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_burst_is_buffered_read_cancelled_and_drained(
    start_gaffer: GafferFactory, postgres_server: PostgresServer, redis_url: str
) -> None:
    db_url = postgres_server.create_database()
    ingest = start_gaffer(roles=("ingest",), database_url=db_url, api_token=TOKEN, **BUFFER)
    project = ingest.create_project(with_repository=False)
    deliveries = [str(uuid.uuid4()) for _ in range(5)]
    answers = [ingest.deliver(LABELED, "issues", project.secret, delivery_id=d) for d in deliveries]
    assert [(a.status_code, a.json()["decision"]) for a in answers] == [
        (202, "queued"),
        (202, "queued"),
        (202, "buffered"),
        (202, "buffered"),
        (202, "buffered"),
    ]
    assert "held in the burst buffer: tripped" in answers[2].json()["reason"]
    assert "held in the burst buffer: overage" in answers[3].json()["reason"]
    direct = [a.json()["runs"][0] for a in answers[:2]]
    held = [a.json()["runs"][0] for a in answers[2:]]
    assert {ingest.run(r)["status"] for r in direct} == {"QUEUED"}
    # Buffered: no row and no delivery record in the database yet.
    with ingest.rt.db.session() as session:
        from gaffer.store.models import Run

        assert session.get(Run, held[0]) is None
    assert ingest.deliveries(deliveries[2]) == []
    assert ingest.deliveries(deliveries[0])[0]["decision"] == "queued"

    # Reads and a cancel through the CLI, as separate processes.
    env = gaffer_env(
        ingest.settings.home, DATABASE_URL=db_url, REDIS_URL=redis_url, GAFFER_MASTER_KEY=MASTER_KEY
    )
    shown = gaffer_json("runs", "show", held[0], env=env)
    assert shown["status"] == "BUFFERED"
    assert shown["delivery_id"] == deliveries[2] and shown["buffer"]["state"] == "queued"
    assert "BUFFERED" in gaffer("runs", "show", held[0], env=env).stdout
    canceled = gaffer_json("runs", "cancel", held[1], env=env)
    assert canceled["status"] == "CANCELED"

    # The API: bearer token, reads, tags and metadata, a cancel.
    http = httpx.Client(base_url=ingest.url, timeout=30)
    assert http.get(f"/api/runs/{held[0]}").status_code == 401
    assert http.get(f"/api/runs/{held[0]}", headers=auth("wrong")).status_code == 401
    assert http.get(f"/api/runs/{'0' * 32}", headers=auth()).status_code == 404
    view = http.get(f"/api/runs/{held[2]}", headers=auth()).json()
    assert view["status"] == "BUFFERED" and view["batch_index"] == 0
    tagged = http.post(f"/api/runs/{held[2]}/tags", headers=auth(), json={"tags": ["burst"]})
    assert tagged.status_code == 200 and tagged.json()["tags"] == ["burst"]
    meta = {"metadata": {"reason": "bulk edit"}, "version": 0}
    assert http.put(f"/api/runs/{held[2]}/metadata", headers=auth(), json=meta).status_code == 200
    conflict = http.put(f"/api/runs/{held[2]}/metadata", headers=auth(), json=meta)
    assert conflict.status_code == 409 and "version is 1" in conflict.json()["error"]
    assert http.get(f"/api/runs/{direct[0]}", headers=auth()).json()["status"] == "QUEUED"

    # /metrics: the gate's decisions and the buffer's gauges.
    text = http.get("/metrics").text
    assert metric(text, "gaffer_buffer_entries", project=project.id) == 3.0
    assert metric(text, "gaffer_buffer_in_flight") == 0.0
    assert (
        metric(text, "gaffer_buffer_gate_decisions_total", outcome="buffer", reason="tripped") or 0
    ) >= 1

    # A drainer: the rows appear (the cancelled one CANCELED, without a job), with the
    # tags and metadata given while buffered; the delivery records follow in one batch.
    start_gaffer(roles=("drain",), database_url=db_url, buffer_poll_ms=10, **BUFFER)
    wait_until(lambda: all(_has_row(ingest, r) for r in held))
    assert ingest.run(held[0])["status"] == "QUEUED"
    assert ingest.run(held[1])["status"] == "CANCELED"
    row = ingest.run(held[2])
    assert (row["tags"], row["metadata"]) == (["burst"], {"reason": "bulk edit"})
    assert row["batch_id"] is not None and row["accepted_at"] is not None
    wait_until(lambda: len(ingest.deliveries(deliveries[4])) == 1)
    record = ingest.deliveries(deliveries[4])[0]
    assert (record["status_code"], record["decision"], record["run_ids"]) == (
        202,
        "buffered",
        [held[2]],
    )
    assert http.get(f"/api/runs/{held[0]}", headers=auth()).json()["buffer"] is None
    text = http.get("/metrics").text
    assert metric(text, "gaffer_buffer_entries", project=project.id) is None
    http.close()


def _has_row(gaffer: Gaffer, run_id: str) -> bool:
    from gaffer.store.models import Run

    with gaffer.rt.db.session() as session:
        return session.get(Run, run_id) is not None


def test_api_is_absent_without_a_token_and_503_while_a_run_is_materialising(
    start_gaffer: GafferFactory, redis_url: str
) -> None:
    plain = start_gaffer(roles=("ingest",), **BUFFER)
    assert httpx.get(f"{plain.url}/api/runs/x", headers=auth()).status_code == 404
    with_api = start_gaffer(roles=("ingest",), api_token=TOKEN, **BUFFER)
    project = with_api.create_project(with_repository=False)
    answers = [with_api.deliver(LABELED, "issues", project.secret) for _ in range(3)]
    [held] = answers[2].json()["runs"]
    # A drainer takes the entry and hangs (no row appears).
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.entry(held), mapping={"status": "in_flight", "lease": "hung"})
    client.zadd(keys.IN_FLIGHT, {held: 0})
    started = time.monotonic()
    busy = httpx.post(f"{with_api.url}/api/runs/{held}/cancel", headers=auth(), timeout=30)
    assert busy.status_code == 503, busy.text
    assert time.monotonic() - started >= 2.0
    assert "is being created from the burst buffer right now" in busy.json()["error"]
    assert busy.headers["retry-after"] == "2"
    client.close()


def test_buffered_runs_run_to_completion(start_gaffer: GafferFactory) -> None:
    g = start_gaffer(
        roles=("ingest", "dispatch", "drain"), max_workers=1, buffer_poll_ms=10, **BUFFER
    )
    project = g.create_project()
    answers = [g.deliver(LABELED, "issues", project.secret) for _ in range(4)]
    assert [a.json()["decision"] for a in answers] == ["queued", "queued", "buffered", "buffered"]
    runs = [a.json()["runs"][0] for a in answers]
    finished = [g.wait_for(r) for r in runs]
    assert [r["status"] for r in finished] == [str(RunStatus.SUCCEEDED)] * 4
    assert all(r["branch"] == "gaffer/implementation/1" for r in finished)


def test_manual_starts_go_through_the_gate(tmp_path: Path, redis_url: str) -> None:
    env = gaffer_env(
        tmp_path / "home",
        REDIS_URL=redis_url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        GAFFER_BUFFER_ENABLED="true",
        GAFFER_BUFFER_ORGANIZATIONS="*",
        GAFFER_BUFFER_THRESHOLD="1",
        GAFFER_BUFFER_WINDOW_MS="60000",
        GAFFER_BUFFER_HOLD_MS="60000",
    )
    gaffer(
        "projects",
        "create",
        "hello",
        "--repo",
        "octo/hello",
        "--clone-url",
        "/nonexistent",
        "--command",
        "true",
        env=env,
    )
    start = ("runs", "start", "--project", "hello", "--agent", "implementation")
    first = gaffer_json(*start, "--work-item", "1", env=env)
    second = gaffer_json(*start, "--work-item", "2", env=env)
    assert (first["buffered"], second["buffered"]) == (False, True)
    assert gaffer_json("runs", "show", first["runs"][0], env=env)["status"] == "QUEUED"
    held = gaffer_json("runs", "show", second["runs"][0], env=env)
    assert (held["status"], held["work_item"], held["trigger"]) == (
        "BUFFERED",
        "2",
        "manual:manual",
    )
    text = gaffer(*start, "--work-item", "3", env=env).stdout
    assert "held in the burst buffer: overage" in text
