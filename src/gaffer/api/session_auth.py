"""``POST /api/v1/auth/login`` and ``/auth/logout``: browser sessions (for the dashboard).

Login sets the ``gaffer_session`` cookie (``Secure``, ``HttpOnly``, ``SameSite=Strict``, path
``/``, :data:`gaffer.accounts.sessions.SESSION_TTL`). Failed logins are limited per account
and per client address (:mod:`gaffer.accounts.ratelimit`): 429 with ``Retry-After``; with Redis
down, logins are refused (503), never let through unlimited.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import APIKeyCookie
from pydantic import BaseModel, Field

from gaffer.accounts import audit
from gaffer.accounts.errors import InvalidCredentialsError
from gaffer.accounts.sessions import COOKIE_NAME, SESSION_TTL, end_session, open_session
from gaffer.accounts.users import authenticate_password, principal_for, user_view
from gaffer.api.deps import ServicesDep, request_id
from gaffer.api.services import ApiServices
from gaffer.api.users import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])
_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False)


class LoginIn(BaseModel):
    """An email and password."""

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login(svc: ApiServices, body: LoginIn, address: str, rid: str) -> tuple[str, dict[str, Any]]:
    with svc.db.session() as session:
        user = authenticate_password(session, body.email, body.password)
        cookie = open_session(session, user, address)
        audit.record(
            session,
            principal_for(user, "api"),
            "session.login",
            target_type="user",
            target_id=user.id,
            organization_id=None,
            change={"client_address": address},
            request_id=rid,
        )
        return cookie, user_view(user)


@router.post("/login", response_model=UserOut, responses={429: {"description": "Too many"}})
async def login(
    body: LoginIn, request: Request, response: Response, svc: ServicesDep
) -> dict[str, Any]:
    """Sign in; the answer sets the session cookie."""
    address = _address(request)
    await svc.limiter.check(body.email, address)
    try:
        cookie, view = await asyncio.to_thread(_login, svc, body, address, request_id(request))
    except InvalidCredentialsError:
        await svc.limiter.failed(body.email, address)
        raise
    await svc.limiter.succeeded(body.email, address)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(SESSION_TTL.total_seconds()),
        secure=True,
        httponly=True,
        samesite="strict",
        path="/",
    )
    return view


@router.post("/logout", status_code=204)
def logout(
    svc: ServicesDep, cookie: Annotated[str | None, Depends(_cookie)], response: Response
) -> Response:
    """End the session of the cookie sent (if any) and clear the cookie."""
    if cookie:
        with svc.db.session() as session:
            end_session(session, cookie)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, secure=True, httponly=True, samesite="strict", path="/")
    return response
