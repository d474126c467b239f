"""The role matrix of ``/api/v1``: every endpoint x every kind of caller -> the expected status,
over real HTTP against a running gaffer; no cross-organization read or write succeeds; an audit
row for every write that succeeded, none for one that failed."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from gaffer.accounts.models import AuditEvent
from tests.conftest import GafferFactory
from tests.support.accounts import World, seed
from tests.support.harness import Gaffer

CALLERS = ("anonymous", "member", "admin", "superadmin", "other_admin", "revoked", "expired")
_n = itertools.count()


@dataclass(frozen=True)
class Case:
    """One endpoint: ``path`` and ``body`` are built per caller (writes need fresh names);
    ``expect`` gives the status for member, admin, superadmin and other_admin (anonymous,
    revoked and expired always get 401)."""

    method: str
    path: Callable[[World], str]
    expect: tuple[int, int, int, int]
    body: Callable[[World], dict[str, Any]] | None = None


def fresh() -> str:
    return f"x{next(_n)}-{uuid.uuid4().hex[:6]}"


ACME = "/projects/acme-project"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEF\n-----END PRIVATE KEY-----\n"

CASES: dict[str, Case] = {
    "projects list": Case("GET", lambda w: "/projects", (200, 200, 200, 200)),
    "project show": Case("GET", lambda w: "/projects/acme-project", (200, 200, 200, 404)),
    "project show by id": Case(
        "GET", lambda w: f"/projects/{w.projects['acme']}", (200, 200, 200, 404)
    ),
    "project create": Case(
        "POST",
        lambda w: "/projects",
        (403, 201, 201, 404),
        lambda w: {
            "name": fresh(),
            "repository": "acme/new",
            "clone_url": "/x",
            "organization": "acme",
            "command": "true",
        },
    ),
    "project update": Case(
        "PATCH",
        lambda w: "/projects/acme-project",
        (403, 200, 200, 404),
        lambda w: {"base_branch": fresh(), "webhook_secret": "new-secret-value"},
    ),
    # Worker images are the superadmin's (issue 13): nobody else may even try.
    "project validate-image (none set)": Case(
        "POST", lambda w: "/projects/acme-project/validate-image", (403, 403, 400, 403)
    ),
    "project registry-auth": Case(
        "PUT",
        lambda w: "/projects/acme-project/registry-auth",
        (403, 403, 200, 403),
        lambda w: {"username": "robot", "password": "s3cret-pass"},
    ),
    "runs list": Case("GET", lambda w: "/runs", (200, 200, 200, 200)),
    "runs list of a project": Case(
        "GET", lambda w: "/runs?project=acme-project", (200, 200, 200, 404)
    ),
    "run show": Case("GET", lambda w: f"/runs/{w.runs['acme']}", (200, 200, 200, 404)),
    "run show by prefix": Case(
        "GET", lambda w: f"/runs/{w.runs['acme'][:8]}", (200, 200, 200, 404)
    ),
    "run logs": Case("GET", lambda w: f"/runs/{w.runs['acme']}/logs", (200, 200, 200, 404)),
    "run logs follow": Case(
        "GET", lambda w: f"/runs/{w.runs['acme']}/logs?follow=1", (200, 200, 200, 404)
    ),
    "run start": Case(
        "POST",
        lambda w: "/runs",
        (200, 200, 200, 404),
        lambda w: {"project": "acme-project", "agent_type": "implementation", "work_item": fresh()},
    ),
    "run retry": Case(
        "POST", lambda w: f"/runs/{w.runs['acme']}/retry", (200, 200, 200, 404), lambda w: {}
    ),
    "run cancel": Case(
        "POST", lambda w: f"/runs/{w.runs['acme']}/cancel", (200, 200, 200, 404), lambda w: {}
    ),
    "run tags (not buffered)": Case(
        "POST",
        lambda w: f"/runs/{w.runs['acme']}/tags",
        (409, 409, 409, 404),
        lambda w: {"tags": ["a"]},
    ),
    "run metadata (not buffered)": Case(
        "PUT",
        lambda w: f"/runs/{w.runs['acme']}/metadata",
        (409, 409, 409, 404),
        lambda w: {"metadata": {"k": "v"}, "version": 0},
    ),
    "deliveries list": Case("GET", lambda w: "/deliveries", (200, 200, 200, 200)),
    "deliveries of a project": Case(
        "GET", lambda w: "/deliveries?project=acme-project", (200, 200, 200, 404)
    ),
    "snapshots list": Case("GET", lambda w: "/snapshots", (200, 200, 200, 200)),
    "snapshots of a project": Case(
        "GET", lambda w: "/snapshots?project=acme-project", (200, 200, 200, 404)
    ),
    "organizations list": Case("GET", lambda w: "/organizations", (200, 200, 200, 200)),
    "organization create": Case(
        "POST", lambda w: "/organizations", (403, 403, 201, 403), lambda w: {"name": fresh()}
    ),
    "me": Case("GET", lambda w: "/me", (200, 200, 200, 200)),
    "users list": Case("GET", lambda w: "/users", (403, 200, 200, 200)),
    "user show": Case(
        "GET", lambda w: f"/users/{w.users['victim@acme.test']}", (404, 200, 200, 404)
    ),
    "user create": Case(
        "POST",
        lambda w: "/users",
        (403, 201, 201, 404),
        lambda w: {
            "email": f"{fresh()}@acme.test",
            "password": "a long enough password",
            "organization": "acme",
            "role": "member",
        },
    ),
    "user set role": Case(
        "PUT",
        lambda w: f"/users/{w.users['victim@acme.test']}/role",
        (404, 200, 200, 404),
        lambda w: {"role": "member", "organization": "acme"},
    ),
    "user grant superadmin": Case(
        "PUT",
        lambda w: f"/users/{w.users['victim@acme.test']}/role",
        (404, 403, 200, 404),
        lambda w: {"role": "none"},
    ),
    "user disable": Case(
        "POST", lambda w: f"/users/{w.users['victim@acme.test']}/disable", (404, 200, 200, 404)
    ),
    "user enable": Case(
        "POST", lambda w: f"/users/{w.users['victim@acme.test']}/enable", (404, 200, 200, 404)
    ),
    "tokens list": Case("GET", lambda w: "/tokens", (200, 200, 200, 200)),
    "tokens list all": Case("GET", lambda w: "/tokens?all=true", (403, 403, 200, 403)),
    "token create": Case(
        "POST", lambda w: "/tokens", (201, 201, 201, 201), lambda w: {"name": fresh()}
    ),
    "token revoke (the admin's)": Case(
        "DELETE", lambda w: f"/tokens/{w.token_ids['revoked']}", (404, 200, 200, 404)
    ),
    "audit": Case("GET", lambda w: "/audit", (403, 200, 200, 200)),
    "audit of acme": Case(
        "GET", lambda w: f"/audit?organization_id={w.orgs['acme']}", (403, 200, 200, 404)
    ),
    "buffer": Case("GET", lambda w: "/buffer", (403, 403, 200, 403)),
    "agents list": Case("GET", lambda w: f"{ACME}/agents", (200, 200, 200, 404)),
    "agent show": Case("GET", lambda w: f"{ACME}/agents/implementation", (200, 200, 200, 404)),
    "agent set": Case(
        "PATCH",
        lambda w: f"{ACME}/agents/implementation",
        (403, 200, 200, 404),
        lambda w: {"model": fresh(), "max_turns": 5},
    ),
    "agent set (template refused)": Case(
        "PATCH",
        lambda w: f"{ACME}/agents/implementation",
        (403, 400, 400, 404),
        lambda w: {"task_prompt": "{{ no_such_variable }}"},
    ),
    "agent reset": Case(
        "DELETE", lambda w: f"{ACME}/agents/implementation/overrides", (403, 200, 200, 404)
    ),
    "credentials list": Case("GET", lambda w: f"{ACME}/credentials", (200, 200, 200, 404)),
    "credential set": Case(
        "PUT",
        lambda w: f"{ACME}/credentials/ANTHROPIC_API_KEY",
        (403, 200, 200, 404),
        lambda w: {"value": f"sk-ant-{fresh()}-0123456789"},
    ),
    "credential delete (none)": Case(
        "DELETE", lambda w: f"{ACME}/credentials/NO_SUCH_KEY", (403, 404, 404, 404)
    ),
    "github set token": Case(
        "PUT",
        lambda w: f"{ACME}/github/token",
        (403, 200, 200, 404),
        lambda w: {"token": f"ghp_{fresh()}", "login": "acme-bot"},
    ),
    "github set app": Case(
        "PUT",
        lambda w: f"{ACME}/github/app",
        (403, 200, 200, 404),
        lambda w: {"app_id": 7, "private_key_pem": PEM},
    ),
    "github show": Case("GET", lambda w: f"{ACME}/github", (200, 200, 200, 404)),
    "usage": Case("GET", lambda w: "/usage", (200, 200, 200, 200)),
    "usage of a project": Case(
        "GET", lambda w: "/usage?project=acme-project&by=agent", (200, 200, 200, 404)
    ),
}


PUBLIC = {"POST /auth/login", "POST /auth/logout"}
"""Routes that need no authentication (tested in test_api_sessions.py)."""
OWN_PASSWORD = "POST /me/password"
"""Needs the caller's current password (tested in test_api_sessions.py)."""


