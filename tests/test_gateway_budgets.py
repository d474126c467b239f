"""Budgets: a call that does not fit is refused in the provider's shape and the hook told;
reservations in Redis keep concurrent runs from all spending a project's last dollar; spent
figures come back from the database when Redis loses them; Redis down fails closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import anthropic
import httpx
import openai
import pytest
import redis
from structlog.testing import capture_logs

from gaffer.gateway.settings import GatewaySettings
from gaffer.settings import Settings
from tests.support.gateway import Rig, gateway_rig
from tests.support.servers import PostgresServer, RedisServer
from tests.support.upstream import Script

pytestmark = pytest.mark.anyio

# Each scripted call: 1,200 input + 345 output tokens of claude-sonnet-4-5 = $0.008775.
CALL_NANO_USD = (1200 * 3 + 345 * 15) * 1000
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": []}
"""With max_tokens 100 a call reserves about $0.0016 (100 output + ~10 input tokens)."""


async def _call(rig: Rig, run_id: str, *, stream: bool = False) -> httpx.Response:
    body = {**BODY, "stream": stream}
    async with httpx.AsyncClient(base_url=rig.url) as http:
        return await http.post("/v1/messages", json=body, headers={"x-api-key": rig.token(run_id)})


async def test_a_run_over_its_cost_budget_is_refused_and_reported(
    make_settings: Callable[..., Settings],
) -> None:
    async with gateway_rig(
        make_settings(), gateway_settings=GatewaySettings(max_run_cost_usd=0.02)
    ) as rig:
        run_id = rig.add_run()
        # $0.008775 each: after three calls the run has spent $0.026325 of $0.02.
        for _ in range(3):
            assert (await _call(rig, run_id)).status_code == 200
        async with anthropic.AsyncAnthropic(
            base_url=rig.url, api_key=rig.token(run_id), max_retries=0
        ) as client:
            with pytest.raises(anthropic.BadRequestError) as refused:
                await client.messages.create(
                    model="claude-sonnet-4-5",
                    max_tokens=100,
                    messages=[{"role": "user", "content": "x"}],
                )
        reason = "budget exceeded: $0.0263 of $0.0200 per run"
        assert refused.value.body == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": reason},
        }
        assert len(rig.upstream.calls) == 3, "the refused call went upstream"
        await rig.gateway.drain()
        assert rig.hooks == [(run_id, reason)]
        rows = await rig.rows(run_id)
        assert sum(r.cost_nano_usd or 0 for r in rows) == 3 * CALL_NANO_USD

        # An OpenAI engine gets OpenAI's own shape for it (quota exhausted, not retried).
        other = rig.add_run()
        for _ in range(3):
            assert (await _call(rig, other)).status_code == 200
        async with openai.AsyncOpenAI(
            base_url=rig.url + "/v1", api_key=rig.token(other), max_retries=0
        ) as oai:
            with pytest.raises(openai.RateLimitError) as quota:
                await oai.chat.completions.create(model="gpt-4.1", messages=[])
        assert quota.value.code == "insufficient_quota"
        assert "per run" in str(quota.value.message)


async def test_calls_and_tokens_per_run_are_capped(make_settings: Callable[..., Settings]) -> None:
    limits = GatewaySettings(max_run_cost_usd=0, max_run_calls=2, max_run_tokens=9_550)
    async with gateway_rig(make_settings(), gateway_settings=limits) as rig:
        run_id = rig.add_run()
        assert [(await _call(rig, run_id)).status_code for _ in range(3)] == [200, 200, 400]
        assert "budget exceeded: 2 of 2 model calls per run" in (await _call(rig, run_id)).text
        rig.upstream.script = Script(input_tokens=9000, output_tokens=500)
        tokens_run = rig.add_run()
        assert (await _call(rig, tokens_run)).status_code == 200
        refused = await _call(rig, tokens_run)
        assert refused.status_code == 400
        assert (
            "budget exceeded: 9,500 tokens of 9,550 per run (0 held by calls under way, up to"
            in refused.text
        )


async def test_concurrent_runs_do_not_all_get_the_last_of_a_monthly_budget(
    make_settings: Callable[..., Settings],
) -> None:
    """Eight runs of one project call at once with room for one call left in the month:
    exactly one is forwarded, however the calls interleave."""
    monthly = GatewaySettings(max_run_cost_usd=0, project_monthly_usd=0.002)
    async with gateway_rig(make_settings(), gateway_settings=monthly) as rig:
        rig.upstream.script = Script(hold_after=1)  # the admitted call stays in flight
        runs = [rig.add_run() for _ in range(8)]
        tasks = [asyncio.create_task(_call(rig, run_id, stream=True)) for run_id in runs]
        done: set[asyncio.Task[httpx.Response]] = set()
        while len(done) < 7:
            finished, _ = await asyncio.wait(tasks, timeout=10, return_when="FIRST_COMPLETED")
            assert finished, "the refused calls were not answered"
            done = {t for t in tasks if t.done()}
        assert len(rig.upstream.calls) == 1
        rig.upstream.release()
        answers = await asyncio.gather(*tasks)
        assert sorted(a.status_code for a in answers) == [200] + [400] * 7
        for answer in answers:
            if answer.status_code == 400:
                assert answer.json()["error"]["message"].startswith(
                    "budget exceeded: $0.00 of $0.0020 of the project's monthly budget "
                    "($0.0016 held by calls under way, up to $0.0016 for this one)"
                )
        await rig.gateway.drain()
        assert len(rig.hooks) == 7
        # The month's spending is settled with the real cost: now nothing fits at all.
        refused = await _call(rig, rig.add_run())
        assert "budget exceeded: $0.0088 of $0.0020 of the project's monthly" in refused.text


async def test_spent_figures_come_back_from_the_database_when_redis_loses_them(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    async with gateway_rig(
        make_settings(), gateway_settings=GatewaySettings(max_run_cost_usd=0.02)
    ) as rig:
        run_id = rig.add_run()
        for _ in range(3):
            assert (await _call(rig, run_id)).status_code == 200
        await rig.gateway.drain()
        redis.Redis.from_url(redis_url).flushall()
        refused = await _call(rig, run_id)
        assert refused.status_code == 400
        assert "budget exceeded: $0.0263 of $0.0200 per run" in refused.text


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


async def test_redis_down_fails_closed_and_streams_under_way_finish(
    make_settings: Callable[..., Settings], own_redis: RedisServer
) -> None:
    async with gateway_rig(make_settings(redis_url=own_redis.url)) as rig:
        run_id = rig.add_run()
        assert (await _call(rig, run_id)).status_code == 200
        rig.upstream.script = Script(events=5, hold_after=2)
        under_way = asyncio.create_task(_call(rig, run_id, stream=True))
        await rig.upstream.wait_first_event()
        own_redis.stop()
        with capture_logs() as logs:
            refused = await _call(rig, run_id)
            openai_refused = await asyncio.to_thread(
                httpx.post,
                rig.url + "/v1/responses",
                json={"model": "gpt-5", "input": "x"},
                headers={"authorization": f"Bearer {rig.token(run_id)}"},
            )
            rig.upstream.release()
            finished = await under_way
            await rig.gateway.drain()
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "type": "api_error",
            "message": "gaffer's gateway cannot reach its redis; try again later",
        }
        assert openai_refused.status_code == 503
        assert openai_refused.json()["error"]["code"] == "gateway_unavailable"
        events = [e["event"] for e in logs]
        assert events.count("gateway_fail_closed") == 2
        assert {e.get("store") for e in logs if e["event"] == "gateway_fail_closed"} == {"redis"}
        assert len(rig.upstream.calls) == 2, "a call was forwarded with Redis down"
        assert finished.status_code == 200 and b"event: message_stop" in finished.content
        assert "gateway_settle_failed" in events
        assert len(await rig.rows(run_id)) == 2, "the stream under way was not recorded"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.close()


async def test_database_down_fails_closed(
    make_settings: Callable[..., Settings], own_postgres: PostgresServer
) -> None:
    settings = make_settings(database_url=own_postgres.create_database())
    async with gateway_rig(settings) as rig:
        run_id = rig.add_run()
        assert (await _call(rig, run_id)).status_code == 200
        await rig.gateway.drain()
        own_postgres.stop()
        with capture_logs() as logs:
            refused = await _call(rig, run_id)
        assert refused.status_code == 503
        assert "cannot reach its database" in refused.json()["error"]["message"]
        closed = [e for e in logs if e["event"] == "gateway_fail_closed"]
        assert [e["store"] for e in closed] == ["database"]
        assert len(rig.upstream.calls) == 1
        own_postgres.start()
