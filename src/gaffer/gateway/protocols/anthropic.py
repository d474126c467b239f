"""Anthropic Messages (``POST /v1/messages``): usage from ``message_start`` + ``message_delta``.

Usage, per Anthropic's streaming reference: ``message_start`` carries ``message.usage``
(``input_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``, and a first
``output_tokens``); each ``message_delta`` carries ``usage`` with the cumulative
``output_tokens`` (and, in newer API versions, cumulative input and cache counts too), so the
last value seen of each field wins. Anthropic's ``input_tokens`` already excludes cached tokens.
Errors are ``{"type": "error", "error": {"type": ..., "message": ...}}``.
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

# Anthropic's own error types; an over-budget call reads like "credit balance too low" (400).
_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    "authentication": (401, "authentication_error"),
    "invalid_request": (400, "invalid_request_error"),
    "too_large": (413, "request_too_large"),
    "budget": (400, "invalid_request_error"),
    "unavailable": (503, "api_error"),
    "bad_gateway": (502, "api_error"),
}


def _apply(usage: Usage, figures: Any) -> None:
    if not isinstance(figures, dict):
        return
    usage.seen = True
    if "input_tokens" in figures:
        usage.input_tokens = as_int(figures["input_tokens"])
    if "output_tokens" in figures:
        usage.output_tokens = as_int(figures["output_tokens"])
    if "cache_read_input_tokens" in figures:
        usage.cache_read_tokens = as_int(figures["cache_read_input_tokens"])
    if "cache_creation_input_tokens" in figures:
        usage.cache_write_tokens = as_int(figures["cache_creation_input_tokens"])


class AnthropicMessages(WireProtocol):
    """The Anthropic Messages API (see the module docstring)."""

    name = "anthropic"
    provider_style = "anthropic"

    def read_request(self, body: bytes) -> RequestInfo:
        """Model, ``stream`` and ``max_tokens`` of a Messages request."""
        request = json_object(body)
        model = request.get("model")
        return RequestInfo(
            model=model if isinstance(model, str) else None,
            stream=request.get("stream") is True,
            max_output_tokens=positive_int(request.get("max_tokens")),
            body=body,
        )

    def wants_event(self, raw: bytes) -> bool:
        """``message_start`` and ``message_delta`` carry ``"usage"``; no other event does."""
        return b'"usage"' in raw

    def usage_from_event(self, event: str | None, data: str, usage: Usage) -> None:
        """Read ``message_start.message.usage`` and ``message_delta.usage``."""
        parsed = load_json(data)
        if not isinstance(parsed, dict):
            return
        kind = parsed.get("type")
        if kind == "message_start" and isinstance(parsed.get("message"), dict):
            message = parsed["message"]
            if isinstance(message.get("model"), str):
                usage.model = message["model"]
            if isinstance(message.get("id"), str):
                usage.response_id = message["id"]
            _apply(usage, message.get("usage"))
        elif kind == "message_delta":
            _apply(usage, parsed.get("usage"))

    def usage_from_json(self, body: Any, usage: Usage) -> None:
        """Read a whole Message's ``usage``, ``model`` and ``id``."""
        if not isinstance(body, dict):
            return
        if isinstance(body.get("model"), str):
            usage.model = body["model"]
        if isinstance(body.get("id"), str):
            usage.response_id = body["id"]
        _apply(usage, body.get("usage"))

    def error(self, kind: ErrorKind, message: str) -> tuple[int, bytes]:
        """Anthropic's error body for ``kind``."""
        status, error_type = _ERRORS[kind]
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return status, json.dumps(body).encode()


ANTHROPIC = AnthropicMessages()
