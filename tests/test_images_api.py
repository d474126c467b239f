"""A project's worker image over real HTTP (issue 13): only a superadmin sets or clears it,
a malformed reference is 400, every set and clear is audited before the validation job is
enqueued (even when the enqueue then fails), and the launch rule: verified digest, else a
run fails at once for a reference that is not verified, else the global default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from gaffer.accounts.models import AuditEvent
from gaffer.images import queue
from gaffer.images.launch import WorkerImageNotReadyError, effective_image
from gaffer.images.state import ValidationResult, describe, record_result
from gaffer.store.models import Project
from tests.conftest import GafferFactory
from tests.support.accounts import World, seed
from tests.support.harness import Gaffer
from tests.support.servers import RedisServer

GOOD = "127.0.0.1:5999/team/worker:v1"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def served(
    start_gaffer: GafferFactory, database_url: str | None
) -> Iterator[tuple[Gaffer, World, httpx.Client]]:
    gaffer = start_gaffer(roles=("ingest",), database_url=database_url)
    world = seed(gaffer.rt.db, gaffer.rt.box)
    with httpx.Client(base_url=gaffer.url + "/api/v1", timeout=30) as client:
        yield gaffer, world, client


def patch(client: httpx.Client, world: World, who: str, body: dict[str, Any]) -> httpx.Response:
    return client.patch(
        "/projects/acme-project",
        json=body,
        headers={"Authorization": f"Bearer {world.tokens[who]}"},
    )


def state(gaffer: Gaffer, name: str = "acme-project") -> tuple[Any, ...]:
    with gaffer.rt.db.session() as session:
        p = session.scalar(select(Project).where(Project.name == name))
        assert p is not None
        return (p.worker_image, p.worker_image_status, p.worker_image_digest, p.worker_image_error)


def image_audits(gaffer: Gaffer) -> list[dict[str, Any]]:
    with gaffer.rt.db.session() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "project.worker_image_changed")
            .order_by(AuditEvent.id)
        )
        return [dict(r.change) for r in rows]


def queued(redis_url: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [
            {"project_id": r.project_id, "reference": r.reference}
            for r in map(queue.ValidationRequest.decode, client.lrange(queue.QUEUE_KEY, 0, -1))
        ]
    finally:
        client.close()


@pytest.mark.parametrize("who", ["member", "admin"])
def test_a_non_superadmin_gets_403_and_nothing_is_written(
    served: tuple[Gaffer, World, httpx.Client], who: str, redis_url: str
) -> None:
    gaffer, world, client = served
    for body in ({"worker_image": GOOD}, {"clear_worker_image": True}):
        answer = patch(client, world, who, body | {"trigger_label": "changed"})
        assert answer.status_code == 403, answer.text
        assert state(gaffer) == (None, None, None, None)
    with gaffer.rt.db.session() as session:
        label = session.scalar(select(Project.trigger_label).where(Project.name == "acme-project"))
    assert label == "gaffer"
    assert image_audits(gaffer) == []
    assert queued(redis_url) == []


@pytest.mark.parametrize(
    "reference",
    ["team/Worker", "host:99999/x", "x@sha256:abc", "a//b", "x:" + "t" * 129, "a b", ""],
)
def test_a_malformed_reference_is_400_and_nothing_is_written(
    served: tuple[Gaffer, World, httpx.Client], reference: str, redis_url: str
) -> None:
    gaffer, world, client = served
    answer = patch(client, world, "superadmin", {"worker_image": reference})
    assert answer.status_code == 400, answer.text
    assert "error" in answer.json()
    assert state(gaffer) == (None, None, None, None)
    assert image_audits(gaffer) == []
    assert queued(redis_url) == []


def test_set_then_clear_by_a_superadmin_is_audited_and_enqueued(
    served: tuple[Gaffer, World, httpx.Client], redis_url: str
) -> None:
    gaffer, world, client = served
    both = patch(client, world, "superadmin", {"worker_image": GOOD, "clear_worker_image": True})
    assert both.status_code == 400
    answer = patch(client, world, "superadmin", {"worker_image": GOOD})
    assert answer.status_code == 200, answer.text
    assert answer.json()["worker_image_status"] == "pending"
    assert state(gaffer) == (GOOD, "pending", None, None)
    project_id = world.projects["acme"]
    assert queued(redis_url) == [{"project_id": project_id, "reference": GOOD}]
    # A verified result, then a new reference: digest and error cleared, pending again.
    with gaffer.rt.db.session() as session:
        assert record_result(session, project_id, ValidationResult(GOOD, digest=f"x@{DIGEST}"))
    assert state(gaffer) == (GOOD, "verified", f"x@{DIGEST}", None)
    second = "127.0.0.1:5999/team/worker:v2"
    assert patch(client, world, "superadmin", {"worker_image": second}).status_code == 200
    assert state(gaffer) == (second, "pending", None, None)
    cleared = patch(client, world, "superadmin", {"clear_worker_image": True})
    assert cleared.status_code == 200
    assert state(gaffer) == (None, None, None, None)
    assert len(queued(redis_url)) == 2  # a clear enqueues nothing
    audits = image_audits(gaffer)
    assert [(a["actor"], a["project"], a["from"], a["to"]) for a in audits] == [
        ("root@gaffer.test", "acme-project", None, GOOD),
        ("root@gaffer.test", "acme-project", GOOD, second),
        ("root@gaffer.test", "acme-project", second, None),
    ]
    show = client.get(
        "/projects/acme-project", headers={"Authorization": f"Bearer {world.tokens['member']}"}
    ).json()
    assert describe(show) == "(global default)"


def test_the_change_is_audited_even_when_the_enqueue_fails(
    served: tuple[Gaffer, World, httpx.Client], redis_server: RedisServer
) -> None:
    gaffer, world, client = served
    redis_server.stop()
    try:
        answer = patch(client, world, "superadmin", {"worker_image": GOOD})
    finally:
        redis_server.start()
    assert answer.status_code == 503, answer.text
    assert "could not be enqueued" in answer.json()["error"]
    assert state(gaffer) == (GOOD, "pending", None, None)
    assert [(a["from"], a["to"]) for a in image_audits(gaffer)] == [(None, GOOD)]


def test_launch_uses_the_verified_digest_and_refuses_an_image_not_verified(
    served: tuple[Gaffer, World, httpx.Client],
) -> None:
    gaffer, world, client = served
    db, default = gaffer.rt.db, "localhost/gaffer-worker:latest"
    acme, other = world.projects["acme"], world.projects["other"]
    assert effective_image(db, acme, default) == default
    assert patch(client, world, "superadmin", {"worker_image": GOOD}).status_code == 200
    with pytest.raises(WorkerImageNotReadyError, match="is not verified yet"):
        effective_image(db, acme, default)
    with db.session() as session:
        record_result(session, acme, ValidationResult(GOOD, error="smoke test check failed: git"))
    with pytest.raises(WorkerImageNotReadyError, match="failed validation: smoke test check"):
        effective_image(db, acme, default)
    assert effective_image(db, other, default) == default  # other projects are unaffected
    with db.session() as session:
        assert record_result(
            session, acme, ValidationResult(GOOD, digest=f"127.0.0.1:5999/team/worker@{DIGEST}")
        )
        # A result for a reference that is no longer the project's is dropped.
        assert not record_result(session, acme, ValidationResult("old/ref:1", error="x"))
    assert effective_image(db, acme, default) == f"127.0.0.1:5999/team/worker@{DIGEST}"


def test_create_with_a_worker_image_needs_a_superadmin_and_reports_a_failed_enqueue(
    served: tuple[Gaffer, World, httpx.Client], redis_server: RedisServer
) -> None:
    gaffer, world, client = served
    body = {
        "repository": "acme/imaged",
        "clone_url": "/x",
        "organization": "acme",
        "command": "true",
        "worker_image": GOOD,
    }
    as_admin = client.post(
        "/projects",
        json=body | {"name": "by-admin"},
        headers={"Authorization": f"Bearer {world.tokens['admin']}"},
    )
    assert as_admin.status_code == 403, as_admin.text
    with gaffer.rt.db.session() as session:
        assert session.scalar(select(Project.id).where(Project.name == "by-admin")) is None
    redis_server.stop()
    try:
        created = client.post(
            "/projects",
            json=body | {"name": "by-root"},
            headers={"Authorization": f"Bearer {world.tokens['superadmin']}"},
        )
    finally:
        redis_server.start()
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["webhook_secret"]  # the generated secret still reaches the caller
    assert "could not be enqueued" in view["warning"]
    assert state(gaffer, "by-root") == (GOOD, "pending", None, None)
    assert [(a["project"], a["to"]) for a in image_audits(gaffer)] == [("by-root", GOOD)]
