"""Accounts on SQLite and PostgreSQL: hashing, tokens, roles, sessions, audit, rate limiting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from gaffer.accounts.audit import AuditFilter, list_events
from gaffer.accounts.bootstrap import ensure_first_superadmin
from gaffer.accounts.errors import (
    ConflictError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from gaffer.accounts.models import ApiToken, AuditEvent, LoginSession
from gaffer.accounts.principal import Principal
from gaffer.accounts.ratelimit import LoginLimiter
from gaffer.accounts.roles import Role
from gaffer.accounts.sessions import authenticate_session, open_session
from gaffer.accounts.tokens import authenticate_token, create_token, revoke_token
from gaffer.accounts.users import (
    authenticate_password,
    change_password,
    create_user,
    find_user,
    list_users,
    principal_for,
    set_disabled,
    set_role,
)
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import utcnow
from gaffer.store.projects import get_or_create_organization

LOCAL = Principal.local()
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Database:
    database = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(database)
    return database


def org_id(db: Database, name: str) -> str:
    with db.session() as session:
        return get_or_create_organization(session, name).id


def add_user(db: Database, email: str, org: str | None, role: Role | None, **kw: bool) -> str:
    with db.session() as session:
        return create_user(
            session, LOCAL, email=email, password=PASSWORD, organization_id=org, role=role, **kw
        ).id


def principal(db: Database, email: str) -> Principal:
    with db.session() as session:
        user = find_user(session, email)
        assert user is not None
        return principal_for(user, "api")


def test_passwords_are_argon2id_hashes_and_verify(db: Database) -> None:
    acme = org_id(db, "acme")
    add_user(db, "Ann@Example.com", acme, Role.MEMBER)
    with db.session() as session:
        user = find_user(session, "ann@example.com")
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert authenticate_password(session, "ANN@example.com", PASSWORD).id == user.id
        with pytest.raises(InvalidCredentialsError, match="wrong email or password"):
            authenticate_password(session, "ann@example.com", PASSWORD + "x")
        with pytest.raises(InvalidCredentialsError, match="wrong email or password"):
            authenticate_password(session, "nobody@example.com", PASSWORD)
    with db.session() as session, pytest.raises(InvalidInputError, match="at least 12"):
        create_user(session, LOCAL, email="b@example.com", password="short", superadmin=True)


def test_tokens_are_stored_hashed_and_stop_when_revoked_expired_or_owner_disabled(
    db: Database,
) -> None:
    acme, other = org_id(db, "acme"), org_id(db, "other")
    add_user(db, "ann@example.com", acme, Role.ADMIN)
    ann = principal(db, "ann@example.com")
    with db.session() as session:
        owner = find_user(session, "ann@example.com")
        assert owner is not None
        token, plain = create_token(session, ann, owner, name="ci", role=Role.MEMBER)
        _, expiring = create_token(
            session, ann, owner, name="soon", role=Role.ADMIN,
            expires_at=utcnow() + timedelta(seconds=1),
        )  # fmt: skip
    assert plain.startswith("gfr_") and len(plain) == 47
    with db.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert plain not in stored and all(len(h) == 64 for h in stored)
        got = authenticate_token(session, plain)
        # The token is capped at member although its owner is admin.
        assert got.token_id == token.id and got.role_in(acme) is Role.MEMBER
        assert got.role_in(other) is None
    with db.session() as session:
        assert session.get(ApiToken, token.id).last_used_at is not None  # type: ignore[union-attr]
        session.execute(
            ApiToken.__table__.update()
            .where(ApiToken.name == "soon")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with db.session() as session, pytest.raises(InvalidCredentialsError):
        authenticate_token(session, expiring)
    with db.session() as session:
        revoke_token(session, ann, token.prefix)
    with db.session() as session, pytest.raises(InvalidCredentialsError):
        authenticate_token(session, plain)
    with db.session() as session, pytest.raises(InvalidCredentialsError):
        authenticate_token(session, plain[:-1] + ("A" if plain[-1] != "A" else "B"))
    with db.session() as session:
        owner = find_user(session, "ann@example.com")
        assert owner is not None
        _, third = create_token(session, ann, owner, name="third", role=Role.ADMIN)
        set_disabled(session, LOCAL, owner, True)
    with db.session() as session, pytest.raises(InvalidCredentialsError):
        authenticate_token(session, third)


def test_a_token_role_is_never_above_the_owner_or_the_caller(db: Database) -> None:
    acme, other = org_id(db, "acme"), org_id(db, "other")
    add_user(db, "m@example.com", acme, Role.MEMBER)
    add_user(db, "n@example.com", acme, Role.MEMBER)
    member = principal(db, "m@example.com")
    with db.session() as session:
        owner = find_user(session, "m@example.com")
        assert owner is not None
        with pytest.raises(InvalidInputError, match="above the owner's role"):
            create_token(session, member, owner, name="x", role=Role.ADMIN)
        with pytest.raises(NotFoundError):
            create_token(session, member, owner, name="x", role=Role.MEMBER, organization_id=other)
        someone = find_user(session, "n@example.com")
        assert someone is not None
        with pytest.raises(ForbiddenError):
            create_token(session, member, someone, name="x", role=Role.MEMBER)
        scoped, _ = create_token(
            session, member, owner, name="scoped", role=Role.MEMBER, organization_id=acme
        )
        assert scoped.organization_id == acme


def test_an_audit_row_commits_with_its_write_and_never_without(db: Database) -> None:
    acme = org_id(db, "acme")
    add_user(db, "ann@example.com", acme, Role.MEMBER)
    with db.session() as session, pytest.raises(ConflictError):
        create_user(session, LOCAL, email="ANN@example.com", password=PASSWORD, superadmin=True)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.session() as session:
        create_user(session, LOCAL, email="bob@example.com", password=PASSWORD, superadmin=True)
        raise Boom  # the transaction rolls back: user and audit row both
    with db.session() as session:
        events = list_events(session, AuditFilter())
        assert [(e.action, e.change["email"]) for e in events] == [
            ("user.create", "ann@example.com")
        ]
        assert events[0].actor_type == "local" and events[0].via == "cli"
        assert events[0].organization_id == acme
        assert find_user(session, "bob@example.com") is None


def test_roles_decide_who_manages_whom(db: Database) -> None:
    acme, other = org_id(db, "acme"), org_id(db, "other")
    add_user(db, "root@example.com", None, None, superadmin=True)
    add_user(db, "admin@example.com", acme, Role.ADMIN)
    add_user(db, "member@example.com", acme, Role.MEMBER)
    add_user(db, "stranger@example.com", other, Role.ADMIN)
    admin, member = principal(db, "admin@example.com"), principal(db, "member@example.com")
    stranger = principal(db, "stranger@example.com")
    with db.session() as session:
        assert [u.email for u, _ in list_users(session, admin)] == [
            "admin@example.com",
            "member@example.com",
        ]
        with pytest.raises(ForbiddenError):
            list_users(session, member)
        with pytest.raises(NotFoundError):
            create_user(
                session, stranger, email="x@example.com", password=PASSWORD,
                organization_id=acme, role=Role.MEMBER,
            )  # fmt: skip
        with pytest.raises(ForbiddenError):
            create_user(
                session, member, email="x@example.com", password=PASSWORD,
                organization_id=acme, role=Role.MEMBER,
            )  # fmt: skip
        target = find_user(session, "member@example.com")
        assert target is not None
        set_role(session, admin, target, Role.ADMIN, organization_id=acme)
        with pytest.raises(ForbiddenError, match="superadmin"):
            set_role(session, admin, target, Role.SUPERADMIN)
        root = find_user(session, "root@example.com")
        assert root is not None
        with pytest.raises(ConflictError, match="last superadmin"):
            set_role(session, LOCAL, root, None)
        with pytest.raises(ConflictError, match="last superadmin"):
            set_disabled(session, LOCAL, root, True)
        with pytest.raises(ForbiddenError):
            set_disabled(session, stranger, target, True)
        set_disabled(session, admin, target, True)
    with db.session() as session:
        actions = [e.action for e in list_events(session, AuditFilter(organizations=[acme]))]
        assert actions == ["user.set_role", "user.create", "user.create"]


def test_a_password_change_ends_the_other_sessions(db: Database) -> None:
    add_user(db, "ann@example.com", org_id(db, "acme"), Role.MEMBER)
    with db.session() as session:
        user = find_user(session, "ann@example.com")
        assert user is not None
        mine, other = open_session(session, user, "1.2.3.4"), open_session(session, user, None)
    with db.session() as session:
        me = authenticate_session(session, mine)
        user = find_user(session, "ann@example.com")
        assert user is not None
        with pytest.raises(InvalidCredentialsError):
            change_password(session, me, user, "a new long password", current_password="nope")
    with db.session() as session:
        user = find_user(session, "ann@example.com")
        assert user is not None
        ended = change_password(session, me, user, "a new long password", current_password=PASSWORD)
        assert ended == 1
    with db.session() as session:
        assert authenticate_session(session, mine).user_id == me.user_id
        with pytest.raises(InvalidCredentialsError):
            authenticate_session(session, other)
        assert session.query(LoginSession).count() == 1
        assert authenticate_password(session, "ann@example.com", "a new long password")
        assert session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == (
            "user.password_change"
        )
        assert PASSWORD not in str(session.scalars(select(AuditEvent.change)).all())


@pytest.mark.anyio
async def test_failed_logins_are_limited_per_account_and_per_address(redis_url: str) -> None:
    redis = aioredis.from_url(redis_url)
    limiter = LoginLimiter(redis, account_limit=3, address_limit=5, window_s=60)
    try:
        for _ in range(3):
            await limiter.check("ann@example.com", "10.0.0.1")
            await limiter.failed("ann@example.com", "10.0.0.1")
        with pytest.raises(RateLimitedError, match="this account") as caught:
            await limiter.check("ANN@example.com", "10.0.0.2")
        assert 1 <= caught.value.retry_after_s <= 60
        # Another account from the same address still may, until the address's limit.
        await limiter.check("bob@example.com", "10.0.0.1")
        for _ in range(2):
            await limiter.failed("bob@example.com", "10.0.0.1")
        with pytest.raises(RateLimitedError, match="this address"):
            await limiter.check("carol@example.com", "10.0.0.1")
        await limiter.check("carol@example.com", "10.0.0.3")
        await limiter.succeeded("bob@example.com", "10.0.0.1")
        await limiter.check("bob@example.com", "10.0.0.9")
        assert all(k.startswith(b"gaffer:login:") for k in await redis.keys("*"))
    finally:
        await redis.aclose()


def test_the_embedded_default_makes_a_first_superadmin_once(db: Database) -> None:
    made = ensure_first_superadmin(db)
    if not db.settings.uses_sqlite:
        assert made is None  # a shared database: the operator runs users create --superadmin
        return
    assert made is not None
    email, password = made
    with db.session() as session:
        user = authenticate_password(session, email, password)
        assert user.superadmin
    assert ensure_first_superadmin(db) is None


def test_a_token_follows_its_owner_down_but_never_up(db: Database) -> None:
    acme = org_id(db, "acme")
    add_user(db, "ann@example.com", acme, Role.ADMIN)
    ann = principal(db, "ann@example.com")
    with db.session() as session:
        owner = find_user(session, "ann@example.com")
        assert owner is not None
        _, plain = create_token(session, ann, owner, name="ci", role=Role.ADMIN)
        set_role(session, LOCAL, owner, Role.MEMBER, organization_id=acme)
    with db.session() as session:
        assert authenticate_token(session, plain).role_in(acme) is Role.MEMBER
        owner = find_user(session, "ann@example.com")
        assert owner is not None
        set_role(session, LOCAL, owner, Role.SUPERADMIN)
    with db.session() as session:
        demoted_then_promoted = authenticate_token(session, plain)
        assert demoted_then_promoted.role_in(acme) is Role.ADMIN  # capped by its own role
        assert not demoted_then_promoted.is_superadmin
