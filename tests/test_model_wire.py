"""The scripted model server's wire answers, checked over real HTTP: each provider's event
names, fields and order, usage, error bodies, cut streams, stalls, and what consumes the plan."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.model_server import ModelServer, Say, Shell, Usage, iter_sse

BASH_TOOL = {
    "name": "Bash",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
    },
}
CHAT_BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}


@pytest.fixture
def server() -> Any:
    with ModelServer() as running:
        yield running


def test_anthropic_stream_is_a_tool_use_then_the_final_text(server: ModelServer) -> None:
    server.script([Shell("touch X", then="Wrote X")])
    server.usage = Usage(input_tokens=11, output_tokens=7, cache_read=5, cache_write=3)
    first: dict[str, Any] = {
        "model": "m",
        "stream": True,
        "tools": [BASH_TOOL],
        "messages": [{"role": "user", "content": "go"}],
    }
    reply = httpx.post(f"{server.anthropic_url}/v1/messages?beta=true", json=first)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [(name, json.loads(data)) for name, data in iter_sse(reply.content)]
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    start = next(
        d
        for n, d in events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    )
    assert start["content_block"]["name"] == "Bash"
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["index"] == start["index"]
    )
    assert json.loads(partial)["command"] == "touch X"
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 11,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 5,
        "output_tokens": 7,
        "service_tier": "standard",
    }
    call_id = start["content_block"]["id"]
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call_id, "content": ""}],
    }
    second = dict(
        first,
        stream=False,
        messages=[*first["messages"], {"role": "assistant", "content": []}, result],
    )
    plain = httpx.post(f"{server.anthropic_url}/v1/messages", json=second).json()
    assert plain["type"] == "message" and plain["stop_reason"] == "end_turn"
    assert plain["content"] == [{"type": "text", "text": "Wrote X"}]
    assert server.remaining == 0
    assert [r.query for r in server.agent_requests] == ["beta=true", ""]


def test_responses_stream_carries_a_function_call_and_the_usage(server: ModelServer) -> None:
    server.script([Shell("touch X", then="ok")])
    tools = [
        {
            "type": "function",
            "name": "shell",
            "parameters": {"type": "object", "properties": {"command": {"type": "array"}}},
        }
    ]
    body: dict[str, Any] = {
        "model": "m",
        "stream": True,
        "tools": tools,
        "input": [{"type": "message", "role": "user", "content": "go"}],
    }
    events = [
        (n, json.loads(d))
        for n, d in iter_sse(httpx.post(f"{server.openai_url}/responses", json=body).content)
    ]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    done = next(d for n, d in events if n == "response.output_item.done")["item"]
    assert done["type"] == "function_call" and done["name"] == "shell"
    assert json.loads(done["arguments"]) == {"command": ["bash", "-lc", "touch X"]}
    assert events[-1][1]["response"]["usage"]["input_tokens"] == 120
    output = {"type": "function_call_output", "call_id": done["call_id"], "output": "ok"}
    body["input"] = [*body["input"], done, output]
    events = [
        (n, json.loads(d))
        for n, d in iter_sse(httpx.post(f"{server.openai_url}/responses", json=body).content)
    ]
    text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert text == "ok"


def test_chat_stream_has_tool_call_deltas_and_a_usage_chunk(server: ModelServer) -> None:
    server.script([Shell("touch X")])
    server.usage = Usage(input_tokens=10, output_tokens=4, cache_read=6)
    body: dict[str, Any] = {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [CHAT_BASH],
        "messages": [{"role": "user", "content": "go"}],
    }
    frames = [
        data
        for _, data in iter_sse(
            httpx.post(f"{server.openai_url}/chat/completions", json=body).content
        )
    ]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "bash"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"command": "touch X"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 16
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 6
    plain = httpx.post(
        f"{server.openai_url}/chat/completions",
        json=dict(body, stream=False, messages=[{"role": "user", "content": "again"}]),
    )
    assert plain.json()["choices"][0]["message"] == {"role": "assistant", "content": "done"}


def test_side_calls_do_not_consume_the_plan(server: ModelServer) -> None:
    server.script([Say("first"), Say("second")])
    side = {"model": "small", "messages": [{"role": "user", "content": "title?"}]}
    turn = dict(side, tools=[CHAT_BASH])
    url = f"{server.openai_url}/chat/completions"

    def say(body: dict[str, Any]) -> str:
        return str(httpx.post(url, json=body).json()["choices"][0]["message"]["content"])

    assert say(side) == "Scripted task"
    assert say(turn) == "first"
    assert say(side) == "Scripted task"
    # The same conversation once its answer was delivered whole is a new turn (a second run).
    assert say(turn) == "second"
    assert say(turn) == "done"
    kinds = [r.answer.kind for r in server.model_requests if r.answer]
    assert kinds == ["side", "agent", "side", "agent", "agent"]
    assert server.remaining == 0


def test_a_held_answer_is_given_again_to_the_resend(server: ModelServer) -> None:
    server.script([Say("only once"), Say("next")])
    server.stall(seconds=60)
    turn = {"tools": [CHAT_BASH], "messages": [{"role": "user", "content": "go"}]}
    url = f"{server.openai_url}/chat/completions"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=turn, timeout=0.5)
    resent = httpx.post(url, json=turn).json()
    assert resent["choices"][0]["message"]["content"] == "only once"
    assert server.remaining == 1


def test_failures_answer_each_providers_error_body(server: ModelServer) -> None:
    server.script([Say("after")])
    server.fail(status=401, times=2)
    anthropic = httpx.post(f"{server.anthropic_url}/v1/messages", json={"messages": []})
    assert anthropic.status_code == 401
    assert anthropic.json()["error"]["type"] == "authentication_error"
    openai = httpx.post(f"{server.openai_url}/responses", json={"input": []})
    assert openai.status_code == 401 and openai.json()["error"]["code"] == "invalid_api_key"
    server.fail(status=429, times=None, message="no money")
    for _ in range(2):
        quota = httpx.post(f"{server.openai_url}/chat/completions", json={"messages": []})
        assert quota.status_code == 429
        assert quota.json()["error"] == {
            "message": "no money",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    server.fail(status=500, times=1)
    assert (
        httpx.post(f"{server.anthropic_url}/v1/messages", json={"messages": []}).json()["error"][
            "type"
        ]
        == "api_error"
    )
    turn = {"tools": [BASH_TOOL], "messages": [{"role": "user", "content": "go"}]}
    assert (
        httpx.post(f"{server.anthropic_url}/v1/messages", json=turn).json()["content"][0]["text"]
        == "after"
    )
    assert [r.status for r in server.model_requests] == [401, 401, 429, 429, 500, 200]


def test_a_cut_stream_drops_the_connection_and_the_resend_gets_the_same_answer(
    server: ModelServer,
) -> None:
    server.script([Say("whole answer")])
    server.cut_stream(after_events=3)
    turn = {"stream": True, "tools": [BASH_TOOL], "messages": [{"role": "user", "content": "go"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{server.anthropic_url}/v1/messages", json=turn)
    plain = httpx.post(f"{server.anthropic_url}/v1/messages", json=dict(turn, stream=False)).json()
    assert plain["content"] == [{"type": "text", "text": "whole answer"}]


def test_a_stall_holds_the_answer_until_stop(server: ModelServer) -> None:
    server.stall(seconds=60)
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{server.openai_url}/chat/completions", json={"messages": []}, timeout=90
                ).status_code
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.model_requests and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert server.model_requests and outcome == []
    server.stop()
    thread.join(15)
    assert outcome and not thread.is_alive()


def test_root_models_and_count_tokens(server: ModelServer) -> None:
    assert httpx.head(server.url + "/").status_code == 200
    assert httpx.get(f"{server.openai_url}/models").json()["data"][0]["id"] == "gaffer-scripted"
    assert httpx.post(f"{server.anthropic_url}/v1/messages/count_tokens", json={}).json() == {
        "input_tokens": 120
    }
    assert httpx.get(server.url + "/nowhere").status_code == 404
    assert [r.path for r in server.requests] == [
        "/",
        "/v1/models",
        "/v1/messages/count_tokens",
        "/nowhere",
    ]
