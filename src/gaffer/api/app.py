"""``/api``: a minimal JSON API over runs, mounted on the ingest app when
``GAFFER_API_TOKEN`` is set (otherwise it does not exist: 404).

Every request needs ``Authorization: Bearer <GAFFER_API_TOKEN>`` (401 otherwise; compared in
constant time). Endpoints (answers are the views of :mod:`gaffer.buffer.access`):

==========================================  ==============================================
``GET /api/runs/{id}``                      the run (a row, or ``BUFFERED`` from the buffer);
                                            404 unknown
``POST /api/runs/{id}/cancel``              ``{"id", "status", "message"}``; 503 when the run
                                            is being created from the buffer right now
``POST /api/runs/{id}/tags``                body ``{"tags": [...]}``: append, buffered runs
                                            only; 409 afterwards or over the cap
``PUT /api/runs/{id}/metadata``             body ``{"metadata": {...}, "version": n}``:
                                            replace if ``buffer.metadata_version`` is ``n``;
                                            409 otherwise
==========================================  ==============================================

Database or Redis unavailable: 503.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gaffer.buffer.access import BufferedRunBusyError, RunAccess, RunNotEditableError
from gaffer.store.runs import AmbiguousRunIdError, RunNotFoundError


class TagsBody(BaseModel):
    """Tags to append to a buffered run."""

    tags: list[str] = Field(min_length=1, max_length=100)


class MetadataBody(BaseModel):
    """Metadata to set on a buffered run, with the version it replaces."""

    metadata: dict[str, Any]
    version: int = Field(ge=0)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def mount_api(app: FastAPI, access: RunAccess, token: str, tag_cap: int) -> None:
    """Add the ``/api`` routes to ``app``, guarded by ``token``; ``tag_cap`` is the most tags
    a run may carry."""

    def authorized(request: Request) -> None:
        """Raise 401 unless the request carries ``Authorization: Bearer <token>``."""
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise HTTPException(
                401, "a valid API bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(prefix="/api", dependencies=[Depends(authorized)])

    @router.get("/runs/{run_id}")
    async def show_run(run_id: str) -> dict[str, Any]:
        """One run: its row, or its buffer entry (status BUFFERED)."""
        return await access.show(run_id)

    @router.post("/runs/{run_id}/cancel")
    async def cancel_run(run_id: str) -> dict[str, Any]:
        """Cancel a run, buffered or not."""
        result = await access.cancel(run_id)
        return {"id": result.run_id, "status": str(result.status), "message": result.message}

    @router.post("/runs/{run_id}/tags")
    async def tag_run(run_id: str, body: TagsBody) -> dict[str, Any]:
        """Append tags to a run that still waits in the buffer."""
        return await access.add_tags(run_id, body.tags, tag_cap)

    @router.put("/runs/{run_id}/metadata")
    async def set_run_metadata(run_id: str, body: MetadataBody) -> dict[str, Any]:
        """Replace the metadata of a run that still waits in the buffer (version check)."""
        return await access.set_metadata(run_id, body.metadata, body.version)

    app.include_router(router)

    @app.exception_handler(RunNotFoundError)
    async def not_found(_: Request, exc: RunNotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(AmbiguousRunIdError)
    async def ambiguous(_: Request, exc: AmbiguousRunIdError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(BufferedRunBusyError)
    async def busy(_: Request, exc: BufferedRunBusyError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(RunNotEditableError)
    async def not_editable(_: Request, exc: RunNotEditableError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def database_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        return _error(503, f"database unavailable: {exc.__class__.__name__}")

    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        return _error(503, f"redis unavailable: {exc.__class__.__name__}")
