"""Relaying one upstream answer to the engine as it arrives, reading usage on the way.

Bytes are passed on chunk by chunk as httpx reads them off the socket (``aiter_raw``: no
decoding, no re-framing), except for a Chat Completions stream whose usage chunk the gateway
asked for: that one is relayed event by event so the extra chunk can be left out. Usage is read
from a copy of the events (:class:`~gaffer.gateway.protocols.SSEScanner`), parsing only the
events that may carry it. A non-streamed answer is passed on the same way and read whole at the
end (up to :data:`MAX_JSON_BYTES`).

How a relay ends sets the call's ``outcome``: the upstream's stream broke (``cut``: the
engine's stream is then broken too, by raising :class:`UpstreamCut` so the server drops the
connection, as the upstream did), the engine went away (``client_disconnected``: the upstream
call is closed at once, cancelling it), or it ended (``ok``, or ``upstream_error`` for a 4xx/5xx
answer). Whatever the end, the upstream response is closed and the call handed to
:meth:`gaffer.gateway.service.Gateway.finish`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio
import httpx

from gaffer.gateway.budgets import Reservation
from gaffer.gateway.protocols.base import (
    RequestInfo,
    SSEScanner,
    WireProtocol,
    load_json,
    parse_event,
)
from gaffer.gateway.protocols.chat import is_usage_chunk
from gaffer.gateway.service import Gateway
from gaffer.gateway.usage import CallRecord

MAX_JSON_BYTES = 16 * 1024 * 1024
"""A non-streamed answer larger than this is still relayed, but its usage is not read."""


class UpstreamCut(Exception):
    """The upstream's stream broke mid-answer; raised to break the engine's stream too."""


async def relay(
    gateway: Gateway,
    protocol: WireProtocol,
    request: RequestInfo,
    response: httpx.Response,
    record: CallRecord,
    reservation: Reservation | None,
    started: float,
) -> AsyncIterator[bytes]:
    """The body of ``response``, chunk by chunk (see the module docstring). ``started`` is
    the ``time.perf_counter()`` of the call's start (for ``duration_ms``)."""
    is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
    scanner = SSEScanner() if is_sse else None
    whole = bytearray() if not is_sse else None
    strip = is_sse and request.strip_usage_chunk
    usage = record.usage
    record.outcome = "ok" if response.status_code < 400 else "upstream_error"
    try:
        async for chunk in response.aiter_raw():
            if scanner is None:
                if whole is not None and len(whole) + len(chunk) <= MAX_JSON_BYTES:
                    whole += chunk
                yield chunk
                continue
            events = scanner.feed(chunk)
            if not strip:
                for event in events:
                    if protocol.wants_event(event):
                        name, data = parse_event(event)
                        protocol.usage_from_event(name, data, usage)
                yield chunk
                continue
            kept = []
            for event in events:
                if protocol.wants_event(event):
                    name, data = parse_event(event)
                    protocol.usage_from_event(name, data, usage)
                    if is_usage_chunk(data):
                        continue
                kept.append(event)
            if kept:
                yield b"".join(kept)
        if strip and scanner is not None and scanner.rest:
            yield scanner.rest
    except httpx.HTTPError as exc:
        record.outcome = "cut"
        if strip and scanner is not None and scanner.rest:
            yield scanner.rest
        raise UpstreamCut(f"the upstream's answer broke off: {type(exc).__name__}") from exc
    except (asyncio.CancelledError, GeneratorExit):
        record.outcome = "client_disconnected"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()
            if whole is not None and record.outcome in ("ok", "upstream_error"):
                protocol.usage_from_json(load_json(bytes(whole)), usage)
            record.duration_ms = round((time.perf_counter() - started) * 1000)
            await gateway.finish(record, reservation)
