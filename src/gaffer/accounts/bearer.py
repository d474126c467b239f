"""Random bearer secrets (API tokens, session ids) and their stored digests.

A token is ``gfr_`` followed by 43 URL-safe characters (32 random bytes, 256 bits): the prefix
lets secret scanners recognise a leaked one. Only its SHA-256 hex digest is stored; a fast hash
is enough for a value with 256 bits of entropy (no dictionary to try). Digests are compared
with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "gfr_"
SHOWN_PREFIX_LENGTH = 12
"""Characters of a token kept in clear (``gfr_`` + 8) to name it in listings."""


def new_token() -> str:
    """A fresh API token: ``gfr_`` + 43 characters of ``[A-Za-z0-9_-]``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_id() -> str:
    """A fresh browser session id (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 hex digest (64 characters) of ``secret``'s UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(stored: str, secret: str) -> bool:
    """True when ``secret`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(stored.encode(), digest(secret).encode())


def looks_like_token(value: str) -> bool:
    """True for a string shaped like a gaffer API token (prefix and length)."""
    return value.startswith(TOKEN_PREFIX) and len(value) == len(TOKEN_PREFIX) + 43
