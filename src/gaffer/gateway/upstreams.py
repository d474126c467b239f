"""Where a run's model calls go: the :class:`UpstreamResolver` interface and two resolvers.

The gateway asks ``await resolver.upstream(run, api)`` once per call and sends the call to
``Upstream.base_url`` with ``Upstream.api_key`` (the provider key, which never leaves the
gateway). ``api`` is the wire API of the call (``anthropic``, ``responses``, ``chat``), because
one project may drive Claude Code (Anthropic) and Codex (OpenAI) at once.

To plug in the credentials store: implement ``upstream(run, api)`` over it (``run.project_id``
names the project) and raise :class:`UpstreamNotConfigured` when the project has none; pass it
as ``Gateway(resolver=...)``. :class:`StoredUpstreams` (the ``gateway_upstreams`` table, key
encrypted with the master key) stands in for it until then; :class:`StaticUpstreams` serves
tests and single-upstream installations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from gaffer.gateway.runs import RunInfo
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import GatewayUpstream


@dataclass(frozen=True)
class Upstream:
    """One upstream: ``base_url`` (``https://api.anthropic.com``; the wire path, such as
    ``/v1/messages``, is appended), the provider's ``api_key`` (kept out of ``repr``) and
    ``provider`` (a name for the usage rows: ``anthropic``, ``openai``, ``local``...)."""

    base_url: str
    api_key: str = field(repr=False)
    provider: str


class UpstreamNotConfigured(LookupError):
    """The run's project has no upstream for this wire API."""


class UpstreamResolver(Protocol):
    """Finds a run's upstream for one wire API (see the module docstring)."""

    async def upstream(self, run: RunInfo, api: str) -> Upstream:
        """The upstream of ``run``'s project for ``api``; raises
        :class:`UpstreamNotConfigured`, or the store's own error when it is unreachable."""
        ...


class StaticUpstreams:
    """The same upstream(s) for every project: ``by_api`` first, then ``default``."""

    def __init__(
        self, default: Upstream | None = None, by_api: Mapping[str, Upstream] | None = None
    ) -> None:
        self.default = default
        self.by_api = dict(by_api or {})

    async def upstream(self, run: RunInfo, api: str) -> Upstream:
        """See :meth:`UpstreamResolver.upstream`."""
        found = self.by_api.get(api, self.default)
        if found is None:
            raise UpstreamNotConfigured(f"no upstream for the {api} API")
        return found


def set_upstream(
    session: Session,
    box: SecretBox,
    *,
    project_id: str,
    api: str,
    provider: str,
    base_url: str,
    api_key: str,
) -> None:
    """Create or replace ``project_id``'s upstream for ``api`` (the key stored encrypted)."""
    row = session.get(GatewayUpstream, (project_id, api))
    if row is None:
        row = GatewayUpstream(project_id=project_id, api=api)
        session.add(row)
    row.provider = provider
    row.base_url = base_url
    row.api_key_encrypted = box.encrypt(api_key)


class StoredUpstreams:
    """:class:`UpstreamResolver` over the ``gateway_upstreams`` table, each answer kept for
    ``cache_s`` seconds (a changed key reaches every gateway within that time)."""

    def __init__(self, db: Database, box: SecretBox, *, cache_s: float = 5.0) -> None:
        self.db = db
        self.box = box
        self.cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, Upstream]] = {}

    def _read(self, project_id: str, api: str) -> Upstream:
        with self.db.session() as session:
            row = session.execute(
                select(GatewayUpstream).where(
                    GatewayUpstream.project_id == project_id, GatewayUpstream.api == api
                )
            ).scalar_one_or_none()
            if row is None:
                raise UpstreamNotConfigured(f"the project has no upstream for the {api} API")
            return Upstream(row.base_url, self.box.decrypt(row.api_key_encrypted), row.provider)

    async def upstream(self, run: RunInfo, api: str) -> Upstream:
        """See :meth:`UpstreamResolver.upstream`."""
        key = (run.project_id, api)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await asyncio.to_thread(self._read, run.project_id, api)
        self._cache[key] = (now + self.cache_s, found)
        return found
