"""The gateway in front of a scripted provider, driven by the official SDKs and by httpx:
exact usage and cost recorded, streams relayed unbuffered and unchanged, upstream errors and
cut streams passed through, a client that goes away cancels the upstream call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gaffer.settings import Settings
from tests.support.gateway import Rig, gateway_rig
from tests.support.upstream import UPSTREAM_KEY, Script

pytestmark = pytest.mark.anyio


@pytest.fixture
async def rig(make_settings: Callable[..., Settings]) -> Any:
    async with gateway_rig(make_settings()) as rig:
        yield rig


def _anthropic(rig: Rig, run_id: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=rig.url, api_key=rig.token(run_id), max_retries=0)


def _openai(rig: Rig, run_id: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=rig.url + "/v1", api_key=rig.token(run_id), max_retries=0)


async def test_anthropic_stream_records_the_upstreams_tokens_and_priced_cost(rig: Rig) -> None:
    rig.upstream.script = Script(
        events=50, input_tokens=1200, output_tokens=345, cache_read_tokens=5000,
        cache_write_tokens=800,
    )  # fmt: skip
    run_id = rig.add_run()
    async with (
        _anthropic(rig, run_id) as client,
        client.messages.stream(
            model="claude-sonnet-4-5-20250929",
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream,
    ):
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "".join(f"w{i} " for i in range(50))
    assert final.usage.output_tokens == 345 and final.usage.cache_read_input_tokens == 5000

    [row] = await rig.rows(run_id)
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        1200,
        345,
        5000,
        800,
    )
    # claude-sonnet-4-5: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million.
    assert row.cost_nano_usd == (1200 * 3 + 345 * 15) * 1000 + 5000 * 300 + 800 * 3750
    assert row.model == "claude-sonnet-4-5-20250929"
    assert (row.api, row.provider, row.status_code, row.outcome) == (
        "anthropic",
        "scripted",
        200,
        "ok",
    )
    assert row.project_id == rig.project_id and row.agent_type == "implementation"
    assert row.response_id == "msg_01Test" and row.ttfb_ms is not None
    assert row.duration_ms >= row.ttfb_ms
    # The provider key went upstream in place of the run's token, which never left gaffer.
    [call] = rig.upstream.calls
    assert call.headers["x-api-key"] == UPSTREAM_KEY
    assert rig.token(run_id).split(".")[1] not in json.dumps(call.headers)


async def test_claude_codes_calls_are_served_as_it_makes_them(rig: Rig) -> None:
    """``HEAD /`` answers 200; ``?beta=true`` and the anthropic headers reach the upstream; a
    non-streamed call (Claude Code's retry after a cut stream) is metered from its JSON;
    ``count_tokens`` is forwarded but makes no usage row."""
    run_id = rig.add_run()
    token = rig.token(run_id)
    async with httpx.AsyncClient(base_url=rig.url) as http:
        assert (await http.head("/")).status_code == 200
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01", "anthropic-beta": "x-1"}
        answer = await http.post(
            "/v1/messages?beta=true",
            headers=headers,
            json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []},
        )
        assert answer.status_code == 200 and answer.json()["usage"]["output_tokens"] == 345
        counted = await http.post(
            "/v1/messages/count_tokens", headers=headers, json={"model": "m", "messages": []}
        )
        assert counted.json() == {"input_tokens": 42}
    first, second = rig.upstream.calls
    assert first.query == "beta=true" and first.headers["anthropic-beta"] == "x-1"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert second.path == "/v1/messages/count_tokens"
    [row] = await rig.rows(run_id)
    assert (row.input_tokens, row.output_tokens) == (1200, 345)
    assert row.cost_nano_usd == (1200 * 1 + 345 * 5) * 1000


async def test_responses_stream_records_usage_with_cached_tokens_apart(rig: Rig) -> None:
    rig.upstream.script = Script(
        events=20, input_tokens=900, cache_read_tokens=3000, output_tokens=77
    )
    run_id = rig.add_run()
    kinds = []
    async with _openai(rig, run_id) as client:
        stream = await client.responses.create(model="gpt-5-codex", input="hi", stream=True)
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.completed":
                assert event.response.usage is not None
                assert event.response.usage.input_tokens == 3900
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 20
    [row] = await rig.rows(run_id)
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (900, 3000, 77)
    # gpt-5-codex: $1.25 in, $10 out, $0.125 cached per million.
    assert row.cost_nano_usd == 900 * 1250 + 3000 * 125 + 77 * 10_000
    assert rig.upstream.calls[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_chat_usage_is_asked_for_and_its_chunk_kept_from_an_engine_that_did_not(
    rig: Rig,
) -> None:
    rig.upstream.script = Script(events=10, input_tokens=500, output_tokens=60)
    run_id = rig.add_run()
    async with _openai(rig, run_id) as client:
        stream = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks), "the usage chunk reached the engine"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(
        f"w{i} " for i in range(10)
    )
    assert rig.upstream.calls[0].body["stream_options"] == {"include_usage": True}
    [row] = await rig.rows(run_id)
    assert (row.input_tokens, row.output_tokens) == (500, 60)
    assert row.cost_nano_usd == 500 * 2000 + 60 * 8000


async def test_chat_usage_chunk_reaches_an_engine_that_asked_for_it(rig: Rig) -> None:
    rig.upstream.script = Script(events=3, input_tokens=500, output_tokens=60, cache_read_tokens=7)
    run_id = rig.add_run()
    async with _openai(rig, run_id) as client:
        stream = await client.chat.completions.create(
            model="gpt-4.1",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 507
    [row] = await rig.rows(run_id)
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (500, 7, 60)


async def test_the_first_event_reaches_the_engine_before_the_upstream_sent_the_last(
    rig: Rig,
) -> None:
    rig.upstream.script = Script(events=5, hold_after=1)
    run_id = rig.add_run()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, "messages": []}
    async with (
        httpx.AsyncClient(base_url=rig.url) as http,
        http.stream(
            "POST", "/v1/messages", headers={"x-api-key": rig.token(run_id)}, json=body
        ) as answer,
    ):
        lines = answer.aiter_lines()
        seen = []
        async for line in lines:
            seen.append(line)
            if '"text":"w0 "' in line:
                break
        # The upstream is holding its stream: it has not sent its last event yet.
        [call] = rig.upstream.calls
        assert not call.finished
        assert any("message_start" in line for line in seen)
        rig.upstream.release()
        rest = [line async for line in lines]
    assert any("message_stop" in line for line in rest)
    assert rig.upstream.calls[0].finished


@pytest.mark.parametrize("status", [401, 429, 500])
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/responses", "/v1/chat/completions"])
async def test_upstream_errors_reach_the_engine_unchanged(rig: Rig, status: int, path: str) -> None:
    run_id = rig.add_run()
    rig.upstream.script = Script(status=status)
    body = {"model": "gpt-4.1", "max_tokens": 5, "stream": True, "messages": [], "input": "x"}
    async with httpx.AsyncClient() as http:
        token = rig.token(run_id)
        through = await http.post(
            rig.url + path,
            json=body,
            headers={"x-api-key": token, "authorization": f"Bearer {token}"},
        )
        direct = await http.post(
            rig.upstream_url + path,
            json=body,
            headers={"x-api-key": UPSTREAM_KEY, "authorization": f"Bearer {UPSTREAM_KEY}"},
        )
    assert through.status_code == direct.status_code == status
    assert through.content == direct.content
    assert through.headers.get("retry-after") == direct.headers.get("retry-after")
    assert through.headers["content-type"] == direct.headers["content-type"]
    [row] = await rig.rows(run_id)
    assert (row.status_code, row.outcome, row.output_tokens) == (status, "upstream_error", 0)


async def test_sdks_read_upstream_errors_as_the_providers(rig: Rig) -> None:
    run_id = rig.add_run()
    rig.upstream.script = Script(status=429)
    with pytest.raises(anthropic.RateLimitError) as anthropic_error:
        async with _anthropic(rig, run_id) as client:
            await client.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    assert anthropic_error.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Number of requests has exceeded your rate limit",
        },
        "request_id": "req_011CTestError",
    }
    rig.upstream.script = Script(status=401)
    with pytest.raises(openai.AuthenticationError) as openai_error:
        async with _openai(rig, run_id) as client:
            await client.responses.create(model="gpt-5", input="x")
    assert openai_error.value.code == "invalid_api_key"


async def test_a_cut_stream_reaches_the_engine_cut(rig: Rig) -> None:
    rig.upstream.script = Script(events=10, cut_after=4, input_tokens=321)
    run_id = rig.add_run()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, "messages": []}
    received = b""
    async with httpx.AsyncClient(base_url=rig.url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream(
                "POST", "/v1/messages", headers={"x-api-key": rig.token(run_id)}, json=body
            ) as answer:
                async for chunk in answer.aiter_raw():
                    received += chunk
    assert b'"text":"w3 "' in received and b'"text":"w4 "' not in received
    assert received.endswith(b'data: {"type":"content_'), "the partial event is relayed as sent"
    [row] = await rig.rows(run_id)
    assert row.outcome == "cut"
    assert row.input_tokens == 321, "usage read before the cut is kept"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
async def test_an_engine_that_goes_away_cancels_the_upstream_call(rig: Rig, path: str) -> None:
    rig.upstream.script = Script(events=100_000, delay_s=0.002)
    run_id = rig.add_run()
    body = {"model": "gpt-4.1", "max_tokens": 10, "stream": True, "messages": []}
    token = rig.token(run_id)
    async with (
        httpx.AsyncClient(base_url=rig.url) as http,
        http.stream(
            "POST",
            path,
            headers={"x-api-key": token, "authorization": f"Bearer {token}"},
            json=body,
        ) as answer,
    ):
        async for line in answer.aiter_lines():
            if "w2 " in line:
                break
    # The client closed its connection: the gateway must close the upstream's.
    [call] = rig.upstream.calls
    for _ in range(500):
        if call.aborted:
            break
        await asyncio.sleep(0.01)
    assert call.aborted and not call.finished
    assert call.sent_events < 1000
    [row] = await rig.rows(run_id)
    assert row.outcome == "client_disconnected"
