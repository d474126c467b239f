"""The validation queue: a Redis list of ``{"project_id", "reference"}`` JSON entries.

Producers (the API, the CLI) ``RPUSH`` one entry per set or ``validate-image``; the consumer
(:class:`gaffer.images.dispatcher.ImageValidations`, in the dispatch role, where the container
engine is) pops them in order. Entries are never deduplicated or replaced: a later set of the
same project adds its own entry, so the operator's latest reference is always validated, even
while an earlier validation of that project is still running (issue 13).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

QUEUE_KEY = "gaffer:image-validations"
"""The Redis list of pending validations (oldest first)."""


@dataclass(frozen=True)
class ValidationRequest:
    """Validate ``reference`` for project ``project_id``."""

    project_id: str
    reference: str

    def encode(self) -> str:
        """The list entry (JSON)."""
        return json.dumps({"project_id": self.project_id, "reference": self.reference})

    @classmethod
    def decode(cls, raw: str | bytes) -> ValidationRequest:
        """Parse a list entry. Raises ValueError/KeyError for a malformed one."""
        data = json.loads(raw)
        return cls(str(data["project_id"]), str(data["reference"]))


async def enqueue(client: aioredis.Redis, request: ValidationRequest) -> None:
    """Append ``request`` to the queue. Raises :class:`redis.exceptions.RedisError`."""
    await client.rpush(QUEUE_KEY, request.encode())


def enqueue_sync(redis_url: str, request: ValidationRequest) -> None:
    """:func:`enqueue` from synchronous code (the CLI), on a connection of its own.

    Raises :class:`redis.exceptions.RedisError`.
    """
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.rpush(QUEUE_KEY, request.encode())
    finally:
        client.close()
