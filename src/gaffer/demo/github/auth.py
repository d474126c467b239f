"""Authentication as GitHub does it: app JWTs (RS256), installation tokens, PATs.

Rules (GitHub docs, "Authenticating as a GitHub App" and "...as an installation"): the JWT is
RS256-signed with the app's private key, ``iss`` is the app id (or client id), ``exp`` at most
10 minutes after ``iat``; installation tokens expire after 1 hour and carry the repositories and
permissions asked for when minted (never more than the installation has).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gaffer.demo.github.state import State, Token

TOKEN_TTL_S = 3600
LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}

# operationId -> (permission, level) an installation token needs. PATs are not narrowed.
REQUIRED: dict[str, tuple[str, str]] = {
    "repos/get": ("metadata", "read"),
    "issues/get": ("issues", "read"),
    "issues/list-comments": ("issues", "read"),
    "issues/create-comment": ("issues", "write"),
    "issues/update-comment": ("issues", "write"),
    "reactions/create-for-issue": ("issues", "write"),
    "reactions/create-for-issue-comment": ("issues", "write"),
    "pulls/get": ("pull_requests", "read"),
    "pulls/list": ("pull_requests", "read"),
    "pulls/create": ("pull_requests", "write"),
    "pulls/list-files": ("pull_requests", "read"),
    "pulls/create-review": ("pull_requests", "write"),
    "pulls/get-review": ("pull_requests", "read"),
    "pulls/list-reviews": ("pull_requests", "read"),
    "pulls/list-comments-for-review": ("pull_requests", "read"),
    "pulls/list-review-comments": ("pull_requests", "read"),
    "pulls/create-reply-for-review-comment": ("pull_requests", "write"),
    "checks/create": ("checks", "write"),
    "checks/update": ("checks", "write"),
    "checks/list-for-ref": ("checks", "read"),
    "actions/download-job-logs-for-workflow-run": ("actions", "read"),
}
APP_JWT_OPERATIONS = {
    "apps/get-authenticated",
    "apps/create-installation-access-token",
    "apps/get-repo-installation",
}


class AuthError(Exception):
    """Answered with ``status`` and GitHub's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class App:
    """The GitHub App the fake knows: id, slug, and its RSA key pair."""

    id: int
    slug: str
    private_key_pem: str
    public_key_pem: str

    @classmethod
    def generate(cls, app_id: int = 4242, slug: str = "gaffer-test") -> App:
        """A new app with a fresh 2048-bit RSA key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return cls(id=app_id, slug=slug, private_key_pem=private, public_key_pem=public)


def check_app_jwt(app: App, header: str | None) -> None:
    """Accept ``Authorization: Bearer <JWT>`` signed by ``app`` with a valid ``iss``/``exp``.

    Raises :class:`AuthError` (401) otherwise, with GitHub's wording where known.
    """
    if not header or not header.lower().startswith("bearer "):
        raise AuthError(401, "A JSON web token could not be decoded")
    token = header.split(None, 1)[1]
    try:
        claims = jwt.decode(
            token,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"]},
            leeway=0,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError(401, "'Expiration time' claim ('exp') must be a future time") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"A JSON web token could not be decoded ({exc})") from exc
    if str(claims["iss"]) != str(app.id):
        raise AuthError(401, "'Issuer' claim ('iss') must match the app id")
    if int(claims["exp"]) - int(claims["iat"]) > 660:
        raise AuthError(401, "'Expiration time' claim ('exp') is too far in the future")


def bearer(header: str | None) -> str | None:
    """The token of ``Authorization: token X`` / ``Bearer X`` / Basic (password), or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("token", "bearer"):
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except ValueError:
            return None
        return decoded.partition(":")[2] or None
    return None


def find_token(state: State, header: str | None) -> Token:
    """The live token of ``header``. Raises :class:`AuthError` 401 for none, unknown, expired."""
    value = bearer(header)
    if value is None:
        raise AuthError(401, "Requires authentication")
    token = state.tokens.get(value)
    if token is None:
        raise AuthError(401, "Bad credentials")
    if token.expires_at is not None and token.expires_at <= time.time():
        raise AuthError(401, "Bad credentials")
    return token


def authorize(token: Token, repo_name: str | None, permission: tuple[str, str] | None) -> None:
    """Raise :class:`AuthError` unless ``token`` may act on ``repo_name`` with ``permission``.

    A repository outside an installation token's list is 404 (GitHub hides it); a missing
    permission is 403 "Resource not accessible by integration".
    """
    if token.kind != "installation":
        return
    repos = token.repositories
    if (
        repo_name is not None
        and repos is not None
        and repo_name.lower() not in map(str.lower, repos)
    ):
        raise AuthError(404, "Not Found")
    if permission is not None:
        name, level = permission
        have = token.permissions.get(name, "read" if name == "metadata" else "none")
        if LEVELS[have] < LEVELS[level]:
            raise AuthError(403, "Resource not accessible by integration")


def mint(
    state: State,
    installation_id: int,
    repositories: list[str] | None,
    permissions: dict[str, str] | None,
    bot_login: str,
    ttl_s: int = TOKEN_TTL_S,
) -> Token:
    """Mint an installation token (``ghs_...``), narrowed as asked.

    Raises :class:`AuthError` 404 for an unknown installation, 422 when a repository or
    permission asked for exceeds the installation's.
    """
    installation = state.installations.get(installation_id)
    if installation is None:
        raise AuthError(404, "Not Found")
    if repositories is not None:
        allowed = {r.lower() for r in installation.repositories}
        for name in repositories:
            if name.lower() not in allowed:
                raise AuthError(
                    422,
                    f"There is at least one repository that does not exist "
                    f"or is not accessible to the parent installation ({name}).",
                )
    granted = dict(installation.permissions)
    if permissions is not None:
        for name, level in permissions.items():
            if LEVELS.get(granted.get(name, "none"), 0) < LEVELS[level]:
                raise AuthError(
                    422,
                    f"The permissions requested are not granted to this "
                    f"installation ({name}: {level}).",
                )
        granted = dict(permissions)
    bot = state.user(bot_login, "Bot")
    token = Token(
        value="ghs_" + secrets.token_hex(18),
        kind="installation",
        user=bot,
        installation_id=installation_id,
        repositories=list(repositories) if repositories is not None else None,
        permissions=granted,
        expires_at=time.time() + ttl_s,
    )
    state.tokens[token.value] = token
    return token
