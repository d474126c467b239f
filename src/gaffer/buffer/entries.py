"""What a buffer entry holds: the snapshot of a run-engine request, and its bookkeeping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from gaffer.runs.engine import NewRun
from gaffer.runs.requests import AgentRequest


class Snapshot(BaseModel):
    """The run-engine input of one buffered run, as JSON in its entry's ``snapshot`` field.

    Everything :meth:`gaffer.runs.engine.RunEngine.create_runs` needs except the project's
    configuration, which the drainer reads when it replays the entry (it holds the webhook
    secret, which has no place in Redis): a change to the project's agents between accept and
    drain therefore applies to the replay.
    """

    run_id: str
    organization_id: str
    request: AgentRequest
    batch_id: str | None = None
    batch_index: int | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(cls, new: NewRun, organization_id: str) -> Snapshot:
        """The snapshot of ``new`` (tags and metadata are kept beside it: they can change)."""
        return cls(
            run_id=new.run_id,
            organization_id=organization_id,
            request=new.request,
            batch_id=new.batch_id,
            batch_index=new.batch_index,
            idempotency_key=new.idempotency_key,
        )


def text(value: object) -> str:
    """A Redis reply value as text: bytes decoded as UTF-8, None as ``""``, anything else
    (str, int) through ``str``. Raises ``UnicodeDecodeError`` for bytes that are not UTF-8."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Entry:
    """One buffered run as read from its entry hash.

    ``status``: ``queued`` (in its project's list), ``in_flight`` (popped by a drainer under
    ``lease``), ``done`` (its run row exists; the entry expires after a grace) or ``dead`` (no
    row could be written; kept for an operator). ``cancelled``: a cancel arrived while it was
    queued; the drainer records a CANCELED run instead of starting one. ``created_ms`` and
    ``popped_ms`` are Redis server times in ms since the epoch. ``version`` counts metadata
    changes (compare-and-set by :meth:`gaffer.buffer.scripts.BufferStore.set_metadata`).
    """

    snapshot: Snapshot
    status: str
    cancelled: bool
    attempts: int
    created_ms: int
    popped_ms: int | None
    lease: str
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    version: int = 0
    error: str = ""

    @property
    def run_id(self) -> str:
        """The run id the request was given at accept time."""
        return self.snapshot.run_id

    @property
    def project_id(self) -> str:
        """The project the run belongs to."""
        return self.snapshot.request.project_id

    @property
    def accepted_at(self) -> datetime:
        """When the buffer accepted the request (UTC)."""
        return datetime.fromtimestamp(self.created_ms / 1000, UTC)

    def new_run(self) -> NewRun:
        """The run-engine input this entry replays into."""
        s = self.snapshot
        return NewRun(
            run_id=s.run_id,
            request=s.request,
            batch_id=s.batch_id,
            batch_index=s.batch_index,
            tags=tuple(self.tags),
            metadata=self.metadata,
            idempotency_key=s.idempotency_key,
            accepted_at=self.accepted_at,
        )

    @classmethod
    def parse(cls, fields: dict[str, str]) -> Entry:
        """An entry from its hash fields (raises pydantic ``ValidationError`` or ``KeyError``
        when the hash is not an entry)."""
        popped = fields.get("popped_ms", "")
        return cls(
            snapshot=Snapshot.model_validate_json(fields["snapshot"]),
            status=fields["status"],
            cancelled=fields.get("cancelled") == "1",
            attempts=int(fields.get("attempts") or 0),
            created_ms=int(fields["created_ms"]),
            popped_ms=int(popped) if popped else None,
            lease=fields.get("lease", ""),
            tags=list(json.loads(fields.get("tags") or "[]")),
            metadata=json.loads(fields.get("metadata") or "null"),
            version=int(fields.get("version") or 0),
            error=fields.get("error", ""),
        )

    @classmethod
    def from_flat(cls, flat: list[bytes | str]) -> Entry:
        """An entry from a flat ``HGETALL`` reply (as scripts return it)."""
        texts = [text(v) for v in flat]
        return cls.parse(dict(zip(texts[0::2], texts[1::2], strict=True)))

    @classmethod
    def from_mapping(cls, mapping: dict[Any, Any]) -> Entry | None:
        """An entry from a redis-py ``HGETALL`` mapping; None for an empty (missing) hash."""
        if not mapping:
            return None
        return cls.parse({text(k): text(v) for k, v in mapping.items()})
