"""GitHub's contract, from its own published description (the pruned file shipped with the
stand-in, :mod:`gaffer.demo.github.description`).

:class:`Contract` validates every request the fake receives and every response it sends with
``openapi-core`` (a test-only dependency); a breach is recorded as a :class:`Violation` (the
fixture's teardown fails the test on any). Instances of component schemas come from
:class:`~gaffer.demo.github.description.Description`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator

from gaffer.demo.github.calls import Violation
from gaffer.demo.github.description import PRUNED, Description, load_description

__all__ = ["PRUNED", "Contract", "Violation", "load_description", "load_openapi"]

API_HOST = "https://api.github.com"
"""Requests are validated as if sent to GitHub's own server (the description's ``servers``)."""
DIFF_MEDIA_TYPE = "application/vnd.github.diff"


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
def load_openapi() -> OpenAPI:
    """openapi-core's object for the pruned description (about 3 s; once per process)."""
    # Text media types openapi-core does not know would reach the schema as bytes.
    config = Config(extra_media_type_deserializers={DIFF_MEDIA_TYPE: _text})
    return OpenAPI.from_dict(copy.deepcopy(load_description()), config=config)


def _text(data: bytes) -> str:
    return data.decode()


class Contract(Description):
    """Validates traffic against the pruned description and builds valid instances."""

    def __init__(self) -> None:
        super().__init__()
        self.openapi = load_openapi()

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
