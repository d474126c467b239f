"""Browser sessions: the cookie holds a random id, the database its SHA-256 digest.

Sessions last :data:`SESSION_TTL` and end at logout, when the user is disabled, and when the
password changes (:func:`gaffer.accounts.users.change_password` ends all but the caller's).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from gaffer.accounts.bearer import digest, new_session_id, same_digest
from gaffer.accounts.errors import InvalidCredentialsError
from gaffer.accounts.models import LoginSession, User
from gaffer.accounts.principal import Principal
from gaffer.accounts.users import principal_for
from gaffer.store.models import utcnow

SESSION_TTL = timedelta(hours=12)
COOKIE_NAME = "gaffer_session"


def open_session(session: Session, user: User, client_address: str | None) -> str:
    """Start a browser session for ``user``; returns the cookie value (shown once)."""
    plain = new_session_id()
    session.add(
        LoginSession(
            user_id=user.id,
            session_hash=digest(plain),
            expires_at=utcnow() + SESSION_TTL,
            client_address=(client_address or "")[:64] or None,
        )
    )
    session.flush()
    return plain


def authenticate_session(session: Session, plain: str) -> Principal:
    """The :class:`Principal` of the session cookie ``plain``. Raises
    :class:`InvalidCredentialsError` for an unknown, ended or expired session, or a disabled
    user."""
    row = session.scalar(select(LoginSession).where(LoginSession.session_hash == digest(plain)))
    if row is None or not same_digest(row.session_hash, plain) or row.expires_at <= utcnow():
        raise InvalidCredentialsError("the session has ended; sign in again")
    user = session.scalar(
        select(User).where(User.id == row.user_id).options(selectinload(User.memberships))
    )
    if user is None or user.disabled:
        raise InvalidCredentialsError("the session has ended; sign in again")
    return principal_for(user, "api", session_id=row.id)


def end_session(session: Session, plain: str) -> bool:
    """End the session of cookie ``plain``; True when there was one."""
    result = session.execute(delete(LoginSession).where(LoginSession.session_hash == digest(plain)))
    return bool(result.rowcount)  # type: ignore[attr-defined]
