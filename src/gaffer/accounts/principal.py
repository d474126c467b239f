"""Who is calling: a user through a session, a user's API token, or the local CLI.

:class:`Principal` answers "what role does the caller have in organization X" for every
authorization decision (issue 12: "Every request is authorized by the caller's role in the
organization that owns the resource").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gaffer.accounts.errors import ForbiddenError, NotFoundError
from gaffer.accounts.roles import Role, at_least, lowest

ActorType = Literal["user", "token", "local"]
Via = Literal["api", "cli"]


@dataclass(frozen=True)
class Principal:
    """The caller of one request or command.

    ``memberships`` maps organization id to the user's role there; ``superadmin`` is the
    user's installation-wide role. A token caps both with ``token_role`` and, when
    ``token_organization_id`` is set, sees only that organization. ``label`` is the email (or
    ``local``), recorded in audit rows.
    """

    actor_type: ActorType
    label: str
    via: Via
    user_id: str | None = None
    superadmin: bool = False
    memberships: Mapping[str, Role] = field(default_factory=dict)
    token_id: str | None = None
    token_role: Role | None = None
    token_organization_id: str | None = None
    session_id: str | None = None

    @classmethod
    def local(cls) -> Principal:
        """The CLI on the installation itself: superadmin (it could read the database anyway)."""
        return cls(actor_type="local", label="local", via="cli", superadmin=True)

    def role_in(self, organization_id: str | None) -> Role | None:
        """The caller's role in ``organization_id`` (None: none, the organization is not theirs).

        Superadmins are superadmin everywhere; a token's role is the lower of its own and its
        owner's, and a token scoped to an organization has no role elsewhere.
        """
        if organization_id is None:
            return Role.SUPERADMIN if self.is_superadmin else None
        if self.token_organization_id is not None and organization_id != self.token_organization_id:
            return None
        role = Role.SUPERADMIN if self.superadmin else self.memberships.get(organization_id)
        if role is None:
            return None
        return lowest(role, self.token_role) if self.token_role is not None else role

    @property
    def is_superadmin(self) -> bool:
        """True when the caller may do installation-wide things (an unscoped superadmin
        token, or a superadmin's session or the local CLI)."""
        if not self.superadmin or self.token_organization_id is not None:
            return False
        return self.token_role is None or self.token_role is Role.SUPERADMIN

    def visible_organizations(self) -> frozenset[str] | None:
        """The organization ids the caller can read, or None for all of them."""
        if self.is_superadmin:
            return None
        if self.token_organization_id is not None:
            if self.superadmin or self.token_organization_id in self.memberships:
                return frozenset({self.token_organization_id})
            return frozenset()
        return frozenset(self.memberships)

    def highest_role(self) -> Role | None:
        """The highest role the caller holds anywhere (None: no membership at all)."""
        if self.superadmin:
            base: Role | None = Role.SUPERADMIN
        else:
            base = max(self.memberships.values(), key=lambda r: r.rank, default=None)
        if base is None or self.token_role is None:
            return base
        return lowest(base, self.token_role)

    def require(self, organization_id: str | None, needed: Role, what: str) -> Role:
        """The caller's role in ``organization_id`` if it is at least ``needed``.

        Raises :class:`NotFoundError` when the organization is not the caller's at all (its
        resources' existence is not revealed), :class:`ForbiddenError` when it is but the role
        is too low. ``what`` names the resource in the message (``"project 'x'"``).
        """
        role = self.role_in(organization_id)
        if role is None:
            raise NotFoundError(f"no {what}")
        if not at_least(role, needed):
            raise ForbiddenError(f"{what}: this needs the {needed} role (you are {role})")
        return role

    def require_superadmin(self, what: str) -> None:
        """Raise :class:`ForbiddenError` unless :attr:`is_superadmin`."""
        if not self.is_superadmin:
            raise ForbiddenError(f"{what} needs the superadmin role")
