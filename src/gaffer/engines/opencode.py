"""The ``opencode`` engine: sst's opencode CLI (``opencode run --format json``), one turn each.

Configuration: the whole config as JSON in ``OPENCODE_CONFIG_CONTENT``
(:func:`opencode_config`), holding no secret: one provider, ``gaffer``, on opencode's built-in
``@ai-sdk/openai-compatible`` (OpenAI Chat Completions, streamed) at
``invocation.model.base_url`` (None: :data:`DEFAULT_BASE_URL`). ``model`` and ``small_model``
(opencode's side calls: a summary when it compacts the session) are
``gaffer/<invocation.model.model>`` (None: :data:`DEFAULT_MODEL`); the engine setting ``cost``
(``{"input": USD, "output": USD, "cache_read": USD, "cache_write": USD}`` per million tokens)
prices the model, else opencode counts its cost as 0 and the run's cost is left unreported.
``permission``: edits, shell commands and paths outside the checkout (the output files in the
scratch directory) are allowed, questions and the doom-loop prompt denied (nobody is there to
answer); ``agent.build.steps`` = ``invocation.max_turns`` (opencode's own limit of model
turns); ``instructions`` = a file holding the system prompt (added after opencode's own system
prompt, which describes its tools and so is kept); ``autoupdate`` and ``snapshot`` off,
``share`` disabled.

The API key: ``options.apiKey`` is ``{file:<home>/.gaffer/opencode-api-key}``, a 0600 file of
the engine user that opencode reads when it loads its config, and that this engine deletes as
soon as opencode logs its first model call (``llm runtime selected``, before the request is
sent, so before any tool of the agent can run) and in any case when the turn ends. So the key
is never on the command line, in a log line (each is redacted too), in opencode's environment
(``/proc/<pid>/environ`` is readable by the agent, same user) or in the environment of the
commands the agent runs, and not on disk while the agent works.

Environment: :data:`OFFLINE_ENV` (no models.dev fetch, no update check, no default plugins, no
LSP download, no share, no project config: a repository's own ``opencode.json`` or
``.opencode/`` must not change the provider or the permissions), ``PWD`` = the checkout
(opencode works in ``$PWD``, not in its working directory), and ``HOME`` plus the XDG
directories inside the engine's home (opencode keeps its sessions there, so a continuation
finds the previous turn's session). opencode's global config (``~/.config/opencode``,
``~/.opencode``) is removed before each turn (what an agent left there in one turn, an MCP
server or a provider, must not run in the next) and laid out again as if its plugin package
were installed (:func:`_seed_config_dir`: else opencode runs an npm install from the registry
at every start). Command line: ``opencode run --format json --pure --print-logs --log-level
INFO`` (``--pure``: no external plugins; INFO: the log lines this engine watches, not copied
to the run log) with the prompt on stdin (no length limit of argv), a ``--title`` for a new
session (else opencode makes a tool-less model call to name it), and on a continuation turn
``--session <id>`` (``--continue`` when the previous turn reported none).

Output (:class:`OpencodeEvents`): JSON lines ``step_start``, ``text`` (an ``assistant`` log
line; the texts of the last message are the summary), ``tool_use`` (a ``tool`` line with its
input and a ``result`` line with its output or error, by tool name), ``step_finish`` (its
``tokens`` and ``cost`` are summed into the figures; ``turns`` counts them: one per model call
of the agent) and ``error`` (the run's error: opencode's message, e.g. the provider's 401 text
with its HTTP status). opencode's WARN and ERROR log lines are ``output`` lines.

Retries: opencode retries a failed model call (a 5xx, a 429, a cut connection) itself, five
times with backoff from 2 s (about 70 s in all: ``SessionRetry``, 2 s doubling, or the
server's ``retry-after``), and no setting or env var bounds it. Its log says ``message=loop``
at each step of a session, ``message=stream ... small=false`` at each attempt of the step's
model call and, for most failures, ``message="stream error" ... error.error="..."``. This
engine counts, per session and step, the failed attempts (stream errors, or attempts beyond
the first) and at :data:`MAX_MODEL_ATTEMPTS` stops opencode: SIGTERM to its process, SIGKILL a few
seconds later (:class:`~gaffer.engines.stopper.CliStopper`); the run's error is the
provider's message. So a dead model server fails the run after one retry (two or three
requests, a few seconds), and one cut stream or one 500 is still retried and recovered from.
A 401 is not retried by opencode: its ``error`` event ends the turn at once.

The commands the agent ran are marked (``GAFFER_ENGINE_PROCESS``, inherited) and those still
running when the turn ends (opencode does not stop them when it is stopped) are killed
(:func:`gaffer.engines.claude_code.kill_marked`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from gaffer.engines.base import EngineError, EngineFigures, EngineResult, Invocation
from gaffer.engines.discovery import find_cli
from gaffer.engines.process import PROCESS_MARK_ENV, engine_log, kill_marked, run_cli, write_private
from gaffer.engines.stopper import CliStopper, pid_argv
from gaffer.worker.events import Reporter

KEY_FILE = ".gaffer/opencode-api-key"
"""In the engine's home: the API key, for the provider's ``options.apiKey`` (``{file:...}``);
opencode sends it as ``Authorization: Bearer <key>``. Deleted once opencode has read it."""

PROVIDER = "gaffer"

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""The Chat Completions base URL when the agent names none (OpenAI's own; the SDK appends
``/chat/completions``)."""

