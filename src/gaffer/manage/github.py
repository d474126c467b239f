"""A project's GitHub credentials as ``gaffer github`` and ``/api/v1/projects/{p}/github``
check, store and show them: validated before anything is written, stored encrypted, shown
masked, each write with its audit row (the secret never in it) in the caller's transaction."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from gaffer.accounts import audit
from gaffer.accounts.errors import InvalidInputError
from gaffer.accounts.principal import Principal
from gaffer.providers.github_api.credential_store import masked, set_credentials
from gaffer.providers.github_api.credentials import AppCredentials, Credentials, TokenCredentials
from gaffer.store.crypto import SecretBox
from gaffer.store.models import Project


def api_url(value: str | None) -> str | None:
    """``value`` without a trailing slash (None stays None: github.com). Raises
    :class:`InvalidInputError` unless it is an http(s) URL."""
    if value is None:
        return None
    if not value.startswith(("https://", "http://")):
        raise InvalidInputError(f"--api-url must be an http(s) URL, not {value!r}")
    return value.rstrip("/")


def app_credentials(app_id: int, pem: str, installation_id: int | None) -> AppCredentials:
    """A GitHub App's credentials. Raises :class:`InvalidInputError` naming the first refused
    field (an id <= 0, a key that is not PEM); the key is never in the message."""
    try:
        return AppCredentials(
            app_id=app_id, private_key_pem=SecretStr(pem), installation_id=installation_id
        )
    except ValidationError as exc:
        raise InvalidInputError(_first_error(exc)) from None


def token_credentials(token: str, login: str | None) -> TokenCredentials:
    """A token's credentials. Raises :class:`InvalidInputError` for an empty token or one
    holding whitespace; the token is never in the message."""
    try:
        return TokenCredentials(token=SecretStr(token), login=login)
    except ValidationError as exc:
        raise InvalidInputError(_first_error(exc)) from None


def store(
    session: Session,
    box: SecretBox,
    principal: Principal,
    project: Project,
    credentials: Credentials,
    url: str | None,
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Store ``project``'s credentials (``url``: the REST root, None for github.com; a token
    naming its account makes that account the project's bot login, the loop guard) and record
    ``github_credentials.set``; :func:`shown` afterwards."""
    set_credentials(session, box, project.id, credentials, api_url=url)
    change: dict[str, Any] = {"kind": credentials.kind, "api_url": url}
    if isinstance(credentials, TokenCredentials):
        change |= {"login": credentials.login, "token": audit.MASK}
        if credentials.login:
            project.bot_login = credentials.login
            change["bot_login"] = credentials.login
    else:
        change |= {
            "app_id": credentials.app_id,
            "installation_id": credentials.installation_id,
            "private_key": audit.MASK,
        }
    session.flush()
    audit.record(
        session,
        principal,
        "github_credentials.set",
        target_type="project",
        target_id=project.id,
        organization_id=project.organization_id,
        change=change,
        request_id=request_id,
    )
    view = shown(session, project)
    assert view is not None
    return view


def shown(session: Session, project: Project) -> dict[str, Any] | None:
    """The masked credentials of ``project`` (never the secret), or None when none are set."""
    return masked(session, project.id)


def none_set(project: str) -> str:
    """The message for a project with no GitHub credentials (named as the caller named it)."""
    return f"project {project!r} has no GitHub credentials"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return str(first.get("msg", "invalid value")).removeprefix("Value error, ")
