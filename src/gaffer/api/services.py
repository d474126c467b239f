"""What the ``/api/v1`` app needs from its process, built once by :mod:`gaffer.server`."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from gaffer.accounts.ratelimit import LoginLimiter
from gaffer.buffer.access import RunAccess
from gaffer.buffer.scripts import BufferStore
from gaffer.runs.intake import RunIntake
from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database


@dataclass
class ApiServices:
    """The database, secret box, Redis (rate limiting), run reads/cancels (``access``), the
    run intake (starts and retries) and the burst buffer (``buffer``; its stats) of one
    process."""

    settings: Settings
    db: Database
    box: SecretBox
    redis: aioredis.Redis
    access: RunAccess
    intake: RunIntake
    buffer: BufferStore | None
    limiter: LoginLimiter
