"""The gateway's HTTP app: the three wire APIs, each call checked, forwarded and metered.

Routes (the paths the engines call, under the base URL they are given):

==================================  ==========================================================
``POST /v1/messages``               Anthropic Messages (``?beta=true`` from Claude Code too)
``POST /v1/messages/count_tokens``  Anthropic token counting: checked, forwarded, not metered
``POST /v1/responses``              OpenAI Responses (Codex)
``POST /v1/chat/completions``       OpenAI Chat Completions (opencode, aider)
``HEAD /``, ``GET /``               200: Claude Code checks the base URL with a ``HEAD /``
==================================  ==========================================================

Each call, in order: the per-run token (the engine's API key) is verified (401 in the
provider's shape when missing, malformed, forged or expired); the run is read from the
database (401 once it has ended); its upstream is resolved; the call's estimated cost is
reserved against its budgets (refused in the provider's error shape, and the budget hook
called, when it does not fit; 503 when Redis or the database cannot be reached: fail closed,
logged as ``gateway_fail_closed``). Then the request goes upstream with the provider key in
place of the token, and the upstream's status, headers and body come back as they arrive
(:mod:`gaffer.gateway.relay`). The query string is passed on unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from gaffer.gateway.budgets import BudgetExceeded, BudgetUnavailable, Reservation
from gaffer.gateway.protocols import ANTHROPIC, CHAT, RESPONSES, Usage, WireProtocol
from gaffer.gateway.protocols.base import ErrorKind, RequestInfo
from gaffer.gateway.relay import relay
from gaffer.gateway.runs import RunInfo
from gaffer.gateway.service import Gateway
from gaffer.gateway.tokens import TokenError
from gaffer.gateway.upstreams import Upstream, UpstreamNotConfigured
from gaffer.gateway.usage import CallRecord

log = structlog.get_logger("gaffer.gateway")

# Never passed upstream: hop-by-hop headers, the engine's own credentials (the per-run token),
# and what httpx sets itself. Accept-Encoding is replaced by identity so the bytes relayed are
# the bytes read for usage.
_DROP_UPSTREAM = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "authorization",
        "x-api-key",
        "accept-encoding",
        "cookie",
    }
)
_DROP_DOWNSTREAM = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}
)


def _error(protocol: WireProtocol, kind: ErrorKind, message: str) -> Response:
    status, body = protocol.error(kind, message)
    return Response(body, status_code=status, media_type="application/json")


def _upstream_headers(
    headers: Mapping[str, str], protocol: WireProtocol, key: str
) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in _DROP_UPSTREAM}
    out["accept-encoding"] = "identity"
    out.update(protocol.upstream_auth(key))
    return out


def _estimate(gateway: Gateway, request: RequestInfo) -> tuple[int, int]:
    """``(nano-USD, tokens)`` a call may cost: its body's bytes / 4 as input tokens, plus
    ``min(max output asked, GAFFER_GATEWAY_RESERVE_OUTPUT_TOKENS)`` output tokens."""
    cap = gateway.settings.reserve_output_tokens
    output = min(request.max_output_tokens or cap, cap)
    usage = Usage(input_tokens=len(request.body) // 4, output_tokens=output)
    return gateway.prices.cost_nano_usd(request.model, usage) or 0, usage.total_tokens


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _admit(
    gateway: Gateway, protocol: WireProtocol, request: Request
) -> tuple[RunInfo, Upstream]:
    key = protocol.api_key(request.headers)
    if not key:
        raise _Refusal(_error(protocol, "authentication", "no API key: send the run's token"))
    try:
        claims = gateway.tokens.verify(key)
    except TokenError as exc:
        log.info("gateway_token_refused", reason=str(exc), api=protocol.name)
        response = _error(protocol, "authentication", f"gaffer run token refused: {exc}")
        raise _Refusal(response) from None
    try:
        run = await gateway.runs.run(claims.run_id)
        if run is None or run.ended:
            log.info("gateway_run_ended", run_id=claims.run_id, api=protocol.name)
            raise _Refusal(
                _error(protocol, "authentication", f"run {claims.run_id} has ended")
                if run is not None
                else _error(protocol, "authentication", "no such run")
            )
        upstream = await gateway.resolver.upstream(run, protocol.name)
    except SQLAlchemyError as exc:
        raise _Refusal(_fail_closed(protocol, "database", type(exc).__name__)) from exc
    except UpstreamNotConfigured as exc:
        log.warning("gateway_no_upstream", run_id=claims.run_id, api=protocol.name)
        raise _Refusal(_error(protocol, "bad_gateway", str(exc))) from exc
    return run, upstream


def _fail_closed(protocol: WireProtocol, store: str, detail: str) -> Response:
    log.error("gateway_fail_closed", store=store, error=detail, api=protocol.name)
    return _error(
        protocol, "unavailable", f"gaffer's gateway cannot reach its {store}; try again later"
    )


async def forward(
    gateway: Gateway, protocol: WireProtocol, request: Request, path: str, *, metered: bool
) -> Response:
    """Check, forward and meter one call (see the module docstring)."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    try:
        run, upstream = await _admit(gateway, protocol, request)
    except _Refusal as refusal:
        return refusal.response
    body = await _read_body(request, gateway.settings.max_request_bytes)
    if body is None:
        limit = gateway.settings.max_request_bytes
        return _error(protocol, "too_large", f"request body over {limit} bytes")
    try:
        info = protocol.read_request(body)
    except ValueError as exc:
        return _error(protocol, "invalid_request", str(exc))
    reservation: Reservation | None = None
    if metered:
        cost, tokens = _estimate(gateway, info)
        try:
            reservation = await gateway.budgets.reserve(run, cost_nano_usd=cost, tokens=tokens)
        except BudgetExceeded as exc:
            log.warning(
                "gateway_budget_exceeded", run_id=run.run_id, budget=exc.budget, reason=str(exc)
            )
            await gateway.budget_exceeded(run.run_id, str(exc))
            return _error(protocol, "budget", str(exc))
        except BudgetUnavailable as exc:
            return _fail_closed(protocol, exc.store, str(exc))
    record = CallRecord(
        run=run,
        api=protocol.name,
        provider=upstream.provider,
        model=info.model,
        started_at=started_at,
    )
    url = upstream.base_url.rstrip("/") + path
    query = request.url.query
    upstream_request = gateway.client.build_request(
        "POST",
        f"{url}?{query}" if query else url,
        content=info.body,
        headers=_upstream_headers(request.headers, protocol, upstream.api_key),
    )
    try:
        response = await gateway.client.send(upstream_request, stream=True)
    except httpx.HTTPError as exc:
        log.warning(
            "gateway_upstream_unreachable", run_id=run.run_id, url=url, error=type(exc).__name__
        )
        record.outcome = "upstream_unreachable"
        record.duration_ms = round((time.perf_counter() - started) * 1000)
        if metered:
            await gateway.finish(record, reservation)
        return _error(protocol, "bad_gateway", f"the upstream cannot be reached: {exc}")
    record.status_code = response.status_code
    record.ttfb_ms = round((time.perf_counter() - started) * 1000)
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_DOWNSTREAM}
    if not metered:
        stream = response.aiter_raw()

        async def passthrough() -> object:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await response.aclose()

        return StreamingResponse(passthrough(), response.status_code, headers)  # type: ignore[arg-type]
    return StreamingResponse(
        relay(gateway, protocol, info, response, record, reservation, started),
        response.status_code,
        headers,
    )


def create_app(gateway: Gateway) -> FastAPI:
    """The gateway's ASGI app over ``gateway`` (closed with the app's lifespan)."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    app = FastAPI(
        title="gaffer model gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return Response(b'{"service":"gaffer-gateway"}', media_type="application/json")

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await forward(gateway, ANTHROPIC, request, "/v1/messages", metered=True)

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        path = "/v1/messages/count_tokens"
        return await forward(gateway, ANTHROPIC, request, path, metered=False)

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        return await forward(gateway, RESPONSES, request, "/v1/responses", metered=True)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await forward(gateway, CHAT, request, "/v1/chat/completions", metered=True)

    return app
