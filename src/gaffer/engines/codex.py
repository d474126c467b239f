"""The ``codex`` engine: OpenAI's Codex CLI (``codex exec``), one turn per invocation.

Configuration: a ``config.toml`` in ``CODEX_HOME`` (``<engine HOME>/.codex``), written 0600 for
the engine user (:func:`codex_config`): one model provider, ``gaffer``, speaking the OpenAI
Responses API (``wire_api = "responses"``; Codex 0.171 refuses ``"chat"``) at
``invocation.model.base_url`` (None: :data:`DEFAULT_BASE_URL`), its key read from the env var
:data:`API_KEY_ENV` (``env_key``: the key is in the CLI's environment only, never on its
command line, in the config file or in a log line; the commands the agent runs do not inherit
it, ``shell_environment_policy.exclude``). Retries are bounded
(:data:`REQUEST_MAX_RETRIES`, :data:`STREAM_MAX_RETRIES`) so that a dead model server fails the
run in about a second, not minutes. Everything that would call out or wait for a person is off
(see "Agent CLIs, offline against a local model server" in ``ENVIRONMENT.md``):
``approval_policy = "never"``, ``[analytics] enabled = false``, ``[features] plugins = false``,
``check_for_update_on_startup = false``, ``web_search = "disabled"``. The system prompt is the
config's ``developer_instructions`` (sent as a developer message after Codex's own
instructions, which describe its tools and so are kept). ``model``: ``invocation.model.model``
(None: Codex's own default model).

Command line: ``codex exec --json --dangerously-bypass-approvals-and-sandbox
--skip-git-repo-check -o <scratch>/codex-last-message-<turn>.txt -`` with the prompt on stdin
(the worker's backend is the sandbox: the engine already runs as its own user in its own
checkout); on a continuation turn ``codex exec resume ... <session id> -`` (``--last`` when the
previous turn reported no id), which sends the earlier items of the session again.

Output: Codex's JSONL events, parsed as they stream (:class:`CodexEvents`): ``thread.started``
gives the session id; ``item.completed`` of type ``agent_message`` is an ``assistant`` log line
(the last one is the summary, else the ``-o`` file), ``command_execution`` a ``tool shell``
line with its command and a ``result shell`` line with its exit code and output,
``file_change`` a ``tool apply_patch`` line, ``mcp_tool_call`` and ``web_search`` tool lines;
``turn.completed`` carries ``usage``. ``turn.failed`` (and, when the CLI exits non-zero without
one, the last ``error`` event or line it printed) is the run's error, in Codex's words (a 401,
a 500 after its retries, a quota error). Codex reports no cost; ``turns`` counts its
``turn.completed`` events; tokens are given in the terms of :class:`EngineFigures` (those of
Anthropic and Claude Code): ``input_tokens`` without the cached input, which OpenAI counts
inside its ``input_tokens`` and which is ``cache_read_tokens`` here. Codex's ``usage`` is the
session's running total, so a resumed turn reports the difference from the total the previous
turn of the session ended with (kept in ``<scratch>/codex-usage.json``). ``max_turns``: Codex
has no such limit; the run's timeouts bound it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w

from gaffer.engines.base import SHELL_SIGNAL_BASE, EngineFigures, EngineResult, Invocation
from gaffer.engines.discovery import find_cli
from gaffer.engines.process import engine_log, run_cli, write_private
from gaffer.worker.events import Reporter

API_KEY_ENV = "GAFFER_CODEX_API_KEY"
"""The env var the ``gaffer`` provider's ``env_key`` names: Codex reads the API key from it
and sends it as ``Authorization: Bearer <key>``."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""The Responses API base URL when the agent names none (OpenAI's own; Codex appends
``/responses``)."""

PROVIDER = "gaffer"

REQUEST_MAX_RETRIES = 1
"""Codex's retries of a request that failed (connection refused, 5xx, 429); its default is 4,
with backoff."""

STREAM_MAX_RETRIES = 1
"""Codex's reconnections after a stream cut before ``response.completed`` (default 5). One, so
that a single cut stream is recovered from, and a server that keeps cutting fails the run."""


def codex_config(invocation: Invocation) -> dict[str, Any]:
    """The ``config.toml`` for one turn, as a dict (see the module docstring for each key).

    Holds no secret: the provider's ``env_key`` names :data:`API_KEY_ENV` only when the
    invocation has a key (without one, Codex sends no ``Authorization`` header).
    """
    model = invocation.model
    provider: dict[str, Any] = {
        "name": PROVIDER,
        "base_url": (model.base_url or DEFAULT_BASE_URL).rstrip("/"),
        "wire_api": "responses",
        "request_max_retries": REQUEST_MAX_RETRIES,
        "stream_max_retries": STREAM_MAX_RETRIES,
    }
    if model.api_key:
        provider["env_key"] = API_KEY_ENV
    config: dict[str, Any] = {
        "model_provider": PROVIDER,
        "approval_policy": "never",
        "check_for_update_on_startup": False,
        "web_search": "disabled",
        "shell_environment_policy": {"exclude": [API_KEY_ENV]},
        "analytics": {"enabled": False},
        "features": {"plugins": False},
        "model_providers": {PROVIDER: provider},
    }
    if model.model:
        config["model"] = model.model
    if invocation.system_prompt.strip():
        config["developer_instructions"] = invocation.system_prompt
    return config


def codex_argv(executable: str, invocation: Invocation, last_message: Path) -> list[str]:
    """The command line of one turn: ``exec`` (first turn) or ``exec resume`` (continuation),
    the prompt read from stdin (``-``). Never holds the API key."""
    options = [
        "--json",
        "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check",
        "-o",
        str(last_message),
    ]
    if not invocation.resume:
        return [executable, "exec", *options, "-"]
    target = [invocation.session_id] if invocation.session_id else ["--last"]
    return [executable, "exec", "resume", *options, *target, "-"]


class CodexEvents:
    """Parses the lines ``codex exec --json`` prints, as they come (:meth:`on_line`).

    Writes one run-log line per message, tool call and result; collects the session id
    (``session_id``), the last agent message (``summary``), the usage of the turns
    (``usage``: Codex's running totals, last seen), the count of ``turn.completed`` events
    (``turns``) and what Codex said when it failed (``failure``: ``turn.failed``;
    ``last_error``: the last ``error`` event or non-JSON line). ``secret`` (the API key) is
    replaced by ``***`` in every log line.
    """

    def __init__(self, reporter: Reporter, checkout: Path, secret: str | None = None) -> None:
        self.reporter = reporter
        self.checkout = checkout
        self.secret = secret
        self.session_id: str | None = None
        self.summary: str | None = None
        self.usage: dict[str, int] | None = None
        self.turns = 0
        self.failure: str | None = None
        self.last_error: str | None = None
        self._started: set[str] = set()

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self.secret, "***") if self.secret else text

    def log(self, kind: str, text: str, tool: str | None = None) -> None:
        """One engine log line (see :func:`engine_log`), the key redacted."""
        engine_log(self.reporter, kind, self.redact(text), tool=tool)

    def on_line(self, line: str) -> None:
        """Handle one printed line: a JSON event, or anything else (logged as ``output``)."""
        try:
            event = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            if line.strip():
                self.log("output", line)
                if not line.startswith("WARNING"):
                    self.last_error = line.strip()
            return
        kind = event["type"]
        if kind == "thread.started":
            self.session_id = str(event.get("thread_id") or "") or None
        elif kind == "turn.completed":
            self.turns += 1
            usage = event.get("usage")
            if isinstance(usage, dict):
                self.usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        elif kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.failure = str(message or error or "turn failed")
            self.log("error", self.failure)
        elif kind == "error":
            self.last_error = str(event.get("message") or line)
            self.log("error", self.last_error)
        elif kind in ("item.started", "item.completed"):
            item = event.get("item")
            if isinstance(item, dict):
                self._item(item, completed=kind == "item.completed")
        elif kind not in ("turn.started", "item.updated"):
            self.log("output", line)

    def _item(self, item: dict[str, Any], *, completed: bool) -> None:
        kind = item.get("type")
        item_id = str(item.get("id"))
        if kind == "command_execution":
            if item_id not in self._started:
                self._started.add(item_id)
                self.log("tool", str(item.get("command", "")), tool="shell")
            if completed:
                output = str(item.get("aggregated_output") or "")
                self.log("result", f"exit {item.get('exit_code')}: {output}", tool="shell")
        elif kind == "mcp_tool_call":
            name = f"{item.get('server')}.{item.get('tool')}"
            if item_id not in self._started:
                self._started.add(item_id)
                self.log("tool", json.dumps(item.get("arguments")), tool=name)
            if completed:
                outcome = item.get("error") or item.get("result")
                self.log("result", json.dumps(outcome, default=str), tool=name)
        elif not completed:
            return
        elif kind == "agent_message":
            text = str(item.get("text") or "")
            self.log("assistant", text)
            if text.strip():
                self.summary = text.strip()
        elif kind == "reasoning":
            self.log("assistant", f"(reasoning) {item.get('text') or ''}")
        elif kind == "file_change":
            changes = item.get("changes") or []
            text = ", ".join(
                f"{change.get('kind')} {self._relative(str(change.get('path')))}"
                for change in changes
                if isinstance(change, dict)
            )
            self.log("tool", f"{text} ({item.get('status')})", tool="apply_patch")
        elif kind == "web_search":
            self.log("tool", str(item.get("query") or ""), tool="web_search")
        elif kind == "todo_list":
            steps = item.get("items") or []
            text = "; ".join(str(s.get("text")) for s in steps if isinstance(s, dict))
            self.log("tool", text, tool="todo_list")
        elif kind == "error":
            # Codex's warnings (an unknown model's metadata, say): not a failure of the turn.
            self.log("error", str(item.get("message") or ""))
        else:
            self.log("output", json.dumps(item))

    def _relative(self, path: str) -> str:
        candidate = Path(path)
        if candidate.is_absolute() and candidate.is_relative_to(self.checkout):
            return str(candidate.relative_to(self.checkout))
        return path


USAGE_FILE = "codex-usage.json"
"""In the scratch directory: ``{session id: Codex's usage totals at the end of its last
turn}``, so that a resumed turn's figures are its own, not the session's."""


def _figures(turns: int, usage: dict[str, int] | None, before: dict[str, int]) -> EngineFigures:
    if usage is None:
        return EngineFigures(turns=turns or None)

    def delta(key: str) -> int:
        return max(0, usage.get(key, 0) - before.get(key, 0))

    cached = delta("cached_input_tokens")
    return EngineFigures(
        turns=turns,
        input_tokens=max(0, delta("input_tokens") - cached),
        output_tokens=delta("output_tokens"),
        cache_read_tokens=delta("cached_input_tokens"),
        cache_write_tokens=delta("cache_write_input_tokens"),
    )


def _read_totals(path: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class CodexEngine:
    """Runs one turn of ``codex exec`` (see the module docstring). Settings:
    ``{"path": "/path/to/codex"}`` (optional; default: ``codex`` on ``PATH``)."""

    name: str = "codex"
    cli: str | None = "codex"
    install_hint: str = "scripts/install-engines codex"
    can_resume: bool = True

    def run(self, invocation: Invocation) -> EngineResult:
        """Run one turn to completion, as the invocation's user.

        Raises :class:`~gaffer.engines.base.EngineError` when the CLI is missing or cannot
        start. The result's ``error`` is Codex's own message when it reported a failure.
        """
        settings = invocation.job.engine.settings
        explicit = settings.get("path")
        executable = find_cli("codex", explicit=explicit if isinstance(explicit, str) else None)
        codex_home = invocation.home / ".codex"
        config = codex_config(invocation)
        write_private(codex_home / "config.toml", tomli_w.dumps(config), invocation)
        last_message = invocation.scratch / f"codex-last-message-{invocation.turn}.txt"
        last_message.unlink(missing_ok=True)
        argv = codex_argv(executable, invocation, last_message)
        env = invocation.base_env()
        env["CODEX_HOME"] = str(codex_home)
        env.pop(API_KEY_ENV, None)
        api_key = invocation.model.api_key
        if api_key:
            env[API_KEY_ENV] = api_key
        invocation.reporter.emit(
            "engine_started",
            engine=self.name,
            turn=invocation.turn,
            resume=invocation.resume,
            session_id=invocation.session_id,
            model=invocation.model.model,
            base_url=config["model_providers"][PROVIDER]["base_url"],
        )
        events = CodexEvents(invocation.reporter, invocation.checkout, secret=api_key)
        exit_code = run_cli(argv, invocation, env, events.on_line, stdin=invocation.prompt)

        session_id = events.session_id or invocation.session_id
        totals_file = invocation.scratch / USAGE_FILE
        totals = _read_totals(totals_file)
        before = totals.get(session_id or "", {}) if invocation.resume else {}
        figures = _figures(events.turns, events.usage, before)
        if session_id and events.usage is not None:
            totals[session_id] = events.usage
            totals_file.write_text(json.dumps(totals))

        error = events.failure
        if error is None and 0 < exit_code < SHELL_SIGNAL_BASE:
            # Killed by a signal: the worker says so (describe_exit), Codex's last words do not.
            error = events.last_error
        summary = events.summary
        if summary is None and last_message.is_file():
            summary = last_message.read_text(errors="replace").strip() or None
        return EngineResult(
            exit_code=exit_code,
            summary=events.redact(summary) if summary else None,
            error=f"codex: {events.redact(error)}" if error else None,
            figures=figures,
            session_id=session_id,
        )
