"""The run queue's client against a Redis that is not there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from gaffer.queue.queues import RunQueue
from tests.support.jobs import make_job
from tests.support.servers import free_port


async def _call_unreachable(what: str) -> None:
    queue = RunQueue(f"redis://127.0.0.1:{free_port()}", "q", call_timeout_s=0.5)
    try:
        if what == "add":
            await queue.add(make_job(Path("/nonexistent"), "true"))
        else:
            await queue.state("some-run")
    finally:
        await asyncio.wait_for(queue.close(), timeout=30)


@pytest.mark.parametrize("what", ["add", "state"])
def test_a_queue_call_to_an_unreachable_redis_raises_instead_of_hanging(what: str) -> None:
    """BullMQ's client retries a refused connection forever; the queue gives up after its call
    timeout with a Redis error, which every caller already handles (ingest answers 503)."""
    with pytest.raises(RedisTimeoutError, match="did not answer"):
        asyncio.run(_call_unreachable(what))
