"""A scripted model provider for tests: a real HTTP server on 127.0.0.1 speaking the wire APIs
the agent CLIs use, answering from a plan set by the test.

    from gaffer.demo.model.server import Edit, ModelServer, Say, Shell, Usage

    with ModelServer() as server:                  # server.url == "http://127.0.0.1:PORT"
        server.script([Shell("printf 'hi\\n' > HELLO.md", then="Done: wrote HELLO.md")])
        # ANTHROPIC_BASE_URL=server.anthropic_url, an OpenAI base URL = server.openai_url
        server.usage = Usage(input_tokens=120, output_tokens=30, cache_read=0, cache_write=0)
        server.fail(status=401, times=None)        # every model call: 401, the provider's body
        server.fail(status=500, times=2)           # the next 2 model calls
        server.cut_stream(after_events=3, times=1) # close the next stream after 3 SSE events
        server.stall(seconds=30)                   # hold the next answer 30 s
        server.requests                            # every request: .path, .headers, .json

Endpoints: Anthropic Messages ``POST /v1/messages`` (``?beta=true`` too; SSE when ``stream``,
else plain JSON: Claude Code resends without streaming after a cut stream),
``POST /v1/messages/count_tokens``; OpenAI Responses ``POST /v1/responses`` (SSE, or the plain
response object); OpenAI Chat Completions ``POST /v1/chat/completions`` (SSE chunks with
``tool_calls`` deltas and a usage chunk when ``stream_options.include_usage``, else plain);
``GET /v1/models`` lists :attr:`ModelServer.model`; ``HEAD /`` and ``GET /`` answer 200. The
Chat and Responses routes are also served without the ``/v1`` prefix.

Failures, stalls and cuts count *model calls* (the three POST endpoints above, agent turns and
side calls alike); a failed call consumes nothing of the plan. The choice of each answer (plan
items, side calls, resent requests) is :class:`gaffer.demo.model.plan.Planner`'s; the wire
formats are in :mod:`gaffer.demo.model.wire`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gaffer.demo.model import wire
from gaffer.demo.model.plan import (
    Answer,
    Edit,
    PlanItem,
    Planner,
    Protocol,
    Say,
    Shell,
    ToolCall,
    Turn,
    Usage,
    turn_of,
)
from gaffer.demo.model.wire import iter_sse

__all__ = [
    "Answer",
    "Edit",
    "ModelServer",
    "PlanItem",
    "RecordedRequest",
    "Say",
    "Shell",
    "ToolCall",
    "Usage",
    "iter_sse",
]


@dataclass
class RecordedRequest:
    """One request the server received.

    ``path`` without the query (``query`` holds it, e.g. "beta=true"); ``headers`` with
    lower-case names; ``json`` the parsed body (None when not JSON); ``protocol`` "anthropic",
    "responses" or "chat" for model calls (None otherwise); ``answer`` what it was answered
    (None for a failed call or a non-model route); ``status`` the HTTP status sent."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    protocol: Protocol | None = None
    answer: Answer | None = None
    status: int = 200
    time: float = field(default_factory=time.time)

    @property
    def is_agent_turn(self) -> bool:
        """Answered from the plan (not a side call, not failed)."""
        return self.answer is not None and self.answer.kind == "agent"


ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _Cut(Exception):
    """Raised inside a streamed body to drop the connection mid-stream."""


