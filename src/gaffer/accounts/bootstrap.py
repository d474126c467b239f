"""The first superadmin of the embedded default: made on the first ``gaffer up`` when the
installation has no user at all, with a random password printed once (issue 12).

With a shared database (PostgreSQL) nothing is made: the operator runs
``gaffer users create EMAIL --superadmin`` instead, choosing the password.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from gaffer.accounts.models import User
from gaffer.accounts.principal import Principal
from gaffer.accounts.users import create_user
from gaffer.store.db import Database

FIRST_SUPERADMIN_EMAIL = "admin@localhost"


def ensure_first_superadmin(db: Database) -> tuple[str, str] | None:
    """Create ``admin@localhost`` as superadmin with a random password (24 URL-safe
    characters) if there is no user yet; returns ``(email, password)`` when it did, else None.
    Two processes racing here make one user: the loser's insert fails on the unique email and
    it returns None."""
    from sqlalchemy.exc import IntegrityError

    if not db.settings.uses_sqlite:
        return None
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    password = secrets.token_urlsafe(18)
    try:
        with db.session() as session:
            create_user(
                session,
                Principal.local(),
                email=FIRST_SUPERADMIN_EMAIL,
                password=password,
                display_name="first superadmin",
                superadmin=True,
            )
    except IntegrityError:
        return None
    return FIRST_SUPERADMIN_EMAIL, password
