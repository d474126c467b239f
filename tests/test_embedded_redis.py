"""The embedded default: with no REDIS_URL, gaffer runs (and stops) a private redis-server."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.process import GafferUp, gaffer, gaffer_env


def redis_servers(home: Path) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid,stat,args"], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in out.splitlines()
        if "redis-server" in line and str(home) in line and " Z" not in line
    ]


def wait_gone(home: Path) -> list[str]:
    deadline = time.monotonic() + 10
    while redis_servers(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    return redis_servers(home)


def test_up_starts_and_stops_its_redis(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = gaffer_env(home)
    server = GafferUp(env)
    try:
        assert len(redis_servers(home)) == 1
        assert (home / "redis" / "redis.sock").exists()
        # Another gaffer process on the same data dir joins the running server.
        gaffer("runs", "cancel", "ffffffff", env=env, check=False)
        assert len(redis_servers(home)) == 1
    finally:
        assert server.terminate() == 0
    assert wait_gone(home) == []
    # The master key was generated with the embedded default.
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600


def test_redis_dies_with_a_killed_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = GafferUp(gaffer_env(home))
    try:
        assert len(redis_servers(home)) == 1
    finally:
        server.kill()
    assert wait_gone(home) == []


def test_missing_redis_server_is_one_clear_line(tmp_path: Path) -> None:
    env = gaffer_env(tmp_path / "home", PATH="/nonexistent")
    proc = gaffer("up", "--port", "0", env=env, check=False, timeout=60)
    assert proc.returncode == 1
    assert "redis-server not found: install it (apt-get install -y redis-server)" in proc.stderr
    assert "Traceback" not in proc.stderr
