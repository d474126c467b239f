"""Claims: ``SET key value NX EX ttl``, the one primitive that decides "first one wins".

Process memory is not a lock: two processes each holding a "recently seen" map both believe
they are first. A claim in Redis is atomic across every process that shares the server.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gaffer.coordination.keys import key


def delivery_claim_key(provider: str, delivery_id: str) -> str:
    """The claim key of one webhook delivery id (``X-GitHub-Delivery`` for GitHub)."""
    return key("delivery", provider, delivery_id)


async def claim(redis: aioredis.Redis, claim_key: str, owner: str, ttl_s: int) -> bool:
    """Claim ``claim_key`` for ``ttl_s`` seconds. True if this call won it, False if it was held.

    Redis errors propagate: the caller decides whether to fail open or closed.
    """
    return bool(await redis.set(claim_key, owner, nx=True, ex=ttl_s))


async def release(redis: aioredis.Redis, claim_key: str) -> None:
    """Drop a claim so a later attempt (a redelivery after an error, say) can win it."""
    await redis.delete(claim_key)
