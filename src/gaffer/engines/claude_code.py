"""The ``claude-code`` engine: Anthropic's Claude Code CLI (``claude -p``), one turn each.

Command line (:func:`claude_argv`)::

    claude -p --output-format stream-json --verbose --max-turns N
           --dangerously-skip-permissions --setting-sources user --strict-mcp-config
           --add-dir <checkout> [--model M] [--append-system-prompt TEXT]
           [--resume <session id> | --continue] -- PROMPT

* ``--output-format stream-json --verbose``: one JSON object per line as the session goes
  (``system`` init, ``assistant`` messages, ``user`` tool results, a final ``result``).
* ``--max-turns``: :attr:`Invocation.max_turns`, Claude Code's own limit of model turns (past
  it the result is ``error_max_turns``, an error).
* ``--dangerously-skip-permissions``: nobody is there to approve a tool call; the worker's
  backend is the sandbox. Claude Code refuses it as root unless ``IS_SANDBOX=1``, which is set
  only when the engine runs as root (as the engine user it needs nothing).
* ``--setting-sources user``: only the settings in the engine's ``HOME`` (which gaffer
  creates empty) apply, never the repository's ``.claude/settings.json`` or
  ``settings.local.json``: their ``env`` overrides the process's own (checked: a repository's
  ``{"env": {"ANTHROPIC_BASE_URL": ...}}`` sent the API key to the host it named), and their
  hooks would run before the agent's first turn. ``--strict-mcp-config`` likewise ignores the
  repository's ``.mcp.json``. The repository's ``CLAUDE.md`` is still read:
  ``--add-dir <checkout>`` with ``CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD=1``.
* ``--append-system-prompt``: the agent's rendered system prompt, after Claude Code's own
  (which describes its tools, and so is kept); past :data:`ARGV_TEXT_MAX_BYTES`, from a file
  instead (``--append-system-prompt-file``).
* The prompt is the last argument, after ``--`` (a prompt that starts with ``-`` is not an
  option); past :data:`ARGV_TEXT_MAX_BYTES` it goes on stdin instead, which ``claude -p``
  reads when no prompt is given: Linux refuses ``execve`` when one argument exceeds
  ``MAX_ARG_STRLEN`` (128 KiB).
* A continuation turn (:attr:`Invocation.resume`) resumes the previous turn's session:
  ``--resume <session id>``, or ``--continue`` (the most recent session in the checkout) when
  the previous turn reported none. Sessions are kept in ``$HOME/.claude/projects``, and the
  worker keeps the engine's home across the turns of a run.
* ``--model``: ``invocation.model.model``; None: Claude Code's own default model.

Environment (:func:`claude_env`): the worker's (:meth:`Invocation.base_env`) without any
``ANTHROPIC_*``/``CLAUDE_*`` variable it may have inherited, then ``ANTHROPIC_BASE_URL``
(``invocation.model.base_url``; None: Anthropic's API), ``ANTHROPIC_API_KEY`` (the key: in the
CLI's environment only, never on its command line, in a file or a log line; every log line
and the summary are redacted too), ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (the one
switch that stops its telemetry, error reports, update checks and other side calls),
``CLAUDE_CODE_MAX_RETRIES`` = :data:`MAX_RETRIES` (its default, 10 with backoff, takes minutes
against a dead server, and it retries even a 401), and ``CLAUDE_CODE_SHELL_PREFIX``: a small
script in the engine's home through which Claude Code runs every Bash tool command, which
unsets ``ANTHROPIC_API_KEY`` first, so the commands the agent runs do not inherit the key.
(An agent that looks for it can still read ``/proc/<claude pid>/environ``: the CLI runs as the
same user. Keeping the key out of the sandbox altogether needs model calls proxied by gaffer.)
``GAFFER_ENGINE_PROCESS`` marks the CLI and every command it starts, so that those left
running when the turn ends are killed (:data:`PROCESS_MARK_ENV`).

Output: the ``stream-json`` lines, read as they come by
:class:`~gaffer.engines.claude_events.ClaudeEvents` (run-log lines per assistant text, tool call
and tool result; summary, session id and figures from the final ``result`` line). Its
``is_error`` decides failure, not the subtype nor only the exit code: the run's error is then
Claude Code's own message (``result``, else ``errors``), e.g. ``Invalid API key · Fix external
API key (HTTP 401)``, ``API Error: 500 ...``, ``API Error: Request rejected (429) ...``.
"""

from __future__ import annotations

import os
import shutil
import uuid

from gaffer.engines.base import EngineResult, Invocation
from gaffer.engines.claude_events import ClaudeEvents
from gaffer.engines.discovery import find_cli
from gaffer.engines.process import PROCESS_MARK_ENV, kill_marked, run_cli, write_private

MAX_RETRIES = 2
"""Claude Code's retries of a failed model call (5xx, 429, 401, connection refused; its
default is 10): with its backoff (about 0.5 s, then 1 s) a dead model server fails the turn in
about 3 s, after 3 requests."""

ARGV_TEXT_MAX_BYTES = 64 * 1024
"""The longest prompt or system prompt (UTF-8 bytes) put on the command line; longer ones go
on stdin or in a file. Below Linux's ``MAX_ARG_STRLEN`` (128 KiB per argument) with room for
the environment in ``ARG_MAX``."""

INHERITED_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "CLAUDECODE")
"""Variables the worker's environment may carry (from an operator's shell, or a Claude Code
session running gaffer) that would change where the CLI calls or how it authenticates: dropped
before the engine's own are set."""

GAFFER_DIR = ".gaffer"
"""In the engine's home: the files this engine writes for Claude Code (system prompt, shell
prefix)."""


