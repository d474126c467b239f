"""The GitHub client against the fake GitHub over real HTTP: tokens, cache, retries."""

from __future__ import annotations

import time

import pytest

from gaffer.providers.github_api import (
    GitHubClient,
    GitHubRateLimitedError,
    GitHubRequestError,
    GitHubUnavailableError,
    TokenCredentials,
    permissions_for,
)
from gaffer.providers.github_api.retry import BoundedRetry
from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.fixtures import GitHubWorld, fake_github, github_world

pytestmark = pytest.mark.anyio
__all__ = ["fake_github", "github_world"]


async def _get_repo(client: GitHubClient) -> str:
    response = await client.call(
        "GET /repos/{owner}/{repo}",
        lambda gh: gh.rest.repos.async_get(client.owner, client.name),
    )
    return response.parsed_data.full_name


async def test_mints_an_installation_token_for_one_repository_with_the_agents_permissions(
    github_world: GitHubWorld,
) -> None:
    client = github_world.client("read-only")
    assert await _get_repo(client) == "acme/widgets"
    (minted,) = github_world.fake.minted
    assert minted.repositories == ["widgets"]
    assert minted.permissions == permissions_for("read-only")
    assert minted.permissions["contents"] == "read"
    assert minted.installation_id == github_world.installation.id  # looked up with the JWT
    assert minted.expires_at is not None and 3500 < minted.expires_at - time.time() <= 3600
    (body,) = [
        b
        for s, b in github_world.fake.calls(
            f"/app/installations/{github_world.installation.id}/access_tokens", "POST"
        )
    ]
    assert body == {"repositories": ["widgets"], "permissions": permissions_for("read-only")}

    pushing = github_world.client("new")
    await _get_repo(pushing)
    assert github_world.fake.minted[-1].permissions["contents"] == "write"


async def test_the_token_is_scoped_to_its_repository(github_world: GitHubWorld) -> None:
    client = github_world.client()
    token = await client.token()
    other = github_world.fake.state.repo("acme", "other")
    assert other is not None
    from gaffer.providers.github_api import GitHubNotFoundError

    with pytest.raises(GitHubNotFoundError):
        await client.call(
            "GET /repos/acme/other", lambda gh: gh.rest.repos.async_get("acme", "other")
        )
    assert github_world.fake.state.tokens[token].repositories == ["widgets"]


async def test_token_cache_is_shared_and_encrypted_at_rest(github_world: GitHubWorld) -> None:
    first, second = github_world.client(), github_world.client()
    token = await first.token()
    assert await second.token() == token
    assert len(github_world.fake.minted) == 1
    keys = [k async for k in github_world.redis.scan_iter("gaffer:github:token:*")]
    assert len(keys) == 1
    stored = await github_world.redis.get(keys[0])
    assert token.encode() not in stored
    assert b"widgets" not in keys[0]


async def test_a_401_drops_the_cached_token_and_mints_a_new_one(github_world: GitHubWorld) -> None:
    client = github_world.client()
    old = await client.token()
    github_world.fake.revoke(old)  # GitHub forgot it (revoked, or expired early)
    assert await _get_repo(client) == "acme/widgets"
    new = await client.token()
    assert new != old
    assert len(github_world.fake.minted) == 2
    assert await github_world.client().token() == new  # the cache holds the new one


async def test_an_expired_token_is_rejected_401_and_replaced(github_world: GitHubWorld) -> None:
    client = github_world.client()
    old = await client.token()
    github_world.fake.state.tokens[old].expires_at = time.time() - 1
    assert await _get_repo(client) == "acme/widgets"
    assert await client.token() != old


async def test_a_pat_is_used_as_is(fake_github: FakeGitHub) -> None:
    fake_github.add_repo("alice/tool", private=True)
    pat = fake_github.add_pat("alice")
    client = GitHubClient(
        TokenCredentials(token=pat),
        "alice/tool",
        permissions=permissions_for("new"),
        base_url=fake_github.api_url,
    )
    assert await _get_repo(client) == "alice/tool"
    user = await client.call("GET /user", lambda gh: gh.rest.users.async_get_authenticated())
    assert user.parsed_data.login == "alice"
    assert fake_github.minted == []


async def test_secondary_rate_limit_waits_retry_after_then_succeeds(
    github_world: GitHubWorld,
) -> None:
    client = github_world.client()
    await client.token()
    github_world.fake.rate_limit_next(1, retry_after_s=1, match=r"GET /repos/acme/widgets$")
    started = time.monotonic()
    assert await _get_repo(client) == "acme/widgets"
    assert time.monotonic() - started >= 1  # Retry-After honoured
    statuses = [s for s, _ in github_world.fake.calls("/repos/acme/widgets")]
    assert statuses == [403, 200]


async def test_a_rate_limit_longer_than_the_bounded_wait_fails_at_once_with_the_reason(
    github_world: GitHubWorld,
) -> None:
    client = github_world.client()
    await client.token()
    github_world.fake.rate_limit_next(1, retry_after_s=3600, match=r"GET /repos/acme/widgets$")
    with pytest.raises(GitHubRateLimitedError) as caught:
        await _get_repo(client)
    assert caught.value.retry_after_s == 3600
    assert "retry after 3600 s" in caught.value.reason
    assert [s for s, _ in github_world.fake.calls("/repos/acme/widgets")] == [403]


