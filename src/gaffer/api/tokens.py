"""``/api/v1/tokens``: the caller's API tokens (every user's for a superadmin with
``all=true``). The token itself is in the create answer only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gaffer.accounts.errors import NotFoundError
from gaffer.accounts.roles import Role
from gaffer.accounts.tokens import create_token, list_tokens, revoke_token, token_view
from gaffer.accounts.users import find_user
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.store.models import utcnow

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenOut(BaseModel):
    """A token, named by its shown ``prefix`` (``gfr_`` + 8 characters)."""

    id: str
    name: str
    prefix: str
    owner: str
    role: str
    organization_id: str | None
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class TokenCreated(TokenOut):
    """A new token: ``token`` is shown here once and never again."""

    token: str


class TokenCreate(BaseModel):
    """A new token for the caller: its role (at most the caller's), an optional organization
    (name or id) it is limited to, and its lifetime in days (None: no expiry)."""

    name: str = Field(min_length=1, max_length=200)
    role: Literal["member", "admin", "superadmin"] = "member"
    organization_id: str | None = Field(default=None, max_length=32)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


@router.get("", response_model=list[TokenOut])
def list_all(
    caller: CallerDep,
    svc: ServicesDep,
    all: bool = Query(False, description="Every user's tokens (superadmin)."),
) -> list[dict[str, Any]]:
    """The caller's tokens (revoked ones included), newest first."""
    with svc.db.session() as session:
        return [token_view(t) for t in list_tokens(session, caller.principal, everyone=all)]


@router.post("", response_model=TokenCreated, status_code=201)
def create(body: TokenCreate, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Make a token for the caller."""
    principal = caller.principal
    with svc.db.session() as session:
        owner = find_user(session, principal.user_id or "")
        if owner is None:
            raise NotFoundError("no user")
        expires_at = (
            utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
        )
        token, plain = create_token(
            session,
            principal,
            owner,
            name=body.name,
            role=Role(body.role),
            organization_id=body.organization_id,
            expires_at=expires_at,
            request_id=caller.request_id,
        )
        return token_view(token) | {"token": plain}


@router.delete("/{token_id}", response_model=TokenOut)
def revoke(token_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Revoke a token (by id or prefix): the caller's own, or anyone's for a superadmin."""
    with svc.db.session() as session:
        return token_view(
            revoke_token(session, caller.principal, token_id, request_id=caller.request_id)
        )
