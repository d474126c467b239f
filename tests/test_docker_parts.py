"""The parts of the container backend that need no running container: image references, the
container's mounts and Redis access, exit readings, output lines, and the image pull memory
(against the real engine)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from pydantic import ValidationError

from gaffer.aio import iterate_in_thread
from gaffer.backends import make_backend
from gaffer.backends.docker import DockerWorker
from gaffer.backends.docker_images import ImageUnavailableError, WorkerImages
from gaffer.backends.docker_logs import stamp_second
from gaffer.backends.docker_spec import (
    REDIS_SOCKET,
    RedisUnreachableError,
    local_repository,
    worker_redis_access,
)
from gaffer.backends.lines import MAX_LINE_BYTES, split_lines
from gaffer.demo.repository import create_bare_repository
from gaffer.images.reference import InvalidImageReferenceError, validate_image_reference
from gaffer.settings import Settings
from tests.support.containers import PodmanService
from tests.support.process import gaffer, gaffer_env

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "reference",
    [
        "gaffer-worker",
        "localhost/gaffer-worker:latest",
        "127.0.0.1:5000/team/worker:v1.2-rc_3",
        f"registry.example.com/a/b@{DIGEST}",
        f"localhost:5000/a__b/c.d:tag@{DIGEST}",
        "[::1]:5000/x:1",
    ],
)
def test_valid_image_references(reference: str) -> None:
    assert validate_image_reference(reference) == reference


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("", "empty"),
        (" localhost/x", "whitespace"),
        ("localhost/Gaffer-Worker", "lowercase path"),
        ("x:", "expected"),
        ("x@sha256:abc", "expected"),
        ("a/-b", "expected"),
        ("x:tag with space", "expected"),
        ("x:" + "t" * 129, "expected"),
        ("a" * 256, "longer than 255"),
    ],
)
def test_invalid_image_references(reference: str, why: str) -> None:
    with pytest.raises(InvalidImageReferenceError, match=why):
        validate_image_reference(reference)


def test_settings_refuse_a_bad_image_and_instance() -> None:
    with pytest.raises(ValidationError, match="invalid image reference 'Not/An Image'"):
        Settings(worker_image="Not/An Image")
    with pytest.raises(ValidationError, match="invalid instance name"):
        Settings(instance="two words")


def test_up_with_a_bad_image_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = gaffer_env(home, GAFFER_BACKEND="docker", GAFFER_WORKER_IMAGE="localhost/Bad:tag")
    proc = gaffer("up", "--port", "0", env=env, check=False)
    assert proc.returncode == 1
    assert "invalid image reference 'localhost/Bad:tag'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not home.exists()


def test_redis_access_from_a_container() -> None:
    unix = worker_redis_access("unix:///srv/gaffer/redis.sock?db=2", "bridge")
    assert unix.url == f"unix://{REDIS_SOCKET}?db=2"
    assert unix.socket == Path("/srv/gaffer/redis.sock")
    remote = worker_redis_access("redis://redis.internal:6379/0", "bridge")
    assert (remote.url, remote.socket) == ("redis://redis.internal:6379/0", None)
    assert worker_redis_access("redis://127.0.0.1:6379", "host").url == "redis://127.0.0.1:6379"
    for loopback in ("redis://127.0.0.1:6379", "redis://localhost/1", "rediss://[::1]:6380"):
        with pytest.raises(RedisUnreachableError, match="GAFFER_WORKER_NETWORK=host"):
            worker_redis_access(loopback, "bridge")


def test_the_docker_backend_refuses_a_loopback_redis_when_built() -> None:
    settings = Settings(backend="docker", redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(RedisUnreachableError):
        make_backend(settings)


def test_only_local_git_repositories_are_mounted(tmp_path: Path) -> None:
    bare = create_bare_repository(tmp_path)
    assert local_repository(str(bare)) == bare
    assert local_repository(f"file://{bare}") == bare
    subprocess.run(["git", "init", "--quiet", str(tmp_path / "tree")], check=True)
    assert local_repository(str(tmp_path / "tree")) == tmp_path / "tree"
    assert local_repository(str(tmp_path)) is None  # a directory, not a repository
    assert local_repository(str(tmp_path / "missing")) is None
    assert local_repository("https://github.com/octo/hello.git") is None
    assert local_repository("relative/path") is None


@pytest.fixture
def offline_client() -> Iterator[docker.DockerClient]:
    """A client that is never used to call an engine (nothing listens there)."""
    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    yield client
    client.close()


def test_exit_readings(offline_client: docker.DockerClient) -> None:
    worker = DockerWorker(offline_client, "id", "gaffer-worker-x")
    assert worker.exit_reason(137) == "killed (SIGKILL), likely out of memory"
    assert worker.exit_reason(143) == "killed by signal 15 (SIGTERM)"
    assert worker.exit_reason(0) is None
    assert worker.exit_reason(1) is None
    worker.oom_killed = True
    assert worker.exit_reason(137) == "killed: out of memory"


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _lines(*chunks: bytes) -> list[str]:
    return [line async for line in split_lines(_chunks(*chunks))]


def test_lines_across_chunks_and_the_line_cap() -> None:
    assert asyncio.run(_lines(b"a", b"b\nc", b"d\n\ne")) == ["ab", "cd", "", "e"]
    huge = asyncio.run(_lines(b"x" * (MAX_LINE_BYTES + 10), b"\nnext\n"))
    assert huge == ["x" * MAX_LINE_BYTES + " [line truncated]", "next"]
    assert asyncio.run(_lines("é".encode()[:1], "é".encode()[1:] + b"\n")) == ["é"]


def test_iterate_in_thread_keeps_order_raises_and_stops() -> None:
    def items() -> Iterator[int]:
        yield from range(1000)
        raise OSError("stream broke")

    async def collect() -> tuple[list[int], str]:
        got = []
        try:
            async for item in iterate_in_thread(items, max_pending=8):
                got.append(item)
        except OSError as exc:
            return got, str(exc)
        return got, ""

    assert asyncio.run(collect()) == (list(range(1000)), "stream broke")

    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while n < 10_000:
            produced.append(n)
            yield n
            n += 1

    async def first_three() -> list[int]:
        got = []
        async for item in iterate_in_thread(endless, max_pending=4):
            got.append(item)
            if len(got) == 3:
                break
        await asyncio.sleep(1.0)  # the reader notices within its 0.5 s poll
        return got

    assert asyncio.run(first_three()) == [0, 1, 2]
    # Backpressure: the reader never ran more than max_pending (+ the one in hand) ahead.
    assert len(produced) <= 3 + 4 + 1


def test_a_failed_pull_is_remembered_then_tried_again(podman: PodmanService) -> None:
    now = [1000.0]
    images = WorkerImages(podman.client, failure_ttl_s=30, clock=lambda: now[0])
    missing = "localhost/gaffer-no-such-image:remembered"

    async def ensure() -> str:
        with pytest.raises(ImageUnavailableError) as raised:
            await images.ensure(missing)
        return str(raised.value)

    first = asyncio.run(ensure())
    assert first.startswith(f"worker image {missing} is not available: ")
    assert "pull failed" not in first
    now[0] += 10
    assert asyncio.run(ensure()) == f"{first} (pull failed 10 s ago)"
    now[0] += 30
    assert "pull failed" not in asyncio.run(ensure())
    # A present image is found without a pull.
    present = asyncio.run(images.ensure("localhost/gaffer-worker:latest"))
    assert present.startswith("sha256:")


def test_log_timestamps_to_the_second() -> None:
    assert stamp_second("1970-01-01T00:01:40Z") == 100
    assert stamp_second("1970-01-01T00:01:40.999999999Z") == 100
    assert stamp_second("1970-01-01T01:01:40+01:00") == 100
    assert stamp_second("not-a-stamp") is None
    assert stamp_second("") is None
