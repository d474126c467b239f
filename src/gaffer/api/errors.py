"""How ``/api/v1`` answers errors: ``{"error": "<message>"}`` with one status per error type.

=======================================  ======
unauthenticated (:mod:`gaffer.api.deps`)  401
:class:`ForbiddenError`                   403
not found, or another organization's      404
:class:`ConflictError`, not editable      409
bad input, a value the database refuses   400 (422 for a body the schema refuses, without
                                          the refused input: it may be a secret)
:class:`RateLimitedError`                 429, ``Retry-After``
database or Redis unavailable, busy       503
=======================================  ======
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException

from gaffer.accounts.errors import (
    ConflictError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from gaffer.accounts.roles import UnknownRoleError
from gaffer.agents.definition import DefinitionError
from gaffer.agents.effective import InvalidOverrideError
from gaffer.buffer.access import BufferedRunBusyError, RunNotEditableError
from gaffer.store.credentials import CredentialError
from gaffer.store.projects import ProjectExistsError, ProjectNotFoundError
from gaffer.store.runs import AmbiguousRunIdError, RunNotFoundError


class ErrorOut(BaseModel):
    """An error answer."""

    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (400, "Bad input"),
        (401, "Not authenticated (no, unknown, revoked or expired token or session)"),
        (403, "The caller's role does not allow this"),
        (404, "Not found (or another organization's)"),
        (409, "Conflicts with the current state"),
        (503, "Database or Redis unavailable, or busy: retry"),
    )
}
"""Documented on every route (OpenAPI), so clients and schemathesis know them."""

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidCredentialsError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ProjectNotFoundError, 404),
    (RunNotFoundError, 404),
    (ConflictError, 409),
    (ProjectExistsError, 409),
    (RunNotEditableError, 409),
    (InvalidInputError, 400),
    (UnknownRoleError, 400),
    (AmbiguousRunIdError, 400),
    (DefinitionError, 400),
    (InvalidOverrideError, 400),
    (CredentialError, 400),
]


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers of the table above on ``app``."""

    async def mapped(_: Request, exc: Exception) -> JSONResponse:
        for kind, status in _STATUS:
            if isinstance(exc, kind):
                return error(status, str(exc))
        raise exc

    for kind, _status in _STATUS:
        app.add_exception_handler(kind, mapped)

    @app.exception_handler(RequestValidationError)
    async def refused_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, without each error's "input": a refused body may hold a
        # secret (a credential's value, a password), which must never be echoed.
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RateLimitedError)
    async def limited(_: Request, exc: RateLimitedError) -> JSONResponse:
        return error(429, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(BufferedRunBusyError)
    async def busy(_: Request, exc: BufferedRunBusyError) -> JSONResponse:
        return error(503, str(exc), {"Retry-After": "2"})

    @app.exception_handler(DataError)
    async def refused_value(_: Request, exc: DataError) -> JSONResponse:
        # The database refused a value it was given (a NUL character for PostgreSQL, say).
        return error(400, f"a value was refused by the database: {exc.__class__.__name__}")

    @app.exception_handler(SQLAlchemyError)
    async def database_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        return error(503, f"database unavailable: {exc.__class__.__name__}")

    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        return error(503, f"redis unavailable: {exc.__class__.__name__}")
