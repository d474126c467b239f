"""A burst of triggers with the burst buffer on, then the same burst with it off.

10,000 signed ``issues.labeled`` deliveries (one run each) from 100 projects in 10
organizations, one project sending 9,000 of them, as fast as ``wrk`` (a C load generator in its
own process, 64 connections) gets them answered by one ``gaffer up --role ingest`` process.
With the buffer on, one ``gaffer up --role drain`` process drains it (default budget and
concurrency). Private Redis and PostgreSQL servers (the test suite's: PostgreSQL with
``fsync=off``), a fresh database per phase, logging at WARNING in the gaffer processes.

Figures, per phase:

* ingest: accepts/s (from the servers' own accept times: runs / (last accept - first accept)),
  and the HTTP latency p50/p99 measured by wrk; the answers' decisions;
* with the buffer: total drain time (first accept to the last run row), p50/p95 of the wait
  from accept to run row for the light projects and for the heavy one;
* lost (deliveries answered 202 without a run row) and duplicated (runs beyond one per
  delivery, and queue jobs beyond one per run): both must be 0;
* database load: peak concurrent write transactions (``pg_stat_activity`` sampled every
  ~2 ms: client backends of the database inside a transaction that has written) and write
  transactions (the
  transaction ids PostgreSQL assigned) during the burst and in all;
* Redis memory per buffered entry: ``INFO memory`` ``used_memory`` before and after accepting
  1,000 entries of the heavy project's real request (its webhook payload included).

The gate threshold: the default (100 triggers per 200 ms, i.e. 500/s from one project) assumes
the issue's 10,000 triggers in about a second. One ingest process on a small machine accepts
far fewer signed deliveries per second than that, so a burst at the rate it can take would never
trip the default gate; ``--threshold`` (default 10 per 200 ms, 50/s) scales the gate to the
rate this machine reaches, and the report prints the value used.

    .venv/bin/python bench/burst.py [--triggers 10000] [--heavy 9000] [--threshold 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.process import GafferUp, gaffer_env  # noqa: E402
from tests.support.servers import PostgresServer, RedisServer  # noqa: E402

from gaffer.buffer.scripts import BufferStore  # noqa: E402
from gaffer.providers.github import delivery_headers, parse, sign  # noqa: E402
from gaffer.runs.engine import NewRun  # noqa: E402
from gaffer.settings import Settings  # noqa: E402
from gaffer.store.crypto import SecretBox  # noqa: E402
from gaffer.store.db import Database  # noqa: E402
from gaffer.store.migrate import migrate  # noqa: E402
from gaffer.store.models import new_id  # noqa: E402
from gaffer.store.projects import ProjectSnapshot, create_project, get_project  # noqa: E402
from gaffer.triggers.github import default_agent_setups, evaluate  # noqa: E402
from ingest import need_wrk  # noqa: E402  (bench/ingest.py)

FIXTURE = ROOT / "tests" / "fixtures" / "github-webhooks" / "issues.labeled.json"
CONNECTIONS = 64
THREADS = 2
MEMORY_PROBE_ENTRIES = 1000
WARM_UP_DELIVERIES = 256
MASTER_KEY = Fernet.generate_key().decode()

WRK_SCRIPT = r"""
-- args: body file, spec file (one "path<TAB>signature" line per trigger), triggers per thread,
-- marker file prefix, delivery id prefix, threads
local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  specs = {}
  for line in io.lines(args[2]) do
    local path, sig = line:match("([^\t]+)\t([^\t]+)")
    specs[#specs + 1] = {path, sig}
  end
  quota, marker, prefix, threads = tonumber(args[3]), args[4], args[5], tonumber(args[6])
  sent, got, buffered, queued, other = 0, 0, 0, 0, 0
  -- wrk calls request() once in the first thread to inspect it, and never sends that one.
  inspected = tid ~= 0
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = "issues"
end
function request()
  if not inspected then
    inspected = true
    return wrk.format("GET", "/healthz")
  end
  if sent >= quota then return wrk.format("GET", "/healthz") end
  local i = tid + threads * sent
  sent = sent + 1
  local spec = specs[i + 1]
  wrk.headers["X-Hub-Signature-256"] = spec[2]
  wrk.headers["X-GitHub-Delivery"] = prefix .. i
  return wrk.format("POST", spec[1], wrk.headers, body)
end
function response(status, headers, text)
  if not text:find('"decision"', 1, true) then return end
  got = got + 1
  if status == 202 and text:find('"decision":"buffered"', 1, true) then
    buffered = buffered + 1
  elseif status == 202 and text:find('"decision":"queued"', 1, true) then
    queued = queued + 1
  else
    other = other + 1
  end
  if got == quota then
    local m = assert(io.open(marker .. tid, "w"))
    m:write(string.format('{"buffered": %d, "queued": %d, "other": %d}', buffered, queued, other))
    m:close()
  end
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "non_2xx_3xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class WriteSampler:
    """Samples, every ~2 ms, how many client backends of a database are inside a transaction
    that has written (has a transaction id)."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.database = database
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
            "backend_type = 'client backend' AND pid <> pg_backend_pid() AND "
            "backend_xid IS NOT NULL"
        )
        while not self._stop.is_set():
            row = self.conn.execute(query, (self.database,)).fetchone()
            self.peak = max(self.peak, int(row[0]) if row else 0)
            self.samples += 1
            time.sleep(0.002)

    def __enter__(self) -> WriteSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def write_transactions(admin_url: str) -> int:
    """Transaction ids assigned so far in the cluster: PostgreSQL gives an id only to a
    transaction that writes, so the difference of two readings counts write transactions (the
    bench's cluster serves nothing else)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        return int(row[0]) if row else 0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, or None when empty."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def create_projects(
    settings: Settings, count: int, orgs: int, *, prefix: str = "bench"
) -> list[ProjectSnapshot]:
    """``count`` projects in ``orgs`` organizations; project 0 (org 0) is the heavy one."""
    db = Database(settings)
    migrate(db)
    box = SecretBox(MASTER_KEY.encode())
    ids = []
    with db.session() as session:
        for i in range(count):
            project = create_project(
                session,
                box,
                name=f"{prefix}-{i}",
                repository="Codertocat/Hello-World",
                clone_url="/nonexistent",
                webhook_secret=new_id(),
                bot_login="gaffer-bot",
                trigger_label="bug",
                organization=f"{prefix}-org-{i % orgs}",
                agents=default_agent_setups("command", {"command": "true"}, ["implementation"]),
            )
            ids.append(project.id)
    with db.session() as session:
        snapshots = [ProjectSnapshot.of(get_project(session, i), box) for i in ids]
    db.dispose()
    return snapshots


def plan(triggers: int, heavy: int, projects: int) -> list[int]:
    """Which project sends each trigger: the heavy one ``heavy`` times, the others in turn,
    interleaved evenly over the burst."""
    light = triggers - heavy
    order: list[int] = []
    light_sent = 0
    for i in range(triggers):
        # Send a light trigger whenever the light share so far is behind.
        if light_sent * triggers < light * (i + 1) and light_sent < light:
            order.append(1 + light_sent % (projects - 1))
            light_sent += 1
        else:
            order.append(0)
    return order


@contextmanager
def gaffer_processes(env: dict[str, str], roles: list[list[str]]) -> Iterator[list[GafferUp]]:
    """``gaffer up`` processes with the given role lists; SIGTERMed at the end."""
    started: list[GafferUp] = []
    try:
        for role_list in roles:
            args = [arg for role in role_list for arg in ("--role", role)]
            started.append(GafferUp(env, *args))
        yield started
    finally:
        for process in started:
            process.terminate()


def run_burst(
    wrk: str,
    work: Path,
    url: str,
    body: Path,
    specs: list[str],
    prefix: str,
) -> dict[str, Any]:
    """Send the deliveries with wrk; returns its figures and the answers' decisions."""
    script = work / "burst.lua"
    script.write_text(WRK_SCRIPT)
    spec_file = work / f"{prefix}.specs"
    spec_file.write_text("\n".join(specs) + "\n")
    marker = work / f"{prefix}.done-"
    quota = len(specs) // THREADS
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            wrk,
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            "-d600s",
            "--timeout",
            "60s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            str(body),
            str(spec_file),
            str(quota),
            str(marker),
            prefix,
            str(THREADS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    markers = [Path(f"{marker}{t}") for t in range(THREADS)]
    while not all(m.exists() for m in markers):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise SystemExit(f"wrk exited early ({proc.returncode}): {out}\n{err}")
        time.sleep(0.005)
    client_s = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    answers = [json.loads(m.read_text()) for m in markers]
    result["decisions"] = {k: sum(a[k] for a in answers) for k in ("buffered", "queued", "other")}
    result["client_seconds"] = round(client_s, 3)
    return result


def warm_up(url: str, project: ProjectSnapshot, body: bytes) -> None:
    """Deliveries to a project outside the enrolled organizations (never buffered, left out of
    the figures), from as many connections as wrk uses: the ingest process has its database
    and Redis connections open when the burst starts."""
    with httpx.Client(base_url=url, timeout=60) as client:

        def one(_: int) -> None:
            headers = delivery_headers(body, "issues", project.secret, f"warm-{new_id()}")
            answer = client.post(f"/webhooks/github/{project.name}", content=body, headers=headers)
            answer.raise_for_status()

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(one, range(WARM_UP_DELIVERIES)))


def run_rows(db_url: str) -> list[tuple[str, str, datetime, datetime, str]]:
    """(id, project_id, accepted_at, created_at, delivery_id) of every run."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id, project_id, accepted_at, created_at, delivery_id FROM runs"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def count(db_url: str, table: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def phase(
    name: str,
    *,
    buffer_on: bool,
    pg: PostgresServer,
    redis_server: RedisServer,
    wrk: str,
    work: Path,
    triggers: int,
    heavy: int,
    projects: int,
    orgs: int,
    threshold: int,
) -> dict[str, Any]:
    """One burst; returns its figures."""
    db_url = pg.create_database()
    database = db_url.rsplit("/", 1)[1]
    redis_server.flush()
    home = work / name
    settings = Settings(
        home=home, database_url=db_url, redis_url=redis_server.url, master_key=MASTER_KEY
    )
    snapshots = create_projects(settings, projects, orgs)
    [warm] = create_projects(settings, 1, 1, prefix="warm-up")
    enrolled = sorted({s.organization_id for s in snapshots})
    body = FIXTURE.read_bytes()
    body_file = work / "body.json"
    body_file.write_bytes(body)
    order = plan(triggers, heavy, projects)
    specs = [
        f"/webhooks/github/{snapshots[p].name}\t{sign(body, snapshots[p].secret)}" for p in order
    ]
    env = gaffer_env(
        home,
        DATABASE_URL=db_url,
        REDIS_URL=redis_server.url,
        GAFFER_MASTER_KEY=MASTER_KEY,
        GAFFER_LOG_LEVEL="WARNING",
        GAFFER_BUFFER_ENABLED="true" if buffer_on else "false",
        GAFFER_BUFFER_ORGANIZATIONS=",".join(enrolled),
        GAFFER_BUFFER_THRESHOLD=str(threshold),
    )
    roles = [["ingest"], ["drain"]] if buffer_on else [["ingest"]]
    heavy_id = snapshots[0].id
    with gaffer_processes(env, roles) as procs:
        url = procs[0].url
        warm_up(url, warm, body)
        before = write_transactions(pg.admin_url)
        with WriteSampler(pg.admin_url, database) as burst_sampler:
            burst = run_burst(wrk, work, url, body_file, specs, f"{name}-{new_id()[:6]}")
        burst_commits = write_transactions(pg.admin_url) - before
        drain_peak = 0
        with WriteSampler(pg.admin_url, database) as drain_sampler:
            deadline = time.monotonic() + 900
            while count(db_url, "runs") < triggers and time.monotonic() < deadline:
                time.sleep(0.05)
            r = redis.Redis.from_url(redis_server.url)
            while time.monotonic() < deadline and (
                r.exists("gaffer:buffer:orgs")
                or r.zcard("gaffer:buffer:inflight")
                or r.llen("gaffer:buffer:deliveries")
            ):
                time.sleep(0.05)
            drain_peak = drain_sampler.peak
        total_commits = write_transactions(pg.admin_url) - before
        jobs = int(r.llen("gaffer:gaffer-runs:wait")) - WARM_UP_DELIVERIES
        r.close()
    rows = [row for row in run_rows(db_url) if row[1] != warm.id]
    deliveries = {row[4] for row in rows}
    accepted = [row[2] for row in rows]
    span_s = (max(accepted) - min(accepted)).total_seconds() if rows else 0.0

    def waits(heavy_rows: bool) -> list[float]:
        return [
            (row[3] - row[2]).total_seconds() * 1000
            for row in rows
            if (row[1] == heavy_id) == heavy_rows
        ]

    heavy_waits, light_waits = waits(True), waits(False)
    report: dict[str, Any] = {
        "triggers": triggers,
        "gate_threshold_per_200ms": threshold,
        "heavy_triggers": heavy,
        "projects": projects,
        "organizations": orgs,
        "http": {
            "p50_ms": burst["p50_us"] / 1000,
            "p99_ms": burst["p99_us"] / 1000,
            "non_2xx": burst["non_2xx_3xx"],
            "socket_errors": burst["socket_errors"],
            "client_seconds": burst["client_seconds"],
        },
        "decisions": burst["decisions"],
        "accepts_per_s": round(triggers / span_s) if span_s else None,
        "accept_span_s": round(span_s, 3),
        "lost": triggers - len(deliveries),
        "duplicated_runs": len(rows) - len(deliveries),
        "duplicated_jobs": jobs - len(rows),
        "delivery_records": count(db_url, "webhook_deliveries") - WARM_UP_DELIVERIES,
        "db_peak_concurrent_write_transactions_during_burst": burst_sampler.peak,
        "db_peak_concurrent_write_transactions_during_drain": drain_peak,
        "db_write_transactions_during_burst": burst_commits,
        "db_write_transactions_total": total_commits,
        "wait_ms": {
            "light_p50": percentile(light_waits, 0.5),
            "light_p95": percentile(light_waits, 0.95),
            "heavy_p50": percentile(heavy_waits, 0.5),
            "heavy_p95": percentile(heavy_waits, 0.95),
        },
    }
    if buffer_on and rows:
        last_row = max(row[3] for row in rows)
        report["drain_s"] = round((last_row - min(accepted)).total_seconds(), 3)
        report["drain_after_burst_s"] = round((last_row - max(accepted)).total_seconds(), 3)
    return report


def memory_probe(
    redis_server: RedisServer, pg: PostgresServer, work: Path, entries: int
) -> dict[str, Any]:
    """Bytes of Redis memory per buffered entry of the heavy project's real request."""
    settings = Settings(
        home=work / "probe",
        database_url=pg.create_database(),
        redis_url=redis_server.url,
        master_key=MASTER_KEY,
    )
    [project] = create_projects(settings, 1, 1)
    body = FIXTURE.read_bytes()
    [request] = evaluate(parse("issues", "probe", body), project).requests
    redis_server.flush()
    client = redis.Redis.from_url(redis_server.url)

    async def accept() -> None:
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_server.url)
        store = BufferStore(r)
        runs = [NewRun(new_id(), request, batch_id=new_id(), batch_index=0) for _ in range(entries)]
        await store.accept(project.organization_id, project.id, runs)
        await r.aclose()

    client.memory_purge()
    before = int(client.info("memory")["used_memory"])
    asyncio.run(accept())
    after = int(client.info("memory")["used_memory"])
    client.close()
    return {
        "entries": entries,
        "used_memory_before": before,
        "used_memory_after": after,
        "bytes_per_entry": round((after - before) / entries),
        "webhook_payload_bytes": len(body),
        "snapshot_json_bytes": len(request.model_dump_json()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--heavy", type=int, default=9_000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument(
        "--threshold", type=int, default=10, help="gate threshold per 200 ms (see above)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wrk = need_wrk()
    work = Path(tempfile.mkdtemp(prefix="gaffer-bench-burst-"))
    os.chmod(work, 0o755)
    redis_server = RedisServer()
    pg = PostgresServer()
    redis_server.start()
    pg.start()
    common = {
        "pg": pg,
        "redis_server": redis_server,
        "wrk": wrk,
        "work": work,
        "triggers": args.triggers,
        "heavy": args.heavy,
        "projects": args.projects,
        "orgs": args.orgs,
        "threshold": args.threshold,
    }
    try:
        on = phase("buffer-on", buffer_on=True, **common)  # type: ignore[arg-type]
        off = phase("buffer-off", buffer_on=False, **common)  # type: ignore[arg-type]
        memory = memory_probe(redis_server, pg, work, MEMORY_PROBE_ENTRIES)
    finally:
        redis_server.close()
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    report = {"buffer_on": on, "buffer_off": off, "redis_memory": memory}
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    print_report(report)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def print_report(report: dict[str, Any]) -> None:
    """The figures as a table, buffer on beside buffer off."""
    on, off, memory = report["buffer_on"], report["buffer_off"], report["redis_memory"]
    print(
        f"burst: {on['triggers']:,} issues.labeled deliveries, {on['projects']} projects in "
        f"{on['organizations']} organizations, one project sending {on['heavy_triggers']:,}; "
        f"wrk {CONNECTIONS} connections; one ingest process (+ one drain process with the "
        f"buffer); gate threshold {on['gate_threshold_per_200ms']} per 200 ms, hold 500 ms, "
        "drain budget 50, concurrency 4"
    )
    rows = [
        ("ingest accepts/s", on["accepts_per_s"], off["accepts_per_s"]),
        ("HTTP p50 ms", on["http"]["p50_ms"], off["http"]["p50_ms"]),
        ("HTTP p99 ms", on["http"]["p99_ms"], off["http"]["p99_ms"]),
        ("non-2xx / socket errors", _pair(on), _pair(off)),
        ("answers buffered/queued/other", _decisions(on), _decisions(off)),
        (
            "peak concurrent DB write txns (burst)",
            on["db_peak_concurrent_write_transactions_during_burst"],
            off["db_peak_concurrent_write_transactions_during_burst"],
        ),
        (
            "peak concurrent DB write txns (drain)",
            on["db_peak_concurrent_write_transactions_during_drain"],
            off["db_peak_concurrent_write_transactions_during_drain"],
        ),
        (
            "DB write transactions during the burst",
            on["db_write_transactions_during_burst"],
            off["db_write_transactions_during_burst"],
        ),
        (
            "DB write transactions in all",
            on["db_write_transactions_total"],
            off["db_write_transactions_total"],
        ),
        (
            "wait accept->row p50 ms, light",
            _ms(on["wait_ms"]["light_p50"]),
            _ms(off["wait_ms"]["light_p50"]),
        ),
        (
            "wait accept->row p95 ms, light",
            _ms(on["wait_ms"]["light_p95"]),
            _ms(off["wait_ms"]["light_p95"]),
        ),
        (
            "wait accept->row p50 ms, heavy",
            _ms(on["wait_ms"]["heavy_p50"]),
            _ms(off["wait_ms"]["heavy_p50"]),
        ),
        (
            "wait accept->row p95 ms, heavy",
            _ms(on["wait_ms"]["heavy_p95"]),
            _ms(off["wait_ms"]["heavy_p95"]),
        ),
        ("total drain time s", on.get("drain_s"), "-"),
        ("  of which after the burst s", on.get("drain_after_burst_s"), "-"),
        ("lost", on["lost"], off["lost"]),
        ("duplicated runs / jobs", _dups(on), _dups(off)),
        ("delivery records", on["delivery_records"], off["delivery_records"]),
    ]
    print(f"{'':<40}{'buffer on':>16}{'buffer off':>16}")
    for label, a, b in rows:
        print(f"{label:<40}{a!s:>16}{b!s:>16}")
    print(
        f"Redis memory per buffered entry: {memory['bytes_per_entry']:,} bytes "
        f"(used_memory {memory['used_memory_before']:,} -> {memory['used_memory_after']:,} "
        f"for {memory['entries']:,} entries; webhook payload {memory['webhook_payload_bytes']:,} "
        f"bytes, snapshot JSON {memory['snapshot_json_bytes']:,} bytes)"
    )


def _pair(p: dict[str, Any]) -> str:
    return f"{p['http']['non_2xx']}/{p['http']['socket_errors']}"


def _decisions(p: dict[str, Any]) -> str:
    d = p["decisions"]
    return f"{d['buffered']}/{d['queued']}/{d['other']}"


def _dups(p: dict[str, Any]) -> str:
    return f"{p['duplicated_runs']}/{p['duplicated_jobs']}"


if __name__ == "__main__":
    main()
