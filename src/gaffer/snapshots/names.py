"""Snapshot image names.

Every snapshot image is in the repository :data:`REPOSITORY` with a tag made of the kind, a
readable part of the project and work-item ids (lowercased, every character an image tag may not
hold replaced by ``-``, cut short) and a hash suffix of the exact ``(instance, project, kind,
work item)``: two ids that differ only in replaced characters or in case (``a/b`` and ``a:b``,
``Fix`` and ``fix``), or only after the cut, get different names. Tags follow the OCI grammar
``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.
"""

from __future__ import annotations

import hashlib
import re

REPOSITORY = "localhost/gaffer-snapshot"
KINDS = ("work-item", "project")
_NOT_ALLOWED = re.compile(r"[^a-z0-9_.-]+")
PART_MAX = 40
HASH_CHARS = 16


def _part(text: str) -> str:
    return _NOT_ALLOWED.sub("-", text.lower()).strip(".-")[:PART_MAX] or "x"


def snapshot_tag(instance: str, project_id: str, kind: str, work_item: str = "") -> str:
    """The tag of a snapshot (see the module docstring). Raises ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown snapshot kind {kind!r} (one of {', '.join(KINDS)})")
    exact = "\0".join((instance, project_id, kind, work_item)).encode()
    suffix = hashlib.sha256(exact).hexdigest()[:HASH_CHARS]
    parts = [kind, _part(project_id)] + ([_part(work_item)] if work_item else [])
    return "-".join([*parts, suffix])


def snapshot_image(instance: str, project_id: str, kind: str, work_item: str = "") -> str:
    """``localhost/gaffer-snapshot:<tag>`` (see :func:`snapshot_tag`)."""
    return f"{REPOSITORY}:{snapshot_tag(instance, project_id, kind, work_item)}"
