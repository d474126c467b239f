"""The one function that builds a worker's environment.

Every backend and every spawn path goes through :func:`build_worker_env`, so what a worker can
see is decided in one place: the backend's base entries (PATH, HOME...) plus the job. Nothing is
inherited from the dispatcher's own environment, so infrastructure secrets (``DATABASE_URL``,
``GAFFER_MASTER_KEY``, ``REDIS_URL``) cannot leak into a worker by accident.

The job travels inline as ``JOB_DATA`` when its JSON is at most
``settings.job_data_inline_max_bytes`` UTF-8 bytes (96 KiB). A larger job is offloaded to Redis
(:mod:`gaffer.coordination.jobdata`) and the worker gets ``JOB_DATA_REDIS_KEY`` and the Redis URL
it can reach (``GAFFER_WORKER_REDIS_URL``) instead: Linux refuses to ``execve`` a process with an
env string over 128 KiB, and the worker would die before any Python runs. That URL carries a
per-job Redis user that may only ``GETDEL`` the job's key (:mod:`gaffer.coordination.job_readers`),
not gaffer's own credentials, unless ``GAFFER_WORKER_REDIS_ACCESS=shared``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import redis.asyncio as aioredis
import structlog

from gaffer.coordination.job_readers import grant_job_reader, with_credentials
from gaffer.coordination.jobdata import offload
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.worker.job import (
    INFRASTRUCTURE_ENV,
    JOB_DATA_ENV,
    JOB_DATA_REDIS_KEY_ENV,
    WORKER_REDIS_URL_ENV,
)

log = structlog.get_logger(__name__)


async def build_worker_env(
    job: JobData,
    base: Mapping[str, str],
    *,
    settings: Settings,
    redis: aioredis.Redis,
    worker_redis_url: str,
) -> dict[str, str]:
    """The complete env of the worker for ``job``: ``base`` plus the job, inline or offloaded.

    ``worker_redis_url`` is the Redis URL as the worker can reach it (the backend's view).
    Raises ValueError when ``base`` carries an infrastructure setting, and Redis errors (or
    :class:`~gaffer.coordination.job_readers.JobReaderError`) when an offload write or the
    per-job user fails (the caller must then not start the worker; the queue retries the job,
    and each retry offloads again).
    """
    leaked = sorted(set(base) & set(INFRASTRUCTURE_ENV))
    if leaked:
        raise ValueError(f"infrastructure settings must not reach a worker: {', '.join(leaked)}")
    env = dict(base)
    data = job.model_dump_json().encode()
    if not settings.job_data_offload or len(data) <= settings.job_data_inline_max_bytes:
        env[JOB_DATA_ENV] = data.decode()
        return env
    data_key = await offload(redis, job.run_id, data, settings.job_data_ttl_s)
    log.info(
        "job_data_offloaded",
        run_id=job.run_id,
        key=data_key,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    if settings.worker_redis_access == "scoped":
        username, password = await grant_job_reader(redis, job.run_id)
        worker_redis_url = with_credentials(worker_redis_url, username, password)
    env[JOB_DATA_REDIS_KEY_ENV] = data_key
    env[WORKER_REDIS_URL_ENV] = worker_redis_url
    return env
