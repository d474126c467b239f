"""Worker backends: ``local`` (a process group), later ``docker`` and ``kubernetes``."""

from __future__ import annotations

from gaffer.backends.base import Backend, BackendError, WorkerHandle
from gaffer.settings import Settings


def make_backend(settings: Settings) -> Backend:
    """The backend named by ``settings.backend``."""
    if settings.backend == "local":
        from gaffer.backends.local import LocalBackend

        return LocalBackend(settings)
    raise BackendError(f"unknown backend {settings.backend!r}")


__all__ = ["Backend", "BackendError", "WorkerHandle", "make_backend"]
