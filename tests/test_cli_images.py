"""``gaffer projects create|update|show|validate-image|registry-auth`` for worker images, as
real processes on a real database and Redis (issue 13)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from gaffer.images import queue
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.models import Project
from tests.conftest import MASTER_KEY
from tests.support.process import GAFFER, gaffer, gaffer_env, gaffer_json

REF = "127.0.0.1:5999/team/worker:v1"


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return gaffer_env(tmp_path / "home", REDIS_URL=redis_url, GAFFER_MASTER_KEY=MASTER_KEY)


def queued(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [
            queue.ValidationRequest.decode(e).reference
            for e in client.lrange(queue.QUEUE_KEY, 0, -1)
        ]
    finally:
        client.close()


def test_the_cli_sets_shows_revalidates_and_clears_a_worker_image(
    env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    base = ["--repo", "acme/x", "--clone-url", "/x", "--command", "true"]
    bad = gaffer(
        "projects", "create", "p", *base, "--worker-image", "Bad Ref", env=env, check=False
    )
    assert bad.returncode != 0 and "invalid image reference" in bad.stderr + bad.stdout
    assert "p" not in gaffer("projects", "list", env=env).stdout.split()
    view = gaffer_json("projects", "create", "p", *base, "--worker-image", REF, env=env)
    assert (view["worker_image"], view["worker_image_status"]) == (REF, "pending")
    assert queued(redis_url) == [REF]
    assert "worker_image: pending" in gaffer("projects", "show", "p", env=env).stdout

    both = gaffer(
        "projects",
        "update",
        "p",
        "--worker-image",
        REF,
        "--clear-worker-image",
        env=env,
        check=False,
    )
    assert both.returncode != 0 and "exclude each other" in both.stderr + both.stdout

    db = Database(Settings(home=tmp_path / "home", master_key=MASTER_KEY))
    with db.session() as session:
        project = session.query(Project).filter_by(name="p").one()
        project.worker_image_status = "failed"
        project.worker_image_error = "smoke test check failed: git (git --version)"
    shown = gaffer("projects", "show", "p", env=env).stdout
    assert "worker_image: failed: smoke test check failed: git (git --version)" in shown
    again = gaffer_json("projects", "validate-image", "p", env=env)
    assert (again["worker_image_status"], again["worker_image_error"]) == ("pending", None)
    assert queued(redis_url) == [REF, REF]
    digest = "127.0.0.1:5999/team/worker@sha256:" + "ab" * 32
    with db.session() as session:
        project = session.query(Project).filter_by(name="p").one()
        project.worker_image_status, project.worker_image_digest = "verified", digest
    assert f"worker_image: verified → {digest}" in gaffer("projects", "show", "p", env=env).stdout

    cleared = gaffer_json("projects", "update", "p", "--clear-worker-image", env=env)
    assert [cleared[k] for k in ("worker_image", "worker_image_status", "worker_image_digest")] == [
        None,
        None,
        None,
    ]
    assert "worker_image: (global default)" in gaffer("projects", "show", "p", env=env).stdout
    assert queued(redis_url) == [REF, REF]  # a clear enqueues nothing

    proc = gaffer("projects", "registry-auth", "p", "--username", "puller", env=env, check=False)
    assert proc.returncode != 0  # no password on stdin
    done = subprocess.run(
        [GAFFER, "projects", "registry-auth", "p", "--username", "puller"],
        input="pull-secret-pw\n",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pull-secret-pw" not in done.stdout + done.stderr
    view = gaffer_json("projects", "show", "p", env=env)
    assert view["worker_image_registry_auth"] is True
    assert "pull-secret-pw" not in str(view)
    db.dispose()


def test_a_create_whose_validation_cannot_be_enqueued_still_shows_the_generated_secret(
    tmp_path: Path,
) -> None:
    # Redis is down: the project is created all the same (one transaction), so the webhook
    # secret generated for it must be printed, with a warning saying how to retry, not an error.
    env = gaffer_env(
        tmp_path / "home", REDIS_URL="redis://127.0.0.1:1/0", GAFFER_MASTER_KEY=MASTER_KEY
    )
    base = ["--repo", "acme/x", "--clone-url", "/x", "--command", "true"]
    done = gaffer("projects", "create", "p", *base, "--worker-image", REF, "--json", env=env)
    assert len(json.loads(done.stdout)["webhook_secret"]) == 64
    assert done.stderr.startswith("warning: the worker image of 'p' is set to ")
    assert "gaffer projects validate-image p" in done.stderr
    shown = gaffer_json("projects", "show", "p", env=env)
    assert (shown["worker_image"], shown["worker_image_status"]) == (REF, "pending")
