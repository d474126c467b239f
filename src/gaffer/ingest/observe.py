"""What ingest remembers from events besides starting runs: PR heads and check suite results.

Post-completion follow-ups ask "are this PR's checks already green?"; the answer comes from the
``pull_request`` and ``check_suite`` webhooks seen here (:mod:`gaffer.coordination.checks`).
Failing to remember is logged and never fails the delivery.
"""

from __future__ import annotations

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gaffer.coordination.checks import record_check_suite, record_pr_head
from gaffer.providers.events import Event

log = structlog.get_logger(__name__)


async def observe(redis: aioredis.Redis, project_id: str, event: Event) -> None:
    """Record the PR heads and check suite conclusion carried by ``event``."""
    try:
        for pr in event.pull_requests:
            head = pr.head_sha or event.head_sha
            if head and event.name in ("pull_request", "check_suite"):
                await record_pr_head(redis, project_id, pr.number, head)
        if event.key == "check_suite.completed" and event.head_sha:
            await record_check_suite(redis, project_id, event.head_sha, event.conclusion)
    except RedisError as exc:
        log.warning("check_state_record_failed", error=str(exc), delivery=event.delivery_id)
