"""A project's GitHub credentials in the database, the secret encrypted with the master key
(like the webhook secret), shown masked."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session

from gaffer.providers.github_api.credentials import AppCredentials, Credentials, TokenCredentials
from gaffer.store.crypto import SecretBox
from gaffer.store.models import GitHubCredential, utcnow


def set_credentials(
    session: Session,
    box: SecretBox,
    project_id: str,
    credentials: Credentials,
    *,
    api_url: str | None = None,
) -> None:
    """Store (or replace) ``project_id``'s credentials; ``api_url`` for GitHub Enterprise
    Server. The PEM or token is encrypted; nothing else is secret."""
    row = session.get(GitHubCredential, project_id) or GitHubCredential(project_id=project_id)
    if isinstance(credentials, AppCredentials):
        row.kind, row.app_id, row.installation_id, row.login = (
            "app",
            credentials.app_id,
            credentials.installation_id,
            None,
        )
        secret = credentials.private_key_pem.get_secret_value()
    else:
        row.kind, row.app_id, row.installation_id, row.login = (
            "token",
            None,
            None,
            credentials.login,
        )
        secret = credentials.token.get_secret_value()
    row.secret_encrypted = box.encrypt(secret)
    row.api_url = api_url
    row.updated_at = utcnow()
    session.add(row)
    session.flush()


def load_credentials(
    session: Session, box: SecretBox, project_id: str
) -> tuple[Credentials, str | None] | None:
    """(credentials, api_url) of ``project_id``, or None when none are set. Raises
    :class:`gaffer.store.crypto.MasterKeyError` when the secret does not decrypt."""
    row = session.get(GitHubCredential, project_id)
    if row is None:
        return None
    secret = SecretStr(box.decrypt(row.secret_encrypted))
    creds: Credentials
    if row.kind == "app":
        assert row.app_id is not None
        creds = AppCredentials(
            app_id=row.app_id, private_key_pem=secret, installation_id=row.installation_id
        )
    else:
        creds = TokenCredentials(token=secret, login=row.login)
    return creds, row.api_url


def record_installation_id(session: Session, project_id: str, installation_id: int) -> bool:
    """Remember the installation id a webhook carried (``installation.id``) when the app's
    credentials name none. Returns True when it was recorded."""
    row = session.get(GitHubCredential, project_id)
    if row is None or row.kind != "app" or row.installation_id == installation_id:
        return False
    row.installation_id = installation_id
    row.updated_at = utcnow()
    return True


def masked(session: Session, project_id: str) -> dict[str, Any] | None:
    """The credentials as ``gaffer github show`` may print them: never the secret."""
    row = session.get(GitHubCredential, project_id)
    if row is None:
        return None
    shown: dict[str, Any] = {"kind": row.kind, "api_url": row.api_url or "https://api.github.com"}
    if row.kind == "app":
        shown |= {
            "app_id": row.app_id,
            "installation_id": row.installation_id,
            "private_key": "****** (PEM, encrypted)",
        }
    else:
        shown |= {"login": row.login, "token": "******"}
    shown["updated_at"] = row.updated_at.isoformat()
    return shown
