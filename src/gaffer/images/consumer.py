"""The consumer of the validation queue, in the dispatch role (where the container engine is).

:class:`ImageValidations` pops :class:`~gaffer.images.queue.ValidationRequest` entries one at a
time (a validation takes no worker slot: it runs beside the dispatcher's BullMQ worker, not in
it), validates on a thread (:class:`~gaffer.images.validation.ImageValidator`) and records the
result guarded by the reference (:func:`gaffer.images.state.record_result`):

* the operator changed the reference meanwhile: the result is dropped and a validation of the
  current reference is enqueued (``worker_image_result_dropped``);
* the engine is unreachable: the entry is put back and tried again after ``retry_s``
  (``worker_image_validation_retrying``); the project stays ``pending`` meanwhile;
* any other error becomes ``failed`` with the error, so no project stays ``pending``.

At start, a validation is enqueued for every ``pending`` project: one whose entry was lost
(a consumer that died mid-validation, an enqueue that failed) is validated again.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gaffer.backends.docker import EngineUnreachableError
from gaffer.engines import engine_class
from gaffer.images import queue
from gaffer.images.queue import ValidationRequest
from gaffer.images.state import (
    ValidationResult,
    current_reference,
    pending_projects,
    record_result,
    registry_auth,
)
from gaffer.images.validation import SMOKE_TIMEOUT_S, ImageValidator
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Project

log = structlog.get_logger(__name__)

RETRY_S = 5.0
"""Pause before an entry whose validation met an unreachable engine is tried again (s)."""
POP_TIMEOUT_S = 1.0


class ImageValidations:
    """Consumes the validation queue (module docstring) through ``validator``."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        redis: aioredis.Redis,
        validator: ImageValidator,
        *,
        retry_s: float = RETRY_S,
    ) -> None:
        self.db = db
        self.box = box
        self.redis = redis
        self.validator = validator
        self.retry_s = retry_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_engine(
        cls,
        db: Database,
        box: SecretBox,
        redis: aioredis.Redis,
        docker_host: str,
        *,
        smoke_timeout_s: float = SMOKE_TIMEOUT_S,
        retry_s: float = RETRY_S,
    ) -> ImageValidations:
        """A consumer validating through the engine at ``docker_host``."""
        validator = ImageValidator(docker_host, smoke_timeout_s=smoke_timeout_s)
        return cls(db, box, redis, validator, retry_s=retry_s)

    async def start(self) -> None:
        """Enqueue the pending projects, then consume in a background task."""
        for project_id, reference in await asyncio.to_thread(self._pending):
            await queue.enqueue(self.redis, ValidationRequest(project_id, reference))
        self._task = asyncio.create_task(self._consume(), name="gaffer-image-validations")

    async def stop(self) -> None:
        """Stop after the validation in progress (its thread finishes on its own)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.validator.close()

    def _pending(self) -> list[tuple[str, str]]:
        with self.db.session() as session:
            return pending_projects(session)

    async def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                popped = await self.redis.blpop([queue.QUEUE_KEY], timeout=POP_TIMEOUT_S)
            except RedisError as exc:
                log.warning("worker_image_queue_unreachable", error=str(exc))
                await asyncio.sleep(self.retry_s)
                continue
            if popped is None:
                continue
            try:
                request = ValidationRequest.decode(popped[1])
            except (ValueError, KeyError) as exc:
                log.error("worker_image_request_malformed", error=str(exc))
                continue
            await self.process(request)

    async def process(self, request: ValidationRequest) -> ValidationResult | None:
        """Validate one request and record it (module docstring). Returns the recorded result,
        or None when nothing was recorded (dropped, retried later, or no such project)."""
        loaded = await asyncio.to_thread(self._load, request)
        if loaded is None:
            return None
        clis, auth = loaded
        try:
            result = await asyncio.to_thread(self.validator.validate, request.reference, clis, auth)
        except EngineUnreachableError as exc:
            log.warning(
                "worker_image_validation_retrying",
                project_id=request.project_id,
                image=request.reference,
                error=str(exc),
            )
            await asyncio.sleep(self.retry_s)
            await queue.enqueue(self.redis, request)
            return None
        except Exception as exc:
            log.exception("worker_image_validation_error", image=request.reference)
            result = ValidationResult(request.reference, error=f"validation error: {exc}")
        written = await asyncio.to_thread(self._record, request.project_id, result)
        if written:
            return result
        current = await asyncio.to_thread(self._current, request.project_id)
        log.info(
            "worker_image_result_dropped",
            project_id=request.project_id,
            image=request.reference,
            current=current,
        )
        if current is not None:
            await queue.enqueue(self.redis, ValidationRequest(request.project_id, current))
        return None

    def _load(
        self, request: ValidationRequest
    ) -> tuple[list[tuple[str, str]], dict[str, str] | None] | None:
        """The project's engine CLIs and registry credentials; None when it is gone."""
        with self.db.session() as session:
            project = session.scalar(
                select(Project)
                .where(Project.id == request.project_id)
                .options(selectinload(Project.agents))
            )
            if project is None:
                log.info("worker_image_project_gone", project_id=request.project_id)
                return None
            clis: list[tuple[str, str]] = []
            for agent in project.agents:
                if not agent.enabled:
                    continue
                try:
                    cli = engine_class(agent.engine).cli
                except Exception:
                    continue
                if cli:
                    clis.append((agent.engine, cli))
            return clis, registry_auth(self.box, project)

    def _record(self, project_id: str, result: ValidationResult) -> bool:
        with self.db.session() as session:
            return record_result(session, project_id, result)

    def _current(self, project_id: str) -> str | None:
        with self.db.session() as session:
            return current_reference(session, project_id)
