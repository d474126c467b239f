"""Waiting on a run's BullMQ job from a test."""

from __future__ import annotations

import asyncio
import time

from gaffer.queue.queues import RunQueue
from tests.support.harness import Gaffer


async def _job_state(gaffer: Gaffer, run_id: str) -> str:
    queue = RunQueue(gaffer.rt.require_redis(), gaffer.settings.queue_name)
    try:
        return await queue.state(run_id)
    finally:
        await queue.close()


def wait_for_job(gaffer: Gaffer, run_id: str, state: str, timeout: float = 90) -> None:
    """Wait until the job of ``run_id`` is in ``state`` (``completed``, ``failed``, ...). A
    run's final status is written before its dispatcher hands the job back (and releases the
    run's leases), so a test that goes on to stop Redis waits for ``completed`` first."""
    deadline = time.monotonic() + timeout
    while (current := asyncio.run(_job_state(gaffer, run_id))) != state:
        assert time.monotonic() < deadline, f"job of {run_id} still {current}"
        time.sleep(0.2)
