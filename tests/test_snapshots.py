"""Warm starts on the ``docker`` backend: set-up scripts, work-item and project snapshots, the
caps and the registry, with real containers (Podman's Docker API), real git and the command
engine. Every committed image is checked for the run's secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from structlog.testing import capture_logs

from gaffer.snapshots import registry
from gaffer.snapshots.caps import Limits, evictions
from gaffer.snapshots.names import snapshot_image
from gaffer.snapshots.service import Snapshots
from gaffer.store.agents import set_agent
from gaffer.store.credentials import set_credential
from gaffer.store.models import Snapshot, utcnow
from gaffer.store.projects import get_project
from tests.conftest import DockerGaffers
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.test_lifecycle import trigger, wait_for_line

SETUP = "echo installing; mkdir -p deps; echo v1 > deps/installed.txt; echo installed"
REFRESH = "echo refreshed > deps/refreshed.txt"
ENGINE = (
    "test -f deps/installed.txt && echo 'deps present'; "
    "test -f deps/refreshed.txt && echo 'refresh ran'; "
    'printf %s "$GAFFER_MODEL_API_KEY" | wc -c; echo "engine says hi"; echo change >> CHANGES.txt'
)


@pytest.fixture
def gaffers(docker_gaffers: DockerGaffers) -> Iterator[DockerGaffers]:
    """Docker gaffers; afterwards the snapshot images of the test's instance are deleted."""
    yield docker_gaffers
    client = docker_gaffers.podman.client
    for image_id in image_ids(docker_gaffers):
        with contextlib.suppress(Exception):
            client.api.remove_image(image_id, force=True)


def push_files(bare: Path, files: dict[str, str], work: Path) -> None:
    """Commit ``files`` onto the bare repository's main branch."""
    if not work.exists():
        subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    else:
        subprocess.run(["git", "pull", "-q"], cwd=work, check=True)
    for path, text in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (work / ".gitignore").write_text("deps/\n")
    for args in (
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "files"],
        ["push", "-q", "origin", "HEAD"],
    ):
        subprocess.run(["git", *args], cwd=work, check=True)


def setup_project(
    gaffer: Gaffer, *, work_item: bool, project: bool, key: str | None = None, **extra: Any
) -> ProjectInfo:
    info = gaffer.create_project(command=ENGINE, agents=["implementation"])
    assert info.bare is not None
    push_files(
        info.bare,
        {".gaffer/setup.sh": SETUP, ".gaffer/refresh.sh": REFRESH, "requirements.txt": "a==1\n"},
        gaffer.settings.home / f"work-{info.name}",
    )
    with gaffer.rt.db.session() as session:
        registry.set_settings(session, info.id, work_item=work_item, project=project, **extra)
        if key is not None:
            found = get_project(session, info.name)
            set_credential(session, gaffer.rt.box, found.id, "MODEL_KEY", key)
            set_agent(
                session,
                found,
                "implementation",
                overrides={"credential": "MODEL_KEY", "model": "m-1", "base_url": "http://x:1"},
            )
        session.commit()
    return info


def rows(gaffer: Gaffer, project_id: str) -> list[Snapshot]:
    with gaffer.rt.db.session() as session:
        found = registry.list_rows(session, gaffer.settings.instance, project_id)
        session.expunge_all()
        return found


def wait_for_row(
    gaffer: Gaffer, project_id: str, kind: str, changed_from: str | None = None
) -> Snapshot:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for row in rows(gaffer, project_id):
            ready = row.status == "ready" and row.image_id
            if row.kind == kind and ready and row.image_id != changed_from:
                return row
        time.sleep(0.3)
    raise AssertionError(f"no {kind} snapshot for {project_id}: {rows(gaffer, project_id)}")


