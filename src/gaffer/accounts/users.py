"""Users and their roles: create, list, show, set a role, disable, change a password.

Every write takes the acting :class:`Principal` (the local CLI is superadmin), checks its role
(:mod:`gaffer.accounts.roles`), and records an audit row in the same session. Rules:

* an organization's admin creates users in it (as member or admin), sets and removes roles in
  it, and disables users who belong to no organization the admin does not manage; only a
  superadmin grants or removes ``superadmin``, or touches a superadmin;
* the last enabled superadmin can be neither demoted nor disabled;
* a user sees themself; admins see the users of their organizations; superadmins everyone.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from gaffer.accounts import audit
from gaffer.accounts.errors import (
    ConflictError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidInputError,
    NotFoundError,
)
from gaffer.accounts.models import LoginSession, Membership, User
from gaffer.accounts.passwords import hash_password, needs_rehash, verify_password
from gaffer.accounts.principal import Principal, Via
from gaffer.accounts.roles import ORGANIZATION_ROLES, Role, at_least
from gaffer.store.models import Organization, utcnow

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def normalize_email(email: str) -> str:
    """``email`` stripped and lower-cased. Raises :class:`InvalidInputError` unless it looks
    like ``local@domain`` (at most 320 characters)."""
    value = email.strip().lower()
    if not _EMAIL.fullmatch(value) or len(value) > 320:
        raise InvalidInputError(f"not an email address: {email!r}")
    return value


def find_user(session: Session, email_or_id: str) -> User | None:
    """The user with this id or email (any case), memberships loaded; None if there is none."""
    key = email_or_id.strip()
    return session.scalar(
        select(User)
        .where((User.id == key) | (User.email == key.lower()))
        .options(selectinload(User.memberships))
    )


def organization_of(session: Session, name_or_id: str) -> Organization:
    """The organization with this name or id. Raises :class:`NotFoundError`."""
    org = session.scalar(
        select(Organization).where(
            (Organization.name == name_or_id) | (Organization.id == name_or_id)
        )
    )
    if org is None:
        raise NotFoundError(f"no organization {name_or_id!r}")
    return org


def principal_for(
    user: User,
    via: Via,
    *,
    token_id: str | None = None,
    token_role: Role | None = None,
    token_organization_id: str | None = None,
    session_id: str | None = None,
) -> Principal:
    """The :class:`Principal` of ``user`` (memberships loaded), signed in as given."""
    return Principal(
        actor_type="token" if token_id else "user",
        label=user.email,
        via=via,
        user_id=user.id,
        superadmin=user.superadmin,
        memberships={m.organization_id: Role(m.role) for m in user.memberships},
        token_id=token_id,
        token_role=token_role,
        token_organization_id=token_organization_id,
        session_id=session_id,
    )


def user_view(user: User, organizations: frozenset[str] | None = None) -> dict[str, Any]:
    """A user as JSON-ready data, without the password hash; memberships limited to
    ``organizations`` (None: all)."""
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "superadmin": user.superadmin,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
        "memberships": [
            {"organization_id": m.organization_id, "role": m.role}
            for m in user.memberships
            if organizations is None or m.organization_id in organizations
        ],
    }


def _managed_organizations(principal: Principal) -> frozenset[str] | None:
    """Organization ids where ``principal`` is admin (None: all, a superadmin)."""
    if principal.is_superadmin:
        return None
    visible = principal.visible_organizations() or frozenset()
    return frozenset(o for o in visible if at_least(principal.role_in(o), Role.ADMIN))


def count_superadmins(session: Session) -> int:
    """How many enabled users hold the superadmin role."""
    return int(
        session.scalar(
            select(func.count()).select_from(User).where(User.superadmin, ~User.disabled)
        )
        or 0
    )


def create_user(
    session: Session,
    principal: Principal,
    *,
    email: str,
    password: str,
    display_name: str = "",
    organization_id: str | None = None,
    role: Role | None = None,
    superadmin: bool = False,
    request_id: str | None = None,
) -> User:
    """Create a user, optionally with ``role`` in ``organization_id`` and/or as superadmin.

    Raises :class:`InvalidInputError` (email, password policy, a role without an
    organization), :class:`ConflictError` (email taken), :class:`NotFoundError` and
    :class:`ForbiddenError` (the actor may not).
    """
    email = normalize_email(email)
    if superadmin or organization_id is None:
        principal.require_superadmin("creating a superadmin or a user outside any organization")
    if organization_id is not None:
        principal.require(organization_id, Role.ADMIN, f"organization {organization_id!r}")
        if role not in ORGANIZATION_ROLES:
            raise InvalidInputError("a user's role in an organization is member or admin")
    elif role is not None:
        raise InvalidInputError(f"the {role} role needs an organization")
    password_hash = hash_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ConflictError(f"a user with email {email!r} already exists")
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=password_hash,
        superadmin=superadmin,
    )
    if organization_id is not None and role is not None:
        user.memberships.append(Membership(organization_id=organization_id, role=role.value))
    session.add(user)
    session.flush()
    audit.record(
        session,
        principal,
        "user.create",
        target_type="user",
        target_id=user.id,
        organization_id=organization_id,
        change={
            "email": email,
            "display_name": user.display_name,
            "role": role.value if role else None,
            "superadmin": superadmin,
        },
        request_id=request_id,
    )
    return user


def visible_user(session: Session, principal: Principal, email_or_id: str) -> User:
    """The user if ``principal`` may see them (module docstring). Raises
    :class:`NotFoundError` otherwise, and for an unknown user."""
    user = find_user(session, email_or_id)
    if user is None:
        raise NotFoundError(f"no user {email_or_id!r}")
    if principal.user_id == user.id:
        return user
    managed = _managed_organizations(principal)
    if managed is None or any(m.organization_id in managed for m in user.memberships):
        return user
    raise NotFoundError(f"no user {email_or_id!r}")


def list_users(session: Session, principal: Principal) -> list[tuple[User, frozenset[str] | None]]:
    """Users ``principal`` may see, by email, each with the organizations whose memberships
    it may see (None: all). Raises :class:`ForbiddenError` for a caller who is admin nowhere."""
    managed = _managed_organizations(principal)
    query = select(User).order_by(User.email).options(selectinload(User.memberships))
    if managed is None:
        return [(u, None) for u in session.scalars(query)]
    if not managed:
        raise ForbiddenError("listing users needs the admin role in an organization")
    query = query.where(
        User.id.in_(select(Membership.user_id).where(Membership.organization_id.in_(managed)))
    )
    return [(u, managed) for u in session.scalars(query)]


def set_role(
    session: Session,
    principal: Principal,
    user: User,
    role: Role | None,
    *,
    organization_id: str | None = None,
    request_id: str | None = None,
) -> User:
    """Give ``user`` ``role``: with ``organization_id``, their membership there (``role``
    None removes it); without, ``superadmin`` grants and None removes the superadmin role.

    Raises :class:`InvalidInputError`, :class:`NotFoundError`, :class:`ForbiddenError`, and
    :class:`ConflictError` when the last enabled superadmin would lose the role.
    """
    before: dict[str, Any]
    if organization_id is None:
        if role not in (Role.SUPERADMIN, None):
            raise InvalidInputError(f"the {role} role needs an organization")
        principal.require_superadmin("granting or removing the superadmin role")
        if (
            role is None
            and user.superadmin
            and not user.disabled
            and count_superadmins(session) <= 1
        ):
            raise ConflictError("the last superadmin cannot lose the role")
        before = {"superadmin": user.superadmin}
        user.superadmin = role is Role.SUPERADMIN
        after: dict[str, Any] = {"superadmin": user.superadmin}
    else:
        if role is Role.SUPERADMIN:
            raise InvalidInputError("superadmin is installation-wide: give no organization")
        principal.require(organization_id, Role.ADMIN, f"organization {organization_id!r}")
        if user.superadmin:
            principal.require_superadmin("changing a superadmin's roles")
        membership = next(
            (m for m in user.memberships if m.organization_id == organization_id), None
        )
        before = {"role": membership.role if membership else None}
        if role is None:
            if membership is not None:
                user.memberships.remove(membership)
        elif membership is None:
            user.memberships.append(Membership(organization_id=organization_id, role=role.value))
        else:
            membership.role = role.value
        after = {"role": role.value if role else None}
    session.flush()
    audit.record(
        session,
        principal,
        "user.set_role",
        target_type="user",
        target_id=user.id,
        organization_id=organization_id,
        change={"email": user.email, "before": before, "after": after},
        request_id=request_id,
    )
    return user


def set_disabled(
    session: Session,
    principal: Principal,
    user: User,
    disabled: bool,
    *,
    request_id: str | None = None,
) -> User:
    """Disable (or enable again) ``user``; disabling ends their sessions, and their tokens stop
    working. Raises :class:`ForbiddenError` and :class:`ConflictError` (module docstring)."""
    managed = _managed_organizations(principal)
    if managed is not None:
        if user.superadmin:
            principal.require_superadmin("disabling a superadmin")
        theirs = {m.organization_id for m in user.memberships}
        if not theirs or not theirs <= managed:
            raise ForbiddenError(
                "disabling a user needs the admin role in every organization they belong to"
            )
    if disabled and user.superadmin and not user.disabled and count_superadmins(session) <= 1:
        raise ConflictError("the last superadmin cannot be disabled")
    before = user.disabled
    user.disabled = disabled
    if disabled:
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    session.flush()
    audit.record(
        session,
        principal,
        "user.disable" if disabled else "user.enable",
        target_type="user",
        target_id=user.id,
        organization_id=None,
        change={
            "email": user.email,
            "before": {"disabled": before},
            "after": {"disabled": disabled},
        },
        request_id=request_id,
    )
    return user


def authenticate_password(session: Session, email: str, password: str) -> User:
    """The enabled user with this email and password (a stale hash is replaced).

    Takes as long for an unknown email as for a wrong password. Raises
    :class:`InvalidCredentialsError`, saying nothing of which part was wrong.
    """
    try:
        user = find_user(session, normalize_email(email))
    except InvalidInputError:
        user = None
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        raise InvalidCredentialsError("wrong email or password")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def change_password(
    session: Session,
    principal: Principal,
    user: User,
    new_password: str,
    *,
    current_password: str | None = None,
    request_id: str | None = None,
) -> int:
    """Set ``user``'s password and end every session of theirs but the caller's own.

    ``current_password`` is required when users change their own password (a stolen session
    alone cannot); a superadmin setting another user's needs none. Returns how many sessions
    were ended. Raises :class:`InvalidCredentialsError`, :class:`InvalidInputError`,
    :class:`ForbiddenError`.
    """
    if principal.user_id == user.id:
        if current_password is None or not verify_password(user.password_hash, current_password):
            raise InvalidCredentialsError("the current password is wrong")
    else:
        principal.require_superadmin("setting another user's password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    ended = session.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user.id,
            LoginSession.id != (principal.session_id or ""),
        )
    )
    session.flush()
    audit.record(
        session,
        principal,
        "user.password_change",
        target_type="user",
        target_id=user.id,
        organization_id=None,
        change={"email": user.email},
        request_id=request_id,
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]
