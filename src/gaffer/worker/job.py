"""Loading the job inside the worker, and scrubbing the environment afterwards.

The job arrives either inline in ``JOB_DATA`` or, when it was too large for an env var, as a key
``JOB_DATA_REDIS_KEY`` in the Redis at ``GAFFER_WORKER_REDIS_URL`` (see
:mod:`gaffer.dispatch.worker_env`). The order matters, and comes from an incident: a worker that
scrubbed its environment first and then looked for the Redis URL could never read an offloaded
job. So:

1. :meth:`WorkerStartup.read` captures the three variables once, at start-up;
2. :func:`load_job` resolves the job (for a key: ``GETDEL``, i.e. GET then DEL in one step) using
   only what was captured;
3. :func:`scrub_environment` removes the job, the key, the URL and every infrastructure setting
   from the environment, so no engine or child process inherits them.

A job that cannot be loaded ends the run FAILED with a distinct reason and log event:
``worker_job_data_missing``, ``worker_job_data_redis_down`` or ``worker_job_data_invalid``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from gaffer.engines.base import ENGINE_API_KEY_ENV, ENGINE_BASE_URL_ENV, ENGINE_USER_ENV
from gaffer.queue.jobs import JobData

JOB_DATA_ENV = "JOB_DATA"
JOB_DATA_REDIS_KEY_ENV = "JOB_DATA_REDIS_KEY"
WORKER_REDIS_URL_ENV = "GAFFER_WORKER_REDIS_URL"
GIT_TOKEN_ENV = "GAFFER_GIT_TOKEN"
"""The repository token the dispatcher hands the worker for its own git remote commands."""
REDIS_TIMEOUT_S = 10.0

# Never meant to reach a worker, removed anyway in case an operator's environment leaks them.
INFRASTRUCTURE_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "GAFFER_MASTER_KEY",
    "GAFFER_HOME",
)


class JobLoadError(RuntimeError):
    """The job could not be loaded; ``event`` is the log event name that says why."""

    def __init__(self, event: str, message: str) -> None:
        super().__init__(message)
        self.event = event


@dataclass(frozen=True)
class WorkerStartup:
    """What the worker reads from its environment once, before anything else."""

    job_data: str | None
    job_data_key: str | None
    redis_url: str | None
    engine_user: str | None = None
    engine_api_key: str | None = field(default=None, repr=False)
    """The engine's API key (``GAFFER_ENGINE_API_KEY``), handed only to the engine."""
    git_token: str | None = field(default=None, repr=False)
    """A short-lived token for the repository (``GAFFER_GIT_TOKEN``), for the worker's own
    clone, fetch and push only (:class:`gaffer.worker.git.RemoteAuth`)."""
    engine_base_url: str | None = None
    """The model API base URL the dispatcher chose for the engine (``GAFFER_ENGINE_BASE_URL``;
    the gateway's, when every model call goes through gaffer), over the job's."""

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> WorkerStartup:
        """Capture ``JOB_DATA``, ``JOB_DATA_REDIS_KEY``, ``GAFFER_WORKER_REDIS_URL``,
        ``GAFFER_ENGINE_USER`` and ``GAFFER_ENGINE_API_KEY``."""
        return cls(
            # Empty counts as unset: a snapshot image carries each of its run's variables emptied.
            job_data=environ.get(JOB_DATA_ENV) or None,
            job_data_key=environ.get(JOB_DATA_REDIS_KEY_ENV) or None,
            redis_url=environ.get(WORKER_REDIS_URL_ENV) or None,
            engine_user=environ.get(ENGINE_USER_ENV) or None,
            engine_api_key=environ.get(ENGINE_API_KEY_ENV) or None,
            git_token=environ.get(GIT_TOKEN_ENV) or None,
            engine_base_url=environ.get(ENGINE_BASE_URL_ENV) or None,
        )


@dataclass(frozen=True)
class LoadedJob:
    """The job, where it came from (``inline`` or ``redis``), and its size and SHA-256 as
    received (UTF-8 bytes of the JSON), so a test can check it arrived byte for byte."""

    job: JobData
    source: str
    bytes: int
    sha256: str


def load_job(startup: WorkerStartup) -> LoadedJob:
    """Resolve the job from what was captured at start-up.

    Raises :class:`JobLoadError` (``worker_job_data_missing``, ``worker_job_data_redis_down``,
    ``worker_job_data_invalid``).
    """
    if startup.job_data is not None:
        raw, source = startup.job_data.encode(), "inline"
    elif startup.job_data_key is not None:
        raw, source = _fetch(startup.job_data_key, startup.redis_url), "redis"
    else:
        raise JobLoadError(
            "worker_job_data_missing", f"neither {JOB_DATA_ENV} nor {JOB_DATA_REDIS_KEY_ENV} is set"
        )
    try:
        job = JobData.model_validate_json(raw)
    except ValidationError as exc:
        raise JobLoadError("worker_job_data_invalid", f"the job data is not a job: {exc}") from exc
    return LoadedJob(job, source, len(raw), hashlib.sha256(raw).hexdigest())


def _fetch(data_key: str, redis_url: str | None) -> bytes:
    if not redis_url:
        raise JobLoadError(
            "worker_job_data_missing",
            f"{JOB_DATA_REDIS_KEY_ENV} is set but {WORKER_REDIS_URL_ENV} is not",
        )
    import redis  # only offloaded jobs need it

    client = redis.Redis.from_url(
        redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        raw = client.getdel(data_key)
    except redis.RedisError as exc:
        raise JobLoadError(
            "worker_job_data_redis_down",
            f"cannot read the job data {data_key!r}: Redis is unreachable or refused ({exc})",
        ) from exc
    finally:
        client.close()
    if raw is None:
        raise JobLoadError(
            "worker_job_data_missing",
            f"the job data key {data_key!r} does not exist (expired or already read)",
        )
    return raw if isinstance(raw, bytes) else str(raw).encode()


def scrub_environment(environ: MutableMapping[str, str]) -> None:
    """Remove the job, its key, the worker's Redis URL, the engine's API key and
    infrastructure settings."""
    scrubbed = (
        JOB_DATA_ENV,
        JOB_DATA_REDIS_KEY_ENV,
        WORKER_REDIS_URL_ENV,
        ENGINE_USER_ENV,
        ENGINE_API_KEY_ENV,
        ENGINE_BASE_URL_ENV,
        GIT_TOKEN_ENV,
    )
    for name in (*scrubbed, *INFRASTRUCTURE_ENV):
        environ.pop(name, None)
