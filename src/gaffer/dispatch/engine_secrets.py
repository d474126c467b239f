"""The engine's API key, read from the project's encrypted credentials when a run starts.

The job names the credential (``engine.credential``: ``ANTHROPIC_API_KEY`` by default for
``claude-code``...); the value never goes into the job, which is stored with the run. It reaches
the worker as ``GAFFER_ENGINE_API_KEY`` in its environment, which the worker reads once and
scrubs before anything else runs, handing it only to the engine.
"""

from __future__ import annotations

import structlog

from gaffer.engines.base import ENGINE_API_KEY_ENV
from gaffer.queue.jobs import JobData
from gaffer.store.credentials import read_credential
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database

log = structlog.get_logger(__name__)


def engine_secret_env(db: Database, box: SecretBox | None, job: JobData) -> dict[str, str]:
    """``{GAFFER_ENGINE_API_KEY: <value>}`` when the job's engine names a credential the
    project has, else ``{}`` (logged as ``engine_credential_missing``: the engine may still
    work, against a model server that needs no key). Raises database errors."""
    name = job.engine.credential
    if not name or box is None:
        return {}
    with db.session() as session:
        value = read_credential(session, box, job.project_id, name)
    if value is None:
        log.warning(
            "engine_credential_missing", run_id=job.run_id, project=job.project_name, name=name
        )
        return {}
    return {ENGINE_API_KEY_ENV: value}
