"""Job payloads of any size: inline under 96 KiB (UTF-8 bytes), offloaded to Redis above it.

The incident: Linux refuses ``execve`` when one env string is over 128 KiB, so a worker given a
large ``JOB_DATA`` died with "argument list too long" before any Python ran.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.connection import parse_url

from gaffer.coordination.job_readers import (
    READER_PREFIX,
    JobReaderError,
    reader_name,
    sweep_job_readers,
    with_credentials,
)
from gaffer.coordination.jobdata import JOB_DATA_INLINE_MAX_BYTES, job_data_key
from gaffer.demo.repository import create_bare_repository
from gaffer.dispatch.worker_env import build_worker_env
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.store.models import RunStatus
from tests.conftest import GafferFactory, SettingsFactory
from tests.support.harness import fixture_body
from tests.support.jobs import make_job, run_worker, worker_base_env
from tests.support.servers import RedisServer

KIB = 1024
MIB = 1024 * KIB


def job_of(size: int, bare: Path, command: str = "true") -> JobData:
    """A job whose JSON is exactly ``size`` UTF-8 bytes (ASCII padding in the body)."""
    base = len(make_job(bare, command, body="").model_dump_json().encode())
    job = make_job(bare, command, body="x" * (size - base))
    assert len(job.model_dump_json().encode()) == size
    return job


def build_env(job: JobData, settings: Settings, redis_url: str) -> dict[str, str]:
    async def build() -> dict[str, str]:
        client = aioredis.from_url(redis_url)
        try:
            return await build_worker_env(
                job, worker_base_env(), settings=settings, redis=client, worker_redis_url=redis_url
            )
        finally:
            await client.aclose()

    return asyncio.run(build())


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return create_bare_repository(tmp_path / "repo")


def test_the_kernel_refuses_a_200_kib_env_string() -> None:
    """Pins the reason for offloading: execve fails with E2BIG (MAX_ARG_STRLEN, 128 KiB)."""
    with pytest.raises(OSError) as raised:
        subprocess.run(["/bin/true"], env={"JOB_DATA": "x" * (200 * KIB)}, check=False)
    assert raised.value.errno == errno.E2BIG
    # 96 KiB, the inline limit, still starts.
    subprocess.run(["/bin/true"], env={"JOB_DATA": "x" * JOB_DATA_INLINE_MAX_BYTES}, check=True)


@pytest.mark.parametrize(
    ("size", "where"),
    [
        (JOB_DATA_INLINE_MAX_BYTES - 1, "inline"),
        (JOB_DATA_INLINE_MAX_BYTES, "inline"),
        (JOB_DATA_INLINE_MAX_BYTES + 1, "redis"),
    ],
)
def test_the_limit_is_96_kib(
    size: int, where: str, bare: Path, make_settings: SettingsFactory, redis_url: str
) -> None:
    env = build_env(job_of(size, bare), make_settings(), redis_url)
    if where == "inline":
        assert len(env["JOB_DATA"].encode()) == size
        assert "JOB_DATA_REDIS_KEY" not in env
    else:
        assert "JOB_DATA" not in env
        assert env["JOB_DATA_REDIS_KEY"].startswith("gaffer:jobdata:")
        # The same Redis, as the job's own user.
        url = env["GAFFER_WORKER_REDIS_URL"]
        assert url.startswith(f"{redis_url}?username=gaffer-job-"), url


def test_size_is_measured_in_bytes_not_characters(
    bare: Path, make_settings: SettingsFactory, redis_url: str
) -> None:
    job = make_job(bare, "true", body="é" * 61_440)  # 61,440 characters, 122,880 bytes in UTF-8
    assert len(job.model_dump_json()) < JOB_DATA_INLINE_MAX_BYTES  # under, counted in characters
    assert len(job.model_dump_json().encode()) > 122_880  # over, counted in bytes
    env = build_env(job, make_settings(), redis_url)
    assert "JOB_DATA" not in env
    stored = redis.Redis.from_url(redis_url).get(env["JOB_DATA_REDIS_KEY"])
    assert stored == job.model_dump_json().encode()


@pytest.mark.parametrize("size", [97 * KIB, 1 * MIB, 16 * MIB])
def test_payloads_round_trip_byte_for_byte_through_a_worker(
    size: int, bare: Path, make_settings: SettingsFactory, redis_url: str, tmp_path: Path
) -> None:
    job = job_of(size, bare, command='cp "$GAFFER_TASK_FILE" TASK.json; env | sort > ENV.txt')
    sent = job.model_dump_json().encode()
    env = build_env(job, make_settings(), redis_url)
    data_key = env["JOB_DATA_REDIS_KEY"]
    assert data_key == job_data_key(job.run_id)
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(data_key) <= 3600

    code, events = run_worker(env, tmp_path / "ws")
    assert code == 0, events[-1]
    loaded = next(e for e in events if e["event"] == "job_loaded")
    assert loaded["source"] == "redis"
    assert loaded["bytes"] == size
    assert loaded["sha256"] == hashlib.sha256(sent).hexdigest()
    # Read once, then deleted.
    assert client.exists(data_key) == 0
    # The engine got the whole task, and none of the job's plumbing.
    commit = events[-1]["commit"]
    task = subprocess.run(
        ["git", "show", f"{commit}:TASK.json"], cwd=bare, capture_output=True, check=True
    ).stdout
    assert json.loads(task)["body"] == job.task.body
    engine_env = subprocess.run(
        ["git", "show", f"{commit}:ENV.txt"], cwd=bare, capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("=", 1)[0] for line in engine_env.splitlines()}
    assert not names & {"JOB_DATA", "JOB_DATA_REDIS_KEY", "GAFFER_WORKER_REDIS_URL"}


def test_missing_key_is_a_distinct_failure(
    bare: Path, make_settings: SettingsFactory, redis_url: str, tmp_path: Path
) -> None:
    env = build_env(job_of(200 * KIB, bare), make_settings(), redis_url)
    redis.Redis.from_url(redis_url).delete(env["JOB_DATA_REDIS_KEY"])
    code, events = run_worker(env, tmp_path / "ws")
    assert code == 2
    assert events[0]["event"] == "worker_job_data_missing"
    assert "does not exist (expired or already read)" in events[0]["reason"]
    assert events[-1]["error"].startswith("worker_job_data_missing: ")


def test_unreachable_redis_is_a_distinct_failure(
    bare: Path, make_settings: SettingsFactory, redis_url: str, tmp_path: Path
) -> None:
    env = build_env(job_of(200 * KIB, bare), make_settings(), redis_url)
    env["GAFFER_WORKER_REDIS_URL"] = f"unix://{tmp_path / 'no-redis.sock'}"
    code, events = run_worker(env, tmp_path / "ws")
    assert code == 2
    assert events[0]["event"] == "worker_job_data_redis_down"
    assert events[-1]["error"].startswith("worker_job_data_redis_down: ")


# -- through the dispatcher ---------------------------------------------------------------


def big_labeled(size: int) -> bytes:
    """issues.labeled whose issue body makes the job over ``size`` bytes (twice: raw payload
    and resolved task, as in the incident)."""
    payload = json.loads(fixture_body("issues.labeled"))
    payload["issue"]["body"] = "long description " * (size // 34 + 1)
    return json.dumps(payload).encode()


@pytest.fixture
def small_bulk_limit(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=str(redis_server.socket))
    yield client
    client.config_set("proto-max-bulk-len", str(512 * MIB))


def test_offload_write_failure_retries_and_starts_no_worker(
    start_gaffer: GafferFactory, database_url: str | None, small_bulk_limit: redis.Redis
) -> None:
    ingest = start_gaffer(roles=("ingest",), database_url=database_url)
    project = ingest.create_project(
        command='test "$(wc -c < "$GAFFER_TASK_FILE")" -gt 1000000 && echo ok > OK.txt'
    )
    response = ingest.deliver(big_labeled(2 * MIB), "issues", project.secret)
    [run_id] = response.json()["runs"]
    # Redis now refuses any value over 1 MiB: the offload write of this ~4 MiB job fails.
    small_bulk_limit.config_set("proto-max-bulk-len", str(1 * MIB))
    dispatch = start_gaffer(roles=("dispatch",), database_url=database_url)
    deadline_lines: list[tuple[str, str]] = []
    for _ in range(600):
        deadline_lines = dispatch.logs(run_id)
        if sum("worker start failed" in m for _, m in deadline_lines) >= 2:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert sum("worker start failed" in m for _, m in deadline_lines) >= 2
    assert not any("worker started" in m for _, m in deadline_lines)
    # Between attempts the run waits QUEUED (STARTING while an attempt is under way).
    assert dispatch.run(run_id)["status"] in ("QUEUED", "STARTING")
    # Redis takes large values again: the next retry offloads again and the run succeeds.
    small_bulk_limit.config_set("proto-max-bulk-len", str(512 * MIB))
    run = dispatch.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    assert sum("worker started" in m for _, m in dispatch.logs(run_id)) == 1


def test_without_offload_the_kernel_refuses_the_worker(start_gaffer: GafferFactory) -> None:
    """The incident itself, with the offload turned off: the run cannot start."""
    gaffer = start_gaffer(job_data_offload=False)
    project = gaffer.create_project()
    [run_id] = gaffer.deliver(big_labeled(200 * KIB), "issues", project.secret).json()["runs"]
    run = gaffer.wait_for(run_id, timeout=180)
    assert run["status"] == "SYSTEM_FAILURE"
    assert "argument list too long" in run["error"]


@pytest.mark.parametrize("failure", ["missing", "redis_down"])
def test_worker_job_data_failures_end_the_run_failed(
    start_gaffer: GafferFactory, redis_url: str, tmp_path: Path, failure: str
) -> None:
    # Workers are pointed at another Redis database (no key there) or at no Redis at all.
    wrong = f"{redis_url}?db=7" if failure == "missing" else f"unix://{tmp_path}/none.sock"
    gaffer = start_gaffer(worker_redis_url=wrong)
    project = gaffer.create_project()
    [run_id] = gaffer.deliver(big_labeled(200 * KIB), "issues", project.secret).json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == RunStatus.FAILED
    assert run["exit_code"] == 2
    assert run["error"].startswith(f"worker_job_data_{failure}: ")
    assert any(m.startswith(f"worker_job_data_{failure} ") for _, m in gaffer.logs(run_id))


# -- the worker's Redis credential ------------------------------------------------------------

ADMIN_PASSWORD = "gaffers-own-redis-password"


@pytest.fixture
def guarded_redis() -> Iterator[str]:
    """A Redis that wants a password, as one reachable over TCP would; yields gaffer's URL."""
    server = RedisServer()
    server.start()
    redis.Redis(unix_socket_path=str(server.socket)).config_set("requirepass", ADMIN_PASSWORD)
    yield f"unix://{server.socket}?password={ADMIN_PASSWORD}"
    server.close()


