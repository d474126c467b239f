"""Credentials of a project (or organization) on GitHub: a GitHub App or a token (PAT).

Secrets are :class:`pydantic.SecretStr`, so they never print in a repr or a log line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_BASE_URL = "https://api.github.com"
"""The REST root of github.com (a project on GitHub Enterprise Server sets its own)."""


class AppCredentials(BaseModel):
    """A GitHub App: ``app_id``, its private key (PEM), and optionally the installation id
    (learned from a webhook's ``installation.id`` when not set)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["app"] = "app"
    app_id: int = Field(gt=0)
    private_key_pem: SecretStr
    installation_id: int | None = Field(default=None, gt=0)

    @field_validator("private_key_pem")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if not (text.startswith("-----BEGIN") and "PRIVATE KEY-----" in text):
            raise ValueError("the private key is not a PEM private key")
        return SecretStr(text + "\n")


class TokenCredentials(BaseModel):
    """A token (fine-grained PAT, or any token GitHub accepts as ``Authorization: token``).
    ``login`` is the account it acts as, when known (the loop guard's bot login)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["token"] = "token"
    token: SecretStr
    login: str | None = None

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if not text or any(c.isspace() for c in text):
            raise ValueError("the token is empty or contains whitespace")
        return SecretStr(text)


Credentials = AppCredentials | TokenCredentials
