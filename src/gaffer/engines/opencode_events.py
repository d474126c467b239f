"""Reading what ``opencode run --format json --print-logs`` prints, as it streams.

:class:`OpencodeEvents` turns the JSON events into run-log lines, the summary, the figures and
the errors, and watches opencode's own log for the agent's failing model calls (opencode
retries a failing call for about 70 s with no setting to bound it: the engine stops it at the
second failed attempt, :data:`gaffer.engines.opencode.MAX_MODEL_ATTEMPTS`).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

from gaffer.engines.base import EngineFigures
from gaffer.engines.process import engine_log
from gaffer.engines.stopper import CliStopper
from gaffer.worker.events import Reporter

MAX_MODEL_ATTEMPTS = 2
"""Failed attempts of one model call (in a row, without a completed step between them) after
which the engine stops opencode: the first failure and one retry."""

_LOG_FIELD = re.compile(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)')


class OpencodeEvents:
    """Parses the lines ``opencode run --format json --print-logs`` prints (:meth:`on_line`).

    Writes one run-log line per text, tool call and tool result; collects the session id
    (``session_id``), the texts of the last assistant message (``summary``), the summed
    ``step_finish`` figures (``figures``), opencode's ``error`` events (``errors``) and, when
    the agent's model calls kept failing, why it was stopped (``stopped``). ``secret`` (the
    API key) is replaced by ``***`` in every log line; ``key_file`` is deleted when opencode
    logs that it has read it (:meth:`forget_key`).
    """

    def __init__(
        self, reporter: Reporter, secret: str | None = None, key_file: Path | None = None
    ) -> None:
        self.reporter = reporter
        self.secret = secret
        self.key_file = key_file
        self.stopper = CliStopper()
        self.session_id: str | None = None
        self.errors: list[str] = []
        self.stopped: str | None = None
        self.last_failure: str | None = None
        self._attempts: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self.turns = 0
        self.tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
        self.cost = 0.0
        self._texts: dict[str, list[str]] = {}
        self._last_message: str | None = None

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self.secret, "***") if self.secret else text

    def log(self, kind: str, text: str, tool: str | None = None) -> None:
        """One engine log line (see :func:`engine_log`), the key redacted."""
        engine_log(self.reporter, kind, self.redact(text), tool=tool)

    @property
    def summary(self) -> str | None:
        """The text of the last assistant message that had any, or None."""
        if self._last_message is None:
            return None
        return "\n\n".join(self._texts[self._last_message]).strip() or None

    def on_line(self, line: str) -> None:
        """Handle one printed line: the pid line, a JSON event, or a log line."""
        if self.stopper.on_line(line):
            return
        try:
            event = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            if line.strip():
                self._log_line(line)
            return
        if isinstance(event.get("sessionID"), str):
            self.session_id = event["sessionID"]
        part = _dict(event.get("part"))
        kind = event["type"]
        if kind == "text":
            text = str(part.get("text") or "")
            self.log("assistant", text)
            if text.strip():
                message = str(part.get("messageID"))
                self._texts.setdefault(message, []).append(text.strip())
                self._last_message = message
        elif kind == "tool_use":
            self._tool(part)
        elif kind == "step_finish":
            self._step(part)
        elif kind == "reasoning":
            self.log("assistant", f"(reasoning) {part.get('text') or ''}")
        elif kind == "error":
            message = _error_message(event.get("error"))
            self.errors.append(message)
            self.log("error", message)
        elif kind != "step_start":
            self.log("output", line)

    def _tool(self, part: dict[str, Any]) -> None:
        name = str(part.get("tool") or "tool")
        state = _dict(part.get("state"))
        given = state.get("input")
        if isinstance(given, dict) and set(given) <= {"command", "description"}:
            text = str(given.get("command", ""))
        else:
            text = json.dumps(given)
        self.log("tool", text, tool=name)
        if state.get("status") == "error":
            self.log("result", f"error: {state.get('error')}", tool=name)
        else:
            self.log("result", str(state.get("output") or ""), tool=name)

    def _step(self, part: dict[str, Any]) -> None:
        self.turns += 1
        tokens = _dict(part.get("tokens"))
        cache = _dict(tokens.get("cache"))
        for key, value in (
            ("input", tokens.get("input")),
            ("output", tokens.get("output")),
            ("output", tokens.get("reasoning")),
            ("cache_read", cache.get("read")),
            ("cache_write", cache.get("write")),
        ):
            if isinstance(value, int | float):
                self.tokens[key] += int(value)
        cost = part.get("cost")
        if isinstance(cost, int | float):
            self.cost += float(cost)

    def forget_key(self) -> None:
        """Delete the API key file (opencode has read it, or the turn is over)."""
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)
            self.key_file = None

    def _log_line(self, line: str) -> None:
        """One line of opencode's log (``timestamp=... level=... message=... key=value``) or
        anything else it printed. Counts the attempts of the agent's model calls (see the
        module docstring) and deletes the key file once opencode has read it."""
        if not line.startswith("timestamp="):
            self.log("output", line)
            return
        fields = {key: _unquote(value) for key, value in _LOG_FIELD.findall(line)}
        message = fields.get("message")
        if message == "llm runtime selected":
            self.forget_key()
        if fields.get("level") not in ("INFO", "DEBUG"):
            self.log("output", line)  # opencode's INFO log is its own progress, not the agent's
        if fields.get("small") == "true":
            return  # the title call: opencode gives up on it by itself, the turn goes on
        session = fields.get("session.id", "")
        if message == "loop":  # a new step of the session: its model call starts afresh
            self._attempts[session] = self._failures[session] = 0
        elif message == "stream":  # an attempt of the step's model call
            self._attempts[session] = self._attempts.get(session, 0) + 1
        elif message == "stream error":
            self._failures[session] = self._failures.get(session, 0) + 1
            self.last_failure = fields.get("error.error") or fields.get("error") or message
        else:
            return
        failed = max(self._failures.get(session, 0), self._attempts.get(session, 0) - 1)
        if failed >= MAX_MODEL_ATTEMPTS and self.stopped is None:
            reason = self.last_failure or "the connection to the model was lost"
            self.stopped = (
                f"the model call failed {failed} times, stopped retrying: {self.redact(reason)}"
            )
            self.log("error", self.stopped)
            self.stopper.stop(self.stopped)

    def close(self) -> None:
        """The turn is over: delete the key file, cancel a pending SIGKILL."""
        self.forget_key()
        self.stopper.close()

    def figures(self, *, priced: bool) -> EngineFigures:
        """The summed figures of the turn (``cost_usd`` only when the model is ``priced``:
        opencode counts an unpriced model's cost as 0)."""
        if self.turns == 0:
            return EngineFigures()
        return EngineFigures(
            turns=self.turns,
            input_tokens=self.tokens["input"],
            output_tokens=self.tokens["output"],
            cache_read_tokens=self.tokens["cache_read"],
            cache_write_tokens=self.tokens["cache_write"],
            cost_usd=self.cost if priced else None,
        )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        with contextlib.suppress(ValueError):
            return str(json.loads(value))
        return value[1:-1]
    return value


def _error_message(error: object) -> str:
    """opencode's words for an ``error`` event: ``error.data.message`` (the provider's
    message for an API error), else the error's name, else the event as JSON."""
    if isinstance(error, dict):
        data = error.get("data")
        if isinstance(data, dict) and data.get("message"):
            status = data.get("statusCode")
            message = str(data["message"])
            return f"{message} (HTTP {status})" if isinstance(status, int) else message
        if error.get("name"):
            return str(error["name"])
    return json.dumps(error)