DEFAULT_MODEL = "gpt-4.1"
"""The model when the agent names none."""

MAX_MODEL_ATTEMPTS = 2
"""Failed attempts of one model call (in a row, without a completed step between them) after
which the engine stops opencode: the first failure and one retry."""

OFFLINE_ENV = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
}
"""Everything that would make opencode call out, or read config from the repository."""

SYSTEM_PROMPT_FILE = "opencode-instructions.md"
"""In the scratch directory: the rendered system prompt (the config's ``instructions``)."""

_LOG_FIELD = re.compile(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)')


def opencode_config(
    invocation: Invocation, instructions: str | None, key_file: Path | None
) -> dict[str, Any]:
    """The config for one turn (``OPENCODE_CONFIG_CONTENT``), as a dict; see the module
    docstring for each key. ``instructions``: path of the system prompt file, or None;
    ``key_file``: path of the API key file, or None (no key: no ``Authorization`` header).

    Holds no secret. Raises :class:`EngineError` when the ``cost`` setting is not a mapping
    of numbers.
    """
    endpoint = invocation.model
    name = endpoint.model or DEFAULT_MODEL
    options: dict[str, Any] = {"baseURL": (endpoint.base_url or DEFAULT_BASE_URL).rstrip("/")}
    if key_file is not None:
        options["apiKey"] = "{file:" + str(key_file) + "}"
    model: dict[str, Any] = {"name": name}
    cost = invocation.job.engine.settings.get("cost")
    if cost is not None:
        model["cost"] = _cost(cost)
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "snapshot": False,
        "model": f"{PROVIDER}/{name}",
        "small_model": f"{PROVIDER}/{name}",
        "enabled_providers": [PROVIDER],
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": PROVIDER,
                "options": options,
                "models": {name: model},
            }
        },
        "permission": {
            "edit": "allow",
            "bash": "allow",
            "external_directory": "allow",
            "question": "deny",
            "doom_loop": "deny",
        },
        "agent": {"build": {"steps": invocation.max_turns}},
    }
    if instructions:
        config["instructions"] = [instructions]
    return config


COST_KEYS = ("input", "output", "cache_read", "cache_write")
"""The prices of a model in opencode's config, USD per million tokens (input and output
required)."""


def _cost(value: object) -> dict[str, float]:
    if not isinstance(value, dict) or not {"input", "output"} <= set(value):
        raise EngineError("opencode: settings.cost needs input and output (USD per 1M tokens)")
    out: dict[str, float] = {}
    for key, price in value.items():
        if key not in COST_KEYS or not isinstance(price, int | float) or isinstance(price, bool):
            raise EngineError(f"opencode: settings.cost.{key} is not a price in USD (per 1M)")
        out[key] = float(price)
    return out


def opencode_argv(executable: str, invocation: Invocation) -> list[str]:
    """The command line of one turn, through ``/bin/sh`` so that its first line is the pid
    (:func:`~gaffer.engines.stopper.pid_argv`). The prompt goes on stdin.
    A new session gets a ``--title`` (else opencode asks the model for one, a side call).
    Never holds the API key."""
    options = ["run", "--format", "json", "--pure", "--print-logs", "--log-level", "INFO"]
    if invocation.resume:
        options += ["--session", invocation.session_id] if invocation.session_id else ["-c"]
    else:
        task = invocation.job.task
        options += ["--title", f"gaffer {task.agent_type} {task.repository}#{task.work_item}"]
    return pid_argv([executable, *options])


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


PLUGIN_PACKAGE = "@opencode-ai/plugin"


