"""Opaque cursors for keyset pagination, newest first: ``(created_at, id)`` of the last item
given, base64url-encoded. A cursor survives inserts (no offsets) and is checked when read."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from gaffer.accounts.errors import InvalidInputError


def encode_cursor(created_at: datetime, item_id: str) -> str:
    """The cursor after an item created at ``created_at`` (aware) with id ``item_id``."""
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of a cursor from :func:`encode_cursor`. Raises
    :class:`InvalidInputError` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, item_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInputError("not a cursor this API gave") from None
    if not item_id or created_at.tzinfo is None:
        raise InvalidInputError("not a cursor this API gave")
    return created_at, item_id
