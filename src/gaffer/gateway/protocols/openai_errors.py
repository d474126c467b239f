"""OpenAI's error body, shared by the Responses and Chat Completions APIs.

``{"error": {"message", "type", "param", "code"}}``, with the types and codes OpenAI itself
answers: a bad key is 401 ``invalid_request_error``/``invalid_api_key``; an exhausted quota is
429 ``insufficient_quota`` (which engines such as Codex do not retry).
"""

from __future__ import annotations

import json

from gaffer.gateway.protocols.base import ErrorKind

_ERRORS: dict[ErrorKind, tuple[int, str, str | None]] = {
    "authentication": (401, "invalid_request_error", "invalid_api_key"),
    "invalid_request": (400, "invalid_request_error", None),
    "too_large": (413, "invalid_request_error", "request_too_large"),
    "budget": (429, "insufficient_quota", "insufficient_quota"),
    "unavailable": (503, "server_error", "gateway_unavailable"),
    "bad_gateway": (502, "server_error", "upstream_unreachable"),
}


def openai_error(kind: ErrorKind, message: str) -> tuple[int, bytes]:
    """``(status, body)`` of OpenAI's error shape for ``kind``."""
    status, error_type, code = _ERRORS[kind]
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return status, json.dumps(body).encode()
