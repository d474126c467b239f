"""The fake's authentication: the stand-in's (:mod:`gaffer.demo.github.auth`), re-exported."""

from gaffer.demo.github.auth import (
    APP_JWT_OPERATIONS,
    LEVELS,
    REQUIRED,
    TOKEN_TTL_S,
    App,
    AuthError,
    authorize,
    bearer,
    check_app_jwt,
    find_token,
    mint,
)

__all__ = [
    "APP_JWT_OPERATIONS",
    "LEVELS",
    "REQUIRED",
    "TOKEN_TTL_S",
    "App",
    "AuthError",
    "authorize",
    "bearer",
    "check_app_jwt",
    "find_token",
    "mint",
]
