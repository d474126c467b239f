"""Run intake: the one door every path that starts runs goes through.

Ingest (a webhook delivery), the dispatcher's post-completion follow-ups, and manual triggers
all call :meth:`RunIntake.submit`. It is where the seams between "an event asks for a run" and
"a run exists" live, in this order (DESIGN.md, "The way of an event"):

1. coordination: dedup claims per request key (a review per PR and head SHA, ...);
2. the burst buffer gate: pass through, or hold the request in the buffer;
3. the run engine: QUEUED rows, then queue jobs.

Each step may keep a request from going further; :class:`Submission` says which requests
became runs and why the others did not, and whether they were held in the burst buffer
(``buffered``: each has its run id at once, and its row is written when the buffer drains).
If the buffer cannot take a submission the gate chose to hold (Redis fails), it goes to the
run engine instead (fail open, ``buffer_accept_failed_open``); run ids make that safe even if
the buffer did take it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gaffer.agents import AgentType
from gaffer.coordination.dispatch_claims import (
    ClaimOutcome,
    ReviewTarget,
    claim_review,
    release_review,
)
from gaffer.runs.caps import CapRefusal, over_cap
from gaffer.runs.engine import NewRun, RunEngine
from gaffer.runs.notices import IgnoredNotice, budget_notice, cap_notice
from gaffer.runs.supersede import supersede_reviews
from gaffer.settings import Settings
from gaffer.store.models import Run, utcnow
from gaffer.store.projects import ProjectSnapshot

if TYPE_CHECKING:
    from gaffer.buffer.gate import BufferGate
    from gaffer.buffer.scripts import BufferStore

log = structlog.get_logger(__name__)


@dataclass
class Submission:
    """What became of submitted requests.

    ``run_ids``: runs created (or, with the burst buffer, accepted and owed a run), in order.
    ``skipped``: ``(run id it would have had, reason)`` for requests that made no run.
    ``buffered``: the runs were accepted into the burst buffer (no row yet), for
    ``buffer_reason`` (the gate's reason: ``tripped``, ``overage``, ``held``, ``backlog``).
    ``notices``: the skipped requests that their issue/PR is to be told of (over an attempt
    cap or the monthly budget), for the caller to write with its record
    (:func:`gaffer.runs.notices.enqueue_notices`).
    """

    run_ids: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notices: list[IgnoredNotice] = field(default_factory=list)
    redis_down: bool = False
    """True when a claim failed closed because Redis errored (nothing was dispatched for it)."""
    buffered: bool = False
    buffer_reason: str = ""

    @property
    def reasons(self) -> str:
        """The reasons of the skipped requests, joined."""
        return "; ".join(reason for _, reason in self.skipped)


@dataclass(frozen=True)
class ClaimCheck:
    """What the coordination step said of one request: ``outcome`` of its dispatch claim (None
    when it takes none), and ``reason`` it may not go on (None when it may)."""

    outcome: ClaimOutcome | None
    reason: str | None


RecordHook = Callable[[Session, Submission], None]
"""Called in the transaction that writes the run rows, with what is being created."""


class RunIntake:
    """Submits run requests through coordination, the buffer gate and the run engine."""

    def __init__(
        self,
        settings: Settings,
        run_engine: RunEngine,
        redis: aioredis.Redis,
        *,
        gate: BufferGate | None = None,
        buffer: BufferStore | None = None,
    ) -> None:
        self.settings = settings
        self.run_engine = run_engine
        self.redis = redis
        self.gate = gate
        self.buffer = buffer
        from gaffer.gateway.budgets import usd_to_nano
        from gaffer.gateway.settings import GatewaySettings

        self._monthly_nano_usd = usd_to_nano(GatewaySettings().project_monthly_usd)

    async def submit(
        self,
        project: ProjectSnapshot,
        runs: Sequence[NewRun],
        *,
        in_same_transaction: RecordHook | None = None,
    ) -> Submission:
        """Start what may start of ``runs``.

        ``in_same_transaction`` is called in the transaction that writes the run rows, with the
        :class:`Submission` (so a caller can record its answer atomically with the rows); it is
        not called when no row is written. Raises database and Redis errors of the run engine.
        """
        submission = Submission()
        refusal = await self._over_monthly_budget(project)
        if refusal is not None:
            submission.skipped = [(new.run_id, refusal) for new in runs]
            notices = (budget_notice(new.request, refusal) for new in runs)
            submission.notices = [n for n in notices if n is not None]
            log.info("runs_refused_over_budget", project=project.name, reason=refusal)
            return submission
        admitted: list[NewRun] = []
        claimed: list[NewRun] = []
        capped = await asyncio.to_thread(self._over_caps, project, runs)
        for new in runs:
            if new.run_id in capped:
                refused = capped[new.run_id]
                submission.skipped.append((new.run_id, refused.reason))
                notice = cap_notice(new.request, refused.reason, refused.key)
                if notice is not None:
                    submission.notices.append(notice)
                log.info("run_over_attempt_cap", run_id=new.run_id, reason=refused.reason)
                continue
            check = await self._claim(project, new)
            if check.reason is None:
                admitted.append(new)
                if check.outcome is ClaimOutcome.CLAIMED:
                    claimed.append(new)
            else:
                submission.skipped.append((new.run_id, check.reason))
                submission.redis_down |= check.outcome is ClaimOutcome.REDIS_DOWN
        submission.run_ids = [new.run_id for new in admitted]
        if not admitted:
            return submission
        if await self._buffered(project, admitted, submission):
            return submission
        now = utcnow()
        admitted = [
            dataclasses.replace(new, accepted_at=new.accepted_at or now) for new in admitted
        ]
        hook = in_same_transaction
        try:
            await self.run_engine.create_runs(
                project,
                admitted,
                in_same_transaction=(lambda session: hook(session, submission)) if hook else None,
            )
        except BaseException:
            # The dispatch is blocked after its claim: let a later event claim it again, unless
            # its row was written (only the job add failed): repair adds the job and the run
            # goes on, so its claim must stand.
            written = await self._written([new.run_id for new in claimed])
            for new in claimed:
                if new.run_id not in written:
                    await self._release(project, new)
            raise
        await self._supersede(project, admitted)
        return submission

    def _over_caps(self, project: ProjectSnapshot, runs: Sequence[NewRun]) -> dict[str, CapRefusal]:
        """``{run id: refusal}`` of the requests over their attempt cap
        (:mod:`gaffer.runs.caps`)."""
        with self.run_engine.db.session() as session:
            found = {
                new.run_id: over_cap(session, self.settings, project.id, new.request)
                for new in runs
            }
        return {run_id: reason for run_id, reason in found.items() if reason is not None}

    async def _supersede(self, project: ProjectSnapshot, runs: Sequence[NewRun]) -> None:
        """A new review at a PR's head SHA supersedes its reviews of older SHAs
        (:mod:`gaffer.runs.supersede`). A failure is logged: the new run stands."""
        for new in runs:
            request = new.request
            if request.agent_type != "review" or request.pr_number is None:
                continue
            if not request.head_sha:
                continue
            engine = self.run_engine
            try:
                await supersede_reviews(
                    engine.db,
                    engine.queue,
                    engine.redis,
                    project.id,
                    request.pr_number,
                    request.head_sha,
                )
            except Exception:
                log.exception("supersede_failed", run_id=new.run_id)

    async def _over_monthly_budget(self, project: ProjectSnapshot) -> str | None:
        """Why ``project`` may start no run this month (its model calls since the month began
        cost its monthly budget, ``GAFFER_GATEWAY_PROJECT_MONTHLY_USD``), or None. One query
        over the gateway's usage rows, and only when a budget is set."""
        if self._monthly_nano_usd <= 0:
            return None
        from gaffer.gateway.budgets import monthly_budget_refusal

        def check() -> str | None:
            with self.run_engine.db.session() as session:
                return monthly_budget_refusal(session, project.id, self._monthly_nano_usd)

        return await asyncio.to_thread(check)

    async def _written(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` have a run row. When the database cannot say, all of them:
        a claim kept too long only expires (``review_claim_ttl_s``); one released too early
        lets a second review start."""
        if not run_ids:
            return set()
        try:
            return await asyncio.to_thread(self._rows_of, run_ids)
        except SQLAlchemyError:
            log.warning("review_claims_kept_database_unavailable", runs=run_ids)
            return set(run_ids)

    def _rows_of(self, run_ids: list[str]) -> set[str]:
        with self.run_engine.db.session() as session:
            return set(session.scalars(select(Run.id).where(Run.id.in_(run_ids))))

    async def _claim(self, project: ProjectSnapshot, new: NewRun) -> ClaimCheck:
        """Take the dispatch claim ``new`` needs (reviews only) and say whether it may go on."""
        request = new.request
        if request.agent_type != AgentType.REVIEW:
            return ClaimCheck(None, None)
        target = review_target(project, new)
        if target is None:
            return ClaimCheck(None, "a review needs a pull request number and a head SHA")
        outcome = await claim_review(
            self.redis,
            target,
            run_id=new.run_id,
            source=f"{request.provider}:{request.trigger}",
            ttl_s=self.settings.review_claim_ttl_s,
        )
        if outcome is ClaimOutcome.CLAIMED:
            return ClaimCheck(outcome, None)
        if outcome is ClaimOutcome.REDIS_DOWN:
            return ClaimCheck(outcome, "redis unavailable: review dispatch claim failed closed")
        pr, sha = target.pr_number, target.head_sha[:12]
        return ClaimCheck(outcome, f"review of PR #{pr} at {sha} was already dispatched")

    async def _release(self, project: ProjectSnapshot, new: NewRun) -> None:
        target = review_target(project, new)
        assert target is not None
        await release_review(self.redis, target, run_id=new.run_id)

    async def _buffered(
        self, project: ProjectSnapshot, runs: list[NewRun], submission: Submission
    ) -> bool:
        """Ask the gate; if it says hold, accept ``runs`` into the buffer. True if held."""
        if self.gate is None or self.buffer is None:
            return False
        decision = await self.gate.decide(project, len(runs))
        if not decision.buffer:
            return False
        try:
            accepted = await self.buffer.accept(project.organization_id, project.id, runs)
        except Exception as exc:
            log.warning(
                "buffer_accept_failed_open",
                project=project.name,
                runs=[new.run_id for new in runs],
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        # An idempotency key bound to a live entry answers with that entry's run.
        submission.run_ids = list(dict.fromkeys(a.run_id for a in accepted))
        submission.buffered = True
        submission.buffer_reason = decision.reason
        log.info(
            "runs_buffered",
            project=project.name,
            reason=decision.reason,
            runs=submission.run_ids,
            outcomes=[a.outcome for a in accepted],
        )
        return True


def review_target(project: ProjectSnapshot, new: NewRun) -> ReviewTarget | None:
    """What the review claim of ``new`` is about, or None without a PR number and head SHA."""
    request = new.request
    if request.pr_number is None or not request.head_sha:
        return None
    return ReviewTarget(project.id, project.repository, request.pr_number, request.head_sha)
