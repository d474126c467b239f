"""The buffer gate on a real Redis: trip, hold refresh, fixed window, backlog, switch,
enrolment, shadow mode, and fail-open when Redis is gone; every decision counted."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from gaffer.buffer import keys
from gaffer.buffer.gate import BufferGate, GateDecision
from gaffer.store.projects import ProjectSnapshot
from tests.conftest import SettingsFactory
from tests.support.servers import RedisServer

pytestmark = pytest.mark.anyio

HOLD_MS = 30_000
WINDOW_MS = 30_000


def project(org: str = "org-a", project_id: str = "p1") -> ProjectSnapshot:
    return ProjectSnapshot(
        id=project_id,
        name=f"name-{project_id}",
        organization_id=org,
        repository="o/r",
        clone_url="/x",
        base_branch="main",
        bot_login="bot",
        trigger_label="gaffer",
        secret="s",
        agents={},
        triggers=frozenset(),
    )


def decisions(outcome: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "gaffer_buffer_gate_decisions_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


@pytest.fixture
def gate(make_settings: SettingsFactory, aredis: aioredis.Redis) -> BufferGate:
    settings = make_settings(
        buffer_enabled=True,
        buffer_organizations="org-a,org-b",
        buffer_threshold=3,
        buffer_window_ms=WINDOW_MS,
        buffer_hold_ms=HOLD_MS,
    )
    return BufferGate(settings, aredis)


async def test_trips_over_the_threshold_and_refreshes_the_hold_on_overage(
    gate: BufferGate, aredis: aioredis.Redis
) -> None:
    p = project()
    before = decisions("buffer", "tripped")
    passed = [await gate.decide(p, 1) for _ in range(3)]
    assert passed == [GateDecision(False, "pass", "under_threshold")] * 3
    assert await gate.decide(p, 1) == GateDecision(True, "buffer", "tripped")
    assert decisions("buffer", "tripped") == before + 1
    assert 0 < await aredis.pttl(keys.gate_hold(p.id)) <= HOLD_MS
    # Time passes: the marker has 50 ms left. A further overage renews it in full.
    await aredis.pexpire(keys.gate_hold(p.id), 50)
    assert await gate.decide(p, 2) == GateDecision(True, "buffer", "overage")
    assert await aredis.pttl(keys.gate_hold(p.id)) > 50
    # Another project is not affected.
    assert (await gate.decide(project(project_id="p2"), 1)).reason == "under_threshold"


async def test_the_window_is_fixed_and_the_marker_holds_after_it(
    gate: BufferGate, aredis: aioredis.Redis
) -> None:
    p = project()
    await gate.decide(p, 1)
    assert 0 < await aredis.pttl(keys.gate_window(p.id)) <= WINDOW_MS
    await aredis.pexpire(keys.gate_window(p.id), 40)
    await gate.decide(p, 1)  # counting on does not extend the window
    assert await aredis.pttl(keys.gate_window(p.id)) <= 40
    assert (await gate.decide(p, 5)).reason == "tripped"
    # The window ends (the counter is gone); the marker alone keeps buffering.
    await aredis.delete(keys.gate_window(p.id))
    assert await gate.decide(p, 1) == GateDecision(True, "buffer", "held")
    await aredis.delete(keys.gate_hold(p.id))
    assert await gate.decide(p, 1) == GateDecision(False, "pass", "under_threshold")


async def test_a_project_with_a_backlog_keeps_buffering(
    gate: BufferGate, aredis: aioredis.Redis
) -> None:
    p = project()
    await aredis.rpush(keys.queue(p.id), "some-run")  # type: ignore[misc]
    assert await gate.decide(p, 1) == GateDecision(True, "buffer", "backlog")


async def test_switch_off_and_enrolment_pass_without_touching_redis(
    make_settings: SettingsFactory, aredis: aioredis.Redis
) -> None:
    off = BufferGate(make_settings(buffer_threshold=1), aredis)
    before = decisions("pass", "disabled")
    assert await off.decide(project(), 5) == GateDecision(False, "pass", "disabled")
    assert decisions("pass", "disabled") == before + 5
    listed = BufferGate(
        make_settings(buffer_enabled=True, buffer_organizations="org-b", buffer_threshold=1),
        aredis,
    )
    assert await listed.decide(project("org-a"), 5) == GateDecision(False, "pass", "not_enrolled")
    assert await aredis.keys("*") == []
    assert (await listed.decide(project("org-b"), 5)).outcome == "buffer"
    everyone = BufferGate(
        make_settings(buffer_enabled=True, buffer_organizations="*", buffer_threshold=1), aredis
    )
    assert (await everyone.decide(project("org-z", "p9"), 5)).outcome == "buffer"


async def test_shadow_mode_logs_and_passes(
    make_settings: SettingsFactory, aredis: aioredis.Redis
) -> None:
    shadow = BufferGate(
        make_settings(
            buffer_enabled=True, buffer_organizations="*", buffer_threshold=1, buffer_shadow=True
        ),
        aredis,
    )
    with capture_logs() as logs:
        first = await shadow.decide(project(), 1)
        second = await shadow.decide(project(), 1)
    assert first == GateDecision(False, "pass", "under_threshold")
    assert second == GateDecision(False, "shadow", "tripped")
    assert [e["reason"] for e in logs if e["event"] == "buffer_gate_would_buffer"] == ["tripped"]


async def test_fails_open_when_redis_is_down(gate: BufferGate, redis_server: RedisServer) -> None:
    before = decisions("pass", "error")
    redis_server.stop()
    try:
        with capture_logs() as logs:
            decision = await gate.decide(project(), 3)
    finally:
        redis_server.start()
    assert decision == GateDecision(False, "pass", "error")
    assert decisions("pass", "error") == before + 3
    assert any(e["event"] == "buffer_gate_failed_open" for e in logs)
