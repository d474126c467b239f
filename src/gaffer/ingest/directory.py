"""Which project a signed delivery belongs to.

``POST /webhooks/github`` serves every project, each with its own secret, and the signature must
be checked before the body is parsed, so the repository name in the body cannot be used to pick
the secret. The directory instead tries the secret of each project (one HMAC per distinct secret)
and returns the projects whose secret verifies; after parsing, ingest keeps the one whose
repository matches. ``POST /webhooks/github/{project}`` narrows the candidates to one project.

Snapshots are cached for ``project_cache_ttl_s``; a delivery that matches nothing reloads them
once (at most once per second), so a project created a moment ago is found at once.
"""

from __future__ import annotations

import asyncio
import time

from gaffer.providers.github import signature_matches
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.projects import ProjectSnapshot, load_project_snapshots

MIN_RELOAD_INTERVAL_S = 1.0
INLINE_HMAC_MAX_BYTES = 256 * 1024
"""Bodies above this are hashed in a thread so a 25 MiB HMAC does not stall the event loop."""


class ProjectDirectory:
    """Cached :class:`ProjectSnapshot` list with signature matching."""

    def __init__(self, db: Database, box: SecretBox, ttl_s: float) -> None:
        self.db = db
        self.box = box
        self.ttl_s = ttl_s
        self._snapshots: list[ProjectSnapshot] = []
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def snapshots(self, *, refresh: bool = False) -> list[ProjectSnapshot]:
        """Every project; reloaded when older than the TTL or when ``refresh`` is asked."""
        if self._due(refresh):
            async with self._lock:
                if self._due(refresh):
                    self._snapshots = await asyncio.to_thread(self._load)
                    self._loaded_at = time.monotonic()
        return self._snapshots

    def _due(self, refresh: bool) -> bool:
        age = time.monotonic() - self._loaded_at
        return age > self.ttl_s or (refresh and age > MIN_RELOAD_INTERVAL_S)

    def _load(self) -> list[ProjectSnapshot]:
        with self.db.session() as session:
            return load_project_snapshots(session, self.box)

    async def verify(
        self, body: bytes, signature: str, *, project: str | None = None
    ) -> list[ProjectSnapshot]:
        """Projects whose webhook secret makes ``signature`` valid for ``body``."""
        for refresh in (False, True):
            candidates = await self.snapshots(refresh=refresh)
            if project is not None:
                candidates = [p for p in candidates if project in (p.name, p.id)]
            if len(body) > INLINE_HMAC_MAX_BYTES:
                matched = await asyncio.to_thread(_verify, body, signature, candidates)
            else:
                matched = _verify(body, signature, candidates)
            if matched:
                return matched
        return []


def _verify(
    body: bytes, signature: str, candidates: list[ProjectSnapshot]
) -> list[ProjectSnapshot]:
    verdicts: dict[str, bool] = {}
    matched = []
    for candidate in candidates:
        if candidate.secret not in verdicts:
            verdicts[candidate.secret] = signature_matches(body, signature, candidate.secret)
        if verdicts[candidate.secret]:
            matched.append(candidate)
    return matched
