"""The fake GitHub's own rules: app JWTs, installation tokens, failures (what gaffer's tests
rely on it to refuse)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.auth import App
from tests.support.fake_github.fixtures import fake_github

__all__ = ["fake_github"]


def _jwt(app: App, *, iss: object = None, exp_in: int = 540, key: str | None = None) -> str:
    now = int(time.time()) - 60
    return jwt.encode(
        {"iss": str(iss or app.id), "iat": now, "exp": now + 60 + exp_in},
        key or app.private_key_pem,
        algorithm="RS256",
    )


def _mint(fake: FakeGitHub, token: str, installation: int, body: object) -> httpx.Response:
    return httpx.post(
        f"{fake.api_url}/app/installations/{installation}/access_tokens",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def installed(fake_github: FakeGitHub) -> int:
    fake_github.add_repo("acme/widgets")
    return fake_github.add_installation(
        "acme", ["widgets"], {"contents": "read", "issues": "write"}
    ).id


def test_the_app_jwt_must_be_signed_by_the_apps_key_for_its_id_and_unexpired(
    fake_github: FakeGitHub, installed: int
) -> None:
    app = fake_github.app
    ok = _mint(fake_github, _jwt(app), installed, {"repositories": ["widgets"]})
    assert ok.status_code == 201 and ok.json()["token"].startswith("ghs_")
    other_key = App.generate().private_key_pem
    for bad in (
        _jwt(app, iss=app.id + 1),
        _jwt(app, exp_in=-120),
        _jwt(app, key=other_key),
        _jwt(app, exp_in=3600),
    ):
        assert _mint(fake_github, bad, installed, {}).status_code == 401
    assert httpx.get(f"{fake_github.api_url}/app").status_code == 401


def test_installation_tokens_get_no_more_than_the_installation_has(
    fake_github: FakeGitHub, installed: int
) -> None:
    token = _jwt(fake_github.app)
    assert _mint(fake_github, token, installed, {"repositories": ["secret"]}).status_code == 422
    assert (
        _mint(fake_github, token, installed, {"permissions": {"contents": "write"}}).status_code
        == 422
    )
    assert _mint(fake_github, token, 424242, {}).status_code == 404
    minted = _mint(fake_github, token, installed, {"permissions": {"issues": "write"}}).json()
    assert minted["permissions"] == {"issues": "write"}
    headers = {"Authorization": f"token {minted['token']}"}
    issue = fake_github.add_issue(fake_github.state.repo("acme", "widgets"), "x")  # type: ignore[arg-type]
    url = f"{fake_github.api_url}/repos/acme/widgets"
    assert httpx.get(f"{url}/issues/{issue.number}", headers=headers).status_code == 200
    refused = httpx.post(
        f"{url}/check-runs", headers=headers, json={"name": "x", "head_sha": "a" * 40}
    )
    assert refused.status_code == 403  # checks were not granted
    assert httpx.get(url, headers={"Authorization": "token ghs_unknown"}).status_code == 401


def test_injected_failures(fake_github: FakeGitHub, installed: int) -> None:
    pat = fake_github.add_pat("alice")
    headers = {"Authorization": f"token {pat}"}
    url = f"{fake_github.api_url}/repos/acme/widgets"
    fake_github.fail_next(2, 502)
    assert [httpx.get(url, headers=headers).status_code for _ in range(3)] == [502, 502, 200]
    fake_github.rate_limit_next(1, retry_after_s=7)
    limited = httpx.get(url, headers=headers)
    assert limited.status_code == 403 and limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    fake_github.hang_next(0.8)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=headers, timeout=0.3)


def test_a_call_to_an_operation_outside_the_pruned_description_is_a_violation(
    fake_github: FakeGitHub,
) -> None:
    pat = fake_github.add_pat("alice")
    answer = httpx.get(
        f"{fake_github.api_url}/repos/acme/widgets/branches",
        headers={"Authorization": f"token {pat}"},
    )
    assert answer.status_code == 404
    (violation,) = fake_github.violations
    assert "pruned description" in violation.errors
    fake_github.violations.clear()
