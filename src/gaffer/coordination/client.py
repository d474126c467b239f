"""The Redis client every gaffer process uses for its own commands (BullMQ has its own)."""

from __future__ import annotations

import redis.asyncio as aioredis

SOCKET_TIMEOUT_S = 15.0
"""Read timeout of one command. redis-py 8 defaults to 5 s, which a process starved of CPU (a
burst on a small machine) can exceed for a command Redis answered at once; a spurious timeout
on a dispatch claim fails closed and answers 503, so the bound is kept loose."""


def connect(redis_url: str) -> aioredis.Redis:
    """An asyncio Redis client (connection pool) for ``redis_url`` (replies as bytes)."""
    return aioredis.from_url(
        redis_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
    )
