"""The snapshot registry: one durable row per snapshot image (table ``snapshots``), so that what
exists survives a dispatcher restart and is shared by every dispatcher of the installation.

A row is keyed by ``(instance, project, kind, work item)``: at most one snapshot of each kind per
work item (``""`` for the project snapshot). A ``building`` row is a project snapshot being
built: inserting it is the claim (the unique key makes a second dispatcher's insert fail).

:func:`plan_reconcile` compares the rows with the images that exist (found by label): a row
whose image is gone is dropped (the next run starts cold), an image no row names is deleted.
It is applied at dispatcher start (:meth:`gaffer.snapshots.service.Snapshots.reconcile`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gaffer.snapshots.images import ImageInfo
from gaffer.store.models import Snapshot, SnapshotSettings, utcnow

READY = "ready"
BUILDING = "building"
BUILD_CLAIM_S = 3600.0
"""A ``building`` row older than this is a dead dispatcher's build: it is dropped."""


def find(
    session: Session, instance: str, project_id: str, kind: str, work_item: str = ""
) -> Snapshot | None:
    """The row of that snapshot, or None."""
    return session.scalar(
        select(Snapshot).where(
            Snapshot.instance == instance,
            Snapshot.project_id == project_id,
            Snapshot.kind == kind,
            Snapshot.work_item == work_item,
        )
    )


def list_rows(session: Session, instance: str, project_id: str | None = None) -> list[Snapshot]:
    """Every row of ``instance`` (of one project when given), oldest first."""
    query = select(Snapshot).where(Snapshot.instance == instance)
    if project_id is not None:
        query = query.where(Snapshot.project_id == project_id)
    return list(session.scalars(query.order_by(Snapshot.created_at, Snapshot.id)))


def claim_build(session: Session, instance: str, project_id: str, image: str) -> bool:
    """Insert the ``building`` row of ``project_id``'s project snapshot; False when a row exists
    (built, or being built by someone else). A stale claim (:data:`BUILD_CLAIM_S`) is taken
    over."""
    row = find(session, instance, project_id, "project")
    if row is not None:
        stale = row.status == BUILDING and row.created_at < utcnow() - timedelta(
            seconds=BUILD_CLAIM_S
        )
        if not stale:
            return False
        session.delete(row)
        session.flush()
    session.add(
        Snapshot(
            instance=instance,
            project_id=project_id,
            kind="project",
            work_item="",
            image=image,
            status=BUILDING,
            size_bytes=0,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` did: the row id, and the image id the row named before (to delete,
    None when there was none or it is the same image)."""

    id: str
    replaced_image_id: str | None


def record(
    session: Session,
    *,
    instance: str,
    project_id: str,
    kind: str,
    work_item: str,
    image: str,
    info: ImageInfo,
    size_bytes: int,
    base_image_id: str | None,
    key: str | None,
    files_hash: str | None,
    source_run_id: str | None,
) -> Recorded:
    """Insert or replace the row of a snapshot that was just committed (status ``ready``)."""
    row = find(session, instance, project_id, kind, work_item)
    replaced = None
    if row is None:
        row = Snapshot(instance=instance, project_id=project_id, kind=kind, work_item=work_item)
        session.add(row)
    elif row.image_id and row.image_id != info.id:
        replaced = row.image_id
    row.image = image
    row.image_id = info.id
    row.size_bytes = size_bytes
    row.base_image_id = base_image_id
    row.key = key
    row.files_hash = files_hash
    row.status = READY
    row.source_run_id = source_run_id
    row.created_at = utcnow()
    row.last_used_at = None
    session.flush()
    return Recorded(row.id, replaced)


def remove(session: Session, row_ids: Iterable[str]) -> None:
    """Delete these rows."""
    ids = list(row_ids)
    if ids:
        session.execute(delete(Snapshot).where(Snapshot.id.in_(ids)))


def settings_of(session: Session, project_id: str) -> SnapshotSettings | None:
    """The project's set-up and snapshot settings, or None (the defaults)."""
    return session.get(SnapshotSettings, project_id)


@dataclass(frozen=True)
class ReconcilePlan:
    """``drop``: ids of rows whose image is gone; ``delete``: ids of images no row names."""

    drop: list[str]
    delete: list[str]


def plan_reconcile(
    rows: Iterable[Snapshot], images: Iterable[ImageInfo], now: datetime | None = None
) -> ReconcilePlan:
    """Compare the registry with the snapshot images that exist (see the module docstring).

    A ``building`` row has no image yet: it is kept until it is :data:`BUILD_CLAIM_S` old.
    """
    now = now or utcnow()
    existing = {image.id for image in images}
    named = set()
    drop = []
    for row in rows:
        if row.status == BUILDING:
            if row.created_at < now - timedelta(seconds=BUILD_CLAIM_S):
                drop.append(row.id)
            continue
        if row.image_id in existing:
            named.add(row.image_id)
        else:
            drop.append(row.id)
    return ReconcilePlan(drop, sorted(existing - named))


SETTING_FIELDS = (
    "setup_command",
    "setup_failure",
    "setup_timeout_s",
    "work_item",
    "project",
    "ttl_s",
)


def set_settings(session: Session, project_id: str, **fields: object) -> SnapshotSettings:
    """Create or change the project's set-up and snapshot settings (only the given fields).

    Raises ValueError for an unknown field or a ``setup_failure`` other than ``fail``/``warn``,
    before anything is written.
    """
    unknown = sorted(set(fields) - set(SETTING_FIELDS))
    if unknown:
        raise ValueError(f"unknown snapshot setting(s): {', '.join(unknown)}")
    if "setup_failure" in fields and fields["setup_failure"] not in ("fail", "warn"):
        raise ValueError("setup_failure must be fail or warn")
    row = session.get(SnapshotSettings, project_id)
    if row is None:
        row = SnapshotSettings(
            project_id=project_id, setup_failure="fail", work_item=False, project=False
        )
        session.add(row)
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    return row


def snapshot_view(row: Snapshot) -> dict[str, Any]:
    """A registry entry as JSON-ready data (``gaffer snapshots list --json`` and
    ``GET /api/v1/snapshots``): ids, ``kind``, ``work_item`` (None for a project snapshot),
    the image's name and id, the project snapshot ``key``, ``size_bytes``, ``status``, the run
    it came from, ISO 8601 UTC times."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "kind": row.kind,
        "work_item": row.work_item or None,
        "image": row.image,
        "image_id": row.image_id,
        "key": row.key,
        "size_bytes": row.size_bytes,
        "status": row.status,
        "source_run_id": row.source_run_id,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
    }
