"""GitHub's contract, from its own published description (pruned, committed next to this file).

:class:`Contract` validates every request the fake receives and every response it sends with
``openapi-core``; a breach is recorded as a :class:`Violation` (the fixture's teardown fails the
test on any). :meth:`Contract.instance` builds a minimal valid instance of a component schema
(required fields only) for the fake to overlay with its state, so that every object it serves
has every field GitHub promises.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator

PRUNED = Path(__file__).with_name("api.github.com.pruned.json")
API_HOST = "https://api.github.com"
"""Requests are validated as if sent to GitHub's own server (the description's ``servers``)."""
DIFF_MEDIA_TYPE = "application/vnd.github.diff"


@dataclass(frozen=True)
class Violation:
    """A request or response that breaks GitHub's description."""

    direction: str  # "request" | "response"
    method: str
    path: str
    status: int | None
    errors: str


class _Request:
    """A request in the shape openapi-core reads (its ``Request`` protocol)."""

    def __init__(
        self, method: str, path: str, query: Any, headers: Any, body: bytes | None, ctype: str
    ) -> None:
        self.host_url = API_HOST
        self.path = path
        self.method = method.lower()
        self.body = body
        self.content_type = ctype
        self.parameters = RequestParameters(query=query, header=headers)


class _Response:
    def __init__(self, status: int, headers: Any, data: bytes, ctype: str) -> None:
        self.status_code = status
        self.headers = headers
        self.data = data
        self.content_type = ctype


@functools.cache
def load_description() -> dict[str, Any]:
    """The pruned description as a dict (read once per process)."""
    data: dict[str, Any] = json.loads(PRUNED.read_text())
    return data


@functools.cache
def load_openapi() -> OpenAPI:
    """openapi-core's object for the pruned description (about 3 s; once per process)."""
    # Text media types openapi-core does not know would reach the schema as bytes.
    config = Config(extra_media_type_deserializers={DIFF_MEDIA_TYPE: _text})
    return OpenAPI.from_dict(copy.deepcopy(load_description()), config=config)


def _text(data: bytes) -> str:
    return data.decode()


class Contract:
    """Validates traffic against the pruned description and builds valid instances."""

    def __init__(self) -> None:
        self.doc = load_description()
        self.openapi = load_openapi()

    def operation(self, method: str, template: str) -> dict[str, Any]:
        """The operation object of ``method`` on path template ``template``."""
        op: dict[str, Any] = self.doc["paths"][template][method.lower()]
        return op

    def declares(self, method: str, template: str, status: int) -> bool:
        """True when the operation documents ``status`` (or a ``default`` answer)."""
        responses = self.operation(method, template)["responses"]
        return str(status) in responses or "default" in responses

    def request_errors(
        self, method: str, path: str, query: Any, headers: Any, body: bytes | None, ctype: str
    ) -> list[str]:
        """Every error of a request against the description (empty when valid)."""
        request = _Request(method, path, query, headers, body or None, ctype)
        return [_describe(e) for e in self.openapi.iter_request_errors(request)]

    def response_errors(
        self,
        method: str,
        path: str,
        query: Any,
        headers: Any,
        status: int,
        response_headers: Any,
        data: bytes,
        ctype: str,
    ) -> list[str]:
        """Every error of a response (to a request to ``path``) against the description."""
        request = _Request(method, path, query, headers, None, "application/json")
        response = _Response(status, response_headers, data, ctype)
        return [_describe(e) for e in self.openapi.iter_response_errors(request, response)]

    def error_body_errors(self, body: Any) -> list[str]:
        """Errors of an undocumented error answer's body against ``basic-error``."""
        validator = OAS30Validator(self.schema("basic-error"))
        return [e.message for e in validator.iter_errors(body)]

    def schema(self, name: str) -> dict[str, Any]:
        """Component schema ``name`` with its references resolved into it (for jsonschema)."""
        return self._inline(self.doc["components"]["schemas"][name], depth=0)

    def _inline(self, node: Any, depth: int) -> Any:
        if depth > 40:
            return {}
        if isinstance(node, dict):
            if "$ref" in node:
                return self._inline(self._resolve(node["$ref"]), depth + 1)
            return {k: self._inline(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self._inline(v, depth + 1) for v in node]
        return node

    def _resolve(self, ref: str) -> Any:
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def instance(self, name: str, /, **overlay: Any) -> dict[str, Any]:
        """A minimal valid instance of component schema ``name`` (required fields only, each
        with a placeholder of its type, format or first enum value; nullable ones ``None``),
        with ``overlay`` merged over it (nested dicts are merged, other values replace)."""
        base = self._fill(self.doc["components"]["schemas"][name], depth=0)
        assert isinstance(base, dict)
        return _merge(base, overlay)

    def _fill(self, schema: Any, depth: int) -> Any:
        if "$ref" in schema:
            return self._fill(self._resolve(schema["$ref"]), depth + 1)
        if "allOf" in schema:
            out: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self._fill(part, depth + 1)
                if isinstance(value, dict):
                    out.update(value)
            return out
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self._fill(schema[key][0], depth + 1)
        if schema.get("nullable") and depth > 0:
            return None
        if "enum" in schema:
            return next(v for v in schema["enum"] if v is not None)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            return {
                prop: self._fill(props.get(prop, {}), depth + 1)
                for prop in schema.get("required", [])
            }
        if kind == "array":
            return []
        if kind == "integer":
            return max(1, int(schema.get("minimum", 1)))
        if kind == "number":
            return 1
        if kind == "boolean":
            return False
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "date-time":
                return "2026-01-01T00:00:00Z"
            if fmt == "uri":
                return "https://fake.github.invalid/"
            if fmt == "email":
                return "someone@fake.github.invalid"
            return ""
        return None


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    for sub in getattr(exc, "schema_errors", None) or []:
        path = "/".join(str(p) for p in getattr(sub, "absolute_path", []))
        parts.append(f"  at {path or '(root)'}: {getattr(sub, 'message', sub)}")
    cause = exc.__cause__
    if cause is not None:
        parts.append(f"  caused by {type(cause).__name__}: {cause}")
        for sub in getattr(cause, "schema_errors", None) or []:
            path = "/".join(str(p) for p in getattr(sub, "absolute_path", []))
            parts.append(f"  at {path or '(root)'}: {getattr(sub, 'message', sub)}")
    return "\n".join(parts)
