"""Errors of the account layer; the API maps each to one HTTP status."""

from __future__ import annotations

from gaffer.errors import UserError


class AccountError(UserError):
    """Base of the errors below."""


class InvalidCredentialsError(AccountError, PermissionError):
    """Unknown, revoked or expired token or session, wrong password, or a disabled user
    (HTTP 401). The message never says which, so it reveals nothing."""


class NotFoundError(AccountError, LookupError):
    """No such resource, or it belongs to an organization the caller cannot see (HTTP 404)."""


class ForbiddenError(AccountError, PermissionError):
    """The caller sees the resource but their role does not allow this (HTTP 403)."""


class ConflictError(AccountError, ValueError):
    """The change clashes with what exists (a taken email, HTTP 409)."""


class InvalidInputError(AccountError, ValueError):
    """Bad input, such as a password below the minimum length (HTTP 422)."""


class RateLimitedError(AccountError, RuntimeError):
    """Too many failed logins for this account or client address (HTTP 429).

    ``retry_after_s`` is how long until the window ends, in seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
