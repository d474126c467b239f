"""The cancel signal: how ``gaffer runs cancel`` reaches the dispatch process running a run.

A cancel request is a key ``gaffer:run:<id>:cancel`` (kept one day). Dispatchers check the keys of
the runs they hold about once a second; a key survives a dispatcher that is down at the time,
which a pub/sub message would not.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from gaffer.coordination.keys import key

CANCEL_TTL_S = 24 * 3600


def cancel_key(run_id: str) -> str:
    """The key that asks for ``run_id`` to be cancelled."""
    return key("run", run_id, "cancel")


async def request_cancel(redis: aioredis.Redis, run_id: str) -> None:
    """Ask whichever dispatcher holds ``run_id`` to stop it."""
    await redis.set(cancel_key(run_id), "1", ex=CANCEL_TTL_S)


def stop_reason_key(run_id: str) -> str:
    """The key holding why ``run_id`` is being stopped, when gaffer stopped it for a reason of
    its own (a budget exceeded), not at a user's request."""
    return key("run", run_id, "stop-reason")


async def request_stop(redis: aioredis.Redis, run_id: str, reason: str) -> None:
    """Ask whichever dispatcher holds ``run_id`` to stop it and end it FAILED with ``reason``
    (the cancel path, with the reason written first so the dispatcher finds it)."""
    await redis.set(stop_reason_key(run_id), reason, ex=CANCEL_TTL_S)
    await request_cancel(redis, run_id)


async def stop_reason(redis: aioredis.Redis, run_id: str) -> str | None:
    """The reason :func:`request_stop` gave for ``run_id``, or None (a plain cancel)."""
    value = await redis.get(stop_reason_key(run_id))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def cancel_requested(redis: aioredis.Redis, run_ids: Sequence[str]) -> set[str]:
    """The subset of ``run_ids`` with a pending cancel request (one MGET)."""
    if not run_ids:
        return set()
    values = await redis.mget([cancel_key(r) for r in run_ids])
    return {run_id for run_id, value in zip(run_ids, values, strict=True) if value is not None}
