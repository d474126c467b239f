"""Ingest throughput: signed GitHub deliveries vs a bare endpoint on the same server.

Starts a real ``gaffer up --role ingest`` (its embedded Redis, SQLite, a temporary data dir),
creates a project, and drives it with ``wrk`` (a C load generator in a second process, so the
client is not the bottleneck) at ``--concurrency`` connections for ``--seconds`` per endpoint:

* baseline: ``POST /bench/bare`` on the same server, which reads the same body and answers 202;
* gaffer: ``POST /webhooks/github`` with signed ``check_suite.completed`` deliveries, each with
  a fresh ``X-GitHub-Delivery`` (from a wrk Lua script), so every one is verified, claimed,
  evaluated, recorded and queued as a run.

Prints requests/s and p50/p99 latency side by side with the ratio, and the resident memory of
the ``gaffer up`` process idle and after at least ``--min-deliveries`` signed deliveries.

    .venv/bin/python bench/ingest.py [--seconds 10] [--concurrency 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gaffer.providers.github import sign

ROOT = Path(__file__).resolve().parents[1]
GAFFER = str(Path(sys.executable).parent / "gaffer")
FIXTURE = ROOT / "tests" / "fixtures" / "github-webhooks" / "check_suite.completed.json"

WRK_SCRIPT = r"""
-- args: body file, signature ('' for none), event, delivery id prefix
local counter = 0
local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = args[3]
  if args[2] ~= "" then wrk.headers["X-Hub-Signature-256"] = args[2] end
  prefix = args[4] .. "-" .. thread_id .. "-"
end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. counter
  return wrk.format(nil, nil, wrk.headers, wrk.body)
end
function done(summary, latency, requests)
  local codes = summary.errors.status
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, codes,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL
        )
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run_wrk(
    wrk: str,
    script: Path,
    url: str,
    body: Path,
    signature: str,
    prefix: str,
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    proc = subprocess.run(
        [
            wrk,
            f"-t{min(2, concurrency)}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            str(body),
            signature,
            "check_suite",
            prefix,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("WRK_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    data["per_second"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--min-deliveries", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wrk = need_wrk()

    home = Path(tempfile.mkdtemp(prefix="gaffer-bench-ingest-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GAFFER_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(GAFFER_HOME=str(home), GAFFER_BENCH_ENDPOINTS="1", GAFFER_LOG_LEVEL="WARNING")
    secret = secrets.token_hex(32)
    subprocess.run(
        [
            GAFFER,
            "projects",
            "create",
            "hello",
            "--repo",
            "Codertocat/Hello-World",
            "--clone-url",
            str(home / "none.git"),
            "--secret",
            secret,
            "--command",
            "true",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    script = home / "deliveries.lua"
    script.write_text(WRK_SCRIPT)
    body = home / "body.json"
    body.write_bytes(FIXTURE.read_bytes())
    signature = sign(body.read_bytes(), secret)
    ready = home / "ready"
    server = subprocess.Popen(
        [GAFFER, "up", "--role", "ingest", "--port", "0", "--ready-file", str(ready)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not ready.exists() or not ready.read_text().endswith("\n"):
            if server.poll() is not None:
                raise SystemExit("gaffer up exited during start-up")
            time.sleep(0.05)
        base = ready.read_text().strip()
        time.sleep(1.0)
        rss_idle = rss_mib(server.pid)
        common = (body, signature)
        # Warm-up of both paths, then the measured runs, baseline first.
        run_wrk(wrk, script, f"{base}/bench/bare", *common, "warm-bare", 1, args.concurrency)
        run_wrk(wrk, script, f"{base}/webhooks/github", *common, "warm", 1, args.concurrency)
        bare = run_wrk(
            wrk, script, f"{base}/bench/bare", *common, "bare", args.seconds, args.concurrency
        )
        signed = run_wrk(
            wrk,
            script,
            f"{base}/webhooks/github",
            *common,
            "signed",
            args.seconds,
            args.concurrency,
        )
        total = signed["requests"]
        extra = 0
        while total < args.min_deliveries:
            more = run_wrk(
                wrk, script, f"{base}/webhooks/github", *common, f"more{extra}", 2, args.concurrency
            )
            total += more["requests"]
            extra += 1
        rss_after = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(home, ignore_errors=True)

    report = {
        "concurrency": args.concurrency,
        "seconds_per_endpoint": args.seconds,
        "body_bytes": body.stat().st_size if body.exists() else len(FIXTURE.read_bytes()),
        "bare": bare,
        "signed": signed,
        "throughput_ratio_signed_to_bare": round(signed["per_second"] / bare["per_second"], 3),
        "rss_mib_idle": round(rss_idle, 1),
        "rss_mib_after": round(rss_after, 1),
        "signed_deliveries_before_rss_after": total,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"ingest benchmark: wrk, {args.concurrency} connections, {args.seconds:g} s per "
        f"endpoint, {len(FIXTURE.read_bytes())}-byte check_suite.completed body"
    )
    print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, data in (("bare endpoint (baseline)", bare), ("signed deliveries", signed)):
        print(
            f"{name:<28}{data['per_second']:>10.0f}{data['p50_us'] / 1000:>10.2f}"
            f"{data['p99_us'] / 1000:>10.2f}{data['non_2xx_3xx']:>10}"
        )
    print(f"signed/bare throughput ratio: {report['throughput_ratio_signed_to_bare']}")
    print(
        f"gaffer up RSS: {rss_idle:.1f} MiB idle, {rss_after:.1f} MiB after {total} signed "
        "deliveries"
    )


if __name__ == "__main__":
    main()
