"""OpenAI Chat Completions (``POST /v1/chat/completions``): usage from the final chunk.

A streamed completion reports usage only when asked with ``stream_options.include_usage``:
then one last chunk before ``data: [DONE]`` has ``choices: []`` and ``usage``
(``prompt_tokens``, cached ones included and detailed in ``prompt_tokens_details.cached_tokens``,
and ``completion_tokens``); the other chunks carry ``"usage": null``. When the engine did not
ask, the gateway asks for it and keeps that chunk from the engine, which then sees the stream it
asked for.
"""

from __future__ import annotations

import json
from typing import Any

from gaffer.gateway.protocols.base import (
    ErrorKind,
    RequestInfo,
    Usage,
    WireProtocol,
    as_int,
    json_object,
    load_json,
    positive_int,
)
from gaffer.gateway.protocols.openai_errors import openai_error


def read_usage(figures: Any, usage: Usage) -> None:
    """Update ``usage`` from a Chat Completions ``usage`` object."""
    if not isinstance(figures, dict):
        return
    details = figures.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    usage.seen = True
    usage.input_tokens = max(as_int(figures.get("prompt_tokens")) - cached, 0)
    usage.cache_read_tokens = cached
    usage.output_tokens = as_int(figures.get("completion_tokens"))


def is_usage_chunk(data: str) -> bool:
    """True for the final chunk that only reports usage (``choices`` empty, ``usage`` set)."""
    parsed = load_json(data)
    return (
        isinstance(parsed, dict)
        and isinstance(parsed.get("usage"), dict)
        and not parsed.get("choices")
    )


class ChatCompletions(WireProtocol):
    """The OpenAI Chat Completions API (see the module docstring)."""

    name = "chat"
    provider_style = "openai"

    def read_request(self, body: bytes) -> RequestInfo:
        """Model, ``stream``, ``max_completion_tokens`` (or the older ``max_tokens``); a
        streamed request that does not ask for usage is made to ask for it."""
        request = json_object(body)
        model = request.get("model")
        stream = request.get("stream") is True
        options = request.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        strip = stream and not asked
        if strip:
            request["stream_options"] = {**(options or {}), "include_usage": True}
            body = json.dumps(request, separators=(",", ":")).encode()
        return RequestInfo(
            model=model if isinstance(model, str) else None,
            stream=stream,
            max_output_tokens=positive_int(
                request.get("max_completion_tokens") or request.get("max_tokens")
            ),
            body=body,
            strip_usage_chunk=strip,
        )

    def wants_event(self, raw: bytes) -> bool:
        """Chunks with a usage object (every chunk says ``"usage":null`` once usage is asked,
        so the test is for an object; it holds for a run of several chunks too)."""
        return b'"usage":{' in raw or b'"usage": {' in raw

    def usage_from_event(self, event: str | None, data: str, usage: Usage) -> None:
        """Read ``usage``, ``model`` and ``id`` of a chunk."""
        parsed = load_json(data)
        if not isinstance(parsed, dict):
            return
        if isinstance(parsed.get("model"), str):
            usage.model = parsed["model"]
        if isinstance(parsed.get("id"), str):
            usage.response_id = parsed["id"]
        read_usage(parsed.get("usage"), usage)

    def usage_from_json(self, body: Any, usage: Usage) -> None:
        """A non-streamed completion carries ``usage`` at the top."""
        if not isinstance(body, dict):
            return
        if isinstance(body.get("model"), str):
            usage.model = body["model"]
        if isinstance(body.get("id"), str):
            usage.response_id = body["id"]
        read_usage(body.get("usage"), usage)

    def error(self, kind: ErrorKind, message: str) -> tuple[int, bytes]:
        """OpenAI's error body for ``kind``."""
        return openai_error(kind, message)


CHAT = ChatCompletions()
