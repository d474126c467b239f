"""Password hashing with Argon2id (argon2-cffi's :class:`~argon2.PasswordHasher`, whose
defaults are RFC 9106's second recommended parameter set: 64 MiB, 3 passes, 4 lanes).

Verification is constant-time in the library. A hash made with older parameters verifies and
is reported by :func:`needs_rehash` so the caller can store a fresh one.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gaffer.accounts.errors import InvalidInputError

MIN_PASSWORD_LENGTH = 12
"""Characters; NIST SP 800-63B asks for at least 8, we ask for 12."""
MAX_PASSWORD_LENGTH = 1024
"""Characters; longer input is refused instead of hashed (hashing cost grows with length)."""

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Made on first use, not at import: every CLI command imports this module.
    return _hasher.hash("gaffer-dummy-password-for-timing")


def check_password_policy(password: str) -> None:
    """Raise :class:`InvalidInputError` unless ``password`` has 12 to 1024 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An Argon2id hash (PHC string ``$argon2id$v=19$m=65536,t=3,p=4$...``) of ``password``,
    after :func:`check_password_policy`."""
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash``.

    With ``password_hash`` None (no such user) a dummy hash is verified all the same, so an
    unknown email takes as long as a wrong password.
    """
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ones."""
    return _hasher.check_needs_rehash(password_hash)
