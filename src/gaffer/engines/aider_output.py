"""Reading what aider prints and logs: its text output, line by line (:class:`AiderOutput`),
and its analytics log's figures (:func:`read_figures`), for :mod:`gaffer.engines.aider`.

aider has no machine-readable stream: each reply of the model is one ``assistant`` line, and
the last one, without its edit blocks, is the summary; ``Applied edit to F`` lines are ``tool``
lines (tool ``edit``); its error lines (``litellm.<Name>Error: ...`` and the explanation after
it) are the run's error, since aider exits 0 when the model call failed; ``Retrying in N
seconds...`` lines are counted to stop aider after :data:`MAX_MODEL_ATTEMPTS`
failed attempts. Figures come from the ``message_send`` events of the analytics log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gaffer.engines.base import EngineFigures
from gaffer.engines.process import engine_log
from gaffer.engines.stopper import CliStopper
from gaffer.worker.events import Reporter

MAX_MODEL_ATTEMPTS = 2
"""Failed attempts of one model call after which the engine stops aider: the first failure
and one retry."""

HEADER_PREFIXES = (
    "Aider v",
    "Model: ",
    "Weak model: ",
    "Editor model: ",
    "Git repo: ",
    "Repo-map: ",
    "Analytics have been",
    "Added ",
    "Restored previous conversation history.",
    "Update git ",
    "Warning: ",
    "Note: ",
)
"""What aider prints before the model's first reply (and between turns): not the model's."""

_TOKENS = re.compile(r"^Tokens: .* sent, .* received\.")
_APPLIED = re.compile(r"^Applied edit to (.+)$")
_ERROR = re.compile(r"^(litellm|openai)\.\w+(Error|Exception)\b|^\w+Error: ")
_RETRY = re.compile(r"^Retrying in [0-9.]+ seconds")
_FENCE = re.compile(r"^(`{3,}|~{3,})")


class AiderOutput:
    """Parses the text aider prints (:meth:`on_line`): see the module docstring.

    Collects the model's replies (``replies``), the edited files (``edited``), the last error
    block (``error``) and the count of retries since the last success; stops aider through
    ``stopper`` after :data:`MAX_MODEL_ATTEMPTS` failed attempts. ``secret`` (the API key) is
    replaced by ``***`` in every log line.
    """

    def __init__(self, reporter: Reporter, stopper: CliStopper, secret: str | None = None) -> None:
        self.reporter = reporter
        self.stopper = stopper
        self.secret = secret
        self.replies: list[str] = []
        self.edited: list[str] = []
        self.error: str | None = None
        self.retries = 0
        self._reply: list[str] = []
        self._error: list[str] | None = None
        self._header = True

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self.secret, "***") if self.secret else text

    def log(self, kind: str, text: str, tool: str | None = None) -> None:
        """One engine log line (see :func:`engine_log`), the key redacted."""
        engine_log(self.reporter, kind, self.redact(text), tool=tool)

    def on_line(self, line: str) -> None:
        """Handle one printed line."""
        if self.stopper.on_line(line):
            return
        text = line.rstrip()
        if self._error is not None:
            if text and not _RETRY.match(text):
                self._error.append(text)
                return
            self._close_error()
        if _ERROR.match(text):
            self._flush_output()
            self._error = [text]
        elif _RETRY.match(text):
            self.log("output", text)
            self.retries += 1
            if self.retries >= MAX_MODEL_ATTEMPTS:
                reason = f"the model call failed {self.retries} times, stopped retrying"
                self.log("error", reason)
                self.stopper.stop(reason)
        elif _TOKENS.match(text):
            self._flush_reply()  # with --no-stream, the reply is printed whole before its tokens
            self.log("output", text)
            self.retries = 0
            self.error = None  # an error it retried past is not the turn's
        elif match := _APPLIED.match(text):
            self._flush_output()
            self.edited.append(match.group(1))
            self.log("tool", match.group(1), tool="edit")
        elif self._header and (not text or text.startswith(HEADER_PREFIXES)):
            if text:
                self.log("output", text)
        else:
            self._header = False
            self._reply.append(line)

    def finish(self) -> None:
        """The CLI has exited: flush what is pending (text not followed by a ``Tokens:``
        line is aider's, not a reply)."""
        self._close_error()
        self._flush_output()

    def _flush_output(self) -> None:
        for line in self._reply:
            if line.strip():
                self.log("output", line)
        self._reply = []

    def _close_error(self) -> None:
        if self._error is not None:
            self.error = self.redact(" ".join(" ".join(self._error).split()))
            self.log("error", self.error)
            self._error = None

    def _flush_reply(self) -> None:
        text = "\n".join(self._reply).strip()
        self._reply = []
        if text:
            self.replies.append(text)
            self.log("assistant", text)

    @property
    def summary(self) -> str | None:
        """The last reply without its edit blocks (the file name line and fenced block), or
        the whole reply when nothing else is left; None when the model never answered."""
        if not self.replies:
            return None
        reply = self.replies[-1]
        kept: list[str] = []
        fence: str | None = None
        for line in reply.splitlines():
            match = _FENCE.match(line.strip())
            if fence is not None:
                if match and line.strip().startswith(fence):
                    fence = None
                continue
            if match:
                fence = match.group(1)
                while kept and not kept[-1].strip():
                    kept.pop()
                if kept and " " not in kept[-1].strip():
                    kept.pop()  # the file name line of the block
                continue
            kept.append(line)
        text = "\n".join(kept).strip()
        return self.redact(re.sub(r"\n{3,}", "\n\n", text) or reply)


def read_figures(path: Path, *, priced: bool) -> EngineFigures:
    """The figures of one turn from aider's analytics log at ``path`` (its ``message_send``
    events; a missing or unreadable file gives no figures)."""
    turns = prompt = completion = 0
    cost = 0.0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return EngineFigures()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "message_send":
            continue
        properties = event.get("properties")
        if not isinstance(properties, dict):
            continue
        turns += 1
        prompt += _number(properties.get("prompt_tokens"))
        completion += _number(properties.get("completion_tokens"))
        cost += float(_number(properties.get("cost"), float))
    if turns == 0:
        return EngineFigures()
    return EngineFigures(
        turns=turns,
        input_tokens=prompt,
        output_tokens=completion,
        cost_usd=cost if priced else None,
    )


def _number(value: object, kind: type = int) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(float(value))
        except ValueError:
            return kind(0)
    return kind(0)
