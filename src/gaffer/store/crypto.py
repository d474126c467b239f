"""Encryption of stored secrets (webhook secrets) with the master key.

Uses Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``). The key comes from
``GAFFER_MASTER_KEY``; with the embedded default (SQLite) and no key given, one is generated on
first start into ``$GAFFER_HOME/master.key`` with mode 0600. With a shared database the key must
be given, since every process that reads the secrets must hold the same key.
"""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken

from gaffer.errors import UserError
from gaffer.settings import Settings


class MasterKeyError(UserError, RuntimeError):
    """The master key is missing, malformed, or does not decrypt a stored secret."""


def load_master_key(settings: Settings) -> bytes:
    """Return the master key (urlsafe base64 of 32 bytes), creating it when the default allows.

    Raises :class:`MasterKeyError` when ``GAFFER_MASTER_KEY`` is malformed, or when it is unset
    while ``DATABASE_URL`` points at a shared (non-SQLite) database.
    """
    if settings.master_key:
        key = settings.master_key.strip().encode()
        _check_key(key, "GAFFER_MASTER_KEY")
        return key
    if not settings.uses_sqlite:
        raise MasterKeyError(
            "GAFFER_MASTER_KEY is required when DATABASE_URL points at a shared database; "
            "generate one with: gaffer keygen"
        )
    path = settings.master_key_path
    if path.exists():
        key = path.read_bytes().strip()
        _check_key(key, str(path))
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: if another process created the file first, read theirs instead of overwriting it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        _check_key(key, str(path))
        return key
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def _check_key(key: bytes, where: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError) as exc:
        raise MasterKeyError(
            f"{where} is not a valid master key (32 url-safe base64-encoded bytes)"
        ) from exc


class SecretBox:
    """Encrypts and decrypts small secrets with the master key.

    >>> box = SecretBox(Fernet.generate_key())
    >>> box.decrypt(box.encrypt("s3cret"))
    's3cret'
    """

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plain: str) -> bytes:
        """Encrypt ``plain`` (UTF-8) into a Fernet token."""
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, token: bytes) -> str:
        """Decrypt a token made by :meth:`encrypt`.

        Raises :class:`MasterKeyError` when the token was made with another key.
        """
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise MasterKeyError(
                "a stored secret does not decrypt with this master key "
                "(was GAFFER_MASTER_KEY changed?)"
            ) from exc
