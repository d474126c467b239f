"""``/api/v1/users`` and ``/api/v1/me``: users and their roles (rules in
:mod:`gaffer.accounts.users`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gaffer.accounts.errors import NotFoundError
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.accounts.users import (
    change_password,
    create_user,
    find_user,
    list_users,
    organization_of,
    set_disabled,
    set_role,
    user_view,
    visible_user,
)
from gaffer.api.deps import CallerDep, ServicesDep

router = APIRouter(tags=["users"])


def _organization_id(session: Session, principal: Principal, name_or_id: str) -> str:
    """The id of an organization the caller has a role in; another organization's answers
    as an unknown one (:class:`NotFoundError`)."""
    try:
        organization_id = organization_of(session, name_or_id).id
    except NotFoundError:
        organization_id = None
    if organization_id is None or principal.role_in(organization_id) is None:
        raise NotFoundError(f"no organization {name_or_id!r}")
    return organization_id


class MembershipOut(BaseModel):
    """A user's role in one organization."""

    organization_id: str
    role: str


class UserOut(BaseModel):
    """A user, without any secret."""

    id: str
    email: str
    display_name: str
    superadmin: bool
    disabled: bool
    created_at: str
    memberships: list[MembershipOut]


class UserCreate(BaseModel):
    """A new user, with a role in ``organization`` (name or id) and/or as superadmin."""

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=12, max_length=1024)
    display_name: str = Field(default="", max_length=200)
    organization: str | None = Field(default=None, max_length=200)
    role: Literal["member", "admin"] | None = None
    superadmin: bool = False


class RoleIn(BaseModel):
    """A role to give: with ``organization``, ``member``/``admin`` (``none`` removes the
    membership); without, ``superadmin`` grants and ``none`` removes that role."""

    role: Literal["member", "admin", "superadmin", "none"]
    organization: str | None = Field(default=None, max_length=200)


class PasswordIn(BaseModel):
    """A password change: the current password and the new one (12+ characters)."""

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=12, max_length=1024)


class PasswordChanged(BaseModel):
    """How many other sessions the change ended."""

    sessions_ended: int


@router.get("/me", response_model=UserOut)
def me(caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """The caller's own user."""
    with svc.db.session() as session:
        return user_view(visible_user(session, caller.principal, caller.principal.user_id or ""))


@router.post("/me/password", response_model=PasswordChanged)
def change_my_password(body: PasswordIn, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Change the caller's password; every other session of theirs ends."""
    with svc.db.session() as session:
        user = visible_user(session, caller.principal, caller.principal.user_id or "")
        ended = change_password(
            session,
            caller.principal,
            user,
            body.new_password,
            current_password=body.current_password,
            request_id=caller.request_id,
        )
    return {"sessions_ended": ended}


@router.get("/users", response_model=list[UserOut])
def list_all(caller: CallerDep, svc: ServicesDep) -> list[dict[str, Any]]:
    """Users of the organizations the caller is admin of (all for a superadmin)."""
    with svc.db.session() as session:
        return [user_view(u, orgs) for u, orgs in list_users(session, caller.principal)]


@router.post("/users", response_model=UserOut, status_code=201)
def create(body: UserCreate, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Create a user (admin of ``organization``; superadmin for a superadmin or a user in no
    organization)."""
    with svc.db.session() as session:
        organization_id = (
            _organization_id(session, caller.principal, body.organization)
            if body.organization
            else None
        )
        user = create_user(
            session,
            caller.principal,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            organization_id=organization_id,
            role=Role(body.role) if body.role else None,
            superadmin=body.superadmin,
            request_id=caller.request_id,
        )
        return user_view(user)


@router.get("/users/{user}", response_model=UserOut)
def show(user: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """One user by id or email: oneself, a user of an organization one is admin of, or any
    for a superadmin."""
    with svc.db.session() as session:
        return user_view(visible_user(session, caller.principal, user))


@router.put("/users/{user}/role", response_model=UserOut)
def put_role(user: str, body: RoleIn, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Set a user's role in an organization, or the superadmin role."""
    with svc.db.session() as session:
        target = visible_user(session, caller.principal, user)
        organization_id = None
        if body.organization:
            organization_id = _organization_id(session, caller.principal, body.organization)
        set_role(
            session,
            caller.principal,
            target,
            None if body.role == "none" else Role(body.role),
            organization_id=organization_id,
            request_id=caller.request_id,
        )
        return user_view(target)


@router.post("/users/{user}/disable", response_model=UserOut)
def disable(user: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Disable a user: they cannot sign in, their sessions end and their tokens stop."""
    with svc.db.session() as session:
        target = visible_user(session, caller.principal, user)
        set_disabled(session, caller.principal, target, True, request_id=caller.request_id)
        return user_view(target)


@router.post("/users/{user}/enable", response_model=UserOut)
def enable(user: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """Enable a disabled user again."""
    with svc.db.session() as session:
        target = visible_user(session, caller.principal, user)
        set_disabled(session, caller.principal, target, False, request_id=caller.request_id)
        found = find_user(session, target.id)
        assert found is not None
        return user_view(found)
