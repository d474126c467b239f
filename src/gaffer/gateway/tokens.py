"""Per-run tokens: what an engine sends as its API key to the gateway.

A token is ``gfr1.<run id>.<expiry>.<mac>``: the run id (32 hex characters), the expiry in Unix
seconds, and the base64url (unpadded) HMAC-SHA256 of ``gfr1.<run id>.<expiry>`` under a key
derived from the master key with HKDF-SHA256 (``info = b"gaffer gateway run token"``), so a
token can be checked by any gateway process that holds the master key and by nothing else, and
the master key itself never leaves gaffer. A token only says which run it was made for and until
when; whether that run still lives is asked of the database at each call
(:mod:`gaffer.gateway.runs`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "gfr1"
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_HKDF_INFO = b"gaffer gateway run token"


class TokenError(ValueError):
    """A token that is malformed, forged, or expired. ``str()`` says which (never the token)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token names: ``run_id`` (32 hex) and ``expires_at`` (Unix seconds)."""

    run_id: str
    expires_at: int


def derive_key(master_key: bytes) -> bytes:
    """The 32-byte HMAC key of run tokens, derived from ``master_key`` (the Fernet key bytes)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(master_key)


class RunTokens:
    """Issues and verifies per-run tokens with a key derived from the master key.

    >>> tokens = RunTokens(b"k" * 44)
    >>> tokens.verify(tokens.issue("a" * 32, ttl_s=60)).run_id == "a" * 32
    True
    """

    def __init__(self, master_key: bytes) -> None:
        self._key = derive_key(master_key)

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, run_id: str, *, ttl_s: int, now: float | None = None) -> str:
        """A token for ``run_id`` valid for ``ttl_s`` seconds from ``now`` (default: the clock).

        Raises :class:`ValueError` when ``run_id`` is not 32 lowercase hex characters.
        """
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError("a run id is 32 lowercase hex characters")
        expires = int((time.time() if now is None else now) + ttl_s)
        payload = f"{PREFIX}.{run_id}.{expires}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, *, now: float | None = None) -> TokenClaims:
        """The claims of ``token``; raises :class:`TokenError` (``malformed``, ``bad
        signature``, ``expired``) otherwise. The MAC is compared in constant time."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != PREFIX or not _RUN_ID.fullmatch(parts[1]):
            raise TokenError("malformed token")
        if not parts[2].isdigit():
            raise TokenError("malformed token")
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(payload).encode(), parts[3].encode()):
            raise TokenError("bad token signature")
        expires = int(parts[2])
        if expires <= (time.time() if now is None else now):
            raise TokenError("token expired")
        return TokenClaims(run_id=parts[1], expires_at=expires)