def claude_argv(
    executable: str,
    invocation: Invocation,
    *,
    prompt_on_stdin: bool,
    system_prompt_file: str | None,
) -> list[str]:
    """The command line of one turn (see the module docstring). Never holds the API key.

    ``prompt_on_stdin``: leave the prompt off (it is written to stdin); ``system_prompt_file``:
    the path of the system prompt, when it is too long for the command line."""
    argv = [
        executable,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        str(invocation.max_turns),
        "--dangerously-skip-permissions",
        "--setting-sources",
        "user",
        "--strict-mcp-config",
        "--add-dir",
        str(invocation.checkout),
    ]
    if invocation.model.model:
        argv += ["--model", invocation.model.model]
    if system_prompt_file is not None:
        argv += ["--append-system-prompt-file", system_prompt_file]
    elif invocation.system_prompt.strip():
        argv += ["--append-system-prompt", invocation.system_prompt]
    if invocation.resume:
        argv += ["--resume", invocation.session_id] if invocation.session_id else ["--continue"]
    if not prompt_on_stdin:
        argv += ["--", invocation.prompt]
    return argv


def runs_as_root(invocation: Invocation) -> bool:
    """True when the engine process will run as root (no engine user and a root worker, or
    an engine user of uid 0)."""
    if invocation.user is not None:
        return invocation.user.uid == 0
    return os.geteuid() == 0


def claude_env(invocation: Invocation, shell_prefix: str | None) -> dict[str, str]:
    """The engine process's environment (see the module docstring); holds the API key in
    ``ANTHROPIC_API_KEY`` when the invocation has one. ``shell_prefix``: the path of the script
    Bash tool commands run through (None: none)."""
    env = {
        name: value
        for name, value in invocation.base_env().items()
        if not name.startswith(INHERITED_PREFIXES) and name != "IS_SANDBOX"
    }
    env.update(
        {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(MAX_RETRIES),
            "CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD": "1",
        }
    )
    model = invocation.model
    if model.base_url:
        env["ANTHROPIC_BASE_URL"] = model.base_url.rstrip("/")
    if model.api_key:
        env["ANTHROPIC_API_KEY"] = model.api_key
    if shell_prefix is not None:
        env["CLAUDE_CODE_SHELL_PREFIX"] = shell_prefix
    if runs_as_root(invocation):
        env["IS_SANDBOX"] = "1"
    return env


def write_shell_prefix(invocation: Invocation) -> str:
    """Write the script Claude Code runs each Bash tool command through (it is called with the
    command as its one argument): it unsets ``ANTHROPIC_API_KEY`` and runs the command with
    bash. Returns its path (in the engine's home, 0700, owned by the engine user)."""
    bash = shutil.which("bash") or "/bin/sh"
    path = invocation.home / GAFFER_DIR / "shell-without-key"
    script = f'#!/bin/sh\nunset ANTHROPIC_API_KEY\nexec {bash} -c "$1"\n'
    write_private(path, script, invocation)
    path.chmod(0o700)
    return str(path)


class ClaudeCodeEngine:
    """Runs one turn of ``claude -p`` (see the module docstring). Settings:
    ``{"path": "/path/to/claude"}`` (optional; default: ``claude`` on ``PATH``)."""

    name: str = "claude-code"
    cli: str | None = "claude"
    install_hint: str = "scripts/install-engines claude-code"
    can_resume: bool = True

    def run(self, invocation: Invocation) -> EngineResult:
        """Run one turn to completion, as the invocation's user.

        Raises :class:`~gaffer.engines.base.EngineError` when the CLI is missing or cannot
        start. The result's ``error`` is Claude Code's own message when it reported a failure
        (``claude-code: <message>``)."""
        settings = invocation.job.engine.settings
        explicit = settings.get("path")
        executable = find_cli("claude", explicit=explicit if isinstance(explicit, str) else None)
        prompt_on_stdin = len(invocation.prompt.encode()) > ARGV_TEXT_MAX_BYTES
        system_prompt_file: str | None = None
        if len(invocation.system_prompt.encode()) > ARGV_TEXT_MAX_BYTES:
            path = invocation.home / GAFFER_DIR / f"system-prompt-{invocation.turn}.md"
            system_prompt_file = str(write_private(path, invocation.system_prompt, invocation))
        api_key = invocation.model.api_key
        shell_prefix = write_shell_prefix(invocation) if api_key else None
        argv = claude_argv(
            executable,
            invocation,
            prompt_on_stdin=prompt_on_stdin,
            system_prompt_file=system_prompt_file,
        )
        env = claude_env(invocation, shell_prefix)
        mark = uuid.uuid4().hex
        env[PROCESS_MARK_ENV] = mark
        invocation.reporter.emit(
            "engine_started",
            engine=self.name,
            turn=invocation.turn,
            resume=invocation.resume,
            session_id=invocation.session_id,
            model=invocation.model.model,
            base_url=env.get("ANTHROPIC_BASE_URL"),
            prompt_on_stdin=prompt_on_stdin,
        )
        events = ClaudeEvents(invocation.reporter, secret=api_key)
        try:
            exit_code = run_cli(
                argv,
                invocation,
                env,
                events.on_line,
                stdin=invocation.prompt if prompt_on_stdin else None,
            )
        finally:
            left = kill_marked(mark)
            if left:
                invocation.reporter.log(
                    f"killed {len(left)} process(es) the agent's commands left running"
                )
        error = events.error(exit_code)
        summary = events.summary()
        return EngineResult(
            exit_code=exit_code,
            summary=events.redact(summary) if summary else None,
            error=f"claude-code: {events.redact(error)}" if error else None,
            figures=events.figures(),
            session_id=events.session_id or invocation.session_id,
        )
