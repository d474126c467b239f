"""Loading the job inside the worker, and scrubbing the environment afterwards.

The job arrives as JSON in ``JOB_DATA``. It is read and removed from the environment before
anything else happens, so no engine or child process inherits it.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from pydantic import ValidationError

from gaffer.queue.jobs import JobData

JOB_DATA_ENV = "JOB_DATA"

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


def load_job(environ: MutableMapping[str, str]) -> JobData:
    """Read the job from ``environ`` and remove it from there.

    Raises :class:`JobLoadError` (``worker_job_data_missing`` / ``worker_job_data_invalid``).
    """
    raw = environ.pop(JOB_DATA_ENV, None)
    if raw is None:
        raise JobLoadError("worker_job_data_missing", f"{JOB_DATA_ENV} is not set")
    try:
        return JobData.model_validate_json(raw)
    except ValidationError as exc:
        raise JobLoadError(
            "worker_job_data_invalid", f"{JOB_DATA_ENV} is not a job: {exc}"
        ) from exc


def scrub_environment(environ: MutableMapping[str, str]) -> None:
    """Remove the job and every infrastructure setting from ``environ``."""
    for name in (JOB_DATA_ENV, *INFRASTRUCTURE_ENV):
        environ.pop(name, None)
