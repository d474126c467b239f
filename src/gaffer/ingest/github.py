"""``POST /webhooks/github``: from an HTTP request to queued runs, and the answer GitHub gets.

Order of checks (each answer is recorded as a delivery with its decision and reason):

==============================================  ======  ===========
check                                           status  decision
==============================================  ======  ===========
body over 25 MiB                                413     rejected
``X-Hub-Signature-256`` missing or no match     401     rejected
``X-GitHub-Event``/``X-GitHub-Delivery`` gone   400     rejected
body not a JSON object / mistyped fields        400     rejected
``ping``                                        200     pong
repository not served by the matched project    202     ignored
delivery id already claimed (redelivery)        200     duplicate
no enabled trigger matches                      202     ignored
runs created and queued                         202     queued
runs held in the burst buffer                   202     buffered
Redis or database failure                       503     error
==============================================  ======  ===========

A delivery ignored (wholly or in part) over an attempt cap or the project's monthly budget gets
one comment on its issue/PR saying so: an outbox entry written in the transaction of its record
(:mod:`gaffer.runs.notices`; once per cap, PR and period, and only with GitHub credentials).

A buffered delivery's runs have their ids at once; their rows are written as the buffer drains.
Its delivery record is deferred too (:mod:`gaffer.buffer.deliveries`): the drainer writes such
records in batches, so a flood of deliveries does not become a flood of record inserts.

The delivery id is claimed in Redis with ``SET NX EX`` (7 days), across every ingest process.
If creating the runs fails after the claim, the claim is released so GitHub's retry can succeed.
The reply is sent once the runs are queued, never after they run (GitHub allows 10 s).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request

from gaffer.buffer.deliveries import defer_record
from gaffer.coordination.claims import claim, delivery_claim_key, release
from gaffer.ingest.body import BodyTooLargeError, read_body
from gaffer.ingest.directory import ProjectDirectory
from gaffer.ingest.github_side import after_event
from gaffer.ingest.observe import observe
from gaffer.providers import github
from gaffer.providers.events import Event, MalformedPayloadError
from gaffer.runs.engine import NewRun
from gaffer.runs.intake import RunIntake, Submission
from gaffer.runs.notices import IgnoredNotice, enqueue_notices
from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.deliveries import record_delivery, update_delivery
from gaffer.store.models import utcnow
from gaffer.store.projects import ProjectSnapshot
from gaffer.triggers.github import TriggerResult, evaluate

log = structlog.get_logger(__name__)

RECORD_TEXT_MAX_CHARS = 128
"""The longest event name, action and delivery id a delivery record keeps (``String(128)``
columns). Longer headers are refused with 400; a longer action is recorded cut."""


def _cut(text: str | None) -> str | None:
    """``text`` cut to :data:`RECORD_TEXT_MAX_CHARS` for a delivery record column."""
    return None if text is None else text[:RECORD_TEXT_MAX_CHARS]


RUN_ID_NAMESPACE = uuid.UUID("6a1f3c52-8f0e-4d2b-9d4e-2f7c0b9e5a11")


@dataclass
class DeliveryAnswer:
    """The answer to one delivery and what is recorded about it."""

    status_code: int
    decision: str
    reason: str
    event: str | None = None
    action: str | None = None
    delivery_id: str | None = None
    project_id: str | None = None
    run_ids: list[str] = field(default_factory=list)
    record_id: int | None = None
    notices: list[IgnoredNotice] = field(default_factory=list)
    """What the issue/PR is to be told (written with the record, :meth:`_record_in`)."""

    def conclude(self, status_code: int, decision: str, reason: str) -> DeliveryAnswer:
        """Set the HTTP status, decision and reason; returns this answer."""
        self.status_code, self.decision, self.reason = status_code, decision, reason
        return self

    def body(self) -> dict[str, object]:
        """The JSON body of the HTTP answer."""
        return {
            "decision": self.decision,
            "reason": self.reason,
            "delivery": self.delivery_id,
            "runs": self.run_ids,
        }


def delivery_batch_id(delivery_id: str) -> str:
    """The batch id of a delivery's runs (uuid5, 32 hex chars; stable across retries)."""
    return uuid.uuid5(RUN_ID_NAMESPACE, f"github:{delivery_id}:batch").hex


def delivery_run_id(delivery_id: str, index: int, request: AgentRequest) -> str:
    """A run id derived from the delivery, so that retrying a half-queued delivery (after its
    claim was released) re-creates the same runs instead of new ones (uuid5, 32 hex chars)."""
    name = f"github:{delivery_id}:{index}:{request.agent_type}:{request.work_item}"
    return uuid.uuid5(RUN_ID_NAMESPACE, name).hex


