"""A scripted model provider on 127.0.0.1: the upstream the gateway forwards to in tests.

It speaks the three wire APIs as the providers stream them (server-sent events, framed as the
providers frame them): Anthropic Messages (``message_start`` with usage, ``content_block_*``,
``ping``, ``message_delta`` with usage, ``message_stop``), OpenAI Responses
(``response.created`` ... ``response.completed{response:{id, usage}}``) and Chat Completions
(chunks, a final ``choices: []`` usage chunk when ``stream_options.include_usage`` is asked,
``data: [DONE]``); a whole JSON answer when ``stream`` is not set; the providers' own error
bodies for 401/429/500; a stream cut mid-way (the connection dropped). It demands its own API
key (:data:`UPSTREAM_KEY`) in the provider's header and answers 401 to anything else, so a
test sees which key reached it.

What the next calls do is set on :attr:`ScriptedUpstream.script`; every call is recorded in
:attr:`ScriptedUpstream.calls`. Run alone (for the benchmark)::

    python -m tests.support.upstream --port 8099 [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_KEY = "sk-upstream-test-key-0123456789"


@dataclass
class Script:
    """What the upstream answers: ``status`` 200 streams (or returns JSON) ``events`` text
    deltas and then usage; 401/429/500 answer the provider's error body; ``cut_after`` drops
    the connection after that many deltas; ``hold_after`` pauses after that many deltas until
    :meth:`ScriptedUpstream.release`; ``delay_s`` sleeps between deltas."""

    status: int = 200
    events: int = 3
    input_tokens: int = 1200
    output_tokens: int = 345
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    cut_after: int | None = None
    hold_after: int | None = None
    delay_s: float = 0.0


@dataclass
class Call:
    """One request the upstream received, and how its answer ended."""

    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]
    finished: bool = False
    """The whole answer was sent."""
    aborted: bool = False
    """The answer stopped before its end because the client went away."""
    sent_events: int = 0


class _Cut(Exception):
    """Raised inside a streamed body to drop the connection mid-answer."""


@dataclass
class ScriptedUpstream:
    """The upstream's state (see the module docstring)."""

    script: Script = field(default_factory=Script)
    calls: list[Call] = field(default_factory=list)
    _release: asyncio.Event | None = None
    _sent_first: asyncio.Event | None = None

    def release(self) -> None:
        """Let held streams go on."""
        self._events()[0].set()

    async def wait_first_event(self) -> None:
        """Wait until some stream has sent its first event."""
        await self._events()[1].wait()

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._release is None or self._sent_first is None:
            self._release, self._sent_first = asyncio.Event(), asyncio.Event()
        return self._release, self._sent_first

    @property
    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    # -- plumbing ------------------------------------------------------------------------

    async def _receive(self, request: Request) -> Call:
        body = await request.body()
        call = Call(
            request.url.path,
            request.url.query,
            {k.lower(): v for k, v in request.headers.items()},
            json.loads(body) if body else {},
        )
        self.calls.append(call)
        return call

    def _stream(self, call: Call, frames: Iterator[bytes], deltas_at: set[int]) -> Response:
        """Stream ``frames``; the frames at indexes ``deltas_at`` are text deltas (counted for
        ``cut_after``/``hold_after``)."""
        script = self.script
        release, sent_first = self._events()

        async def body() -> AsyncIterator[bytes]:
            deltas = 0
            try:
                for index, frame in enumerate(frames):
                    if index in deltas_at:
                        if script.cut_after is not None and deltas == script.cut_after:
                            yield b'event: content_block_delta\ndata: {"type":"content_'
                            await asyncio.sleep(0.05)
                            raise _Cut()
                        if script.hold_after is not None and deltas == script.hold_after:
                            await release.wait()
                        if script.delay_s:
                            await asyncio.sleep(script.delay_s)
                        deltas += 1
                    yield frame
                    call.sent_events += 1
                    sent_first.set()
                call.finished = True
            finally:
                if not call.finished and script.cut_after is None:
                    call.aborted = True

        return StreamingResponse(body(), media_type="text/event-stream")

    # -- Anthropic Messages --------------------------------------------------------------

    def _anthropic_error(self, status: int) -> Response:
        kinds = {401: "authentication_error", 429: "rate_limit_error", 500: "api_error"}
        messages = {
            401: "invalid x-api-key",
            429: "Number of requests has exceeded your rate limit",
            500: "Internal server error",
        }
        body = {
            "type": "error",
            "error": {"type": kinds[status], "message": messages[status]},
            "request_id": "req_011CTestError",
        }
        headers = {"request-id": "req_011CTestError"}
        if status == 429:
            headers["retry-after"] = "7"
        return JSONResponse(body, status_code=status, headers=headers)

    async def _messages(self, request: Request) -> Response:
        call = await self._receive(request)
        s = self.script
        if call.headers.get("x-api-key") != UPSTREAM_KEY:
            return self._anthropic_error(401)
        if s.status != 200:
            return self._anthropic_error(s.status)
        model = s.model or call.body.get("model", "claude-sonnet-4-5")
        usage = {
            "input_tokens": s.input_tokens,
            "cache_creation_input_tokens": s.cache_write_tokens,
            "cache_read_input_tokens": s.cache_read_tokens,
            "output_tokens": s.output_tokens,
        }
        text = "".join(f"w{i} " for i in range(s.events))
        if not call.body.get("stream"):
            call.finished = True
            return JSONResponse(
                {
                    "id": "msg_01Test",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                }
            )

        def sse(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

        def frames() -> Iterator[bytes]:
            yield sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_01Test",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
            yield sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield sse("ping", {"type": "ping"})
            for i in range(s.events):
                yield sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": f"w{i} "},
                    },
                )
            yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": s.output_tokens},
                },
            )
            yield sse("message_stop", {"type": "message_stop"})

        return self._stream(call, frames(), set(range(3, 3 + s.events)))

    async def _count_tokens(self, request: Request) -> Response:
        call = await self._receive(request)
        if call.headers.get("x-api-key") != UPSTREAM_KEY:
            return self._anthropic_error(401)
        call.finished = True
        return JSONResponse({"input_tokens": 42})

    # -- OpenAI ----------------------------------------------------------------------------

    def _openai_error(self, status: int) -> Response:
        errors = {
            401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
            500: ("The server had an error while processing your request.", "server_error", None),
        }
        message, kind, code = errors[status]
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        headers = {"x-request-id": "req_test_openai"}
        if status == 429:
            headers["retry-after"] = "7"
        return JSONResponse(body, status_code=status, headers=headers)

    def _openai_gate(self, call: Call) -> Response | None:
        if call.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
            return self._openai_error(401)
        if self.script.status != 200:
            return self._openai_error(self.script.status)
        return None

    async def _responses(self, request: Request) -> Response:
        call = await self._receive(request)
        if (refusal := self._openai_gate(call)) is not None:
            return refusal
        s = self.script
        model = s.model or call.body.get("model", "gpt-5-codex")
        text = "".join(f"w{i} " for i in range(s.events))
        item = {
            "id": "msg_test",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        usage = {
            "input_tokens": s.input_tokens + s.cache_read_tokens,
            "input_tokens_details": {"cached_tokens": s.cache_read_tokens},
            "output_tokens": s.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": s.input_tokens + s.cache_read_tokens + s.output_tokens,
        }

        def response(status: str, output: list[Any], with_usage: bool) -> dict[str, Any]:
            return {
                "id": "resp_test",
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": usage if with_usage else None,
            }

        if not call.body.get("stream"):
            call.finished = True
            return JSONResponse(response("completed", [item], True))
        seq = iter(range(1_000_000))

        def sse(data: dict[str, Any]) -> bytes:
            data = {**data, "sequence_number": next(seq)}
            encoded = json.dumps(data, separators=(",", ":"))
            return f"event: {data['type']}\ndata: {encoded}\n\n".encode()

        def frames() -> Iterator[bytes]:
            yield sse({"type": "response.created", "response": response("in_progress", [], False)})
            yield sse(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            for i in range(s.events):
                yield sse(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg_test",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": f"w{i} ",
                    }
                )
            yield sse({"type": "response.output_item.done", "output_index": 0, "item": item})
            yield sse(
                {"type": "response.completed", "response": response("completed", [item], True)}
            )

        return self._stream(call, frames(), set(range(2, 2 + s.events)))

    async def _chat(self, request: Request) -> Response:
        call = await self._receive(request)
        if (refusal := self._openai_gate(call)) is not None:
            return refusal
        s = self.script
        model = s.model or call.body.get("model", "gpt-4.1")
        usage = {
            "prompt_tokens": s.input_tokens + s.cache_read_tokens,
            "completion_tokens": s.output_tokens,
            "total_tokens": s.input_tokens + s.cache_read_tokens + s.output_tokens,
            "prompt_tokens_details": {"cached_tokens": s.cache_read_tokens},
        }
        text = "".join(f"w{i} " for i in range(s.events))
        if not call.body.get("stream"):
            call.finished = True
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        options = call.body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True

        def chunk(choices: list[Any], with_usage: dict[str, Any] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                data["usage"] = with_usage
            return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

        def frames() -> Iterator[bytes]:
            yield chunk(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
            for i in range(s.events):
                yield chunk([{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        return self._stream(call, frames(), set(range(1, 1 + s.events)))


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this event loop at a free loopback port; yields its URL."""
    sock = free_socket()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    )
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        sock.close()


def main() -> None:
    """Serve the upstream alone (for ``bench/gateway.py``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    upstream = ScriptedUpstream(Script(events=args.events))
    uvicorn.run(upstream.app, host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop")


if __name__ == "__main__":
    main()
