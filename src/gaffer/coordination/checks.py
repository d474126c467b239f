"""What gaffer has seen of pull requests' checks: the head SHA of each PR, and which head SHAs
have a successful check suite. Written by ingest from webhooks, read by post-completion
follow-ups ("the PR's checks are already green"), shared by every process through Redis.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gaffer.coordination.keys import key

CHECK_STATE_TTL_S = 7 * 24 * 3600


def pr_head_key(project_id: str, pr_number: int) -> str:
    """``gaffer:pr:<project>:<pr>:head``: the PR's last seen head SHA."""
    return key("pr", project_id, pr_number, "head")


def checks_key(project_id: str, head_sha: str) -> str:
    """``gaffer:checks:<project>:<sha>``: the last check suite conclusion seen for a SHA."""
    return key("checks", project_id, head_sha)


async def record_pr_head(redis: aioredis.Redis, project_id: str, pr_number: int, sha: str) -> None:
    """Remember ``sha`` as the head of PR ``pr_number``."""
    await redis.set(pr_head_key(project_id, pr_number), sha, ex=CHECK_STATE_TTL_S)


async def record_check_suite(
    redis: aioredis.Redis, project_id: str, sha: str, conclusion: str | None
) -> None:
    """Remember the conclusion of a completed check suite on ``sha``."""
    await redis.set(checks_key(project_id, sha), conclusion or "none", ex=CHECK_STATE_TTL_S)


async def green_head(redis: aioredis.Redis, project_id: str, pr_number: int) -> str | None:
    """The PR's head SHA when its last completed check suite succeeded, else None."""
    head = await redis.get(pr_head_key(project_id, pr_number))
    if head is None:
        return None
    sha = head.decode() if isinstance(head, bytes) else str(head)
    conclusion = await redis.get(checks_key(project_id, sha))
    return sha if conclusion in (b"success", "success") else None
