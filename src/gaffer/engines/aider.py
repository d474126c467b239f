"""The ``aider`` engine: Paul Gauthier's aider (``aider --message-file``), one turn each.

aider speaks OpenAI Chat Completions through litellm, offers the model no tools (the model
answers with edit blocks in its text, which aider applies) and prints plain text only.

Command line (:func:`aider_argv`): ``--model openai/<invocation.model.model>`` (None:
:data:`DEFAULT_MODEL`), ``--openai-api-base <invocation.model.base_url>`` (None: litellm's
default, OpenAI's), ``--no-stream`` (so that the token counts are the server's, not aider's
estimate), unattended and offline: ``--yes-always --no-auto-commits --no-dirty-commits
--no-check-update --analytics-disable --no-gitignore --no-pretty --no-fancy-input
--no-show-release-notes --no-show-model-warnings --no-detect-urls --no-suggest-shell-commands
--no-auto-lint --no-auto-test --map-tokens 0`` (no commits: the worker commits; no URL
scraping, no shell commands, no lint or test commands run by aider), ``--model-metadata-file``
(the model's context window and prices: a model missing from it makes aider fetch litellm's
price list at start) and ``--model-settings-file`` (``extra_params.max_retries: 0``: the
OpenAI client's own retries off, so each of aider's attempts is one request), history files
in the scratch directory (``--input-history-file``, ``--chat-history-file``, never in the
repository), ``--analytics-log`` (a local JSON-lines file, where aider writes each
``message_send`` with its exact token counts and cost; nothing is sent anywhere), ``--env-file``
(loaded after the repository's ``.env``, which aider always reads: it resets the proxy
variables to the worker's, so a repository cannot route the key through a proxy of its own),
``--read <system prompt file>`` (aider's way of giving standing instructions) and
``--message-file`` (the prompt: no length limit of argv, not visible in ``ps``). A
continuation turn adds ``--restore-chat-history`` (aider's only way to continue: the previous
turn's chat, from the chat history file).

Environment: the API key in ``OPENAI_API_KEY`` only (never ``--openai-api-key`` on argv;
every log line is redacted too; aider runs no command of the model's, see above),
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (litellm's bundled price list, not the network),
``BROWSER=true`` (aider offers to open a documentation URL after an error, and
``--yes-always`` accepts), no ``AIDER_*`` variable of the worker's (each is an option).

Output files: aider edits files of the repository only, so the agent's output files
(``$GAFFER_REVIEW_FILE``, ``$GAFFER_REPLY_FILE``, ``$GAFFER_PLAN_FILE``, in the scratch
directory) are given to it as stand-ins under :data:`OUTPUT_DIR` in the checkout (their paths
and env var names replaced in the prompts), copied to the real paths after the turn and removed
from the checkout, so never committed.

Output (:class:`AiderOutput`): aider's header lines are ``output`` log lines; each reply of
the model is one ``assistant`` line, and the last one, without its edit blocks, is the
summary; ``Applied edit to F`` lines are ``tool`` lines (tool ``edit``). aider exits 0 even
when the model call failed, so its error lines (``litellm.<Name>Error: ...`` and the
explanation after it) are the run's error. Figures: the ``message_send`` events of the
analytics log (``turns``: one per model call; ``input_tokens`` = prompt tokens, which on the
OpenAI wire include cached ones; ``cost_usd`` only when the ``cost`` setting priced the model).

Retries: aider retries a failed call (5xx, 429, connection errors) with backoff from 0.25 s
doubling up to 60 s (about a minute), and no option bounds it; it prints ``Retrying in N
seconds...`` each time. At the :data:`~gaffer.engines.aider_output.MAX_MODEL_ATTEMPTS`-th such
line without a success in between, the engine stops aider
(:class:`~gaffer.engines.stopper.CliStopper`). A 401 is not retried. The text and the analytics
log are read by :mod:`gaffer.engines.aider_output`. Settings: ``path`` (the executable),
``cost`` (``{"input": USD, "output": USD}`` per million tokens), ``edit_format`` (aider's
``--edit-format``; default: aider's choice for the model, ``whole`` for one it does not know),
``context_window`` (tokens; default :data:`DEFAULT_CONTEXT_WINDOW`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from gaffer.agents.outputs import OUTPUT_ENV
from gaffer.engines.aider_output import AiderOutput, read_figures
from gaffer.engines.base import EngineError, EngineResult, Invocation
from gaffer.engines.discovery import find_cli
from gaffer.engines.process import run_cli
from gaffer.engines.stopper import CliStopper, pid_argv

DEFAULT_MODEL = "gpt-4.1"
"""The model when the agent names none."""

DEFAULT_CONTEXT_WINDOW = 128_000
"""The context window (tokens) written in the model metadata when the settings give none."""

MAX_OUTPUT_TOKENS = 16_384


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)

OUTPUT_DIR = ".gaffer-output"
"""In the checkout: where aider writes the agent's output files (it edits files of the
repository only); moved to their real paths in the scratch directory after the turn, and never
left in the checkout (so never committed)."""


def model_metadata(name: str, invocation: Invocation) -> dict[str, Any]:
    """The ``--model-metadata-file`` content (litellm's model map format) for ``openai/name``:
    context window, output limit, prices per token (0 when the ``cost`` setting names none).

    Raises :class:`EngineError` when ``cost`` or ``context_window`` is malformed."""
    settings = invocation.job.engine.settings
    cost = settings.get("cost") or {}
    if not isinstance(cost, dict) or not all(
        isinstance(cost.get(k, 0), int | float) and not isinstance(cost.get(k), bool)
        for k in ("input", "output")
    ):
        raise EngineError("aider: settings.cost needs input and output in USD per 1M tokens")
    window = settings.get("context_window", DEFAULT_CONTEXT_WINDOW)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise EngineError("aider: settings.context_window must be a positive number of tokens")
    return {
        f"openai/{name}": {
            "max_tokens": MAX_OUTPUT_TOKENS,
            "max_input_tokens": window,
            "max_output_tokens": MAX_OUTPUT_TOKENS,
            "input_cost_per_token": float(cost.get("input", 0)) / 1e6,
            "output_cost_per_token": float(cost.get("output", 0)) / 1e6,
            "litellm_provider": "openai",
            "mode": "chat",
        }
    }


def aider_argv(executable: str, invocation: Invocation, files: dict[str, Path]) -> list[str]:
    """The command line of one turn (see the module docstring); ``files`` maps ``metadata``,
    ``settings``, ``message``, ``input_history``, ``chat_history``, ``analytics``,
    ``env`` and optionally ``system`` to their paths. Never holds the API key."""
    model = invocation.model
    name = model.model or DEFAULT_MODEL
    argv = [
        executable,
        "--model",
        f"openai/{name}",
        "--no-stream",
        "--yes-always",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-check-update",
        "--analytics-disable",
        "--no-gitignore",
        "--no-pretty",
        "--no-fancy-input",
        "--no-show-release-notes",
        "--no-show-model-warnings",
        "--no-detect-urls",
        "--no-suggest-shell-commands",
        "--no-auto-lint",
        "--no-auto-test",
        "--map-tokens",
        "0",
        "--encoding",
        "utf-8",
        "--model-metadata-file",
        str(files["metadata"]),
        "--model-settings-file",
        str(files["settings"]),
        "--input-history-file",
        str(files["input_history"]),
        "--chat-history-file",
        str(files["chat_history"]),
        "--analytics-log",
        str(files["analytics"]),
        "--env-file",
        str(files["env"]),
    ]
    if model.base_url:
        argv += ["--openai-api-base", model.base_url.rstrip("/")]
    edit_format = invocation.job.engine.settings.get("edit_format")
    if isinstance(edit_format, str) and edit_format:
        argv += ["--edit-format", edit_format]
    if "system" in files:
        argv += ["--read", str(files["system"])]
    if invocation.resume:
        argv.append("--restore-chat-history")
    argv += ["--message-file", str(files["message"])]
    return argv


def _prepare_outputs(invocation: Invocation) -> list[tuple[str, str, Path]]:
    """The agent's output files outside the checkout, as ``(env var, stand-in path relative
    to the checkout, real path)``: each ``GAFFER_REVIEW_FILE``... of ``invocation.env``. The
    stand-ins go under :data:`OUTPUT_DIR`, made empty (and the engine user's)."""
    _remove(invocation.checkout / OUTPUT_DIR)
    outputs = [
        (variable, f"{OUTPUT_DIR}/{Path(target).name}", Path(target))
        for variable in OUTPUT_ENV.values()
        if (target := invocation.env.get(variable))
        and not Path(target).is_relative_to(invocation.checkout)
    ]
    if outputs:
        stand_in = invocation.checkout / OUTPUT_DIR
        stand_in.mkdir()
        if invocation.user is not None:
            os.chown(stand_in, invocation.user.uid, invocation.user.gid)
    return outputs


def _point_at(text: str, outputs: list[tuple[str, str, Path]]) -> str:
    """``text`` with each output file's real path, and its env var (``$GAFFER_REVIEW_FILE``,
    ``${GAFFER_REVIEW_FILE}``), replaced by its stand-in path in the checkout."""
    for variable, relative, target in outputs:
        text = text.replace(str(target), relative)
        text = text.replace("${" + variable + "}", relative).replace("$" + variable, relative)
    return text


def _collect_outputs(invocation: Invocation, outputs: list[tuple[str, str, Path]]) -> None:
    """Copy what aider wrote at the stand-in paths to the real output files (a symlink is not
    followed); remove :data:`OUTPUT_DIR` from the checkout."""
    for _variable, relative, target in outputs:
        written = invocation.checkout / relative
        if written.is_file() and not written.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            target.write_bytes(written.read_bytes())
    _remove(invocation.checkout / OUTPUT_DIR)


def _remove(path: Path) -> None:
    """Remove ``path`` (a file, a symlink or a directory tree; absent: nothing)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


class AiderEngine:
    """Runs one turn of ``aider`` (see the module docstring). Settings: ``path``, ``cost``,
    ``edit_format``, ``context_window`` (all optional)."""

    name: str = "aider"
    cli: str | None = "aider"
    install_hint: str = "scripts/install-engines aider"
    can_resume: bool = True

    def run(self, invocation: Invocation) -> EngineResult:
        """Run one turn to completion, as the invocation's user.

        Raises :class:`~gaffer.engines.base.EngineError` when the CLI is missing or cannot
        start or its settings are malformed. The result's ``error`` is aider's own error
        lines when the model call failed (aider itself exits 0 then).
        """
        settings = invocation.job.engine.settings
        explicit = settings.get("path")
        executable = find_cli("aider", explicit=explicit if isinstance(explicit, str) else None)
        model = invocation.model
        name = model.model or DEFAULT_MODEL
        scratch = invocation.scratch
        turn = invocation.turn
        files = {
            "metadata": scratch / "aider-model-metadata.json",
            "settings": scratch / "aider-model-settings.yml",
            "message": scratch / f"aider-message-{turn}.md",
            "input_history": scratch / "aider-input-history",
            "chat_history": scratch / "aider-chat-history.md",
            "analytics": scratch / f"aider-analytics-{turn}.jsonl",
            "env": scratch / "aider.env",
        }
        files["metadata"].write_text(json.dumps(model_metadata(name, invocation), indent=2))
        # JSON is YAML: one model's settings, the OpenAI client's own retries off.
        model_settings = [{"name": f"openai/{name}", "extra_params": {"max_retries": 0}}]
        files["settings"].write_text(json.dumps(model_settings))
        outputs = _prepare_outputs(invocation)
        files["message"].write_text(_point_at(invocation.prompt, outputs))
        files["analytics"].unlink(missing_ok=True)
        env = {k: v for k, v in invocation.base_env().items() if not k.startswith("AIDER_")}
        files["env"].write_text(
            "".join(f"{name}={json.dumps(env.get(name, ''))}\n" for name in PROXY_VARIABLES)
        )
        if invocation.system_prompt.strip():
            files["system"] = scratch / "aider-system-prompt.md"
            files["system"].write_text(_point_at(invocation.system_prompt, outputs))
        for name_ in ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
            env.pop(name_, None)
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env["BROWSER"] = "true"
        env["PWD"] = str(invocation.checkout)
        if model.api_key:
            env["OPENAI_API_KEY"] = model.api_key
        if invocation.user is not None:
            for path in files.values():
                if path.exists():
                    os.chown(path, invocation.user.uid, invocation.user.gid)
        invocation.reporter.emit(
            "engine_started",
            engine=self.name,
            turn=turn,
            resume=invocation.resume,
            model=f"openai/{name}",
            base_url=model.base_url,
        )
        stopper = CliStopper()
        output = AiderOutput(invocation.reporter, stopper, secret=model.api_key)
        try:
            exit_code = run_cli(
                pid_argv(aider_argv(executable, invocation, files)),
                invocation,
                env,
                output.on_line,
            )
        finally:
            stopper.close()
        output.finish()
        _collect_outputs(invocation, outputs)
        error = output.error
        if stopper.stopped:
            error = f"{stopper.stopped}: {error}" if error else stopper.stopped
            exit_code = exit_code if exit_code > 0 else 1  # stopped by the engine
        return EngineResult(
            exit_code=exit_code,
            summary=output.summary,
            error=f"aider: {error}" if error else None,
            figures=read_figures(files["analytics"], priced="cost" in settings),
        )
