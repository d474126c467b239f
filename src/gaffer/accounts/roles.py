"""The three roles and their order: ``member`` < ``admin`` < ``superadmin``.

What each may do (issue 12, "Accounts and roles"):

* ``member``: read the organization's projects, runs, logs and deliveries; start, retry and
  cancel runs;
* ``admin``: also create and change projects, agents, triggers and credentials, and manage the
  organization's users;
* ``superadmin``: every organization; also worker images, agent definitions and the burst
  buffer's switches. It is held by a user for the whole installation, never per organization.
"""

from __future__ import annotations

import enum

from gaffer.errors import UserError


class UnknownRoleError(UserError, ValueError):
    """A role name that is not ``member``, ``admin`` or ``superadmin``."""


class Role(enum.StrEnum):
    """A role; compare with :attr:`rank` (or :func:`at_least`), never by name."""

    MEMBER = "member"
    ADMIN = "admin"
    SUPERADMIN = "superadmin"

    @property
    def rank(self) -> int:
        """1 for member, 2 for admin, 3 for superadmin."""
        return _RANKS[self]

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role called ``name`` (case-insensitive). Raises :class:`UnknownRoleError`."""
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise UnknownRoleError(f"unknown role {name!r} (known: {known})") from None


_RANKS = {Role.MEMBER: 1, Role.ADMIN: 2, Role.SUPERADMIN: 3}

ORGANIZATION_ROLES = (Role.MEMBER, Role.ADMIN)
"""The roles a membership may carry (``superadmin`` is installation-wide)."""


def at_least(role: Role | None, needed: Role) -> bool:
    """True when ``role`` is ``needed`` or higher (None, no role, never is)."""
    return role is not None and role.rank >= needed.rank


def lowest(*roles: Role) -> Role:
    """The lowest of ``roles`` (a token's role is capped by its owner's)."""
    return min(roles, key=lambda r: r.rank)