def route_of(case: Case, world: World) -> str:
    """``METHOD /template`` of a case's path (ids and names put back as parameters)."""
    path = case.path(world).split("?")[0]
    names = {
        **{v: "{run_id}" for v in world.runs.values()},
        **{v[:8]: "{run_id}" for v in world.runs.values()},
        **{v: "{user}" for v in world.users.values()},
        **{v: "{token_id}" for v in world.token_ids.values()},
        **{v: "{name}" for v in world.projects.values()},
        "acme-project": "{name}",
        "implementation": "{agent_type}",
        "ANTHROPIC_API_KEY": "{credential}",
        "NO_SUCH_KEY": "{credential}",
    }
    parts = [names.get(part, part) for part in path.split("/")]
    return f"{case.method} {'/'.join(parts)}"


@pytest.fixture
def served(
    start_gaffer: GafferFactory, database_url: str | None
) -> Iterator[tuple[Gaffer, World, httpx.Client]]:
    """A gaffer (ingest only) on SQLite and on PostgreSQL, seeded, with a client of its API."""
    gaffer = start_gaffer(roles=("ingest",), database_url=database_url)
    world = seed(gaffer.rt.db, gaffer.rt.box)
    with httpx.Client(base_url=gaffer.url + "/api/v1", timeout=30) as client:
        yield gaffer, world, client