def job_readers(url: str) -> list[str]:
    users = [str(u) for u in redis.Redis.from_url(url, decode_responses=True).acl_users()]
    return [u for u in users if u.startswith(READER_PREFIX)]


def sweep(url: str) -> int:
    async def run() -> int:
        client = aioredis.from_url(url)
        try:
            return await sweep_job_readers(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_worker_reads_its_job_as_a_user_that_can_do_nothing_else(
    bare: Path, make_settings: SettingsFactory, guarded_redis: str, tmp_path: Path
) -> None:
    admin = redis.Redis.from_url(guarded_redis)
    admin.set("gaffer:claim:something", "gaffer's")
    other = job_of(200 * KIB, bare)
    build_env(other, make_settings(), guarded_redis)  # another job in flight
    env = build_env(job_of(200 * KIB, bare), make_settings(), guarded_redis)
    worker_url = env["GAFFER_WORKER_REDIS_URL"]
    assert ADMIN_PASSWORD not in "".join(env.values())
    as_worker = redis.Redis.from_url(worker_url)
    for command in (
        ("GET", "gaffer:claim:something"),
        ("GETDEL", job_data_key(other.run_id)),
        ("SET", env["JOB_DATA_REDIS_KEY"], "forged"),
        ("KEYS", "*"),
        ("FLUSHALL",),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            as_worker.execute_command(*command)

    code, events = run_worker(env, tmp_path / "ws")
    assert code == 0, events[-1]
    assert next(e for e in events if e["event"] == "job_loaded")["source"] == "redis"
    # Its job read, its user is swept; the other job's user stays until that job is read.
    assert sweep(guarded_redis) == 1
    assert job_readers(guarded_redis) == [reader_name(other.run_id)]
    with pytest.raises(redis.exceptions.AuthenticationError):
        as_worker.ping()
    assert admin.get("gaffer:claim:something") == b"gaffer's"


def test_a_retry_of_the_job_replaces_its_credential(
    bare: Path, make_settings: SettingsFactory, guarded_redis: str
) -> None:
    job = job_of(200 * KIB, bare)
    first = build_env(job, make_settings(), guarded_redis)["GAFFER_WORKER_REDIS_URL"]
    second = build_env(job, make_settings(), guarded_redis)["GAFFER_WORKER_REDIS_URL"]
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(first).ping()
    assert redis.Redis.from_url(second).getdel(job_data_key(job.run_id)) is not None


def test_a_redis_that_refuses_users_fails_the_offload_with_what_to_do(
    bare: Path, make_settings: SettingsFactory, guarded_redis: str, tmp_path: Path
) -> None:
    admin = redis.Redis.from_url(guarded_redis)
    admin.acl_setuser(
        "limited", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-acl"]
    )
    limited = guarded_redis.replace(f"password={ADMIN_PASSWORD}", "username=limited&password=pw")
    job = job_of(200 * KIB, bare)
    with pytest.raises(JobReaderError, match="GAFFER_WORKER_REDIS_ACCESS=shared"):
        build_env(job, make_settings(), limited)
    # Shared access: the worker gets gaffer's own URL, and reads its job with it.
    env = build_env(job, make_settings(worker_redis_access="shared"), limited)
    assert env["GAFFER_WORKER_REDIS_URL"] == limited
    code, events = run_worker(env, tmp_path / "ws")
    assert code == 0, events[-1]


def test_the_dispatcher_sweeps_the_users_of_jobs_read(
    start_gaffer: GafferFactory, redis_url: str
) -> None:
    gaffer = start_gaffer(repair_interval_s=3600)
    project = gaffer.create_project()
    [run_id] = gaffer.deliver(big_labeled(200 * KIB), "issues", project.secret).json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run
    assert any("source=redis" in m for _, m in gaffer.logs(run_id))
    # The worker read its job as its own user, which outlives the read until a sweep ...
    assert reader_name(run_id) in job_readers(redis_url)
    # ... such as the one every dispatcher makes when it starts.
    start_gaffer(roles=("dispatch",))
    deadline = time.monotonic() + 30
    while reader_name(run_id) in job_readers(redis_url):
        assert time.monotonic() < deadline, "the job's Redis user was never swept"
        time.sleep(0.1)


def test_a_sweep_leaves_the_users_of_another_database_alone(
    bare: Path, make_settings: SettingsFactory, redis_url: str
) -> None:
    """ACL users are server-wide, job keys are per database: a gaffer on database 0 must not
    delete the user of a job another gaffer offloaded on database 5 and has not read yet."""
    other_db = f"{redis_url}?db=5"
    job = job_of(200 * KIB, bare)
    env = build_env(job, make_settings(), other_db)
    assert sweep(redis_url) == 0
    assert redis.Redis.from_url(env["GAFFER_WORKER_REDIS_URL"]).getdel(env["JOB_DATA_REDIS_KEY"])
    assert sweep(other_db) == 1
    assert reader_name(job.run_id) not in job_readers(redis_url)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("redis://:gaffers@host:6379/2?socket_timeout=5", {"host": "host", "db": 2}),
        ("unix:///run/r.sock?db=3&password=gaffers", {"path": "/run/r.sock", "db": 3}),
        ("rediss://gaffer:gaffers@[::1]:6380/0", {"host": "::1", "port": 6380}),
    ],
)
def test_the_workers_url_carries_only_the_job_users_credentials(
    url: str, where: dict[str, object]
) -> None:
    """Whatever credentials gaffer's own URL has (in the netloc or the query), the worker's
    URL has the job user's instead, as redis-py reads it; the rest of the URL is kept."""
    parsed = parse_url(with_credentials(url, "gaffer-job-x", "p@ss/w&rd"))
    assert (parsed["username"], parsed["password"]) == ("gaffer-job-x", "p@ss/w&rd")
    assert where.items() <= parsed.items()