def _seed_config_dir(directory: Path, invocation: Invocation) -> None:
    """Make opencode's global config directory look as if its plugin package were installed.

    At every start opencode runs an npm install of :data:`PLUGIN_PACKAGE` into each config
    directory (in the background, from the npm registry: a call out) unless that directory
    has a ``node_modules`` and a ``package-lock.json`` that already lists every dependency of
    its ``package.json``. No plugin is loaded from there (``--pure``), so an empty
    ``node_modules`` and that pair of files are enough.
    """
    deps = {PLUGIN_PACKAGE: "*"}
    write_private(directory / "node_modules" / ".gaffer", "", invocation)
    write_private(directory / "package.json", json.dumps({"dependencies": deps}), invocation)
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}
    write_private(directory / "package-lock.json", json.dumps(lock), invocation)


def _remove(path: Path) -> None:
    """Remove ``path`` (a file, a symlink or a directory tree; absent: nothing)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


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


class OpencodeEngine:
    """Runs one turn of ``opencode run`` (see the module docstring). Settings:
    ``{"path": "/path/to/opencode"}`` (optional; default: ``opencode`` on ``PATH``),
    ``{"cost": {...}}`` (optional; the model's prices, USD per million tokens)."""

    name: str = "opencode"
    cli: str | None = "opencode"
    install_hint: str = "scripts/install-engines opencode"
    can_resume: bool = True

    def run(self, invocation: Invocation) -> EngineResult:
        """Run one turn to completion, as the invocation's user.

        Raises :class:`~gaffer.engines.base.EngineError` when the CLI is missing or cannot
        start or its ``cost`` setting is malformed. The result's ``error`` is
        opencode's own message when it reported a failure (or the provider's, when the engine
        stopped its retries).
        """
        settings = invocation.job.engine.settings
        explicit = settings.get("path")
        executable = find_cli("opencode", explicit=explicit if isinstance(explicit, str) else None)
        instructions: str | None = None
        if invocation.system_prompt.strip():
            path = invocation.scratch / SYSTEM_PROMPT_FILE
            path.write_text(invocation.system_prompt)
            instructions = str(path)
        home = invocation.home
        # What the agent may have left in its home: opencode's global config (run by the next
        # turn), a symlink where the key file goes (written as the worker's user).
        for stale in (home / ".config" / "opencode", home / ".opencode", home / ".gaffer"):
            _remove(stale)
        api_key = invocation.model.api_key
        key_file = write_private(home / KEY_FILE, api_key, invocation) if api_key else None
        _seed_config_dir(home / ".config" / "opencode", invocation)
        config = opencode_config(invocation, instructions, key_file)
        env = invocation.base_env()
        env.update(OFFLINE_ENV)
        env["PWD"] = str(invocation.checkout)  # opencode works in $PWD, not in its cwd
        env.update(
            {
                "OPENCODE_CONFIG_CONTENT": json.dumps(config),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "XDG_STATE_HOME": str(home / ".local" / "state"),
                "XDG_CACHE_HOME": str(home / ".cache"),
            }
        )
        for name in ("OPENCODE_CONFIG", "OPENCODE_CONFIG_DIR"):
            env.pop(name, None)
        mark = uuid.uuid4().hex
        env[PROCESS_MARK_ENV] = mark  # inherited by the agent's commands: see kill_marked
        invocation.reporter.emit(
            "engine_started",
            engine=self.name,
            turn=invocation.turn,
            resume=invocation.resume,
            session_id=invocation.session_id,
            model=config["model"],
            base_url=config["provider"][PROVIDER]["options"]["baseURL"],
        )
        events = OpencodeEvents(invocation.reporter, secret=api_key, key_file=key_file)
        try:
            exit_code = run_cli(
                opencode_argv(executable, invocation),
                invocation,
                env,
                events.on_line,
                stdin=invocation.prompt,
            )
        finally:
            events.close()
            # opencode's bash tool starts commands it does not stop when it is stopped itself.
            left = kill_marked(mark)
            if left:
                invocation.reporter.log(
                    f"killed {len(left)} process(es) the agent's commands left running"
                )
        error: str | None = None
        if events.errors:
            error = "; ".join(events.errors)
        elif events.stopped:
            error = events.stopped
            exit_code = exit_code if exit_code > 0 else 1  # stopped by the engine, not a signal
        summary = events.summary
        return EngineResult(
            exit_code=exit_code,
            summary=events.redact(summary) if summary else None,
            error=f"opencode: {events.redact(error)}" if error else None,
            figures=events.figures(priced="cost" in settings),
            session_id=events.session_id or invocation.session_id,
        )
