"""The account tables: users, memberships, API tokens, browser sessions and audit events.

They share :class:`gaffer.store.models.Base` (and are imported by it), so the migrations and
``tests/test_store.py`` see one schema; the revision that creates them is ``0005_accounts``.
Secrets are never stored: passwords as Argon2id hashes, tokens and session ids as SHA-256
digests (hex) of their random value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gaffer.store.models import Base, JSONType, UTCDateTime, new_id, utcnow


class User(Base):
    """A person (or a robot account) who signs in with an email and a password.

    ``email`` is stored lower-cased and is unique. ``superadmin`` holds the installation-wide
    role; organization roles are :class:`Membership` rows. A ``disabled`` user can neither sign
    in nor use their tokens. ``password_changed_at`` is when the password was last set (the
    sessions opened before it were ended then).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    superadmin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="Membership.id"
    )


class Membership(Base):
    """A user's role (``member`` or ``admin``) in one organization."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "organization_id"),
        Index("ix_memberships_organization_id", "organization_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")


class ApiToken(Base):
    """An API token: ``gfr_`` + 43 random URL-safe characters, shown once.

    ``token_hash`` is the SHA-256 hex digest of the whole token; ``prefix`` its first 12
    characters, kept so a listing (or a leaked token) can be matched to its row. ``role`` is at
    most the owner's (checked when made, and capped by the owner's current role on every use);
    ``organization_id``, when set, limits the token to that organization. ``expires_at`` None
    means it never expires; ``revoked_at`` set means it no longer works.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship()


class LoginSession(Base):
    """A browser session: the cookie carries a random id, the row its SHA-256 hex digest.

    Ended (deleted) by logout, by a password change (all the user's other sessions), or when
    ``expires_at`` passes.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEvent(Base):
    """One write, recorded in the transaction that made it.

    ``actor_type`` is ``user`` (a password session), ``token`` (an API token, ``actor_token_id``)
    or ``local`` (the CLI on the installation itself, as its superadmin); ``actor_label`` the
    actor's email (or ``local``), kept as it was then. ``via`` is ``api`` or ``cli``. ``action``
    is ``<resource>.<verb>`` (``project.create``, ``run.cancel``, ``token.revoke``...);
    ``target_type``/``target_id`` name what changed and ``organization_id`` whose it is (None
    for installation-wide changes). ``change`` is JSON with secrets masked; ``request_id`` the
    API request's ``X-Request-ID`` (None from the CLI). Rows outlive their actors: no foreign
    keys.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_organization_id", "organization_id", "id"),
        Index("ix_audit_events_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_label: Mapped[str] = mapped_column(String(320))
    via: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    change: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
