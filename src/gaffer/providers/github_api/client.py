"""A GitHub client for one repository with one project's credentials, on ``githubkit``.

With :class:`AppCredentials` each client mints (or takes from the shared
:class:`TokenCache`) an installation token for its one repository with only the
permissions it was built with; with :class:`TokenCredentials` it uses the token as is. A 401
drops the cached token and the call is made once more with a freshly minted one. Rate limits
and server errors are retried within the bounds of :class:`BoundedRetry`; what is left is
raised as a :class:`GitHubError` subclass with a reason naming the call, never the token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, cast

import structlog
from githubkit import AppAuthStrategy, GitHub, Response, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)

from gaffer.providers.github_api.credentials import DEFAULT_BASE_URL, AppCredentials, Credentials
from gaffer.providers.github_api.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubNotFoundError,
    GitHubRateLimitedError,
    GitHubRequestError,
    GitHubUnavailableError,
)
from gaffer.providers.github_api.retry import BoundedRetry
from gaffer.providers.github_api.token_cache import CachedToken, TokenCache, TokenScope

T = TypeVar("T")
HTTP_CACHE_OFF = True
"""githubkit's HTTP cache (hishel) is off: its transport ignored the request timeout here (a
hanging GitHub held a call for as long as it hung), and a run must see a PR closed meanwhile."""
log = structlog.get_logger(__name__)


class GitHubClient:
    """Calls GitHub's REST API for ``repository`` (``"owner/name"``).

    ``base_url``: the API root (``https://api.github.com``, ``https://HOST/api/v3`` for GHES,
    a test server). ``permissions``: what installation tokens are minted with (see
    :func:`permissions_for`). ``installation_id``: the webhook's ``installation.id``, used
    when the credentials name none; without either it is looked up
    (``GET /repos/{owner}/{repo}/installation``). ``cache``: the shared token cache (None: a
    token per client). ``timeout_s``: per HTTP request.
    """

    def __init__(
        self,
        credentials: Credentials,
        repository: str,
        *,
        permissions: dict[str, str],
        base_url: str = DEFAULT_BASE_URL,
        cache: TokenCache | None = None,
        installation_id: int | None = None,
        retry: BoundedRetry | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository must be owner/name, not {repository!r}")
        self.credentials = credentials
        self.owner = owner
        self.name = name
        self.permissions = dict(permissions)
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        self.retry = retry or BoundedRetry()
        self.timeout_s = timeout_s
        self._installation_id = (
            credentials.installation_id if isinstance(credentials, AppCredentials) else None
        ) or installation_id
        self._installation_looked_up = False
        self._token: CachedToken | None = None
        self._mint_lock = asyncio.Lock()
        # githubkit objects are kept referenced for as long as calls are made through them.
        self._github: GitHub[TokenAuthStrategy] | None = None
        self._github_token: str | None = None
        self._app_github: GitHub[AppAuthStrategy] | None = None

    @property
    def repository(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    # --- credentials ----------------------------------------------------------------------

    async def installation_id(self) -> int:
        """The app installation id (credentials, the webhook's, or looked up with the JWT).

        Raises :class:`GitHubNotFoundError` when the app is not installed on the repository.
        """
        if self._installation_id is not None:
            return self._installation_id
        app = self._app()
        creds = self.credentials
        assert isinstance(creds, AppCredentials)
        if self.cache is not None:
            known = await self.cache.get_installation(self.base_url, creds.app_id, self.repository)
            if known is not None:
                self._installation_id = known
                self._installation_looked_up = True
                return known
        response = await self._translate(
            "GET /repos/{owner}/{repo}/installation",
            app.rest.apps.async_get_repo_installation(self.owner, self.name),
        )
        self._installation_id = int(response.parsed_data.id)
        self._installation_looked_up = True
        if self.cache is not None:
            await self.cache.put_installation(
                self.base_url, creds.app_id, self.repository, self._installation_id
            )
        return self._installation_id

    async def token(self, min_remaining_s: float = 0) -> str:
        """A token for this repository with at least ``min_remaining_s`` seconds of life left
        (beyond the cache's margin): the PAT, or an installation token from the cache or
        freshly minted. For the worker's git, pass the run's timeout as ``min_remaining_s``.
        """
        creds = self.credentials
        if not isinstance(creds, AppCredentials):
            return creds.token.get_secret_value()
        if self._token is not None and self._fresh(self._token, min_remaining_s):
            return self._token.token
        async with self._mint_lock:
            scope = await self._scope()
            if self.cache is not None:
                cached = await self.cache.get(scope, min_remaining_s)
                if cached is not None:
                    self._token = cached
                    return cached.token
            try:
                self._token = await self._mint()
            except GitHubError as exc:
                if not (self._installation_looked_up and exc.status in (401, 404)):
                    raise
                # The remembered installation is gone (the app was reinstalled): look again.
                await self._forget_installation()
                scope = await self._scope()
                self._token = await self._mint()
            if self.cache is not None:
                await self.cache.put(scope, self._token)
            return self._token.token

    async def invalidate(self) -> None:
        """Forget the current installation token here and in the shared cache (after a 401)."""
        if self._token is None or not isinstance(self.credentials, AppCredentials):
            return
        if self.cache is not None:
            await self.cache.drop(await self._scope(), self._token.token)
        log.info("github_token_dropped", repository=self.repository)
        self._token = None

    async def _forget_installation(self) -> None:
        creds = self.credentials
        assert isinstance(creds, AppCredentials)
        if self.cache is not None:
            await self.cache.drop_installation(self.base_url, creds.app_id, self.repository)
        self._installation_id = None
        self._installation_looked_up = False

    @staticmethod
    def _fresh(token: CachedToken, min_remaining_s: float) -> bool:
        return token.expires_at - time.time() > 60 + min_remaining_s

    async def _scope(self) -> TokenScope:
        creds = self.credentials
        assert isinstance(creds, AppCredentials)
        return TokenScope(
            base_url=self.base_url,
            app_id=creds.app_id,
            installation_id=await self.installation_id(),
            repository=self.repository,
            permissions=tuple(sorted(self.permissions.items())),
        )

    async def _mint(self) -> CachedToken:
        app = self._app()
        installation_id = await self.installation_id()
        response = await self._translate(
            "POST /app/installations/{installation_id}/access_tokens",
            app.rest.apps.async_create_installation_access_token(
                installation_id,
                data=cast(Any, {"repositories": [self.name], "permissions": self.permissions}),
            ),
        )
        data = response.parsed_data
        log.info(
            "github_token_minted",
            repository=self.repository,
            installation_id=installation_id,
            permissions=self.permissions,
        )
        raw: Any = data.expires_at  # a str in githubkit's model, a datetime in some versions
        expires = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        return CachedToken(token=data.token, expires_at=expires.timestamp())

    def _app(self) -> GitHub[AppAuthStrategy]:
        creds = self.credentials
        if not isinstance(creds, AppCredentials):
            raise GitHubAuthError("this call needs GitHub App credentials, not a token")
        if self._app_github is None:
            self._app_github = GitHub(
                AppAuthStrategy(str(creds.app_id), creds.private_key_pem.get_secret_value()),
                base_url=self.base_url,
                # githubkit's default cache is process-wide and keys the app JWT by app id
                # alone: a rotated key (or another server) would get a stale JWT from it.
                cache_strategy=MemCacheStrategy(),
                auto_retry=self.retry,
                timeout=self.timeout_s,
                http_cache=False,  # see HTTP_CACHE_OFF
                user_agent="gaffer",
            )
        return self._app_github

    def _client(self, token: str) -> GitHub[TokenAuthStrategy]:
        if self._github is None or self._github_token != token:
            self._github = GitHub(
                TokenAuthStrategy(token),
                base_url=self.base_url,
                auto_retry=self.retry,
                timeout=self.timeout_s,
                http_cache=False,  # see HTTP_CACHE_OFF
                user_agent="gaffer",
            )
            self._github_token = token
        return self._github

    # --- calls ----------------------------------------------------------------------------

    async def call(
        self, what: str, fn: Callable[[GitHub[TokenAuthStrategy]], Awaitable[Response[T]]]
    ) -> Response[T]:
        """Run ``fn(github)`` (a githubkit REST call) with this client's token.

        ``what`` names the call in errors and logs (``"POST /repos/{owner}/{repo}/pulls"``).
        On a 401 the token is dropped and ``fn`` runs once more with a fresh one. Raises a
        :class:`GitHubError` subclass (auth, not found, rate limited, unavailable, request).
        """
        for attempt in (1, 2):
            github = self._client(await self.token())
            try:
                return await self._translate(what, fn(github))
            except GitHubAuthError as exc:
                if (
                    exc.status != 401
                    or attempt == 2
                    or not isinstance(self.credentials, AppCredentials)
                ):
                    raise
                await self.invalidate()
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Response[Any]:
        """A raw call (``path`` relative to the API root, e.g. ``/repos/o/r/pulls/1``) for what
        githubkit's typed methods do not cover (the diff media type); same errors as
        :meth:`call`."""
        return await self.call(
            f"{method} {path}",
            lambda gh: gh.arequest(
                method, path.lstrip("/"), headers=headers, params=params, json=json
            ),
        )

    async def _translate(self, what: str, pending: Awaitable[Response[T]]) -> Response[T]:
        try:
            return await pending
        except RateLimitExceeded as exc:
            wait = exc.retry_after.total_seconds()
            raise GitHubRateLimitedError(
                f"{what}: GitHub rate limit, retry after {wait:.0f} s (bounded wait "
                f"{self.retry.max_wait_s:.0f} s, {self.retry.rate_limit_retries} retries)",
                exc.response.status_code,
                wait,
            ) from None
        except RequestFailed as exc:
            raise _failed(what, exc) from None
        except RequestTimeout:
            raise GitHubUnavailableError(
                f"{what}: GitHub did not answer within {self.timeout_s:g} s"
            ) from None
        except RequestError as exc:
            raise GitHubUnavailableError(
                f"{what}: cannot reach GitHub ({type(exc.exc).__name__})"
            ) from None
        except GitHubException as exc:
            raise GitHubError(f"{what}: {type(exc).__name__}") from None


def _failed(what: str, exc: RequestFailed) -> GitHubError:
    status = exc.response.status_code
    try:
        body = exc.response.raw_response.json()
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        errors = body.get("errors") if isinstance(body, dict) else None
    except ValueError:
        message, errors = exc.response.raw_response.text[:200], None
    detail = f"{what}: GitHub answered {status} {message}".rstrip()
    if errors:
        detail += f" ({errors})"
    if status == 401 or (status == 403 and "not accessible" in message):
        return GitHubAuthError(detail, status)
    if status == 404:
        return GitHubNotFoundError(detail, status)
    if status >= 500:
        return GitHubUnavailableError(detail, status)
    return GitHubRequestError(detail, status)
