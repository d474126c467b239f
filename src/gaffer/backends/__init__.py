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


def make_backend(settings: Settings) -> Backend:
    """The backend named by ``settings.backend``.

    Raises :class:`BackendError` for an unknown name, and what the backend's constructor raises
    (``docker``: :class:`~gaffer.backends.docker_spec.RedisUnreachableError`).
    """
    if settings.backend == "local":
        from gaffer.backends.local import LocalBackend

        return LocalBackend(settings)
    if settings.backend == "docker":
        from gaffer.backends.docker import DockerBackend

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
