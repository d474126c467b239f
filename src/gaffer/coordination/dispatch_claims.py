"""Dispatch claims: one review per pull request and head commit, whichever process asks first.

Incident: a review ran twice on the same PR and commit, 29 s apart, both spending model tokens.
One dispatch came from the process that had just finished an implementation (a post-completion
hook), the other from the ingest process reacting to the green check suite; each kept its own
in-memory "recently dispatched" map, so both claimed. Every path that can start a review (check
suite success, review requested, PR opened, post-completion hook, manual trigger) therefore goes
through :func:`claim_review`: ``SET key run_id NX EX 300`` on
``gaffer:dispatch:review:<project>:<repository>:<pr>:<head sha>``.

This seam spends money, so it fails closed: when Redis errors, nothing is dispatched and
``review_dispatch_redis_down`` is logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gaffer.coordination.keys import key
from gaffer.coordination.scripts import script

log = structlog.get_logger(__name__)

REVIEW_CLAIM_TTL_S = 300


class ClaimOutcome(enum.Enum):
    """How a dispatch claim went."""

    CLAIMED = "claimed"
    HELD = "held"
    REDIS_DOWN = "redis_down"


@dataclass(frozen=True)
class ReviewTarget:
    """What a review claim is about: a pull request of a project's repository at a head SHA."""

    project_id: str
    repository: str
    pr_number: int
    head_sha: str

    @property
    def claim_key(self) -> str:
        """``gaffer:dispatch:review:<project>:<repository>:<pr>:<head sha>``."""
        return key(
            "dispatch", "review", self.project_id, self.repository, self.pr_number, self.head_sha
        )

    def log_fields(self) -> dict[str, object]:
        """The target as log fields."""
        return {"project_id": self.project_id, "pr": self.pr_number, "head_sha": self.head_sha}


async def claim_review(
    redis: aioredis.Redis,
    target: ReviewTarget,
    *,
    run_id: str,
    source: str,
    ttl_s: int = REVIEW_CLAIM_TTL_S,
) -> ClaimOutcome:
    """Claim the review of ``target`` for ``run_id`` (``SET NX EX ttl_s``).

    CLAIMED also when ``run_id`` already holds it (a replay of the same run). ``source`` names
    the path asking (``github:check_suite.completed``, ``gaffer:run.completed``...) for the log.
    Never raises for Redis errors: returns REDIS_DOWN (fail closed).
    """
    fields = {**target.log_fields(), "run_id": run_id, "source": source}
    try:
        result = int(
            await script(redis, "claim_or_same")(keys=[target.claim_key], args=[run_id, ttl_s])
        )
        holder = None if result else await redis.get(target.claim_key)
    except RedisError as exc:
        log.error("review_dispatch_redis_down", error=str(exc), **fields)
        return ClaimOutcome.REDIS_DOWN
    if result:
        log.info("review_dispatch_claimed", **fields)
        return ClaimOutcome.CLAIMED
    holder_id = holder.decode() if isinstance(holder, bytes) else holder
    log.info("review_dispatch_duplicate", holder=holder_id, **fields)
    return ClaimOutcome.HELD


async def release_review(redis: aioredis.Redis, target: ReviewTarget, *, run_id: str) -> None:
    """Drop a review claim held by ``run_id`` (its dispatch was blocked afterwards)."""
    try:
        if await script(redis, "delete_if_value")(keys=[target.claim_key], args=[run_id]):
            log.info("review_dispatch_released", run_id=run_id, **target.log_fields())
    except RedisError as exc:
        log.error("review_dispatch_release_failed", error=str(exc), run_id=run_id)
