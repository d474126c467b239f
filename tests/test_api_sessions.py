"""Browser sessions over real HTTP: the cookie's flags, rate-limited logins, a password change
ending the other sessions, logout."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gaffer.accounts.roles import Role
from gaffer.accounts.users import create_user
from gaffer.store.projects import get_or_create_organization
from tests.conftest import GafferFactory
from tests.support.accounts import LOCAL, PASSWORD


@pytest.fixture
def api(start_gaffer: GafferFactory) -> Iterator[httpx.Client]:
    gaffer = start_gaffer(roles=("ingest",))
    with gaffer.rt.db.session() as session:
        org = get_or_create_organization(session, "acme")
        for email in ("ann@acme.test", "bob@acme.test"):
            create_user(
                session, LOCAL, email=email, password=PASSWORD, organization_id=org.id,
                role=Role.MEMBER,
            )  # fmt: skip
    with httpx.Client(base_url=gaffer.url + "/api/v1", timeout=30) as client:
        yield client


def login(api: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return api.post("/auth/login", json={"email": email, "password": password})


def session_of(answer: httpx.Response) -> dict[str, str]:
    """The Cookie header for the session ``answer`` set (httpx keeps Secure cookies for
    https only, so the test carries it itself, as a browser would over TLS)."""
    assert answer.status_code == 200, answer.text
    return {"Cookie": f"gaffer_session={answer.cookies['gaffer_session']}"}


def test_login_sets_a_secure_http_only_cookie_that_authenticates(api: httpx.Client) -> None:
    answer = login(api, "ANN@acme.test")
    cookie = answer.headers["set-cookie"].lower()
    for flag in ("httponly", "secure", "samesite=strict", "path=/"):
        assert flag in cookie
    assert answer.json()["email"] == "ann@acme.test"
    assert api.get("/me", headers=session_of(answer)).json()["email"] == "ann@acme.test"
    assert api.get("/me", headers={"Cookie": "gaffer_session=forged"}).status_code == 401
    assert api.get("/me").status_code == 401


def test_failed_logins_are_limited_per_account_then_per_address(api: httpx.Client) -> None:
    for _ in range(5):
        wrong = login(api, "ann@acme.test", "not the password")
        assert wrong.status_code == 401 and wrong.json() == {"error": "wrong email or password"}
    limited = login(api, "ann@acme.test")  # even the right password, now
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 900
    assert login(api, "nobody@acme.test", "whatever").status_code == 401
    # Another account from this address may still sign in, until the address's limit.
    assert login(api, "bob@acme.test").status_code == 200
    for n in range(14):  # 6 failures so far; the address's limit is 20
        assert login(api, f"x{n}@acme.test", "whatever").status_code == 401
    assert login(api, "bob@acme.test").status_code == 429


def test_a_password_change_ends_the_other_sessions(api: httpx.Client) -> None:
    here, there = session_of(login(api, "ann@acme.test")), session_of(login(api, "ann@acme.test"))
    refused = api.post(
        "/me/password",
        json={"current_password": "wrong one", "new_password": "a brand new password"},
        headers=here,
    )
    assert refused.status_code == 401
    changed = api.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=here,
    )
    assert changed.status_code == 200 and changed.json() == {"sessions_ended": 1}
    assert api.get("/me", headers=here).status_code == 200
    assert api.get("/me", headers=there).status_code == 401
    assert login(api, "ann@acme.test").status_code == 401
    assert login(api, "ann@acme.test", "a brand new password").status_code == 200
    logout = api.post("/auth/logout", headers=here)
    assert logout.status_code == 204
    assert api.get("/me", headers=here).status_code == 401
