"""Job-data offload: a job too large for an env var travels through Redis instead.

Linux refuses ``execve`` when a single env string is longer than ``MAX_ARG_STRLEN`` (32 pages,
128 KiB): the worker dies with "argument list too long" before any Python runs. Production
systems of this kind lost every run of a work item with a long description that way, embedded
twice in the job (raw payload plus the resolved trigger). So a job whose serialised form is over
:data:`JOB_DATA_INLINE_MAX_BYTES` UTF-8 **bytes** (not characters) is written to
``gaffer:jobdata:<job id>`` with a TTL, and the worker gets the key instead; it reads and deletes
the key before anything else.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gaffer.coordination.keys import key

MAX_ARG_STRLEN = 128 * 1024
"""Linux's limit on one argv/env string, ``32 * PAGE_SIZE`` bytes (include/uapi/linux/binfmts.h)."""
JOB_DATA_INLINE_MAX_BYTES = 96 * 1024
"""Largest job kept inline in ``JOB_DATA``: well under :data:`MAX_ARG_STRLEN`, leaving room for
the ``JOB_DATA=`` prefix and for growth of everything else."""
JOB_DATA_TTL_S = 3600
"""Lifetime of an offloaded job: a safety net for a worker that never starts (it deletes the key
when it reads it)."""


def job_data_key(job_id: str) -> str:
    """The Redis key of an offloaded job: ``gaffer:jobdata:<job id>``."""
    return key("jobdata", job_id)


async def offload(redis: aioredis.Redis, job_id: str, data: bytes, ttl_s: int) -> str:
    """Store ``data`` under the job's key for ``ttl_s`` seconds; returns the key.

    Redis errors propagate: the caller must not start a worker that is bound to crash.
    """
    data_key = job_data_key(job_id)
    await redis.set(data_key, data, ex=ttl_s)
    return data_key
