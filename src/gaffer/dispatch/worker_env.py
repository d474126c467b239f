"""The one function that builds a worker's environment.

Every backend and every spawn path goes through :func:`build_worker_env`, so what a worker can
see is decided in one place: the backend's base entries (PATH, HOME...) plus the job. Nothing is
inherited from the dispatcher's own environment, so infrastructure secrets (``DATABASE_URL``,
``GAFFER_MASTER_KEY``, ``REDIS_URL``) cannot leak into a worker by accident.
"""

from __future__ import annotations

from collections.abc import Mapping

from gaffer.queue.jobs import JobData
from gaffer.worker.job import INFRASTRUCTURE_ENV, JOB_DATA_ENV


def build_worker_env(job: JobData, base: Mapping[str, str]) -> dict[str, str]:
    """The complete env of the worker for ``job``: ``base`` + ``JOB_DATA`` (the job as JSON).

    Raises ValueError when ``base`` carries an infrastructure setting.
    """
    leaked = sorted(set(base) & set(INFRASTRUCTURE_ENV))
    if leaked:
        raise ValueError(f"infrastructure settings must not reach a worker: {', '.join(leaked)}")
    env = dict(base)
    env[JOB_DATA_ENV] = job.model_dump_json()
    return env
