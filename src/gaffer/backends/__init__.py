"""Worker backends: ``local`` (a process group), ``docker`` (a container); later ``kubernetes``."""

from __future__ import annotations

from gaffer.backends.base import (
    Backend,
    BackendError,
    PermanentStartError,
    WorkerHandle,
    WorkerInfo,
    WorkerLostError,
)
from gaffer.settings import Settings
from gaffer.store.db import Database


def make_backend(settings: Settings, db: Database | None = None) -> Backend:
    """The backend named by ``settings.backend`` (``docker`` with a ``db``: with snapshots,
    :class:`~gaffer.snapshots.backend.SnapshotBackend`).

    Raises :class:`BackendError` for an unknown name, and what the backend's constructor raises
    (``docker``: :class:`~gaffer.backends.docker_spec.RedisUnreachableError`).
    """
    if settings.backend == "local":
        from gaffer.backends.local import LocalBackend

        return LocalBackend(settings)
    if settings.backend == "docker":
        from gaffer.backends.docker import DockerBackend

        if db is not None:
            from gaffer.snapshots.backend import SnapshotBackend

            return SnapshotBackend(settings, db)
        return DockerBackend(settings)
    raise BackendError(f"unknown backend {settings.backend!r}")


__all__ = [
    "Backend",
    "BackendError",
    "PermanentStartError",
    "WorkerHandle",
    "WorkerInfo",
    "WorkerLostError",
    "make_backend",
]
