"""The upstream of a run: the provider its agent is configured for, with the project's key.

A run's job (stored with its row) names the provider base URL its agent uses
(``engine.base_url``: a project override, else the provider's public API) and the project
credential that holds the key (``engine.credential``: ``ANTHROPIC_API_KEY`` for
``claude-code``, ``OPENAI_API_KEY`` for the OpenAI-speaking engines, or the agent's own). The
key is decrypted here, in the gateway, and sent upstream; it never enters a worker.

Base URLs are written the way each CLI takes them (Anthropic's without ``/v1``, OpenAI's with
it); the gateway appends the wire path itself (``/v1/responses``), so a trailing ``/v1`` is
dropped here.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from gaffer.gateway.runs import RunInfo
from gaffer.gateway.upstreams import Upstream, UpstreamNotConfigured
from gaffer.store.credentials import read_credential
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Run

PUBLIC_APIS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com"}
"""Where calls go when the agent names no base URL, by the wire API's provider."""
CACHE_S = 5.0


def _provider_of(api: str) -> str:
    return "anthropic" if api == "anthropic" else "openai"


def upstream_base(base_url: str | None, api: str) -> tuple[str, str]:
    """``(base URL without a trailing /v1, provider name)`` for a configured ``base_url``
    (None: the provider's public API) and the call's wire ``api``."""
    provider = _provider_of(api)
    if not base_url:
        return PUBLIC_APIS[provider], provider
    base = base_url.rstrip("/")
    base = base.removesuffix("/v1")
    host = urlsplit(base).hostname or "custom"
    public = urlsplit(PUBLIC_APIS[provider]).hostname
    return base, provider if host == public else host


class AgentUpstreams:
    """:class:`~gaffer.gateway.upstreams.UpstreamResolver` over the runs' jobs and the
    projects' credentials (see the module docstring); each run's answer is kept
    :data:`CACHE_S` seconds."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box
        self._cache: dict[tuple[str, str], tuple[float, Upstream]] = {}

    def _read(self, run: RunInfo, api: str) -> Upstream:
        with self.db.session() as session:
            row = session.get(Run, run.run_id)
            if row is None:
                raise UpstreamNotConfigured(f"no run {run.run_id}")
            engine = (row.job_data or {}).get("engine") or {}
            name = engine.get("credential")
            key = read_credential(session, self.box, row.project_id, name) if name else None
        if key is None:
            raise UpstreamNotConfigured(
                f"the project has no credential {name!r} for its {run.agent_type} agent"
                if name
                else f"the {run.agent_type} agent names no credential for its model API key"
            )
        base, provider = upstream_base(engine.get("base_url"), api)
        return Upstream(base_url=base, api_key=key, provider=provider)

    async def upstream(self, run: RunInfo, api: str) -> Upstream:
        """See :class:`~gaffer.gateway.upstreams.UpstreamResolver`. Raises
        :class:`UpstreamNotConfigured` and database errors."""
        now = time.monotonic()
        cached = self._cache.get((run.run_id, api))
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        upstream = await asyncio.to_thread(self._read, run, api)
        self._cache[(run.run_id, api)] = (now, upstream)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return upstream