def call(client: httpx.Client, world: World, who: str, case: Case, rid: str) -> httpx.Response:
    headers = {"X-Request-ID": rid}
    if who != "anonymous":
        headers["Authorization"] = f"Bearer {world.tokens[who]}"
    body = case.body(world) if case.body else None
    return client.request(case.method, case.path(world), json=body, headers=headers)


def test_every_endpoint_answers_every_caller_as_its_role_allows(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    gaffer, world, client = served
    wrong: list[str] = []
    writes: dict[str, bool] = {}
    for (name, case), who in itertools.product(CASES.items(), CALLERS):
        rid = uuid.uuid4().hex
        answer = call(client, world, who, case, rid)
        if who in ("anonymous", "revoked", "expired"):
            expected = 401
        else:
            expected = case.expect[("member", "admin", "superadmin", "other_admin").index(who)]
        if answer.status_code != expected:
            wrong.append(f"{name} as {who}: {answer.status_code} (want {expected}) {answer.text}")
        assert answer.headers["x-request-id"] == rid
        if answer.status_code == 401:
            assert answer.headers["www-authenticate"] == "Bearer"
        if case.method != "GET":
            writes[rid] = answer.is_success
    assert wrong == []
    with gaffer.rt.db.session() as session:
        audited = set(session.scalars(select(AuditEvent.request_id)))
    assert {rid for rid, ok in writes.items() if ok} <= audited
    assert not {rid for rid, ok in writes.items() if not ok} & audited


def test_the_matrix_covers_every_route_of_the_openapi_document(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    _, world, client = served
    document = client.get("/openapi.json").json()
    routes = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
    }
    covered = {route_of(case, world) for case in CASES.values()}
    assert covered <= routes
    assert routes - covered == PUBLIC | {OWN_PASSWORD}


def test_no_list_shows_another_organizations_records(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    _, world, client = served

    def get(who: str, path: str) -> Any:
        answer = client.get(path, headers={"Authorization": f"Bearer {world.tokens[who]}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    for who, mine in (("member", "acme"), ("other_admin", "other")):
        assert [p["id"] for p in get(who, "/projects")] == [world.projects[mine]]
        assert [r["id"] for r in get(who, "/runs")["items"]] == [world.runs[mine]]
        assert [d["project_id"] for d in get(who, "/deliveries")] == [world.projects[mine]]
        assert [o["id"] for o in get(who, "/organizations")] == [world.orgs[mine]]
        assert get(who, f"/runs?project={world.projects[mine]}")["items"]
    audit = get("other_admin", "/audit")["items"]
    assert audit and {e["organization_id"] for e in audit} == {world.orgs["other"]}
    users = get("other_admin", "/users")
    assert [u["email"] for u in users] == ["admin@other.test"]
    everything = get("superadmin", "/projects")
    assert {p["id"] for p in everything} == set(world.projects.values())


def test_a_project_update_is_audited_with_the_secret_masked(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    _, world, client = served
    auth = {"Authorization": f"Bearer {world.tokens['admin']}", "X-Request-ID": "req-1"}
    answer = client.patch(
        "/projects/acme-project", json={"webhook_secret": "brand-new-secret"}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    [row] = client.get("/audit?action=project.update", headers=auth).json()["items"]
    assert row["actor"] == "admin@acme.test" and row["actor_type"] == "token"
    assert row["actor_token_id"] == world.token_ids["admin"] and row["via"] == "api"
    assert row["request_id"] == "req-1" and row["target_id"] == world.projects["acme"]
    assert row["change"]["after"] == {"webhook_secret": "********"}
    assert "brand-new-secret" not in answer.text + str(row)


def test_secrets_are_write_only_and_each_write_is_audited_without_them(
    served: tuple[Gaffer, World, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    gaffer, world, client = served
    value = f"sk-ant-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    token = f"ghp_{uuid.uuid4().hex}"
    key_line = uuid.uuid4().hex
    pem = f"-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----\n"
    texts: list[str] = []

    def send(method: str, path: str, rid: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {world.tokens['admin']}", "X-Request-ID": rid}
        answer = client.request(method, ACME + path, json=body, headers=headers)
        texts.append(answer.text)
        return answer

    caplog.set_level("DEBUG")
    with capture_logs() as events:
        set_ = send("PUT", "/credentials/ANTHROPIC_API_KEY", "cred-set", {"value": f"\n{value}\n"})
        assert set_.status_code == 200, set_.text
        assert set_.json()["name"] == "ANTHROPIC_API_KEY"
        assert set_.json()["masked"] == "…" + value[-4:]
        refused = send("PUT", "/credentials/ANTHROPIC_API_KEY", "cred-empty", {"value": " \n"})
        assert (refused.status_code, refused.json()) == (
            400,
            {"error": "the credential value is empty (it is read from stdin)"},
        )
        assert send("PUT", "/credentials/1BAD", "cred-name", {"value": value}).status_code == 400
        shaped = send("PUT", "/credentials/ANTHROPIC_API_KEY", "cred-422", {"value": [value]})
        assert shaped.status_code == 422 and shaped.json()["detail"][0]["loc"] == ["body", "value"]
        listed = send("GET", "/credentials", "cred-list").json()
        assert [(c["name"], c["masked"]) for c in listed] == [
            ("ANTHROPIC_API_KEY", "…" + value[-4:])
        ]

        gh = send("PUT", "/github/token", "gh-token", {"token": token, "login": "acme-bot"})
        assert gh.status_code == 200, gh.text
        assert gh.json()["credentials"]["token"] == "******"
        assert send("GET", "", "project").json()["bot_login"] == "acme-bot"
        assert send("PUT", "/github/token", "gh-bad", {"token": "a b"}).json() == {
            "error": "the token is empty or contains whitespace"
        }
        app = send("PUT", "/github/app", "gh-app", {"app_id": 7, "private_key_pem": pem})
        assert app.status_code == 200 and app.json()["credentials"]["app_id"] == 7
        assert send("GET", "/github", "gh-show").json()["private_key"].startswith("******")
        # Where gaffer and its workers connect is the installation's decision, not an admin's.
        elsewhere = {"token": token, "api_url": "http://169.254.169.254/latest"}
        moved = send("PUT", "/github/token", "gh-url", elsewhere)
        assert moved.status_code == 403 and "superadmin" in moved.json()["error"], moved.text
        kept = send("GET", "/github", "gh-show-kept").json()
        assert (kept["kind"], kept["api_url"]) == ("app", "https://api.github.com")

        before = send("GET", "/agents/implementation", "agent-show").json()
        bad = send("PATCH", "/agents/implementation", "agent-bad", {"task_prompt": "{{ nope }}"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("task_prompt")
        engine = send("PATCH", "/agents/implementation", "agent-engine", {"engine": "nope"})
        assert engine.json()["error"].startswith("engine: unknown engine 'nope'")
        unknown = send("PATCH", "/agents/no_such_agent", "agent-type", {"model": "m"})
        assert unknown.status_code == 400 and "no agent type 'no_such_agent'" in unknown.text
        assert send("GET", "/agents/implementation", "agent-show").json() == before
        changed = send(
            "PATCH",
            "/agents/implementation",
            "agent-set",
            {"model": "m-1", "credential": "ANTHROPIC_API_KEY"},
        )
        fields = changed.json()["fields"]
        assert fields["model"] == {"value": "m-1", "source": "project override"}
        assert fields["credential"]["source"] == "project override"
        reset = send("DELETE", "/agents/implementation/overrides?field=model", "agent-reset")
        assert reset.json()["fields"]["model"]["source"] == "package"
        assert reset.json()["fields"]["credential"]["source"] == "project override"
        assert (
            send(
                "DELETE", "/agents/implementation/overrides?field=bogus", "agent-reset-bad"
            ).status_code
            == 400
        )

        assert send("DELETE", "/credentials/ANTHROPIC_API_KEY", "cred-del").status_code == 204
        again = send("DELETE", "/credentials/ANTHROPIC_API_KEY", "cred-del-again")
        assert (again.status_code, again.json()) == (
            404,
            {"error": "no credential named 'ANTHROPIC_API_KEY' on this project"},
        )

    with gaffer.rt.db.session() as session:
        rows = list(session.scalars(select(AuditEvent)))
        actions = {r.request_id: r.action for r in rows if r.request_id}
        changes = {r.request_id: r.change for r in rows if r.request_id}
        everything = json.dumps([(r.action, r.change) for r in rows])
    assert actions == {
        "cred-set": "credential.set",
        "gh-token": "github_credentials.set",
        "gh-app": "github_credentials.set",
        "agent-set": "agent.set",
        "agent-reset": "agent.reset",
        "cred-del": "credential.delete",
    }
    assert changes["cred-set"] == {"name": "ANTHROPIC_API_KEY", "value": "********"}
    assert changes["gh-token"] == {
        "kind": "token",
        "api_url": None,
        "login": "acme-bot",
        "token": "********",
        "bot_login": "acme-bot",
    }
    assert changes["agent-set"]["after"]["overrides"]["model"] == "m-1"
    logged = caplog.text + json.dumps(events, default=str)
    for secret in (value, token, key_line):
        assert secret not in "".join(texts) + everything + logged
