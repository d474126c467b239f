"""API tokens: made (shown once), listed, revoked, and checked on every API request.

A token's role is at most its owner's: when made, at most the owner's role in its
organization (or their highest role, unscoped) and at most the caller's own; when used, capped
again by the owner's role at that moment (:meth:`Principal.role_in`). A revoked or expired
token, or one whose owner is disabled, does not authenticate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gaffer.accounts import audit
from gaffer.accounts.bearer import SHOWN_PREFIX_LENGTH, digest, new_token, same_digest
from gaffer.accounts.errors import InvalidCredentialsError, InvalidInputError, NotFoundError
from gaffer.accounts.models import ApiToken, User
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role, at_least
from gaffer.accounts.users import principal_for
from gaffer.store.models import Organization, utcnow

LAST_USED_RESOLUTION = timedelta(seconds=60)
"""``last_used_at`` is written at most once a minute per token (not on every request)."""


def _owner_role(owner: User, organization_id: str | None) -> Role | None:
    if owner.superadmin:
        return Role.SUPERADMIN
    roles = {m.organization_id: Role(m.role) for m in owner.memberships}
    if organization_id is not None:
        return roles.get(organization_id)
    return max(roles.values(), key=lambda r: r.rank, default=None)


def create_token(
    session: Session,
    principal: Principal,
    owner: User,
    *,
    name: str,
    role: Role,
    organization_id: str | None = None,
    expires_at: datetime | None = None,
    request_id: str | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for ``owner``; returns the row and the token itself (shown once, never
    stored). Callers make their own tokens; a superadmin may make one for anyone.

    Raises :class:`NotFoundError` (someone else's, or an organization the caller cannot
    see) and :class:`InvalidInputError` (a role above the owner's or the caller's, an expiry in
    the past, an empty name).
    """
    if principal.user_id != owner.id:
        principal.require_superadmin("making a token for another user")
    if not name.strip():
        raise InvalidInputError("a token needs a name")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInputError("the expiry must be in the future")
    if organization_id is not None and (
        principal.role_in(organization_id) is None
        or session.get(Organization, organization_id) is None
    ):
        raise NotFoundError(f"no organization {organization_id!r}")
    owner_role = _owner_role(owner, organization_id)
    caller_role = (
        principal.role_in(organization_id)
        if organization_id is not None
        else principal.highest_role()
    )
    for whose, limit in (("the owner's", owner_role), ("your", caller_role)):
        if not at_least(limit, role):
            raise InvalidInputError(
                f"a token's role cannot be above {whose} role ({limit or 'none'}): {role}"
            )
    plain = new_token()
    token = ApiToken(
        user_id=owner.id,
        name=name.strip(),
        token_hash=digest(plain),
        prefix=plain[:SHOWN_PREFIX_LENGTH],
        role=role.value,
        organization_id=organization_id,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        principal,
        "token.create",
        target_type="token",
        target_id=token.id,
        organization_id=organization_id,
        change={
            "owner": owner.email,
            "name": token.name,
            "prefix": token.prefix,
            "role": role.value,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        request_id=request_id,
    )
    return token, plain


def list_tokens(
    session: Session, principal: Principal, *, owner: User | None = None, everyone: bool = False
) -> list[ApiToken]:
    """Tokens of ``owner`` (default: the caller), newest first; ``everyone`` lists every
    user's (superadmin only). Raises :class:`ForbiddenError` for someone else's tokens."""
    query = (
        select(ApiToken).order_by(ApiToken.created_at.desc()).options(selectinload(ApiToken.user))
    )
    if everyone or (owner is not None and owner.id != principal.user_id):
        principal.require_superadmin("listing other users' tokens")
        if owner is not None:
            query = query.where(ApiToken.user_id == owner.id)
    else:
        query = query.where(ApiToken.user_id == (principal.user_id or ""))
    return list(session.scalars(query))


def revoke_token(
    session: Session, principal: Principal, token_id: str, *, request_id: str | None = None
) -> ApiToken:
    """Revoke a token (by id or shown prefix) of the caller's, or anyone's for a superadmin.
    Revoking twice is allowed (and audited) and changes nothing more. Raises
    :class:`NotFoundError`."""
    token = session.scalar(
        select(ApiToken)
        .where((ApiToken.id == token_id) | (ApiToken.prefix == token_id))
        .options(selectinload(ApiToken.user))
    )
    if token is None or (token.user_id != principal.user_id and not principal.is_superadmin):
        raise NotFoundError(f"no token {token_id!r}")
    already = token.revoked_at is not None
    if not already:
        token.revoked_at = utcnow()
        session.flush()
    audit.record(
        session,
        principal,
        "token.revoke",
        target_type="token",
        target_id=token.id,
        organization_id=token.organization_id,
        change={
            "owner": token.user.email,
            "name": token.name,
            "prefix": token.prefix,
            "already_revoked": already,
        },
        request_id=request_id,
    )
    return token


def authenticate_token(session: Session, plain: str) -> Principal:
    """The :class:`Principal` of the API token ``plain`` (its ``last_used_at`` updated).

    Raises :class:`InvalidCredentialsError` for an unknown, revoked or expired token, or a
    disabled owner (one message for all).
    """
    token = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == digest(plain))
        .options(selectinload(ApiToken.user).selectinload(User.memberships))
    )
    now = utcnow()
    if (
        token is None
        or not same_digest(token.token_hash, plain)
        or token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or token.user.disabled
    ):
        raise InvalidCredentialsError("the API token is not valid (unknown, revoked or expired)")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return principal_for(
        token.user,
        "api",
        token_id=token.id,
        token_role=Role(token.role),
        token_organization_id=token.organization_id,
    )


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as JSON-ready data: never the token itself, only its shown prefix."""

    def ts(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "owner": token.user.email,
        "role": token.role,
        "organization_id": token.organization_id,
        "created_at": ts(token.created_at),
        "expires_at": ts(token.expires_at),
        "last_used_at": ts(token.last_used_at),
        "revoked_at": ts(token.revoked_at),
    }