class GitHubIngest:
    """Handles GitHub deliveries for one ingest process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: aioredis.Redis,
        directory: ProjectDirectory,
        intake: RunIntake,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.directory = directory
        self.intake = intake

    async def handle(self, request: Request, project: str | None = None) -> DeliveryAnswer:
        """Answer one delivery and record it."""
        answer = await self._answer(request, project)
        log.info(
            "webhook_delivery",
            provider="github",
            github_event=answer.event,
            action=answer.action,
            delivery=answer.delivery_id,
            status=answer.status_code,
            decision=answer.decision,
            reason=answer.reason,
            runs=answer.run_ids,
        )
        if answer.record_id is None and answer.decision == "buffered":
            try:
                await defer_record(self.redis, {**self._columns(answer), "received_at": utcnow()})
                if answer.notices:  # the record is deferred: the notices go on their own
                    await asyncio.to_thread(self._record_notices, answer)
                return answer
            except RedisError:
                log.exception("webhook_delivery_defer_failed", delivery=answer.delivery_id)
        if answer.record_id is None:
            try:
                await asyncio.to_thread(self._record, answer)
            except SQLAlchemyError:
                log.exception("webhook_delivery_record_failed", delivery=answer.delivery_id)
        return answer

    def _record(self, answer: DeliveryAnswer) -> None:
        with self.db.session() as session:
            self._record_in(session, answer)

    @staticmethod
    def _columns(answer: DeliveryAnswer) -> dict[str, Any]:
        return {
            "provider": github.PROVIDER,
            "status_code": answer.status_code,
            "decision": answer.decision,
            "reason": answer.reason,
            "event": _cut(answer.event),
            "action": _cut(answer.action),
            "delivery_id": _cut(answer.delivery_id),
            "project_id": answer.project_id,
            "run_ids": list(answer.run_ids),
        }

    def _record_in(self, session: Session, answer: DeliveryAnswer) -> None:
        answer.record_id = record_delivery(session, **self._columns(answer))
        if answer.notices and answer.project_id is not None:
            enqueue_notices(session, answer.project_id, answer.notices)

    def _record_notices(self, answer: DeliveryAnswer) -> None:
        if answer.project_id is None:
            return
        try:
            with self.db.session() as session:
                enqueue_notices(session, answer.project_id, answer.notices)
        except SQLAlchemyError:
            log.exception("ignored_notice_record_failed", delivery=answer.delivery_id)

    def _rerecord(self, answer: DeliveryAnswer) -> None:
        assert answer.record_id is not None
        with self.db.session() as session:
            update_delivery(
                session,
                answer.record_id,
                status_code=answer.status_code,
                decision=answer.decision,
                reason=answer.reason,
            )

    async def _answer(self, request: Request, project_name: str | None) -> DeliveryAnswer:
        event_name = request.headers.get(github.EVENT_HEADER)
        delivery_id = request.headers.get(github.DELIVERY_HEADER)
        answer = DeliveryAnswer(0, "", "", event=event_name, delivery_id=delivery_id)

        try:
            body = await read_body(request, self.settings.webhook_max_body_bytes)
        except BodyTooLargeError as exc:
            return answer.conclude(413, "rejected", str(exc))

        signature = request.headers.get(github.SIGNATURE_HEADER)
        if not signature:
            return answer.conclude(401, "rejected", f"missing {github.SIGNATURE_HEADER} header")
        try:
            candidates = await self.directory.verify(body, signature, project=project_name)
        except SQLAlchemyError as exc:
            return answer.conclude(503, "error", f"database unavailable: {exc.__class__.__name__}")
        if not candidates:
            # Which names exist is not told to an unsigned caller.
            reason = (
                "signature does not match any project's secret"
                if project_name is None
                else f"no project {project_name!r} whose secret matches the signature"
            )
            return answer.conclude(401, "rejected", reason)
        if len(candidates) == 1:
            answer.project_id = candidates[0].id

        if not event_name:
            return answer.conclude(400, "rejected", f"missing {github.EVENT_HEADER} header")
        if not delivery_id:
            return answer.conclude(400, "rejected", f"missing {github.DELIVERY_HEADER} header")
        headers = ((github.EVENT_HEADER, event_name), (github.DELIVERY_HEADER, delivery_id))
        for header, value in headers:
            if len(value) > RECORD_TEXT_MAX_CHARS:
                reason = f"{header} is over {RECORD_TEXT_MAX_CHARS} characters"
                return answer.conclude(400, "rejected", reason)
        try:
            event = github.parse(event_name, delivery_id, body)
        except MalformedPayloadError as exc:
            return answer.conclude(400, "rejected", str(exc))
        answer.action = event.action

        if event.name == "ping":
            return answer.conclude(200, "pong", "webhook is reachable and the signature is valid")
        repository = (event.repository or "").casefold()
        project = next((p for p in candidates if p.repository.casefold() == repository), None)
        if project is None:
            return answer.conclude(
                202,
                "ignored",
                f"repository {event.repository!r} is not the repository of the project "
                "whose secret signed it",
            )
        answer.project_id = project.id
        try:
            result = evaluate(event, project)
        except (TypeError, AttributeError, ValueError) as exc:
            # A signed body whose fields the parser let through but a rule cannot read: the
            # sender's fault, answered before the claim so a corrected redelivery is taken.
            log.warning("webhook_payload_unusable", delivery=delivery_id, exc_info=True)
            reason = f"{event.key} payload mistypes a field: {exc!r}"
            return answer.conclude(400, "rejected", reason)

        claim_key = delivery_claim_key(github.PROVIDER, delivery_id)
        try:
            won = await claim(self.redis, claim_key, project.id, self.settings.delivery_claim_ttl_s)
        except RedisError as exc:
            return answer.conclude(503, "error", f"redis unavailable, delivery not claimed: {exc}")
        if not won:
            return answer.conclude(200, "duplicate", f"delivery {delivery_id} was already received")
        await after_event(self.db, self.intake.run_engine, project.id, event)
        try:
            return await self._claimed(answer, claim_key, project, event, result)
        except BaseException:
            # Whatever went wrong, a claim held for days would turn GitHub's retry of this
            # delivery into a "duplicate" and lose the event.
            await self._release_claim(answer, claim_key)
            raise

    async def _claimed(
        self,
        answer: DeliveryAnswer,
        claim_key: str,
        project: ProjectSnapshot,
        event: Event,
        result: TriggerResult,
    ) -> DeliveryAnswer:
        """The rest of a delivery once its id is claimed: observe, then submit the runs."""

        delivery_id = event.delivery_id
        await observe(self.redis, project.id, event)
        if not result.requests:
            return answer.conclude(202, "ignored", result.reason)
        batch_id = delivery_batch_id(delivery_id)
        new_runs = [
            NewRun(
                delivery_run_id(delivery_id, index, agent_request),
                agent_request,
                batch_id=batch_id,
                batch_index=index,
            )
            for index, agent_request in enumerate(result.requests)
        ]

        def settle(submission: Submission) -> None:
            answer.run_ids = list(submission.run_ids)
            answer.notices = list(submission.notices)
            if submission.buffered:
                reason = (
                    f"{result.reason} (held in the burst buffer: {submission.buffer_reason}; "
                    "the runs are created as it drains)"
                )
                if submission.skipped:
                    reason += f" (not started: {submission.reasons})"
                answer.conclude(202, "buffered", reason)
            elif submission.run_ids:
                reason = result.reason
                if submission.skipped:
                    reason += f" (not started: {submission.reasons})"
                answer.conclude(202, "queued", reason)
            else:
                answer.conclude(202, "ignored", submission.reasons or result.reason)

        def record(session: Session, submission: Submission) -> None:
            settle(submission)
            self._record_in(session, answer)

        try:
            # The delivery is recorded in the transaction that writes the run rows.
            submission = await self.intake.submit(project, new_runs, in_same_transaction=record)
        except (RedisError, SQLAlchemyError, OSError) as exc:
            log.exception("run_create_failed", delivery=delivery_id)
            error = f"could not queue the runs: {exc.__class__.__name__}: {exc}"
            return await self._failed_after_claim(answer, claim_key, error)
        settle(submission)
        if submission.redis_down:
            # A claim failed closed: nothing was dispatched for it; GitHub's retry may be.
            error = f"could not claim the dispatch: {submission.reasons}"
            return await self._failed_after_claim(answer, claim_key, error)
        return answer

    async def _release_claim(self, answer: DeliveryAnswer, claim_key: str) -> None:
        """Release the delivery claim (logged, not raised, when Redis refuses)."""
        try:
            await release(self.redis, claim_key)
        except RedisError:
            log.exception("delivery_claim_release_failed", delivery=answer.delivery_id)

    async def _failed_after_claim(
        self, answer: DeliveryAnswer, claim_key: str, error: str
    ) -> DeliveryAnswer:
        """Answer 503 for a claimed delivery whose runs could not all start, and release the
        delivery claim so that GitHub's retry is not taken for a duplicate."""
        await self._release_claim(answer, claim_key)
        answer.conclude(503, "error", error)
        if answer.record_id is not None:
            # Run rows were written with the record (repair adds their jobs; a retry reuses the
            # same run ids), but the answer is an error: record that.
            try:
                await asyncio.to_thread(self._rerecord, answer)
            except SQLAlchemyError:
                log.exception("webhook_delivery_record_failed", delivery=answer.delivery_id)
        return answer