async def test_server_errors_are_retried_with_bounded_backoff(github_world: GitHubWorld) -> None:
    client = github_world.client()
    await client.token()
    github_world.fake.fail_next(2, 502, match=r"GET /repos/acme/widgets$")
    assert await _get_repo(client) == "acme/widgets"
    github_world.fake.fail_next(5, 503, match=r"GET /repos/acme/widgets$")
    with pytest.raises(GitHubUnavailableError) as caught:
        await _get_repo(client)
    assert caught.value.retryable and caught.value.status == 503
    assert [s for s, _ in github_world.fake.calls("/repos/acme/widgets")] == [
        502,
        502,
        200,
        503,
        503,
        503,
    ]


async def test_a_hanging_github_is_a_timeout(github_world: GitHubWorld) -> None:
    await github_world.client().token()  # minted and cached with the normal timeout
    client = github_world.client(timeout_s=0.5, retry=BoundedRetry(server_error_retries=0))
    await client.token()  # from the cache
    github_world.fake.hang_next(1.5, match=r"GET /repos/acme/widgets$")
    with pytest.raises(GitHubUnavailableError, match="did not answer"):
        await _get_repo(client)


async def test_a_request_that_breaks_githubs_description_is_caught(
    github_world: GitHubWorld,
) -> None:
    client = github_world.client()
    issue = github_world.fake.add_issue(github_world.repo, "Bug")
    with pytest.raises(GitHubRequestError) as caught:
        await client.request(
            "POST",
            f"/repos/acme/widgets/issues/{issue.number}/comments",
            json={"text": "wrong field name"},
        )
    assert caught.value.status == 422
    (violation,) = github_world.fake.violations
    assert violation.direction == "request" and "'body' is a required property" in (
        violation.errors
    )
    github_world.fake.violations.clear()  # expected here; any other fails the test


async def test_a_primary_rate_limit_reset_beyond_the_bounded_wait_fails_with_the_reason(
    github_world: GitHubWorld,
) -> None:
    client = github_world.client()
    await client.token()
    github_world.fake.primary_rate_limit_next(1, reset_in_s=3600, match=r"GET /repos/acme/widgets$")
    with pytest.raises(GitHubRateLimitedError) as caught:
        await _get_repo(client)
    assert 3500 < caught.value.retry_after_s <= 3600
    github_world.fake.primary_rate_limit_next(1, reset_in_s=1, match=r"GET /repos/acme/widgets$")
    assert await _get_repo(client) == "acme/widgets"  # a short reset is waited for


CHILD = """
import asyncio, json, sys
import redis.asyncio as aioredis
from pydantic import SecretStr
from gaffer.providers.github_api import AppCredentials, GitHubClient, TokenCache, permissions_for
from gaffer.store.crypto import SecretBox

args = json.loads(sys.stdin.read())

async def main() -> None:
    redis = aioredis.from_url(args["redis_url"])
    client = GitHubClient(
        AppCredentials(app_id=args["app_id"], private_key_pem=SecretStr(args["pem"])),
        args["repository"], permissions=permissions_for("new"), base_url=args["base_url"],
        cache=TokenCache(redis, SecretBox(args["key"].encode())),
    )
    token = await client.token()
    await redis.aclose()
    print(json.dumps({"same": token == args["expect"]}))

asyncio.run(main())
"""


async def test_the_token_cache_is_shared_with_another_process(
    github_world: GitHubWorld, redis_url: str
) -> None:
    import asyncio
    import json
    import subprocess
    import sys

    token = await github_world.client().token()
    args = {
        "redis_url": redis_url,
        "app_id": github_world.credentials.app_id,
        "pem": github_world.credentials.private_key_pem.get_secret_value(),
        "repository": github_world.repo.full_name,
        "base_url": github_world.fake.api_url,
        "key": github_world.key,
        "expect": token,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"same": True}
    assert len(github_world.fake.minted) == 1  # the other process did not mint


async def test_the_installation_id_is_looked_up_once_and_again_after_a_reinstall(
    github_world: GitHubWorld,
) -> None:
    fake = github_world.fake
    lookup = "/repos/acme/widgets/installation"
    await github_world.client().token()
    await github_world.client("read-only").token()  # another scope: mints, no new lookup
    assert len(fake.calls(lookup)) == 1 and len(fake.minted) == 2
    # The app is reinstalled: the remembered id is gone, a new one is found.
    del fake.state.installations[github_world.installation.id]
    again = fake.add_installation("acme", ["widgets"])
    await github_world.redis.delete(
        *[k async for k in github_world.redis.scan_iter("gaffer:github:token:*")]
    )
    client = github_world.client()
    assert await _get_repo(client) == "acme/widgets"
    assert await client.installation_id() == again.id
    assert len(fake.calls(lookup)) == 2
