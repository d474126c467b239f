"""The providers' wire formats for one scripted answer: SSE events and plain JSON bodies.

- Anthropic Messages (https://docs.anthropic.com/en/api/messages-streaming): ``message_start``
  (with usage), ``content_block_start``/``content_block_delta`` (``text_delta``,
  ``input_json_delta``)/``content_block_stop`` per block, ``message_delta`` (stop_reason,
  usage), ``message_stop``; each as ``event: NAME`` + ``data: JSON``.
- OpenAI Responses (https://platform.openai.com/docs/api-reference/responses-streaming):
  ``response.created``, ``response.in_progress``, ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta``/``.done``,
  ``response.content_part.done``, ``response.function_call_arguments.delta``/``.done``,
  ``response.output_item.done`` (a ``message`` or a ``function_call``), ``response.completed``
  ``{response: {id, output, usage}}``; each with ``type`` and ``sequence_number``.
- OpenAI Chat Completions (https://platform.openai.com/docs/api-reference/chat-streaming):
  ``chat.completion.chunk`` objects (``delta`` content or ``tool_calls`` with an ``index``, the
  first carrying ``id``/``type``/``function.name``), a chunk with ``finish_reason``, a last
  chunk with empty ``choices`` and the usage when ``stream_options.include_usage``, then
  ``data: [DONE]``.

And each provider's error body, as its API sends it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from gaffer.demo.model.plan import Answer, Usage, words

Event = tuple[str | None, dict[str, Any] | str]  # (SSE event name or None, data)


def sse(event: Event) -> bytes:
    """One SSE frame: ``event: NAME`` (when named) and ``data: ...``, then a blank line."""
    name, data = event
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


def new_id(prefix: str) -> str:
    """A fresh id in the provider's style: ``PREFIX_<24 hex>`` (msg_, resp_, fc_, chatcmpl_)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# -- Anthropic Messages ----------------------------------------------------------------------


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage object (``input_tokens`` excludes cache reads and writes)."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


def _anthropic_blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.text or answer.tool_call is None:
        blocks.append({"type": "text", "text": answer.text})
    if answer.tool_call is not None:
        call = answer.tool_call
        blocks.append(
            {"type": "tool_use", "id": call.call_id, "name": call.name, "input": call.arguments}
        )
    return blocks


def anthropic_message(answer: Answer, model: str, usage: Usage) -> dict[str, Any]:
    """The plain (``stream: false``) Messages response."""
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_blocks(answer),
        "stop_reason": "tool_use" if answer.tool_call else "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def anthropic_events(answer: Answer, model: str, usage: Usage) -> list[Event]:
    """The streamed Messages response, event by event."""
    message = anthropic_message(answer, model, usage)
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    events: list[Event] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opened: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in words(block["text"])]
        else:
            opened = dict(block, input={})
            raw = json.dumps(block["input"])
            cut = max(1, len(raw) // 2)
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (raw[:cut], raw[cut:])
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": message["usage"],
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def anthropic_error(status: int, message: str | None) -> dict[str, Any]:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    kind, default = ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": message or default},
        "request_id": new_id("req"),
    }


# -- OpenAI Responses ------------------------------------------------------------------------


def responses_usage(usage: Usage) -> dict[str, Any]:
    """The Responses usage object (``input_tokens`` includes the cached ones)."""
    total_in = usage.input_tokens + usage.cache_read
    return {
        "input_tokens": total_in,
        "input_tokens_details": {"cached_tokens": usage.cache_read},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total_in + usage.output_tokens,
    }


def _responses_items(answer: Answer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.text or answer.tool_call is None:
        items.append(
            {
                "id": new_id("msg"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": answer.text, "annotations": []}],
            }
        )
    if answer.tool_call is not None:
        call = answer.tool_call
        items.append(
            {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
            }
        )
    return items


def responses_events(answer: Answer, model: str, usage: Usage) -> list[Event]:
    """The streamed Responses answer, event by event (``sequence_number`` from 0)."""
    response_id = new_id("resp")
    items = _responses_items(answer)
    base = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "output": [],
        "usage": None,
    }
    raw: list[dict[str, Any]] = [
        {"type": "response.created", "response": dict(base, status="in_progress")},
        {"type": "response.in_progress", "response": dict(base, status="in_progress")},
    ]
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            raw.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": dict(item, status="in_progress", content=[]),
                }
            )
            raw.append({"type": "response.content_part.added", **where, "part": part})
            for piece in words(text):
                raw.append({"type": "response.output_text.delta", **where, "delta": piece})
            raw.append({"type": "response.output_text.done", **where, "text": text})
            raw.append(
                {"type": "response.content_part.done", **where, "part": dict(part, text=text)}
            )
        else:
            where = {"item_id": item["id"], "output_index": index}
            raw.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": dict(item, status="in_progress", arguments=""),
                }
            )
            raw.append(
                {
                    "type": "response.function_call_arguments.delta",
                    **where,
                    "delta": item["arguments"],
                }
            )
            raw.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "arguments": item["arguments"],
                }
            )
        raw.append({"type": "response.output_item.done", "output_index": index, "item": item})
    raw.append(
        {
            "type": "response.completed",
            "response": dict(base, status="completed", output=items, usage=responses_usage(usage)),
        }
    )
    return [(e["type"], dict(e, sequence_number=n)) for n, e in enumerate(raw)]


# -- OpenAI Chat Completions -----------------------------------------------------------------


def chat_usage(usage: Usage) -> dict[str, Any]:
    """The Chat Completions usage object (``prompt_tokens`` includes the cached ones)."""
    prompt = usage.input_tokens + usage.cache_read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chat_tool_calls(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_call is None:
        return []
    call = answer.tool_call
    return [
        {
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
    ]


def chat_completion(answer: Answer, model: str, usage: Usage) -> dict[str, Any]:
    """The plain (``stream: false``) Chat Completions response."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    calls = _chat_tool_calls(answer)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": chat_usage(usage),
    }


def chat_events(answer: Answer, model: str, usage: Usage, include_usage: bool) -> list[Event]:
    """The streamed Chat Completions answer: chunks, then ``[DONE]``."""
    head = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = dict(head, choices=[choice])
        if include_usage:
            body["usage"] = None
        return (None, body)

    events: list[Event] = [chunk({"role": "assistant", "content": ""})]
    if answer.text:
        events.extend(chunk({"content": piece}) for piece in words(answer.text))
    calls = _chat_tool_calls(answer)
    for index, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append(chunk({"tool_calls": [first]}))
        cut = max(1, len(arguments) // 2)
        for part in (arguments[:cut], arguments[cut:]):
            events.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    events.append(chunk({}, "tool_calls" if calls else "stop"))
    if include_usage:
        events.append((None, dict(head, choices=[], usage=chat_usage(usage))))
    events.append((None, "[DONE]"))
    return events


OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-gaff*****test. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: (
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(status: int, message: str | None) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``; a 429 is the
    quota error (``insufficient_quota``)."""
    kind, code, default = OPENAI_ERRORS.get(status, ("server_error", None, "Server error."))
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


def iter_sse(raw: bytes) -> Iterator[tuple[str | None, str]]:
    """Parse an SSE body into (event name, data) pairs (for tests of the server itself)."""
    for frame in raw.decode().split("\n\n"):
        name = None
        data: list[str] = []
        for line in frame.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            yield name, "\n".join(data)
