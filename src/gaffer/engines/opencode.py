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

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from gaffer.engines.base import EngineError, EngineResult, Invocation
from gaffer.engines.discovery import find_cli
from gaffer.engines.opencode_events import OpencodeEvents
from gaffer.engines.process import PROCESS_MARK_ENV, kill_marked, run_cli, write_private
from gaffer.engines.stopper import pid_argv

KEY_FILE = ".gaffer/opencode-api-key"
"""In the engine's home: the API key, for the provider's ``options.apiKey`` (``{file:...}``);
opencode sends it as ``Authorization: Bearer <key>``. Deleted once opencode has read it."""

PROVIDER = "gaffer"

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""The Chat Completions base URL when the agent names none (OpenAI's own; the SDK appends
``/chat/completions``)."""

DEFAULT_MODEL = "gpt-4.1"
"""The model when the agent names none."""

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


PLUGIN_PACKAGE = "@opencode-ai/plugin"
"""The plugin package opencode installs into its config directory at every start."""


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
