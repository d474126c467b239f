"""Dependencies shared by every ``/api/v1`` route: the services, and the authenticated caller.

A caller authenticates with ``Authorization: Bearer gfr_...`` (an API token) or the
``gaffer_session`` cookie of ``POST /api/v1/auth/login``. Anything else is 401 with
``WWW-Authenticate: Bearer``. ``X-Request-ID`` (given, or made here) names the request in its
audit rows and is echoed in the answer.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from gaffer.accounts.errors import InvalidCredentialsError
from gaffer.accounts.principal import Principal
from gaffer.accounts.sessions import COOKIE_NAME, authenticate_session
from gaffer.accounts.tokens import authenticate_token
from gaffer.api.services import ApiServices

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_bearer = HTTPBearer(auto_error=False, description="An API token, `gfr_...`.")
_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False, description="A browser session.")


def services(request: Request) -> ApiServices:
    """The :class:`ApiServices` of the app serving ``request``."""
    found: ApiServices = request.app.state.services
    return found


def request_id(request: Request) -> str:
    """The request's ``X-Request-ID`` if it is well-formed (1-64 of ``[A-Za-z0-9._:-]``),
    else a fresh one; kept on ``request.state`` for the answer's header."""
    existing = getattr(request.state, "request_id", None)
    if existing:
        return str(existing)
    given = request.headers.get("x-request-id", "")
    rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request.state.request_id = rid
    return rid


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request, with its request id."""

    principal: Principal
    request_id: str


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, {"WWW-Authenticate": "Bearer"})


def caller(
    request: Request,
    svc: Annotated[ApiServices, Depends(services)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    """Authenticate the request (module docstring). Raises HTTP 401."""
    rid = request_id(request)
    try:
        with svc.db.session() as session:
            if bearer is not None:
                principal = authenticate_token(session, bearer.credentials.strip())
            elif cookie:
                principal = authenticate_session(session, cookie)
            else:
                raise _unauthorized("authentication required: an API token or a session")
    except InvalidCredentialsError as exc:
        raise _unauthorized(str(exc)) from None
    return Caller(principal, rid)


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[ApiServices, Depends(services)]
