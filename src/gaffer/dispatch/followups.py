"""Post-completion follow-ups: after an implementation-type run ends, review the PR if its checks
are already green; after a run FAILED or TIMED_OUT, a ``debug`` post-mortem when the project has
that agent enabled (it is off by default).

This is one of the paths of the double-review incident (DESIGN.md, issue 3): the process that
finished an implementation dispatched a review while the ingest process reacted to the green
check suite. Here the review goes through :class:`gaffer.runs.intake.RunIntake`, so it takes the
same Redis claim as every other review path and at most one review runs per PR and head SHA.
"""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import select

from gaffer.agents import AgentType
from gaffer.coordination.checks import green_head
from gaffer.queue.jobs import JobData
from gaffer.runs.engine import NewRun
from gaffer.runs.intake import RunIntake, Submission
from gaffer.runs.requests import AgentRequest
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Run, RunLog, RunStatus
from gaffer.store.projects import ProjectSnapshot, get_project

log = structlog.get_logger(__name__)

FOLLOWED_AGENTS = frozenset(
    {AgentType.IMPLEMENTATION, AgentType.RESPOND_TO_REVIEW, AgentType.RESPOND_TO_PR_COMMENT}
)
TRIGGER = "run.completed"
DEBUG_TRIGGER = "run.failed"
POST_MORTEM_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
LOG_TAIL_LINES = 40
"""How many of the failed run's last log lines a ``debug`` run gets."""
FOLLOW_UP_NAMESPACE = uuid.UUID("0f4c6f3e-55a4-4b53-8f1e-6c1f2a9d7e21")


def follow_up_review_request(
    project: ProjectSnapshot, pr_number: int, head_sha: str, after_run: str | None
) -> AgentRequest:
    """The review request of a post-completion follow-up (provider ``gaffer``)."""
    return AgentRequest(
        project_id=project.id,
        agent_type=AgentType.REVIEW.value,
        provider="gaffer",
        trigger=TRIGGER,
        work_item=str(pr_number),
        title=f"Review of PR #{pr_number} after run {after_run}" if after_run else "",
        pr_number=pr_number,
        head_sha=head_sha,
    )


class FollowUps:
    """Dispatches follow-up reviews after runs finish (a dispatcher ``on_run_finished`` hook)."""

    def __init__(
        self, intake: RunIntake, redis: aioredis.Redis, db: Database, box: SecretBox
    ) -> None:
        self.intake = intake
        self.redis = redis
        self.db = db
        self.box = box

    async def after_run(self, data: JobData, outcome_status: RunStatus) -> Submission | None:
        """Review the run's PR if the run succeeded, is of a followed agent type, the PR's head
        has a successful check suite, and the project has the review agent. Returns what the
        intake did, or None when no review was asked for."""
        if outcome_status in POST_MORTEM_STATUSES and data.agent_type != AgentType.DEBUG:
            return await self.post_mortem(data, outcome_status)
        if outcome_status != RunStatus.SUCCEEDED or data.agent_type not in FOLLOWED_AGENTS:
            return None
        pr_number = data.task.pr_number
        if pr_number is None:
            return None
        try:
            head_sha = await green_head(self.redis, data.project_id, pr_number)
        except RedisError as exc:
            log.error(
                "review_dispatch_redis_down",
                run_id=data.run_id,
                error=str(exc),
                source=f"gaffer:{TRIGGER}",
            )
            return None
        if head_sha is None:
            return None
        project = await asyncio.to_thread(self._project, data.project_id)
        if AgentType.REVIEW.value not in project.agents:
            return None
        return await self.review(project, pr_number, head_sha, after_run=data.run_id)

    async def review(
        self, project: ProjectSnapshot, pr_number: int, head_sha: str, *, after_run: str | None
    ) -> Submission:
        """Ask for a review of ``pr_number`` at ``head_sha`` through the intake (and its claim).

        The run id is derived from the finished run, so the same hook firing twice (a
        dispatcher that retries) asks for the same run.
        """
        request = follow_up_review_request(project, pr_number, head_sha, after_run)
        seed = f"{after_run or uuid.uuid4().hex}:{pr_number}:{head_sha}"
        run_id = uuid.uuid5(FOLLOW_UP_NAMESPACE, seed).hex
        submission = await self.intake.submit(project, [NewRun(run_id, request)])
        log.info(
            "follow_up_review",
            after_run=after_run,
            pr=pr_number,
            head_sha=head_sha,
            runs=submission.run_ids,
            skipped=submission.reasons or None,
        )
        return submission

    async def post_mortem(self, data: JobData, status: RunStatus) -> Submission | None:
        """Start a ``debug`` run on the failed run's work item, with the failed run's status,
        error and the tail of its log as ``failed_run``, if the project enables ``debug``.
        The run id derives from the failed run's, so a retried hook asks for the same run."""
        project = await asyncio.to_thread(self._project, data.project_id)
        if AgentType.DEBUG.value not in project.agents:
            return None
        error, tail = await asyncio.to_thread(self._failure, data.run_id)
        request = AgentRequest(
            project_id=project.id,
            agent_type=AgentType.DEBUG.value,
            provider="gaffer",
            trigger=DEBUG_TRIGGER,
            work_item=data.task.work_item,
            title=data.task.title,
            url=data.task.url,
            pr_number=data.task.pr_number,
            head_sha=data.task.head_sha,
            head_branch=data.task.head_branch,
            base_branch=data.task.base_branch,
            context={
                "failed_run": {
                    "id": data.run_id,
                    "agent": data.agent_type,
                    "status": str(status),
                    "error": error or "",
                    "log_tail": tail,
                }
            },
        )
        run_id = uuid.uuid5(FOLLOW_UP_NAMESPACE, f"debug:{data.run_id}").hex
        submission = await self.intake.submit(project, [NewRun(run_id, request)])
        log.info("follow_up_debug", after_run=data.run_id, runs=submission.run_ids)
        return submission

    def _failure(self, run_id: str) -> tuple[str | None, str]:
        with self.db.session() as session:
            run = session.get(Run, run_id)
            lines = session.scalars(
                select(RunLog)
                .where(RunLog.run_id == run_id)
                .order_by(RunLog.id.desc())
                .limit(LOG_TAIL_LINES)
            ).all()
            tail = "\n".join(f"[{line.stream}] {line.message}" for line in reversed(lines))
            return (run.error if run is not None else None), tail

    def _project(self, project_id: str) -> ProjectSnapshot:
        with self.db.session() as session:
            return ProjectSnapshot.of(get_project(session, project_id), self.box)
