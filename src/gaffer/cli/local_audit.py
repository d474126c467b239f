"""Audit rows for the writes of local-mode commands (actor ``local``, via ``cli``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from gaffer.accounts import audit
from gaffer.accounts.principal import Principal


def cli_audit(
    session: Session,
    action: str,
    *,
    target_type: str,
    target_id: str | None,
    organization_id: str | None,
    change: Mapping[str, Any],
) -> None:
    """Record ``action`` by the local CLI in ``session`` (the write's own transaction)."""
    audit.record(
        session,
        Principal.local(),
        action,
        target_type=target_type,
        target_id=target_id,
        organization_id=organization_id,
        change=change,
    )
