"""What the three wire protocols share: usage figures, request facts, the SSE event scanner."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ErrorKind = Literal[
    "authentication", "invalid_request", "too_large", "budget", "unavailable", "bad_gateway"
]
"""Why the gateway itself answers instead of the upstream: a refused token, a request it cannot
read or that is too large, a budget, Redis or the database unreachable (fail closed), the
upstream unreachable."""

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class Usage:
    """Tokens of one call, as the upstream reported them.

    ``input_tokens`` counts input tokens that were neither read from nor written to the prompt
    cache (Anthropic reports it so; for OpenAI, whose ``input_tokens``/``prompt_tokens``
    include the cached ones, the cached count is subtracted), so that the four counts add up to
    every token billed and each is priced at its own rate. ``model`` is the model the upstream
    answered with, ``response_id`` its id of the response; ``seen`` is True once any usage
    figure was read.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    response_id: str | None = None
    seen: bool = False

    @property
    def total_tokens(self) -> int:
        """All four counts added up."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


@dataclass(frozen=True)
class RequestInfo:
    """What the gateway reads from a request body: ``model``, ``stream`` (SSE asked),
    ``max_output_tokens`` (the most it may produce, None when the request does not say) and
    ``body`` (the bytes to send upstream: the engine's own, unless the protocol changed them)."""

    model: str | None
    stream: bool
    max_output_tokens: int | None
    body: bytes
    strip_usage_chunk: bool = False
    """Chat Completions only: the gateway asked for the final usage chunk the engine did not
    ask for, so that chunk is not passed on."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_int(value: Any) -> int:
    """``value`` when it is an int (not a bool), else 0: usage fields read defensively."""
    return _int(value)


class SSEScanner:
    """Splits a server-sent event stream into whole events as chunks arrive.

    :meth:`feed` takes the next chunk (bytes) and returns the events it completed, each as its
    raw bytes with the blank line that ends it. :attr:`rest` is what has not ended yet (a cut
    stream's partial event).
    """

    def __init__(self) -> None:
        self.rest = b""

    def feed_marked(self, chunk: bytes, marked: Callable[[bytes], bool]) -> list[bytes]:
        """Like :meth:`feed`, but only split when ``marked(rest + chunk)`` says the bytes may
        hold an event of interest (a C-speed substring search over the whole chunk instead of
        a split per event: most events carry no usage). Returns the completed events when it
        split, else ``[]`` (keeping only the unfinished tail)."""
        data = self.rest + chunk if self.rest else chunk
        if marked(data):
            self.rest = b""
            return self.feed(data)
        end = 0
        for separator in (b"\n\n", b"\r\n\r\n", b"\r\r"):
            found = data.rfind(separator)
            if found >= 0:
                end = max(end, found + len(separator))
        self.rest = data[end:]
        return []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events completed by ``chunk`` (raw bytes, each ending with its blank line)."""
        data = self.rest + chunk if self.rest else chunk
        events: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        self.rest = data[start:]
        return events


def parse_event(raw: bytes) -> tuple[str | None, str]:
    """``(event name or None, data)`` of one raw SSE event (data lines joined by newlines)."""
    name: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()
    return name, "\n".join(data)


def load_json(data: str | bytes) -> Any:
    """``json.loads(data)``, or None when ``data`` is not JSON."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


class WireProtocol(ABC):
    """One wire API (see the package docstring). Subclasses are stateless singletons."""

    name: str
    """``anthropic`` (Messages), ``responses`` (OpenAI Responses), ``chat`` (Chat Completions)."""
    provider_style: Literal["anthropic", "openai"]

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        """The key the engine sent: ``x-api-key`` for Anthropic, ``Authorization: Bearer``
        for OpenAI (each also accepts the other, as the official SDKs may send either)."""
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if self.provider_style == "anthropic":
            return key or bearer
        return bearer or key

    def upstream_auth(self, api_key: str) -> dict[str, str]:
        """The header(s) that carry the provider key upstream."""
        if self.provider_style == "anthropic":
            return {"x-api-key": api_key}
        return {"authorization": f"Bearer {api_key}"}

    @abstractmethod
    def read_request(self, body: bytes) -> RequestInfo:
        """The facts of a request body; raises :class:`ValueError` when it is not a JSON
        object."""

    @abstractmethod
    def usage_from_event(self, event: str | None, data: str, usage: Usage) -> None:
        """Update ``usage`` from one streamed event (``event`` name, ``data`` text)."""

    @abstractmethod
    def wants_event(self, raw: bytes) -> bool:
        """Cheap filter: True when the raw event (or any bytes: a whole chunk of events) may
        carry usage; only those events are parsed."""

    @abstractmethod
    def usage_from_json(self, body: Any, usage: Usage) -> None:
        """Update ``usage`` from a whole (non-streamed) JSON answer."""

    @abstractmethod
    def error(self, kind: ErrorKind, message: str) -> tuple[int, bytes]:
        """``(HTTP status, body)`` of the provider's own error shape for ``kind``."""


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` parsed as a JSON object; raises :class:`ValueError` otherwise."""
    parsed = load_json(body)
    if not isinstance(parsed, dict):
        raise ValueError("the request body is not a JSON object")
    return parsed


def positive_int(value: Any) -> int | None:
    """``value`` when it is a positive int, else None."""
    number = _int(value)
    return number if number > 0 else None