def image_ids(docker_gaffers: DockerGaffers) -> set[str]:
    """The ids of the snapshot images of this test's instance (``podman images`` by label;
    asked again when the shared image store is busy with another's build)."""
    label = f"gaffer.snapshot.instance={docker_gaffers.instance}"
    for attempt in range(5):
        try:
            found = docker_gaffers.podman.client.api.images(filters={"label": [label]})
            return {str(i["Id"]) for i in found}
        except docker.errors.APIError:
            if attempt == 4:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def assert_no_secret(image_id: str, secrets: list[str]) -> None:
    """Grep what the snapshot image adds to its base (``podman image diff``, then the files of
    the mounted image) and its config for each secret."""
    inspect = subprocess.run(
        ["podman", "image", "inspect", image_id], capture_output=True, text=True, check=True
    ).stdout
    for secret in secrets:
        assert secret not in inspect, "a secret is in the image's config"
    changed = subprocess.run(
        ["podman", "image", "diff", image_id], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    paths = [line[2:] for line in changed if line[:2] in ("A ", "C ")]
    assert any(p.startswith("/workspace/tree") for p in paths), paths[:20]
    mount = subprocess.run(
        ["podman", "image", "mount", image_id], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        checked = 0
        for path in paths:
            target = Path(mount + path)
            if target.is_file() and not target.is_symlink():
                data = target.read_bytes()
                checked += 1
                for secret in secrets:
                    assert secret.encode() not in data, f"{secret[:6]}... found in {path}"
        assert checked > 0
        assert not Path(mount, "workspace/scratch").exists()
    finally:
        subprocess.run(["podman", "image", "unmount", image_id], capture_output=True, check=False)


def test_work_item_snapshot_miss_then_hit_and_no_secret(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    key = "sk-snap-" + uuid.uuid4().hex
    project = setup_project(gaffer, work_item=True, project=False, key=key)
    first = gaffer.wait_for(trigger(gaffer, project))
    assert first["status"] == "SUCCEEDED", first["error"]
    logs = gaffer.logs(first["id"])
    assert ("setup", "installed") in logs
    assert ("engine", "deps present") in logs
    assert not any(m.startswith("warm_start") for _, m in logs)
    row = wait_for_row(gaffer, project.id, "work-item")
    assert row.work_item == "1"
    assert row.image == snapshot_image(gaffer.settings.instance, project.id, "work-item", "1")
    assert row.image_id in image_ids(docker_gaffers)
    job_marker = first["id"]  # the run id is in the job data, the task file and the prompts
    assert_no_secret(row.image_id or "", [key, f'"run_id": "{job_marker}"', job_marker])

    second = gaffer.wait_for(trigger(gaffer, project))
    assert second["status"] == "SUCCEEDED", second["error"]
    logs = gaffer.logs(second["id"])
    warm = [m for s, m in logs if m.startswith("warm_start ")]
    assert warm and f"snapshot={row.image}" in warm[0] and "refresh_s=" in warm[0], logs
    assert ("setup", "installed") not in logs  # the set-up did not run again
    assert ("engine", "deps present") in logs
    assert ("engine", "refresh ran") in logs
    again = wait_for_row(gaffer, project.id, "work-item", changed_from=row.image_id)
    # The refreshed snapshot replaced the first one, whose image is deleted.
    assert row.image_id not in image_ids(docker_gaffers)
    assert again.image_id in image_ids(docker_gaffers)
    assert_no_secret(again.image_id or "", [key, second["id"]])


def test_failed_or_cancelled_run_commits_nothing(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    fail = gaffer.create_project(command="exit 3", agents=["implementation"])
    engine = "trap 'echo bye; exit 0' TERM; echo 'engine waiting'; sleep 60 & wait"
    cancel = gaffer.create_project(command=engine, agents=["implementation"])
    with gaffer.rt.db.session() as session:
        registry.set_settings(session, fail.id, work_item=True)
        registry.set_settings(session, cancel.id, work_item=True)
        session.commit()
    run = gaffer.wait_for(trigger(gaffer, fail))
    assert run["status"] == "FAILED"
    run_id = trigger(gaffer, cancel)
    wait_for_line(gaffer, run_id, ("engine", "engine waiting"))
    gaffer.cancel(run_id)
    assert gaffer.wait_for(run_id)["status"] == "CANCELED"
    time.sleep(2)
    assert rows(gaffer, fail.id) == [] and rows(gaffer, cancel.id) == []
    assert image_ids(docker_gaffers) == set()


def test_failing_setup_fails_the_run_unless_it_is_a_warning(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    project = gaffer.create_project(command="echo hi > HI.txt", agents=["implementation"])
    with gaffer.rt.db.session() as session:
        registry.set_settings(
            session, project.id, setup_command="echo step one; echo broken >&2; exit 4"
        )
        session.commit()
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "FAILED"
    assert "set-up failed" in run["error"] and "exited with code 4" in run["error"]
    assert "broken" in run["error"]
    with gaffer.rt.db.session() as session:
        registry.set_settings(session, project.id, setup_failure="warn")
        session.commit()
    run = gaffer.wait_for(trigger(gaffer, project, issue=2))
    assert run["status"] == "SUCCEEDED", run["error"]
    assert ("setup", "broken") in gaffer.logs(run["id"])


def test_project_snapshot_built_once_reused_and_rebuilt(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    project = setup_project(gaffer, work_item=False, project=True)
    first = gaffer.wait_for(trigger(gaffer, project, issue=1))
    assert first["status"] == "SUCCEEDED", first["error"]
    built = wait_for_row(gaffer, project.id, "project")
    assert built.key and built.key.startswith("sha256:") and "+sha256:" in built.key
    second = gaffer.wait_for(trigger(gaffer, project, issue=2))
    assert second["status"] == "SUCCEEDED", second["error"]
    logs = gaffer.logs(second["id"])
    assert any(m.startswith("warm_start ") and "kind=project" in m for _, m in logs), logs
    assert ("setup", "installed") not in logs
    assert ("engine", "deps present") in logs
    time.sleep(1)
    [same] = [r for r in rows(gaffer, project.id) if r.kind == "project"]
    assert same.image_id == built.image_id  # built once
    assert project.bare is not None
    push_files(
        project.bare, {"requirements.txt": "a==2\n"}, gaffer.settings.home / f"work-{project.name}"
    )
    third = gaffer.wait_for(trigger(gaffer, project, issue=3))
    assert third["status"] == "SUCCEEDED", third["error"]
    logs = gaffer.logs(third["id"])
    assert any(m.startswith("snapshot_stale") for _, m in logs), logs
    assert ("setup", "installed") in logs  # set up again on the changed lock file
    rebuilt = wait_for_row(gaffer, project.id, "project", changed_from=built.image_id)
    assert rebuilt.key != built.key
    # The old image is deleted once the container that ran on it is removed.
    deadline = time.monotonic() + 60
    while built.image_id in image_ids(docker_gaffers):
        assert time.monotonic() < deadline, "the replaced project snapshot was not deleted"
        time.sleep(0.5)
    assert rebuilt.image_id in image_ids(docker_gaffers)


def test_caps_delete_images_and_reconcile(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    project = setup_project(gaffer, work_item=True, project=False)
    run = gaffer.wait_for(trigger(gaffer, project))
    assert run["status"] == "SUCCEEDED", run["error"]
    row = wait_for_row(gaffer, project.id, "work-item")
    service = Snapshots(gaffer.settings, gaffer.rt.db, docker_gaffers.podman.client)

    # Reconcile: an unregistered snapshot image is deleted; a row whose image is gone dropped.
    client = docker_gaffers.podman.client
    extra_tag = snapshot_image(gaffer.settings.instance, project.id, "work-item", "stray")
    repo, _, tag = extra_tag.rpartition(":")
    box = client.containers.create(row.image_id, command=["true"])
    client.api.commit(
        box.id,
        repository=repo,
        tag=tag,
        changes=[
            "LABEL gaffer.snapshot=true",
            f"LABEL gaffer.snapshot.instance={gaffer.settings.instance}",
        ],
    )
    box.remove(force=True)
    unregistered = client.api.inspect_image(extra_tag)["Id"]
    with gaffer.rt.db.session() as session:
        session.add(
            Snapshot(
                instance=gaffer.settings.instance,
                project_id=project.id,
                kind="work-item",
                work_item="gone",
                image="localhost/gaffer-snapshot:gone",
                image_id="sha256:" + "0" * 64,
                size_bytes=1,
                status="ready",
            )
        )
        session.commit()
    plan = asyncio.run(service.reconcile())
    assert unregistered in plan.delete
    assert unregistered not in image_ids(docker_gaffers)
    assert [r.work_item for r in rows(gaffer, project.id)] == ["1"]
    assert row.image_id in image_ids(docker_gaffers)

    # Per-project TTL: the project's 1 s beats the global 24 h; the image is deleted.
    with gaffer.rt.db.session() as session:
        registry.set_settings(session, project.id, ttl_s=1.0)
        session.commit()
    time.sleep(1.5)
    evicted = asyncio.run(service.prune())
    assert [(r.id, why) for r, why in evicted] == [(row.id, "ttl")]
    assert row.image_id not in image_ids(docker_gaffers)
    assert rows(gaffer, project.id) == []


def test_restart_keeps_the_registry(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start()
    project = setup_project(gaffer, work_item=True, project=False)
    assert gaffer.wait_for(trigger(gaffer, project))["status"] == "SUCCEEDED"
    row = wait_for_row(gaffer, project.id, "work-item")
    docker_gaffers.stop_all()
    again = docker_gaffers.start()
    [kept] = rows(again, project.id)
    assert kept.image_id == row.image_id
    second = again.wait_for(trigger(again, project))
    assert any(m.startswith("warm_start ") for _, m in again.logs(second["id"]))
    wait_for_row(again, project.id, "work-item", changed_from=row.image_id)
    asyncio.run(
        Snapshots(again.settings, again.rt.db, docker_gaffers.podman.client).drop_work_item(
            project.id, "1"
        )
    )
    assert rows(again, project.id) == []
    assert image_ids(docker_gaffers) == set()


def test_names_do_not_collide() -> None:
    a = snapshot_image("i", "proj/a", "work-item", "Fix:1")
    b = snapshot_image("i", "proj:a", "work-item", "fix/1")
    c = snapshot_image("i", "proj/a", "work-item", "Fix:1")
    assert a != b and a == c
    tag = a.rpartition(":")[2]
    assert len(tag) <= 128 and all(ch.isalnum() or ch in "_.-" for ch in tag)
    with pytest.raises(ValueError):
        snapshot_image("i", "p", "bogus")


def test_caps_order() -> None:
    now = utcnow()

    class E:
        def __init__(self, id: str, project: str, age_s: float, size: int) -> None:
            self.id, self.project_id = id, project
            self.created_at = now - timedelta(seconds=age_s)
            self.size_bytes = size

    entries = [E(f"p{i}", "p", 100 - i, 10) for i in range(7)] + [E("q0", "q", 5, 50)]
    limits = Limits(ttl_s=86400, per_project=5, total=50, max_bytes=1000)
    out = evictions(entries, limits, {"q": 1.0}, now)
    assert [(e.id, e.reason) for e in out] == [
        ("q0", "ttl"),
        ("p0", "project count"),
        ("p1", "project count"),
    ]
    small = Limits(ttl_s=86400, per_project=5, total=3, max_bytes=15)
    out = evictions(entries[:4], small, {}, now)
    assert [(e.id, e.reason) for e in out] == [
        ("p0", "total count"),
        ("p1", "size"),
        ("p2", "size"),
    ]


def test_count_and_size_caps_delete_the_images(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start(snapshot_max_per_project=2)
    client = docker_gaffers.podman.client
    service = Snapshots(gaffer.settings, gaffer.rt.db, client)
    base = client.api.inspect_image(gaffer.settings.worker_image)["Id"]

    def commit(item: str) -> str:
        box = client.containers.create(
            base, command=["sh", "-c", "head -c 2000000 /dev/urandom > /workspace/blob"]
        )
        try:
            box.start()
            box.wait()
            info = asyncio.run(
                service.commit(
                    str(box.id),
                    "proj",
                    "work-item",
                    item,
                    base_image_id=base,
                    files_hash=None,
                    source_run_id=None,
                )
            )
        finally:
            box.remove(force=True)
        return info.id

    first, second, third = commit("a"), commit("b"), commit("c")
    assert {first, second, third} <= image_ids(docker_gaffers)
    evicted = asyncio.run(service.prune())
    assert [(r.work_item, why) for r, why in evicted] == [("a", "project count")]
    assert first not in image_ids(docker_gaffers)  # podman images: gone
    sizes = {r.work_item: r.size_bytes for r in rows(gaffer, "proj")}
    assert sizes["b"] >= 2_000_000 and sizes["c"] >= 2_000_000
    small = gaffer.settings.model_copy(update={"snapshot_max_bytes": sizes["c"]})
    evicted = asyncio.run(Snapshots(small, gaffer.rt.db, client).prune())
    assert [(r.work_item, why) for r, why in evicted] == [("b", "size")]
    assert second not in image_ids(docker_gaffers)
    assert image_ids(docker_gaffers) == {third}


def test_a_closed_pull_request_drops_its_work_items_snapshots(gaffers: DockerGaffers) -> None:
    docker_gaffers = gaffers
    gaffer = docker_gaffers.start(roles=("ingest", "dispatch"))
    project = gaffer.create_project(command="echo change >> CHANGES.txt", agents=["implementation"])
    with gaffer.rt.db.session() as session:
        registry.set_settings(session, project.id, work_item=True)
        session.commit()
    run = gaffer.wait_for(trigger(gaffer, project))  # issue 1: its branch becomes PR #2
    assert run["status"] == "SUCCEEDED", run["error"]
    issue_row = wait_for_row(gaffer, project.id, "work-item")
    assert issue_row.work_item == "1"
    # A snapshot of the PR's own work item (what its review or respond-to-ci would start from).
    client = docker_gaffers.podman.client
    service = Snapshots(gaffer.settings, gaffer.rt.db, client)
    box = client.containers.create(gaffer.settings.worker_image, command=["true"])
    try:
        pr_image = asyncio.run(
            service.commit(
                str(box.id), project.id, "work-item", "2",
                base_image_id=None, files_hash=None, source_run_id=None,
            )
        ).id  # fmt: skip
    finally:
        box.remove(force=True)
    assert {issue_row.image_id, pr_image} <= image_ids(docker_gaffers)

    payload = json.loads(fixture_body("pull_request.closed"))
    payload["pull_request"]["merged"] = True
    payload["pull_request"]["head"]["ref"] = run["branch"]
    with capture_logs() as logs:
        response = gaffer.deliver(
            json.dumps(payload).encode(), "pull_request", project.secret,
            delivery_id=str(uuid.uuid4()),
        )  # fmt: skip
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 60
        while rows(gaffer, project.id) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert rows(gaffer, project.id) == []
    assert not {issue_row.image_id, pr_image} & image_ids(docker_gaffers)  # podman: gone
    dropped = [e for e in logs if e["event"] == "snapshot_dropped"]
    assert sorted((e["work_item"], e["reason"]) for e in dropped) == [
        ("1", "PR #2 was merged"),
        ("2", "PR #2 was merged"),
    ], dropped