@dataclass
class _Budget:
    """A fault armed for the next ``times`` model calls (None: every call)."""

    times: int | None
    value: Any

    def take(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


class ModelServer:
    """The scripted model server (a context manager: ``with ModelServer() as server``).

    ``model``: the model id ``GET /v1/models`` lists (requests may name any model; answers echo
    the requested one). Thread-safe: the test thread configures it while the server thread
    answers. ``policy``: what a new agent turn does once the plan is used up
    (:attr:`gaffer.demo.model.plan.Planner.policy`)."""

    def __init__(
        self,
        model: str = "gaffer-scripted",
        policy: Callable[[Turn], PlanItem] | None = None,
    ) -> None:
        self.model = model
        self.usage = Usage()
        self._lock = threading.Lock()
        self._planner = Planner(policy=policy)
        self._requests: list[RecordedRequest] = []
        self._fail: _Budget | None = None
        self._cut: _Budget | None = None
        self._stall: _Budget | None = None
        self._stopping = threading.Event()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> ModelServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread (returns once listening).

        Raises RuntimeError when the server did not start within 10 s."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        config = uvicorn.Config(
            self._app(),
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="model-server"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (a held answer is released at once) and close the port."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        if self._socket is None:
            raise RuntimeError("the model server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_url(self) -> str:
        """The base URL for Anthropic clients (``ANTHROPIC_BASE_URL``): :attr:`url`; they
        append ``/v1/messages``."""
        return self.url

    @property
    def openai_url(self) -> str:
        """The base URL for OpenAI clients (Codex ``base_url``, opencode ``baseURL``, aider
        ``--openai-api-base``): :attr:`url` + ``/v1``."""
        return self.url + "/v1"

    # -- the script --------------------------------------------------------------------------

    def script(self, plan: list[PlanItem]) -> None:
        """Set the plan (replacing any earlier one): one item per agent turn, see
        :mod:`gaffer.demo.model.plan`."""
        with self._lock:
            self._planner.script(plan)

    @property
    def remaining(self) -> int:
        """Plan items not used yet."""
        with self._lock:
            return self._planner.remaining

    @property
    def side_text(self) -> str:
        """What side calls (no tools, not aider) are answered: "Scripted task"."""
        return self._planner.side_text

    @side_text.setter
    def side_text(self, text: str) -> None:
        with self._lock:
            self._planner.side_text = text

    def fail(self, status: int = 500, times: int | None = 1, message: str | None = None) -> None:
        """Answer the next ``times`` model calls (None: all of them, until :meth:`heal`) with
        HTTP ``status`` and the provider's own error body (Anthropic
        ``{"type": "error", "error": {"type": "authentication_error", ...}}``, OpenAI
        ``{"error": {"message", "type", "code"}}``; see :mod:`gaffer.demo.model.wire`):
        401 = a bad key, 429 = rate limit (Anthropic) / quota (OpenAI ``insufficient_quota``),
        500 = server error. ``message`` replaces the provider's message text."""
        with self._lock:
            self._fail = _Budget(times, (status, message))

    def heal(self) -> None:
        """Disarm every failure, cut and stall."""
        with self._lock:
            self._fail = self._cut = self._stall = None

    def cut_stream(self, after_events: int = 3, times: int | None = 1) -> None:
        """Close the next ``times`` streamed agent-turn answers after ``after_events`` SSE
        events, with no end to the HTTP body (the client sees the connection drop mid-stream).
        Plain (non-streamed) answers and side calls are never cut and do not count. The
        resent request gets the same answer (the plan is not consumed twice)."""
        with self._lock:
            self._cut = _Budget(times, after_events)

    def stall(self, seconds: float = 30.0, times: int | None = 1) -> None:
        """Hold the next ``times`` model calls ``seconds`` before answering (nothing is sent
        meanwhile; the answer is chosen on arrival, so a resend by a client that gave up
        gets the same one); :meth:`stop` releases them."""
        with self._lock:
            self._stall = _Budget(times, seconds)

    # -- what happened -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """The model calls (the three POST endpoints), oldest first."""
        return [r for r in self.requests if r.protocol is not None]

    @property
    def agent_requests(self) -> list[RecordedRequest]:
        """The model calls answered as agent turns (from the plan), oldest first."""
        return [r for r in self.requests if r.is_agent_turn]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    # -- serving -----------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/", self._root, methods=["GET", "HEAD"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/models", self._models, methods=["GET"]),
            Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
            Route("/v1/messages", self._anthropic, methods=["POST"]),
            Route("/v1/responses", self._responses, methods=["POST"]),
            Route("/responses", self._responses, methods=["POST"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/chat/completions", self._chat, methods=["POST"]),
            Route("/{path:path}", self._unknown, methods=[*ANY_METHOD]),
        ]
        return Starlette(routes=routes)

    async def _unknown(self, request: Request) -> Response:
        record = await self._record(request, None)
        record.status = 404
        return JSONResponse({"error": {"message": f"no route {request.url.path}"}}, 404)

    async def _record(self, request: Request, protocol: Protocol | None) -> RecordedRequest:
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
            protocol=protocol,
        )
        with self._lock:
            self._requests.append(record)
        return record

    async def _root(self, request: Request) -> Response:
        await self._record(request, None)
        return PlainTextResponse("ok")

    async def _models(self, request: Request) -> Response:
        await self._record(request, None)
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "gaffer"}],
            }
        )

    async def _count_tokens(self, request: Request) -> Response:
        await self._record(request, None)
        return JSONResponse({"input_tokens": self.usage.input_tokens})

    async def _hold(self, seconds: float) -> None:
        await asyncio.to_thread(self._stopping.wait, seconds)

    async def _model_call(
        self, request: Request, protocol: Protocol
    ) -> tuple[RecordedRequest, Response | None, Turn | None, Answer | None, int | None]:
        """Record the call; apply an armed failure or stall; choose the answer. Returns the
        record, an error response (or None), the turn, the answer and the cut point."""
        record = await self._record(request, protocol)
        body = record.json if isinstance(record.json, dict) else {}
        with self._lock:
            failure = self._fail.value if self._fail is not None and self._fail.take() else None
            stall = self._stall.value if self._stall is not None and self._stall.take() else None
        if failure is not None:
            status, message = failure
            record.status = status
            error = (
                wire.anthropic_error(status, message)
                if protocol == "anthropic"
                else wire.openai_error(status, message)
            )
            headers = {"x-should-retry": "true"} if status >= 500 or status == 429 else {}
            return record, JSONResponse(error, status, headers=headers), None, None, None
        # The answer is chosen on arrival, then held: a resend while it is held (the client
        # gave up waiting) gets the same answer.
        turn = turn_of(protocol, body)
        with self._lock:
            answer = self._planner.answer(turn)
            cut = None
            streamed = bool(body.get("stream")) and answer.kind == "agent"
            if streamed and self._cut is not None and self._cut.take():
                cut = int(self._cut.value)
        if stall is not None:
            await self._hold(float(stall))
        record.answer = answer
        return record, None, turn, answer, cut

    def _delivered(self, turn: Turn) -> None:
        with self._lock:
            self._planner.delivered(turn.key)

    def _plain(self, turn: Turn, body: dict[str, Any]) -> Response:
        self._delivered(turn)
        return JSONResponse(body)

    def _stream(self, turn: Turn, events: list[wire.Event], cut: int | None) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for n, event in enumerate(events):
                if cut is not None and n >= cut:
                    raise _Cut("stream cut by the test")
                yield wire.sse(event)
            self._delivered(turn)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-request-id": wire.new_id("req")},
        )

    async def _anthropic(self, request: Request) -> Response:
        record, error, turn, answer, cut = await self._model_call(request, "anthropic")
        if error is not None or turn is None or answer is None:
            return error or JSONResponse({}, 500)
        model = turn.model or self.model
        if isinstance(record.json, dict) and record.json.get("stream"):
            return self._stream(turn, wire.anthropic_events(answer, model, self.usage), cut)
        return self._plain(turn, wire.anthropic_message(answer, model, self.usage))

    async def _responses(self, request: Request) -> Response:
        record, error, turn, answer, cut = await self._model_call(request, "responses")
        if error is not None or turn is None or answer is None:
            return error or JSONResponse({}, 500)
        events = wire.responses_events(answer, turn.model or self.model, self.usage)
        if isinstance(record.json, dict) and record.json.get("stream"):
            return self._stream(turn, events, cut)
        completed = events[-1][1]
        assert isinstance(completed, dict)
        return self._plain(turn, completed["response"])

    async def _chat(self, request: Request) -> Response:
        record, error, turn, answer, cut = await self._model_call(request, "chat")
        if error is not None or turn is None or answer is None:
            return error or JSONResponse({}, 500)
        model = turn.model or self.model
        body = record.json if isinstance(record.json, dict) else {}
        if body.get("stream"):
            options = body.get("stream_options") or {}
            include_usage = bool(options.get("include_usage"))
            events = wire.chat_events(answer, model, self.usage, include_usage)
            return self._stream(turn, events, cut)
        return self._plain(turn, wire.chat_completion(answer, model, self.usage))
