"""Login rate limiting in Redis, per account and per client address (issue 12).

Failed logins are counted in fixed windows of :attr:`LoginLimiter.window_s` seconds under
``gaffer:login:failures:account:<sha256 of the email>`` and
``gaffer:login:failures:address:<address>``. Once either count reaches its limit, logins are
refused (HTTP 429, ``Retry-After``) before the password is even checked, until the window ends.
A successful login clears the account's count (not the address's: one address trying many
accounts stays limited).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gaffer.accounts.bearer import digest
from gaffer.accounts.errors import RateLimitedError

KEY_PREFIX = "gaffer:login:failures"


class LoginLimiter:
    """Counts failed logins; ``account_limit`` and ``address_limit`` failures per
    ``window_s`` seconds."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        account_limit: int = 5,
        address_limit: int = 20,
        window_s: int = 900,
    ) -> None:
        self.redis = redis
        self.account_limit = account_limit
        self.address_limit = address_limit
        self.window_s = window_s

    @staticmethod
    def _keys(email: str, address: str) -> tuple[str, str]:
        account = digest(email.strip().lower())[:32]
        return f"{KEY_PREFIX}:account:{account}", f"{KEY_PREFIX}:address:{address}"

    async def check(self, email: str, address: str) -> None:
        """Raise :class:`RateLimitedError` when this account or address is over its limit.
        Raises Redis errors (the caller refuses the login then: fail closed)."""
        account_key, address_key = self._keys(email, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(account_key)
            pipe.get(address_key)
            pipe.ttl(account_key)
            pipe.ttl(address_key)
            account, addr, account_ttl, address_ttl = await pipe.execute()
        if int(account or 0) >= self.account_limit:
            raise RateLimitedError(
                "too many failed logins for this account; try again later",
                max(int(account_ttl), 1),
            )
        if int(addr or 0) >= self.address_limit:
            raise RateLimitedError(
                "too many failed logins from this address; try again later",
                max(int(address_ttl), 1),
            )

    async def failed(self, email: str, address: str) -> None:
        """Count one failed login for the account and the address."""
        account_key, address_key = self._keys(email, address)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (account_key, address_key):
                pipe.incr(key)
                pipe.expire(key, self.window_s, nx=True)
            await pipe.execute()

    async def succeeded(self, email: str, address: str) -> None:
        """Clear the account's count after a successful login."""
        account_key, _ = self._keys(email, address)
        await self.redis.delete(account_key)
