"""OpenAI Responses (``POST /v1/responses``): usage from ``response.completed``.

The terminal event (``response.completed``, or ``response.incomplete`` / ``response.failed``)
carries the whole ``response`` object with ``usage``: ``input_tokens`` (cached ones included,
detailed in ``input_tokens_details.cached_tokens``) and ``output_tokens`` (reasoning
included). ``response.created`` names the model and the response id early. The Responses API
reports no cache writes.
"""

from __future__ import annotations

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

_RESPONSE_EVENTS = frozenset(
    {"response.created", "response.completed", "response.incomplete", "response.failed"}
)


def read_response(response: Any, usage: Usage) -> None:
    """Update ``usage`` from a Response object (its ``model``, ``id`` and ``usage``)."""
    if not isinstance(response, dict):
        return
    if isinstance(response.get("model"), str):
        usage.model = response["model"]
    if isinstance(response.get("id"), str):
        usage.response_id = response["id"]
    figures = response.get("usage")
    if not isinstance(figures, dict):
        return
    details = figures.get("input_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    usage.seen = True
    usage.input_tokens = max(as_int(figures.get("input_tokens")) - cached, 0)
    usage.cache_read_tokens = cached
    usage.output_tokens = as_int(figures.get("output_tokens"))


class OpenAIResponses(WireProtocol):
    """The OpenAI Responses API (see the module docstring)."""

    name = "responses"
    provider_style = "openai"

    def read_request(self, body: bytes) -> RequestInfo:
        """Model, ``stream`` and ``max_output_tokens`` of a Responses request."""
        request = json_object(body)
        model = request.get("model")
        return RequestInfo(
            model=model if isinstance(model, str) else None,
            stream=request.get("stream") is True,
            max_output_tokens=positive_int(request.get("max_output_tokens")),
            body=body,
        )

    def wants_event(self, raw: bytes) -> bool:
        """Only the ``response.*`` lifecycle events carry the Response object."""
        return b'"response.c' in raw or b'"response.incomplete' in raw or b'"response.f' in raw

    def usage_from_event(self, event: str | None, data: str, usage: Usage) -> None:
        """Read the ``response`` of a lifecycle event."""
        parsed = load_json(data)
        if isinstance(parsed, dict) and parsed.get("type") in _RESPONSE_EVENTS:
            read_response(parsed.get("response"), usage)

    def usage_from_json(self, body: Any, usage: Usage) -> None:
        """A non-streamed answer is the Response object itself."""
        read_response(body, usage)

    def error(self, kind: ErrorKind, message: str) -> tuple[int, bytes]:
        """OpenAI's error body for ``kind``."""
        return openai_error(kind, message)


RESPONSES = OpenAIResponses()
