"""The Redis client every gaffer process uses for its own commands (BullMQ has its own)."""

from __future__ import annotations

import redis.asyncio as aioredis

SOCKET_TIMEOUT_S = 15.0
"""Read timeout of one command. redis-py 8 defaults to 5 s, which a process starved of CPU (a
burst on a small machine) can exceed for a command Redis answered at once; a spurious timeout
on a dispatch claim fails closed and answers 503, so the bound is kept loose."""


MAX_CONNECTIONS = 64
"""Connections of one process's pool. Callers beyond it wait for a free connection (a blocking
pool) instead of failing: redis-py's default pool raises "Too many connections" past 100, which
failed dispatch claims closed (503) under a burst of concurrent deliveries."""


def connect(redis_url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``redis_url`` (replies as bytes) on a blocking pool of
    :data:`MAX_CONNECTIONS`, waiting at most :data:`SOCKET_TIMEOUT_S` for a free connection."""
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
