"""A container's output read through the engine's log API (real Podman): from the start, and
resumed from a cursor as a dispatcher that re-attaches after another died does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from docker.models.containers import Container

from gaffer.backends.base import LogCursor
from gaffer.backends.docker_logs import ContainerLogs, stamp_second
from tests.support.containers import WORKER_IMAGE, PodmanService

LINES = 60
SCRIPT = f'for i in $(seq 1 {LINES}); do echo "line $i"; done; printf "last, no newline"'
EXPECTED = [f"line {i}" for i in range(1, LINES + 1)] + ["last, no newline"]


@pytest.fixture
def exited(podman: PodmanService) -> Iterator[Container]:
    """A container that printed :data:`EXPECTED` (many lines within one second, the last with
    no newline) and exited."""
    container = podman.client.containers.run(
        WORKER_IMAGE, entrypoint=["sh", "-c", SCRIPT], detach=True
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        yield container
    finally:
        container.remove(force=True)


def read(
    podman: PodmanService, container: Container, start: LogCursor | None
) -> tuple[list[str], LogCursor | None]:
    """Every line :class:`ContainerLogs` yields from ``start``, and its cursor after them."""
    logs = ContainerLogs(podman.client, container.id, container.name, start)

    async def collect() -> list[str]:
        return [line async for line in logs.lines()]

    return asyncio.run(collect()), logs.cursor


def test_every_line_is_read_once_including_a_last_one_without_newline(
    podman: PodmanService, exited: Container
) -> None:
    lines, cursor = read(podman, exited, None)
    assert lines == EXPECTED
    assert cursor is not None and cursor.lines >= 1


def test_reading_resumes_just_after_the_cursor(podman: PodmanService, exited: Container) -> None:
    stamped = podman.client.api.logs(exited.id, timestamps=True).decode().splitlines()
    seconds = [stamp_second(line.partition(" ")[0]) for line in stamped]
    assert None not in seconds
    # The cursor after line k: its second, and how many lines of that second up to it.
    for k in (1, 30, LINES):
        second = seconds[k - 1]
        assert second is not None
        cursor = LogCursor(second, seconds[:k].count(second))
        lines, _ = read(podman, exited, cursor)
        assert lines == EXPECTED[k:], k
