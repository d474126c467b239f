"""Reading Claude Code's ``stream-json`` output (``claude -p --output-format stream-json
--verbose``) as it streams: run-log lines, the summary, the session id, the figures and the
error, in Claude Code's own words.

Each ``assistant`` text is an ``assistant`` log line, each ``tool_use`` a ``tool`` line (a Bash
call shows its command, other tools their input as JSON), each ``tool_result`` a ``result``
line named by its ``tool_use``'s tool; ``system`` ``api_retry`` lines and Claude Code's own
error messages (``"<synthetic>"`` assistant messages) are ``error`` lines; lines that are not
JSON are ``output`` lines. The final ``result`` line gives the summary (its ``result``), the
session id and the figures (``num_turns``, ``usage``: ``input_tokens``, ``output_tokens``,
``cache_read_input_tokens``, ``cache_creation_input_tokens``; ``total_cost_usd``, Claude
Code's own estimate). Its ``is_error`` decides failure, not the subtype: a 401 says
``"subtype": "success"`` with ``"is_error": true`` (and exit code 1).
"""

from __future__ import annotations

import json
from typing import Any

from gaffer.engines.base import SHELL_SIGNAL_BASE, EngineFigures
from gaffer.engines.process import engine_log
from gaffer.worker.events import Reporter


def _text_blocks(content: Any) -> str:
    """The text of a message content: a string, or the ``text`` of its text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


class ClaudeEvents:
    """Parses the lines ``claude -p --output-format stream-json --verbose`` prints, as they
    come (:meth:`on_line`).

    Writes one run-log line per assistant text, tool call, tool result and error (see the
    module docstring); keeps the tool name of each ``tool_use`` id (``tools``), the session id
    (``session_id``), the last assistant text (``last_text``), the final ``result`` object
    (``result``) and the last line that was not JSON (``last_output``). ``secret`` (the API
    key) is replaced by ``***`` in every log line."""

    def __init__(self, reporter: Reporter, secret: str | None = None) -> None:
        self.reporter = reporter
        self.secret = secret
        self.tools: dict[str, str] = {}
        self.session_id: str | None = None
        self.last_text: str | None = None
        self.result: dict[str, Any] | None = None
        self.last_output: str | None = None

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self.secret, "***") if self.secret else text

    def log(self, kind: str, text: str, tool: str | None = None) -> None:
        """One engine log line (see :func:`engine_log`), the key redacted."""
        engine_log(self.reporter, kind, self.redact(text), tool=tool)

    def on_line(self, line: str) -> None:
        """Handle one printed line: a stream-json object, or anything else (``output``)."""
        try:
            event = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            if line.strip():
                self.log("output", line)
                self.last_output = line.strip()
            return
        if isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        kind = event["type"]
        if kind == "assistant":
            self._assistant(event)
        elif kind == "user":
            self._user(event)
        elif kind == "result":
            self.result = event
        elif kind == "system":
            self._system(event)
        else:
            self.log("output", line)

    def _system(self, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            self.log(
                "output",
                f"claude {event.get('claude_code_version')} session {event.get('session_id')}"
                f" model {event.get('model')}",
            )
        elif subtype == "api_retry":
            status = event.get("error_status")
            self.log(
                "error",
                f"model call failed ({event.get('error')}"
                + (f", HTTP {status}" if status else "")
                + f"): retry {event.get('attempt')} of {event.get('max_retries')}"
                f" in {float(event.get('retry_delay_ms') or 0):.0f} ms",
            )

    def _assistant(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            return
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        # Claude Code's own messages (an API error, a cancelled call) come as "<synthetic>"
        # assistant messages, with the error's kind beside them.
        failed = event.get("error") is not None or message.get("model") == "<synthetic>"
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                text = str(block.get("text") or "")
                if failed:
                    self.log("error", text)
                elif text.strip():
                    self.log("assistant", text)
                    self.last_text = text.strip()
            elif block.get("type") == "tool_use":
                name = str(block.get("name") or "tool")
                self.tools[str(block.get("id"))] = name
                tool_input = block.get("input")
                if (
                    isinstance(tool_input, dict)
                    and isinstance(tool_input.get("command"), str)
                    and name == "Bash"
                ):
                    self.log("tool", tool_input["command"], tool=name)
                else:
                    self.log("tool", json.dumps(tool_input, ensure_ascii=False), tool=name)
            elif block.get("type") == "thinking":
                self.log("assistant", f"(thinking) {block.get('thinking') or ''}")

    def _user(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            name = self.tools.get(str(block.get("tool_use_id")), "tool")
            text = _text_blocks(block.get("content"))
            self.log("result", f"(error) {text}" if block.get("is_error") else text, tool=name)

    def figures(self) -> EngineFigures | None:
        """The figures of the final ``result`` line (None when there was none)."""
        result = self.result
        if result is None:
            return None
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        assert isinstance(usage, dict)

        def count(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        cost = result.get("total_cost_usd")
        return EngineFigures(
            turns=count(result.get("num_turns")),
            input_tokens=count(usage.get("input_tokens")),
            output_tokens=count(usage.get("output_tokens")),
            cache_read_tokens=count(usage.get("cache_read_input_tokens")),
            cache_write_tokens=count(usage.get("cache_creation_input_tokens")),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )

    def error(self, exit_code: int) -> str | None:
        """Claude Code's own message when the turn failed (``is_error``; without a result line,
        a non-zero exit and the last line it printed), or None."""
        result = self.result
        if result is not None:
            if not result.get("is_error"):
                return None
            message = result.get("result")
            if not isinstance(message, str) or not message.strip():
                errors = result.get("errors")
                message = (
                    "; ".join(str(e) for e in errors)
                    if isinstance(errors, list) and errors
                    else f"claude reported {result.get('subtype') or 'an error'}"
                )
            status = result.get("api_error_status")
            if status and str(status) not in message:
                message += f" (HTTP {status})"
            return message.strip()
        if 0 < exit_code < SHELL_SIGNAL_BASE:
            # Killed by a signal: the worker says so (describe_exit), not Claude Code's output.
            return self.last_output or f"claude exited with code {exit_code} and no result"
        return None

    def summary(self) -> str | None:
        """The final message: the result's ``result`` when the turn succeeded, else the last
        assistant text (an error's message is the error, not the summary)."""
        result = self.result
        if result is not None and not result.get("is_error"):
            text = result.get("result")
            if isinstance(text, str) and text.strip():
                return text.strip()
        return self.last_text
