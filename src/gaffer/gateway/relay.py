"""Relaying one upstream answer to the engine as it arrives, reading usage on the way.

Bytes are passed on as httpx reads them off the socket (``aiter_raw``: no decoding, no
re-framing; whatever has arrived since the last write goes in the next one, see
:class:`_Pump`), except for a Chat Completions stream whose usage chunk the gateway
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
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

import anyio
import httpx
import structlog

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

log = structlog.get_logger("gaffer.gateway")

MAX_JSON_BYTES = 16 * 1024 * 1024
"""A non-streamed answer larger than this is still relayed, but its usage is not read."""


class UpstreamCut(Exception):
    """The upstream's stream broke mid-answer; raised to break the engine's stream too."""


class _Pump:
    """Reads the upstream body on a task of its own into a queue of chunks, so that the
    relay sends everything that has arrived in one write (one syscall, where the upstream's
    2,000 events would otherwise cost 2,000). Nothing waits for more data: a lone chunk is
    sent at once. At most :data:`PUMP_MAX_BYTES` wait; the reader then waits for room."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.done = False
        self.error: httpx.HTTPError | None = None
        self.task = asyncio.get_running_loop().create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        try:
            async for chunk in response.aiter_raw():
                self.chunks.append(chunk)
                self.size += len(chunk)
                self.ready.set()
                if self.size > PUMP_MAX_BYTES:
                    self.room.clear()
                    await self.room.wait()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.done = True
            self.ready.set()

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Lists of the chunks that arrived since the last one, until the body ends."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.chunks:
                batch = list(self.chunks)
                self.chunks.clear()
                self.size = 0
                self.room.set()
                yield batch
            if self.done and not self.chunks:
                return


PUMP_MAX_BYTES = 1024 * 1024


async def relay(
    gateway: Gateway,
    protocol: WireProtocol,
    request: RequestInfo,
    response: httpx.Response,
    record: CallRecord,
    reservation: Reservation | None,
    started: float,
) -> AsyncIterator[bytes]:
    """The body of ``response``, as it arrives (see the module docstring). ``started`` is
    the ``time.perf_counter()`` of the call's start (for ``duration_ms``)."""
    is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
    scanner = SSEScanner() if is_sse else None
    whole = bytearray() if not is_sse else None
    strip = is_sse and request.strip_usage_chunk
    usage = record.usage
    record.outcome = "ok" if response.status_code < 400 else "upstream_error"
    pump = _Pump(response)
    try:
        async for batch in pump.batches():
            if scanner is None:
                for chunk in batch:
                    if whole is not None and len(whole) + len(chunk) <= MAX_JSON_BYTES:
                        whole += chunk
                yield b"".join(batch)
                continue
            data = b"".join(batch)
            if not strip:
                for event in scanner.feed_marked(data, protocol.wants_event):
                    if protocol.wants_event(event):
                        name, text = parse_event(event)
                        protocol.usage_from_event(name, text, usage)
                yield data
                continue
            kept = []
            for event in scanner.feed(data):
                if protocol.wants_event(event):
                    name, text = parse_event(event)
                    protocol.usage_from_event(name, text, usage)
                    if is_usage_chunk(text):
                        continue
                kept.append(event)
            if kept:
                yield b"".join(kept)
        if strip and scanner is not None and scanner.rest:
            yield scanner.rest
        if pump.error is not None:
            record.outcome = "cut"
            detail = type(pump.error).__name__
            log.warning("gateway_upstream_cut", run_id=record.run.run_id, error=detail)
            raise UpstreamCut(f"the upstream's answer broke off: {detail}") from pump.error
    except (asyncio.CancelledError, GeneratorExit):
        record.outcome = "client_disconnected"
        raise
    finally:
        pump.task.cancel()
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(asyncio.CancelledError):
                await pump.task
            await response.aclose()
            if whole is not None and record.outcome in ("ok", "upstream_error"):
                protocol.usage_from_json(load_json(bytes(whole)), usage)
            record.duration_ms = round((time.perf_counter() - started) * 1000)
            await gateway.finish(record, reservation)
