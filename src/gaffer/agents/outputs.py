"""Structured outputs: the files an agent writes in the scratch directory, and their schemas.

The task tells the engine where to write (``$GAFFER_REVIEW_FILE``, ``$GAFFER_REPLY_FILE``,
``$GAFFER_PLAN_FILE``); the worker validates the file against its model here and reports it with
the result. An invalid file counts as missing (the continuation message says what was wrong).
The JSON schemas shown to the agent are these models' (:func:`schema_text`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

OUTPUT_MAX_BYTES = 1024 * 1024
"""The largest output file read (UTF-8 bytes); a bigger one is invalid."""


class ReviewComment(BaseModel):
    """An inline review comment: ``line`` in the file's new version (``side`` ``RIGHT``) or
    old version (``LEFT``), as GitHub's pull request review API takes them."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    line: int = Field(ge=1)
    side: Literal["LEFT", "RIGHT"] = "RIGHT"
    body: str = Field(min_length=1)


class ReviewOutput(BaseModel):
    """A pull request review: the event GitHub records, the body, inline comments."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["COMMENT", "REQUEST_CHANGES", "APPROVE"]
    body: str = Field(min_length=1)
    comments: list[ReviewComment] = Field(default_factory=list)


class CommentReply(BaseModel):
    """A reply to one review comment, by the comment's id."""

    model_config = ConfigDict(extra="forbid")

    comment_id: int
    body: str = Field(min_length=1)


class ReplyOutput(BaseModel):
    """A reply: the comment to post, and optional replies to individual review comments."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1)
    replies: list[CommentReply] = Field(default_factory=list)


class PlanOutput(BaseModel):
    """A plan: a title and a Markdown body."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    body: str = Field(min_length=1)


OutputKind = Literal["review", "reply", "plan"]
OUTPUT_MODELS: dict[str, type[BaseModel]] = {
    "review": ReviewOutput,
    "reply": ReplyOutput,
    "plan": PlanOutput,
}
OUTPUT_ENV = {
    "review": "GAFFER_REVIEW_FILE",
    "reply": "GAFFER_REPLY_FILE",
    "plan": "GAFFER_PLAN_FILE",
}
"""The env var that gives the engine each output file's path."""
OUTPUT_FILES = {"review": "review.json", "reply": "reply.json", "plan": "plan.json"}
"""Each output file's name in the scratch directory's ``out/``."""


def schema_text(kind: str) -> str:
    """The JSON schema of an output kind, as compact JSON (for prompts and docs)."""
    return json.dumps(OUTPUT_MODELS[kind].model_json_schema(), separators=(",", ":"))


def read_output(kind: str, path: Path) -> tuple[BaseModel | None, str | None]:
    """Read and validate the output file ``path`` of ``kind``.

    Returns ``(model, None)`` when valid, else ``(None, problem)`` where ``problem`` says what
    is wrong in one line ("no file", "not JSON: ...", "body: Field required"...). Never raises.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, f"no file at {path}"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"
    if size > OUTPUT_MAX_BYTES:
        return None, f"{path} is {size} bytes, over the {OUTPUT_MAX_BYTES} bytes allowed"
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path} is not JSON: {exc}"
    try:
        return OUTPUT_MODELS[kind].model_validate(data), None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        return None, f"{path} does not match the {kind} schema: {problems}"
