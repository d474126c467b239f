"""The ``fake_github`` fixture: import it into a test module
(``from tests.support.fake_github.fixtures import fake_github``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet
from pydantic import SecretStr

from gaffer.providers.github_api import AppCredentials, GitHubClient, TokenCache, permissions_for
from gaffer.providers.github_api.permissions import BranchMode
from gaffer.providers.github_api.retry import BoundedRetry
from gaffer.store.crypto import SecretBox
from tests.support.fake_github.server import FakeGitHub
from tests.support.fake_github.state import Installation, Repository


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """A started fake GitHub; fails the test at teardown if any request or response broke
    GitHub's description (a test that expects a breach must clear ``violations`` itself)."""
    fake = FakeGitHub(tmp_path / "fake-github").start()
    try:
        yield fake
    finally:
        fake.stop()
    if fake.violations:
        lines = [
            f"{v.direction} {v.method} {v.path} -> {v.status}:\n{v.errors}" for v in fake.violations
        ]
        pytest.fail("fake GitHub saw contract violations:\n" + "\n\n".join(lines), pytrace=False)


@dataclass
class GitHubWorld:
    """A fake GitHub with the app installed on ``acme/widgets`` (a git-backed private
    repository), gaffer's credentials for it, and a token cache on the test's Redis."""

    fake: FakeGitHub
    repo: Repository
    installation: Installation
    credentials: AppCredentials
    redis: aioredis.Redis
    box: SecretBox
    key: str  # the master key of ``box`` (urlsafe base64)

    def cache(self) -> TokenCache:
        return TokenCache(self.redis, self.box)

    def client(self, branch_mode: BranchMode = "new", **kwargs: Any) -> GitHubClient:
        """A client as a run would build it (shared cache, fast bounded retries)."""
        kwargs.setdefault("cache", self.cache())
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("timeout_s", 5.0)
        return GitHubClient(
            self.credentials,
            self.repo.full_name,
            permissions=permissions_for(branch_mode),
            base_url=self.fake.api_url,
            **kwargs,
        )


FAST_RETRY = BoundedRetry(
    max_wait_s=2,
    rate_limit_retries=2,
    server_error_retries=2,
    base_backoff_s=0.05,
    max_backoff_s=0.2,
)


@pytest.fixture
async def github_world(fake_github: FakeGitHub, redis_url: str) -> AsyncIterator[GitHubWorld]:
    """See :class:`GitHubWorld`."""
    repo = fake_github.add_repo("acme/widgets", private=True, git=True)
    fake_github.add_repo("acme/other", private=True)
    installation = fake_github.add_installation("acme", ["widgets", "other"])
    credentials = AppCredentials(
        app_id=fake_github.app.id,
        private_key_pem=SecretStr(fake_github.app.private_key_pem),
    )
    redis = aioredis.from_url(redis_url)
    key = Fernet.generate_key()
    try:
        yield GitHubWorld(
            fake_github, repo, installation, credentials, redis, SecretBox(key), key.decode()
        )
    finally:
        await redis.aclose()
