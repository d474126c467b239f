"""Every GitHub fixture payload, delivered the ways GitHub and attackers deliver it.

For each fixture: signed, unsigned, with a wrong secret, twice with the same delivery id,
truncated, and oversize. The HTTP status and the recorded delivery decision are asserted, on
SQLite and on PostgreSQL. Ingest runs alone here (no dispatch), so queued runs stay QUEUED.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator

import pytest

from gaffer.store.models import Run
from gaffer.store.runs import count_runs
from tests.conftest import GafferFactory
from tests.support.harness import FIXTURES, Gaffer, ProjectInfo
from tests.support.servers import RedisServer

# fixture name -> (status, decision, agent types of the runs it creates)
EXPECTED: dict[str, tuple[int, str, list[str]]] = {
    "check_run.completed": (202, "ignored", []),
    "check_suite.completed": (202, "queued", ["review"]),
    "check_suite.requested": (202, "ignored", []),
    "issue_comment.created": (202, "ignored", []),
    "issues.edited": (202, "ignored", []),
    "issues.labeled": (202, "queued", ["implementation"]),
    "issues.opened": (202, "ignored", []),
    "ping.event": (200, "pong", []),
    "pull_request.closed": (202, "ignored", []),
    "pull_request.labeled": (202, "ignored", []),
    "pull_request.opened": (202, "queued", ["review"]),
    "pull_request.review_requested": (202, "ignored", []),
    "pull_request.synchronize": (202, "ignored", []),
    "pull_request_review.submitted": (202, "ignored", []),
    "pull_request_review_comment.created": (202, "ignored", []),
    "push.event": (202, "ignored", []),
    "workflow_run.completed": (202, "ignored", []),
}
FIXTURE_NAMES = sorted(p.name.removesuffix(".json") for p in FIXTURES.glob("*.json"))


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == FIXTURE_NAMES


@pytest.fixture
def ingest(
    start_gaffer: GafferFactory, database_url: str | None
) -> Iterator[tuple[Gaffer, ProjectInfo]]:
    gaffer = start_gaffer(roles=("ingest",), database_url=database_url)
    project = gaffer.create_project(with_repository=False)
    yield gaffer, project


def _event(name: str) -> str:
    return name.split(".")[0]


def _recorded(gaffer: Gaffer, delivery_id: str) -> list[tuple[int, str]]:
    return sorted((d["status_code"], d["decision"]) for d in gaffer.deliveries(delivery_id))


def _runs_of(gaffer: Gaffer, delivery_id: str) -> list[str]:
    with gaffer.rt.db.session() as session:
        return sorted(r.agent_type for r in session.query(Run).filter_by(delivery_id=delivery_id))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_deliveries(ingest: tuple[Gaffer, ProjectInfo], name: str) -> None:
    gaffer, project = ingest
    body = (FIXTURES / f"{name}.json").read_bytes()
    event = _event(name)
    status, decision, agents = EXPECTED[name]

    # Signed: the expected answer, and the runs it makes.
    signed = str(uuid.uuid4())
    response = gaffer.deliver(body, event, project.secret, delivery_id=signed)
    assert (response.status_code, response.json()["decision"]) == (status, decision), response.text
    assert _recorded(gaffer, signed) == [(status, decision)]
    assert _runs_of(gaffer, signed) == agents
    assert len(response.json()["runs"]) == len(agents)

    # Twice with the same delivery id: the redelivery creates nothing.
    again = gaffer.deliver(body, event, project.secret, delivery_id=signed)
    if decision == "pong":
        assert again.status_code == 200 and again.json()["decision"] == "pong"
    else:
        assert (again.status_code, again.json()["decision"]) == (200, "duplicate")
        assert sorted(_recorded(gaffer, signed)) == sorted([(status, decision), (200, "duplicate")])
    assert _runs_of(gaffer, signed) == agents

    # Unsigned and wrongly signed: 401, nothing created.
    for secret in (None, secrets.token_hex(16)):
        delivery = str(uuid.uuid4())
        response = gaffer.deliver(body, event, secret, delivery_id=delivery)
        assert response.status_code == 401
        assert response.json()["decision"] == "rejected"
        assert _recorded(gaffer, delivery) == [(401, "rejected")]
        assert _runs_of(gaffer, delivery) == []

    # Truncated (and validly signed, so it is the body that is refused): 400.
    delivery = str(uuid.uuid4())
    response = gaffer.deliver(body[: len(body) // 2], event, project.secret, delivery_id=delivery)
    assert response.status_code == 400
    assert "JSON" in response.json()["reason"]
    assert _recorded(gaffer, delivery) == [(400, "rejected")]

    # Oversize (valid JSON, validly signed, one byte over 25 MiB): 413.
    limit = gaffer.settings.webhook_max_body_bytes
    assert limit == 25 * 1024 * 1024
    oversize = body.rstrip() + b" " * (limit + 1 - len(body.rstrip()))
    assert len(oversize) == limit + 1 and json.loads(oversize)
    delivery = str(uuid.uuid4())
    response = gaffer.deliver(oversize, event, project.secret, delivery_id=delivery)
    assert response.status_code == 413
    assert _recorded(gaffer, delivery) == [(413, "rejected")]
    assert _runs_of(gaffer, delivery) == []


def test_missing_headers_are_400(ingest: tuple[Gaffer, ProjectInfo]) -> None:
    gaffer, project = ingest
    body = (FIXTURES / "issues.labeled.json").read_bytes()
    no_delivery = gaffer.deliver(body, "issues", project.secret, headers={"X-GitHub-Delivery": ""})
    assert no_delivery.status_code == 400
    assert "X-GitHub-Delivery" in no_delivery.json()["reason"]
    no_event = gaffer.deliver(body, "", project.secret)
    assert no_event.status_code == 400
    assert "X-GitHub-Event" in no_event.json()["reason"]
    with gaffer.rt.db.session() as session:
        assert count_runs(session) == 0


@pytest.mark.parametrize(
    ("name", "path", "bad"),
    [
        ("issues.labeled", ("label", "name"), 5),
        ("issues.labeled", ("issue", "title"), ["a", "list"]),
        ("issues.labeled", ("action",), {"an": "object"}),
        ("check_suite.completed", ("check_suite", "head_sha"), 7),
        ("pull_request.opened", ("pull_request", "head"), "a string"),
        ("pull_request_review.submitted", ("review", "state"), 5),
        ("issue_comment.created", ("comment", "body"), ["hi"]),
    ],
)
def test_a_signed_body_that_mistypes_a_field_is_400_and_a_corrected_redelivery_is_taken(
    ingest: tuple[Gaffer, ProjectInfo], name: str, path: tuple[str, ...], bad: object
) -> None:
    gaffer, project = ingest
    good = (FIXTURES / f"{name}.json").read_bytes()
    payload = json.loads(good)
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    delivery = str(uuid.uuid4())

    body = json.dumps(payload).encode()
    response = gaffer.deliver(body, _event(name), project.secret, delivery_id=delivery)
    assert response.status_code == 400, response.text
    assert "mistypes a field" in response.json()["reason"]
    assert _recorded(gaffer, delivery) == [(400, "rejected")]
    assert _runs_of(gaffer, delivery) == []

    # GitHub (or the sender, fixed) redelivers with the same id: not a duplicate, handled.
    status, decision, agents = EXPECTED[name]
    again = gaffer.deliver(good, _event(name), project.secret, delivery_id=delivery)
    assert (again.status_code, again.json()["decision"]) == (status, decision), again.text
    assert _runs_of(gaffer, delivery) == agents


def test_overlong_headers_are_400_and_an_overlong_action_is_recorded_cut(
    ingest: tuple[Gaffer, ProjectInfo],
) -> None:
    gaffer, project = ingest
    body = (FIXTURES / "issues.opened.json").read_bytes()
    long_id = "d" * 200
    response = gaffer.deliver(body, "issues", project.secret, delivery_id=long_id)
    assert response.status_code == 400
    assert "X-GitHub-Delivery is over 128 characters" in response.json()["reason"]
    assert _recorded(gaffer, long_id[:128]) == [(400, "rejected")]
    response = gaffer.deliver(body, "i" * 129, project.secret, delivery_id=str(uuid.uuid4()))
    assert response.status_code == 400
    assert "X-GitHub-Event is over 128 characters" in response.json()["reason"]

    payload = json.loads(body)
    payload["action"] = "a" * 300
    delivery = str(uuid.uuid4())
    body = json.dumps(payload).encode()
    response = gaffer.deliver(body, "issues", project.secret, delivery_id=delivery)
    assert (response.status_code, response.json()["decision"]) == (202, "ignored")
    [record] = gaffer.deliveries(delivery)
    assert record["action"] == "a" * 128


def test_body_at_the_limit_is_accepted(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer(roles=("ingest",))
    project = gaffer.create_project(with_repository=False)
    body = (FIXTURES / "push.event.json").read_bytes()
    limit = gaffer.settings.webhook_max_body_bytes
    padded = body.rstrip() + b" " * (limit - len(body.rstrip()))
    response = gaffer.deliver(padded, "push", project.secret)
    assert (response.status_code, response.json()["decision"]) == (202, "ignored")


def test_per_project_url_and_repository_mismatch(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer(roles=("ingest",))
    hello = gaffer.create_project(with_repository=False)
    other = gaffer.create_project(with_repository=False, repository="octo-org/other")
    body = (FIXTURES / "issues.labeled.json").read_bytes()

    # Signed by the right project, through its own URL.
    ok = gaffer.deliver(body, "issues", hello.secret, path=f"/webhooks/github/{hello.name}")
    assert ok.json()["decision"] == "queued"
    # Hello-World's payload signed with the other project's secret: verified, not its repository.
    mismatch = gaffer.deliver(body, "issues", other.secret)
    assert (mismatch.status_code, mismatch.json()["decision"]) == (202, "ignored")
    assert "Codertocat/Hello-World" in mismatch.json()["reason"]
    # The right secret on another project's URL does not verify.
    wrong_url = gaffer.deliver(body, "issues", hello.secret, path=f"/webhooks/github/{other.name}")
    assert wrong_url.status_code == 401
    assert wrong_url.json()["reason"] == (
        f"no project {other.name!r} whose secret matches the signature"
    )
    # A name that is no project's reads the same: callers do not learn which names exist.
    nobody = gaffer.deliver(body, "issues", hello.secret, path="/webhooks/github/nobody")
    assert (nobody.status_code, nobody.json()["reason"]) == (
        401,
        "no project 'nobody' whose secret matches the signature",
    )


def test_healthz(start_gaffer: GafferFactory, redis_server: RedisServer) -> None:
    gaffer = start_gaffer(roles=("ingest",))
    response = gaffer.http.get(gaffer.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "database": "ok"}
    redis_server.stop()
    try:
        down = gaffer.http.get(gaffer.url + "/healthz")
        assert down.status_code == 503
        assert down.json()["database"] == "ok"
        assert down.json()["redis"].startswith("error")
    finally:
        redis_server.start()
    assert gaffer.http.get(gaffer.url + "/healthz").status_code == 200


def test_redis_down_is_503_and_loses_nothing(
    start_gaffer: GafferFactory, redis_server: RedisServer
) -> None:
    gaffer = start_gaffer(roles=("ingest",))
    project = gaffer.create_project(with_repository=False)
    body = (FIXTURES / "issues.labeled.json").read_bytes()
    delivery = str(uuid.uuid4())
    redis_server.stop()
    try:
        response = gaffer.deliver(body, "issues", project.secret, delivery_id=delivery)
        assert response.status_code == 503
        assert _recorded(gaffer, delivery) == [(503, "error")]
    finally:
        redis_server.start()
    # GitHub's redelivery of the same id succeeds once Redis is back.
    retry = gaffer.deliver(body, "issues", project.secret, delivery_id=delivery)
    assert (retry.status_code, retry.json()["decision"]) == (202, "queued")
    assert _runs_of(gaffer, delivery) == ["implementation"]
