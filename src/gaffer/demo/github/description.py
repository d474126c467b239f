"""GitHub's REST description, pruned to the operations the stand-in serves (package data).

``api.github.com.pruned.json`` is GitHub's published OpenAPI description (npm
``@octokit/openapi``) cut to the operations gaffer calls by ``scripts/prune-github-openapi``;
its ``info.version`` says which release. :class:`Description` gives the stand-in its routes
(the path templates), the answers each operation documents, and minimal valid instances of
the component schemas, so that every object it serves has every field GitHub promises. The
tests validate each request and response against it as well (``tests/support/fake_github/
contract.py``, with openapi-core).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

PRUNED = Path(__file__).with_name("api.github.com.pruned.json")
"""The pruned description (JSON, about 240 KB)."""


@functools.cache
def load_description() -> dict[str, Any]:
    """The pruned description as a dict (read once per process; do not modify it).
    Raises ``OSError``/``ValueError`` when the package file is missing or broken."""
    data: dict[str, Any] = json.loads(PRUNED.read_text())
    return data


class Description:
    """The pruned description: operations by path template, and schema instances."""

    def __init__(self) -> None:
        self.doc = load_description()

    def operation(self, method: str, template: str) -> dict[str, Any]:
        """The operation object of ``method`` on path template ``template``. Raises
        ``KeyError`` for an operation the description lacks."""
        op: dict[str, Any] = self.doc["paths"][template][method.lower()]
        return op

    def declares(self, method: str, template: str, status: int) -> bool:
        """True when the operation documents ``status`` (or a ``default`` answer)."""
        responses = self.operation(method, template)["responses"]
        return str(status) in responses or "default" in responses

    def schema(self, name: str) -> dict[str, Any]:
        """Component schema ``name`` with its references resolved into it (for jsonschema)."""
        inlined: dict[str, Any] = self._inline(self.doc["components"]["schemas"][name], depth=0)
        return inlined

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
