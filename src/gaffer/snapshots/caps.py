"""Snapshot caps: which snapshots to delete, oldest first.

In order (each rule looks at what the earlier ones kept):

1. TTL: a snapshot older than its project's TTL (``snapshot_settings.ttl_s``) or, without one,
   the global ``GAFFER_SNAPSHOT_TTL_S`` (24 h);
2. count: beyond ``GAFFER_SNAPSHOT_MAX_PER_PROJECT`` (5) in a project, then beyond
   ``GAFFER_SNAPSHOT_MAX_TOTAL`` (50) in all;
3. size: while the total of ``size_bytes`` (each snapshot's own layer, from the engine's image
   sizes) is over ``GAFFER_SNAPSHOT_MAX_BYTES`` (10 GiB).

"Oldest" is by ``created_at`` (a snapshot's refresh makes it new). The caller deletes the
images, then the rows (:meth:`gaffer.snapshots.service.Snapshots.prune`): a cap that only
forgot an image would leave the disk to fill.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Entry(Protocol):
    """What the caps read of a registry row."""

    id: str
    project_id: str
    created_at: datetime
    size_bytes: int


@dataclass(frozen=True)
class Limits:
    """``ttl_s`` (default, seconds), ``per_project`` and ``total`` counts, ``max_bytes``."""

    ttl_s: float
    per_project: int
    total: int
    max_bytes: int


@dataclass(frozen=True)
class Eviction:
    """A row to delete and why (``ttl``, ``project count``, ``total count``, ``size``)."""

    id: str
    reason: str


def evictions(
    entries: Sequence[Entry],
    limits: Limits,
    project_ttls: Mapping[str, float | None],
    now: datetime,
) -> list[Eviction]:
    """The entries to delete under ``limits`` (see the module docstring), in order."""
    out: list[Eviction] = []
    kept = []
    for entry in sorted(entries, key=lambda e: (e.created_at, e.id)):
        ttl = project_ttls.get(entry.project_id) or limits.ttl_s
        if entry.created_at <= now - timedelta(seconds=ttl):
            out.append(Eviction(entry.id, "ttl"))
        else:
            kept.append(entry)
    per_project: dict[str, list[Entry]] = defaultdict(list)
    for entry in kept:
        per_project[entry.project_id].append(entry)
    over = {
        e.id
        for group in per_project.values()
        for e in group[: max(0, len(group) - limits.per_project)]
    }
    out += [Eviction(e.id, "project count") for e in kept if e.id in over]
    kept = [e for e in kept if e.id not in over]
    extra = max(0, len(kept) - limits.total)
    out += [Eviction(e.id, "total count") for e in kept[:extra]]
    kept = kept[extra:]
    total = sum(e.size_bytes for e in kept)
    for entry in kept:
        if total <= limits.max_bytes:
            break
        out.append(Eviction(entry.id, "size"))
        total -= entry.size_bytes
    return out
