"""Answering a view exactly as built (keys and their order), so remote mode prints what local
mode prints; the route's ``response_model`` still documents it, and schemathesis checks that
the two agree (tests/test_api_schema.py)."""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse


def as_given(view: dict[str, Any] | list[dict[str, Any]]) -> JSONResponse:
    """``view`` (a view dict or a list of them) as a JSON answer, unfiltered."""
    return JSONResponse(jsonable_encoder(view))
