"""The same streamed completion directly from the upstream and through the gateway.

The scripted provider (``tests/support/upstream.py``, one uvicorn process) streams an
Anthropic Messages answer of ``--events`` text deltas (about 2,000 SSE events); a gateway
(``create_app`` over the real parts: per-run token check, the run read from SQLite, the budget
reservation in a private Redis with the Lua script, usage read from the stream, the usage row
written, one uvicorn process) stands in front of it. The client (aiohttp in this process: its C
parser keeps the client from being what is measured) makes ``--calls`` calls at concurrency 1
and at 16, alternating direct and through the gateway, and
reports for each: time to first byte (request sent to the first body byte, ms), total time per
call (ms), p50 and p99 of both, events per second (all events received / wall time of the
phase), and the gateway's added p50 time to first byte and its throughput as a share of direct.

Targets (issue 11): p50 time to first byte added <= 2 ms, throughput >= 90 % of direct.

    .venv/bin/python bench/gateway.py [--events 2000] [--calls 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import RedisServer, free_port  # noqa: E402
from tests.support.store import add_runs  # noqa: E402
from tests.support.upstream import UPSTREAM_KEY  # noqa: E402

from gaffer.gateway.tokens import RunTokens  # noqa: E402
from gaffer.logs import configure_logging  # noqa: E402
from gaffer.settings import Settings  # noqa: E402
from gaffer.store.db import Database  # noqa: E402
from gaffer.store.migrate import migrate  # noqa: E402
from gaffer.store.models import Run, RunStatus, new_id  # noqa: E402

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4096,
    "stream": True,
    "messages": [{"role": "user", "content": "write a long answer"}],
}


def serve_gateway(upstream_url: str, port: int) -> None:
    """The gateway process (``--serve-gateway``): settings from the environment."""
    import redis.asyncio as aioredis
    import uvicorn

    from gaffer.gateway.budgets import Budgets, SettingsLimits
    from gaffer.gateway.pricing import PriceTable
    from gaffer.gateway.proxy import create_app
    from gaffer.gateway.runs import StoredRuns
    from gaffer.gateway.service import Gateway
    from gaffer.gateway.settings import GatewaySettings
    from gaffer.gateway.upstreams import StaticUpstreams, Upstream
    from gaffer.runtime import open_runtime

    settings = Settings()
    configure_logging(settings)
    gw_settings = GatewaySettings(max_run_cost_usd=0)
    assert settings.redis_url is not None and settings.master_key is not None
    with open_runtime(settings, redis=False) as runtime:

        async def main() -> None:
            redis = aioredis.from_url(settings.redis_url or "")
            gateway = Gateway(
                settings=gw_settings,
                db=runtime.db,
                tokens=RunTokens(settings.master_key.encode() if settings.master_key else b""),
                runs=StoredRuns(runtime.db),
                resolver=StaticUpstreams(Upstream(upstream_url, UPSTREAM_KEY, "scripted")),
                budgets=Budgets(redis, runtime.db, SettingsLimits(gw_settings)),
                prices=PriceTable.load(),
            )
            config = uvicorn.Config(
                create_app(gateway),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                loop="uvloop",
                lifespan="on",
            )
            await uvicorn.Server(config).serve()

        import uvloop

        uvloop.run(main())


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.head(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def one_call(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[float, float, int]:
    """``(ttfb ms, total ms, events)`` of one streamed call."""
    start = time.perf_counter()
    first: float | None = None
    events = 0
    async with http.post(url, json=BODY, headers=headers) as answer:
        assert answer.status == 200, answer.status
        async for chunk in answer.content.iter_any():
            if first is None:
                first = time.perf_counter()
            events += chunk.count(b"\n\n")
    end = time.perf_counter()
    assert first is not None
    return (first - start) * 1000, (end - start) * 1000, events


async def phase(url: str, tokens: list[str], *, calls: int, concurrency: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
        # Warm the connections (and the servers' code paths) first.
        headers = {"x-api-key": tokens[0], "anthropic-version": "2023-06-01"}
        await asyncio.gather(*(one_call(http, url, headers) for _ in range(concurrency)))
        results: list[tuple[float, float, int]] = []
        queue = list(range(calls))

        async def worker(i: int) -> None:
            token_headers = {
                "x-api-key": tokens[i % len(tokens)],
                "anthropic-version": "2023-06-01",
            }
            while queue:
                queue.pop()
                results.append(await one_call(http, url, token_headers))

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - began
    ttfb = sorted(r[0] for r in results)
    total = sorted(r[1] for r in results)
    events = sum(r[2] for r in results)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {
        "calls": len(results),
        "events_per_call": results[0][2],
        "ttfb_p50_ms": round(statistics.median(ttfb), 3),
        "ttfb_p99_ms": round(pct(ttfb, 0.99), 3),
        "total_p50_ms": round(statistics.median(total), 2),
        "total_p99_ms": round(pct(total, 0.99), 2),
        "events_per_s": round(events / wall),
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-gateway", nargs=2, metavar=("UPSTREAM_URL", "PORT"))
    args = parser.parse_args()
    if args.serve_gateway:
        serve_gateway(args.serve_gateway[0], int(args.serve_gateway[1]))
        return

    workdir = Path(tempfile.mkdtemp(prefix="gaffer-bench-gateway-"))
    redis_server = RedisServer()
    redis_server.start()
    master_key = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "GAFFER_HOME": str(workdir / "home"),
        "REDIS_URL": redis_server.url,
        "GAFFER_MASTER_KEY": master_key,
        "GAFFER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    settings = Settings(home=workdir / "home", redis_url=redis_server.url, master_key=master_key)
    db = Database(settings)
    migrate(db)
    project_id = add_runs(db)
    run_ids = [new_id() for _ in range(16)]
    with db.session() as session:
        for run_id in run_ids:
            session.add(
                Run(
                    id=run_id,
                    project_id=project_id,
                    agent_type="implementation",
                    work_item=run_id[:6],
                    trigger="bench",
                    status=RunStatus.RUNNING,
                    job_data={},
                )
            )
    signer = RunTokens(master_key.encode())
    tokens = [signer.issue(run_id, ttl_s=3600) for run_id in run_ids]
    up_port, gw_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    gateway_url = f"http://127.0.0.1:{gw_port}"
    python = sys.executable
    upstream_args = [python, "-m", "tests.support.upstream", "--port", str(up_port)]
    upstream_args += ["--events", str(args.events)]
    gateway_args = [python, __file__, "--serve-gateway", upstream_url, str(gw_port)]
    report: dict[str, Any] = {"events": args.events, "calls": args.calls}
    try:
        with process(upstream_args, env), process(gateway_args, env):
            wait_http(upstream_url + "/v1/messages")
            wait_http(gateway_url + "/")
            for concurrency in (1, 16):
                runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
                for _ in range(2):  # alternate, so both see the same machine load
                    for name, base in (("direct", upstream_url), ("gateway", gateway_url)):
                        keyed = [UPSTREAM_KEY] if name == "direct" else tokens
                        runs[name].append(
                            asyncio.run(
                                phase(
                                    base + "/v1/messages",
                                    keyed,
                                    calls=args.calls // 2,
                                    concurrency=concurrency,
                                )
                            )
                        )
                merged = {name: _merge(phases) for name, phases in runs.items()}
                direct, gateway = merged["direct"], merged["gateway"]
                merged["ttfb_p50_added_ms"] = round(
                    direct["ttfb_p50_ms"] * -1 + gateway["ttfb_p50_ms"], 3
                )
                merged["throughput_share"] = round(
                    gateway["events_per_s"] / direct["events_per_s"], 3
                )
                report[f"concurrency_{concurrency}"] = merged
        with db.session() as session:
            from sqlalchemy import func, select

            from gaffer.store.models import GatewayCall

            report["usage_rows"] = session.scalar(select(func.count(GatewayCall.id)))
            recorded = sorted(
                t for t in session.scalars(select(GatewayCall.ttfb_ms)) if t is not None
            )
            report["gateway_recorded_upstream_ttfb_p50_ms"] = statistics.median(recorded)
    finally:
        redis_server.close()
        db.dispose()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.events} events per call, {args.calls} calls per side and concurrency")
    for concurrency in (1, 16):
        figures = report[f"concurrency_{concurrency}"]
        print(f"\nconcurrency {concurrency}")
        heads = ("ttfb p50", "ttfb p99", "total p50", "total p99", "events/s")
        print(f"  {'':8} " + " ".join(f"{h:>10}" for h in heads))
        for name in ("direct", "gateway"):
            f = figures[name]
            print(
                f"  {name:8} {f['ttfb_p50_ms']:>7.2f}ms {f['ttfb_p99_ms']:>7.2f}ms "
                f"{f['total_p50_ms']:>8.1f}ms {f['total_p99_ms']:>8.1f}ms {f['events_per_s']:>10,}"
            )
        print(
            f"  added p50 ttfb {figures['ttfb_p50_added_ms']:.2f} ms (target <= 2); throughput "
            f"{figures['throughput_share']:.0%} of direct (target >= 90%)"
        )
    print(
        f"\nusage rows written by the gateway: {report['usage_rows']}; the gateway's own p50 time"
    )
    print(f"from request to upstream answer: {report['gateway_recorded_upstream_ttfb_p50_ms']} ms")


def _merge(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Two alternating phases of one side: medians of the percentiles, sums of the events."""
    keys = ("ttfb_p50_ms", "ttfb_p99_ms", "total_p50_ms", "total_p99_ms")
    merged: dict[str, Any] = {k: round(statistics.mean(p[k] for p in phases), 3) for k in keys}
    merged["calls"] = sum(p["calls"] for p in phases)
    merged["events_per_call"] = phases[0]["events_per_call"]
    events = sum(p["events_per_s"] * p["wall_s"] for p in phases)
    merged["events_per_s"] = round(events / sum(p["wall_s"] for p in phases))
    return merged


if __name__ == "__main__":
    main()
