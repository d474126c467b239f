"""The effective worker image of a run (issue 13, "Launch").

1. the project's verified digest (``repo@sha256:...``), when its image is ``verified``;
2. else, when the project has a reference that is not verified (``pending`` or ``failed``), the
   run fails at once (:class:`WorkerImageNotReadyError`, a
   :class:`~gaffer.backends.base.PermanentStartError`: no retry, no container), with the
   reason: never a silent fallback to another image;
3. else the global default (``GAFFER_WORKER_IMAGE``).

When the engine must pull a project's verified digest (it is absent there), the pull uses the
project's registry credentials (:func:`launch_registry_auth`); they reach the engine only.
"""

from __future__ import annotations

from sqlalchemy import select

from gaffer.backends.base import PermanentStartError
from gaffer.images.state import WorkerImageStatus, registry_auth
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Project


class WorkerImageNotReadyError(PermanentStartError):
    """The project's worker image is set but not verified; the message says why."""


def effective_image(db: Database, project_id: str, default: str) -> str:
    """The image a run of ``project_id`` launches (see the module docstring).

    Raises :class:`WorkerImageNotReadyError`. A project that no longer exists gets ``default``
    (its run fails elsewhere).
    """
    with db.session() as session:
        row = session.execute(
            select(
                Project.name,
                Project.worker_image,
                Project.worker_image_status,
                Project.worker_image_digest,
                Project.worker_image_error,
            ).where(Project.id == project_id)
        ).first()
    if row is None or row.worker_image is None:
        return default
    if row.worker_image_status == WorkerImageStatus.VERIFIED and row.worker_image_digest:
        return str(row.worker_image_digest)
    if row.worker_image_status == WorkerImageStatus.FAILED:
        raise WorkerImageNotReadyError(
            f"project {row.name!r}: its worker image {row.worker_image} failed validation: "
            f"{row.worker_image_error}; set a working image (gaffer projects update "
            f"{row.name} --worker-image REF) or clear it (--clear-worker-image)"
        )
    raise WorkerImageNotReadyError(
        f"project {row.name!r}: its worker image {row.worker_image} is not verified yet "
        f"(status {row.worker_image_status or 'pending'}); runs start once it is "
        f"(gaffer projects validate-image {row.name})"
    )


def launch_registry_auth(
    db: Database, box: SecretBox, project_id: str, image: str
) -> dict[str, str] | None:
    """The project's registry credentials (``{"username", "password"}``, decrypted) for pulling
    ``image`` at launch, when ``image`` is the project's verified digest and credentials are
    set; else None (the global default, a snapshot, or a project without credentials pull
    anonymously). Reads the database: call it on a thread.

    Raises :class:`~gaffer.store.crypto.MasterKeyError` when the stored credentials do not
    decrypt with this master key.
    """
    with db.session() as session:
        project = session.get(Project, project_id)
        if (
            project is None
            or project.worker_image_status != WorkerImageStatus.VERIFIED
            or project.worker_image_digest != image
        ):
            return None
        return registry_auth(box, project)
