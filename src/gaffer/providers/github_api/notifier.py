"""The notifier: sends due outbox entries to GitHub, with retries and capped backoff.

It runs in the dispatch role (any number of them: entries are claimed by compare-and-set).
A retryable failure (GitHub down, a rate limit, a timeout) is tried again after
``min(base_backoff_s * 2**(attempts-1), max_backoff_s)`` (at least GitHub's ``Retry-After``),
up to ``max_attempts``; anything else (GitHub refused it: 403, 404, 422; a bad payload) fails
the entry for good with the reason, and the run's later entries go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.errors import GitHubError, GitHubRateLimitedError
from gaffer.providers.github_api.outbox_kinds import PRIOR_KINDS, send_entry
from gaffer.store import outbox
from gaffer.store.db import Database
from gaffer.store.models import OutboxEntry, utcnow

log = structlog.get_logger(__name__)

ClientFactory = Callable[[OutboxEntry], Awaitable[GitHubClient]]
"""Builds the client an entry is sent with (its project's credentials, its repository, the
permissions of its run). May raise ``GitHubError`` (retried when ``retryable``)."""


@dataclass(frozen=True)
class NotifierConfig:
    """Bounds of the notifier. Times in seconds."""

    batch: int = 20
    lease_s: float = 120.0
    base_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    max_attempts: int = 20
    poll_s: float = 1.0


class Notifier:
    """Sends the outbox of ``db`` with clients from ``clients``."""

    def __init__(
        self, db: Database, clients: ClientFactory, config: NotifierConfig | None = None
    ) -> None:
        self.db = db
        self.clients = clients
        self.config = config or NotifierConfig()

    async def send_due(self) -> int:
        """One pass: send every entry due now (in order per run). Returns how many were
        sent."""
        sent = 0
        tried: set[int] = set()  # one attempt per entry and pass
        while True:
            ids = [i for i in await asyncio.to_thread(self._due) if i not in tried]
            if not ids:
                return sent
            progressed = False
            for entry_id in ids:
                tried.add(entry_id)
                entry = await asyncio.to_thread(self._claim, entry_id)
                if entry is None:
                    continue
                progressed = True
                if await self._send(entry):
                    sent += 1
            if not progressed:
                return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Send due entries until ``stop`` is set, polling every ``poll_s``."""
        while not stop.is_set():
            try:
                await self.send_due()
            except Exception:  # the database is down: keep going, nothing is lost
                log.exception("outbox_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_s)

    def _due(self) -> list[int]:
        with self.db.session() as session:
            return outbox.due_ids(session, utcnow(), self.config.batch)

    def _claim(self, entry_id: int) -> OutboxEntry | None:
        with self.db.session() as session:
            entry = outbox.claim(session, entry_id, utcnow(), self.config.lease_s)
            if entry is not None:
                session.expunge(entry)
            return entry

    def _prior(self, run_id: str | None) -> dict[str, dict[str, Any]]:
        if run_id is None:  # an entry that follows from no run has no prior results
            return {}
        with self.db.session() as session:
            found = {k: outbox.latest_result(session, run_id, k) for k in PRIOR_KINDS}
        return {k: v for k, v in found.items() if v is not None}

    async def _send(self, entry: OutboxEntry) -> bool:
        try:
            client = await self.clients(entry)
            prior = await asyncio.to_thread(self._prior, entry.run_id)
            result = await send_entry(client, entry.run_id, entry.kind, entry.payload, prior)
        except GitHubError as exc:
            await self._failed_attempt(
                entry,
                exc.reason,
                exc.retryable,
                getattr(exc, "retry_after_s", 0.0)
                if isinstance(exc, GitHubRateLimitedError)
                else 0.0,
            )
            return False
        except (KeyError, ValidationError, ValueError) as exc:
            reason = f"bad outbox entry {entry.kind}: {exc}"
            await asyncio.to_thread(self._mark_failed, entry.id, reason)
            log.warning(
                "outbox_entry_failed",
                entry=entry.id,
                run_id=entry.run_id,
                kind=entry.kind,
                reason=reason,
            )
            return False
        await asyncio.to_thread(self._mark_sent, entry.id, result)
        log.info(
            "outbox_entry_sent",
            entry=entry.id,
            run_id=entry.run_id,
            kind=entry.kind,
            url=result.get("url"),
        )
        return True

    async def _failed_attempt(
        self, entry: OutboxEntry, reason: str, retryable: bool, retry_after_s: float
    ) -> None:
        if not retryable or entry.attempts >= self.config.max_attempts:
            if retryable:
                reason = f"{reason} (gave up after {entry.attempts} attempts)"
            await asyncio.to_thread(self._mark_failed, entry.id, reason)
            log.warning(
                "outbox_entry_failed",
                entry=entry.id,
                run_id=entry.run_id,
                kind=entry.kind,
                reason=reason,
            )
            return
        backoff = min(
            self.config.base_backoff_s * 2 ** max(entry.attempts - 1, 0), self.config.max_backoff_s
        )
        delay = max(backoff, retry_after_s)
        at = utcnow() + timedelta(seconds=delay)
        await asyncio.to_thread(self._mark_retry, entry.id, reason, at)
        log.info(
            "outbox_entry_retry",
            entry=entry.id,
            run_id=entry.run_id,
            kind=entry.kind,
            attempts=entry.attempts,
            delay_s=round(delay, 3),
            reason=reason,
        )

    def _mark_sent(self, entry_id: int, result: dict[str, Any]) -> None:
        with self.db.session() as session:
            outbox.mark_sent(session, entry_id, result)

    def _mark_retry(self, entry_id: int, reason: str, at: Any) -> None:
        with self.db.session() as session:
            outbox.mark_retry(session, entry_id, reason, at)

    def _mark_failed(self, entry_id: int, reason: str) -> None:
        with self.db.session() as session:
            outbox.mark_failed(session, entry_id, reason)
