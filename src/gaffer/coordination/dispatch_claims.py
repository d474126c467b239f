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


def review_claim_key(project_id: str, repository: str, pr_number: int, head_sha: str) -> str:
    """The claim key of a review of ``pr_number`` at ``head_sha``."""
    return key("dispatch", "review", project_id, repository, pr_number, head_sha)


async def claim_review(
    redis: aioredis.Redis,
    *,
    project_id: str,
    repository: str,
    pr_number: int,
    head_sha: str,
    run_id: str,
    source: str,
    ttl_s: int = REVIEW_CLAIM_TTL_S,
) -> ClaimOutcome:
    """Claim the review of a PR at a head SHA for ``run_id``.

    CLAIMED also when ``run_id`` already holds it (a replay of the same run). ``source`` names
    the path asking (``github:check_suite.completed``, ``gaffer:run.completed``...) for the log.
    Never raises for Redis errors: returns REDIS_DOWN (fail closed).
    """
    claim_key = review_claim_key(project_id, repository, pr_number, head_sha)
    fields = {
        "project_id": project_id,
        "pr": pr_number,
        "head_sha": head_sha,
        "run_id": run_id,
        "source": source,
    }
    try:
        result = int(await script(redis, "claim_or_same")(keys=[claim_key], args=[run_id, ttl_s]))
        holder = None if result else await redis.get(claim_key)
    except RedisError as exc:
        log.error("review_dispatch_redis_down", error=str(exc), **fields)
        return ClaimOutcome.REDIS_DOWN
    if result:
        log.info("review_dispatch_claimed", **fields)
        return ClaimOutcome.CLAIMED
    holder_id = holder.decode() if isinstance(holder, bytes) else holder
    log.info("review_dispatch_duplicate", holder=holder_id, **fields)
    return ClaimOutcome.HELD


async def release_review(
    redis: aioredis.Redis,
    *,
    project_id: str,
    repository: str,
    pr_number: int,
    head_sha: str,
    run_id: str,
) -> None:
    """Drop a review claim held by ``run_id`` (its dispatch was blocked afterwards)."""
    claim_key = review_claim_key(project_id, repository, pr_number, head_sha)
    try:
        if await script(redis, "delete_if_value")(keys=[claim_key], args=[run_id]):
            log.info("review_dispatch_released", pr=pr_number, head_sha=head_sha, run_id=run_id)
    except RedisError as exc:
        log.error("review_dispatch_release_failed", error=str(exc), run_id=run_id)
