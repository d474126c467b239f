"""Installation tokens shared by gaffer's processes through Redis, encrypted at rest.

Key ``gaffer:github:token:<sha256 of the scope>`` (the scope: API base URL, app id,
installation id, repository, permissions), value the Fernet token (master key, see
:class:`gaffer.store.crypto.SecretBox`) of ``{"token", "expires_at"}`` (epoch seconds), with
a Redis TTL ending ``EXPIRY_MARGIN_S`` before GitHub's expiry. A token GitHub answers 401 to is
dropped (:meth:`TokenCache.drop`), so the next caller mints a new one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from gaffer.store.crypto import MasterKeyError, SecretBox

KEY_PREFIX = "gaffer:github:token:"
INSTALLATION_PREFIX = "gaffer:github:installation:"
INSTALLATION_TTL_S = 24 * 3600
"""How long a looked-up installation id is remembered (an app reinstalled gets a new id; a
401/404 with the old one drops it)."""
EXPIRY_MARGIN_S = 60
"""A token is not handed out in its last minute (GitHub's own clients use the same margin)."""


@dataclass(frozen=True)
class TokenScope:
    """What a token was minted for; two equal scopes share one cached token."""

    base_url: str
    app_id: int
    installation_id: int
    repository: str  # "owner/name"
    permissions: tuple[tuple[str, str], ...]

    def key(self) -> str:
        """The Redis key of this scope (a hash: the key names no repository or secret)."""
        raw = json.dumps(
            [
                self.base_url,
                self.app_id,
                self.installation_id,
                self.repository.lower(),
                list(self.permissions),
            ]
        )
        return KEY_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class CachedToken:
    """An installation token and its expiry (epoch seconds)."""

    token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"CachedToken(token=***, expires_at={self.expires_at})"


class TokenCache:
    """Reads and writes cached installation tokens (async Redis, bytes replies)."""

    def __init__(self, redis: aioredis.Redis, box: SecretBox) -> None:
        self._redis = redis
        self._box = box

    async def get(self, scope: TokenScope, min_remaining_s: float = 0) -> CachedToken | None:
        """The cached token of ``scope`` with at least ``EXPIRY_MARGIN_S + min_remaining_s``
        seconds left, or None (also when the entry does not decrypt with this master key)."""
        raw = await self._redis.get(scope.key())
        if raw is None:
            return None
        try:
            data = json.loads(self._box.decrypt(raw if isinstance(raw, bytes) else raw.encode()))
        except (MasterKeyError, ValueError):
            return None
        token = CachedToken(token=str(data["token"]), expires_at=float(data["expires_at"]))
        if token.expires_at - time.time() < EXPIRY_MARGIN_S + min_remaining_s:
            return None
        return token

    async def put(self, scope: TokenScope, token: CachedToken) -> None:
        """Cache ``token`` until ``EXPIRY_MARGIN_S`` before it expires (not at all when less
        is left)."""
        ttl = int(token.expires_at - time.time() - EXPIRY_MARGIN_S)
        if ttl <= 0:
            return
        plain = json.dumps({"token": token.token, "expires_at": token.expires_at})
        await self._redis.set(scope.key(), self._box.encrypt(plain), ex=ttl)

    @staticmethod
    def _installation_key(base_url: str, app_id: int, repository: str) -> str:
        raw = json.dumps([base_url, app_id, repository.lower()])
        return INSTALLATION_PREFIX + hashlib.sha256(raw.encode()).hexdigest()

    async def get_installation(self, base_url: str, app_id: int, repository: str) -> int | None:
        """The installation id of ``app_id`` on ``repository`` looked up earlier, or None."""
        raw = await self._redis.get(self._installation_key(base_url, app_id, repository))
        return int(raw) if raw is not None else None

    async def put_installation(
        self, base_url: str, app_id: int, repository: str, installation_id: int
    ) -> None:
        """Remember an installation id for ``INSTALLATION_TTL_S``."""
        key = self._installation_key(base_url, app_id, repository)
        await self._redis.set(key, str(installation_id), ex=INSTALLATION_TTL_S)

    async def drop_installation(self, base_url: str, app_id: int, repository: str) -> None:
        """Forget a remembered installation id."""
        await self._redis.delete(self._installation_key(base_url, app_id, repository))

    async def drop(self, scope: TokenScope, token: str | None = None) -> None:
        """Forget the cached token of ``scope`` (when ``token`` is given: only if it is still
        that one, so a token another process just minted survives)."""
        if token is None:
            await self._redis.delete(scope.key())
            return
        current = await self.get(scope)
        if current is not None and current.token == token:
            await self._redis.delete(scope.key())
