"""The ``command`` engine: run a configured shell command in the checkout.

Settings: ``{"command": "<shell command>"}``, run with ``/bin/sh -c`` in the checkout. The task
reaches the command three ways:

* ``GAFFER_TASK_FILE``: path of a JSON file with the whole task (:class:`TaskSpec` fields);
  ``GAFFER_PROMPT_FILE`` / ``GAFFER_SYSTEM_PROMPT_FILE``: the rendered prompts (on a
  continuation turn the prompt file holds the message saying what is missing);
  ``GAFFER_TURN``: 1, then 2, 3... on continuation turns;
* env vars ``GAFFER_AGENT_TYPE``, ``GAFFER_REPOSITORY``, ``GAFFER_WORK_ITEM``,
  ``GAFFER_WORK_ITEM_TITLE``, ``GAFFER_WORK_ITEM_BODY``, ``GAFFER_PR_NUMBER``,
  ``GAFFER_HEAD_SHA``, ``GAFFER_TRIGGER`` (empty when not applicable);
* the output file paths of the agent (``GAFFER_REVIEW_FILE``, ``GAFFER_REPLY_FILE``,
  ``GAFFER_PLAN_FILE``) and ``GAFFER_MODEL`` / ``GAFFER_MODEL_BASE_URL`` /
  ``GAFFER_MODEL_API_KEY`` when the agent has a model configured.

Title and body env vars are cut at :data:`ENV_TEXT_MAX_BYTES` (UTF-8 bytes, on a character
boundary): Linux refuses ``execve`` when one env string exceeds ``MAX_ARG_STRLEN`` (128 KiB),
and a long issue description must not stop the engine from starting. The task file always has
the full text. The command's exit code decides success; it may write a one-paragraph summary to
``GAFFER_SUMMARY_FILE`` (read as UTF-8, undecodable bytes replaced), else the last line it
printed is the summary.
"""

from __future__ import annotations

import json

from gaffer.engines.base import EngineError, EngineResult, Invocation, cap_utf8
from gaffer.engines.process import run_cli

ENV_TEXT_MAX_BYTES = 32 * 1024
TRUNCATION_MARK = "\n[truncated: full text in $GAFFER_TASK_FILE]"


class CommandEngine:
    """Runs ``engine.settings["command"]`` with ``/bin/sh -c``; see the module docstring."""

    name: str = "command"
    cli: str | None = None
    install_hint: str = "nothing to install: the command engine runs a shell command"
    can_resume: bool = False

    def run(self, invocation: Invocation) -> EngineResult:
        """Run the command to completion, as the invocation's user when given.

        Raises :class:`EngineError` if no command is set."""
        job = invocation.job
        command = job.engine.settings.get("command")
        if not isinstance(command, str) or not command.strip():
            raise EngineError("the command engine needs settings.command (a shell command)")
        scratch = invocation.scratch
        task = job.task
        task_file = scratch / "task.json"
        task_file.write_text(json.dumps(task.model_dump(mode="json"), indent=2))
        prompt_file = scratch / "prompt.md"
        prompt_file.write_text(invocation.prompt)
        system_file = scratch / "system-prompt.md"
        system_file.write_text(invocation.system_prompt)
        summary_file = scratch / "summary.txt"
        summary_file.unlink(missing_ok=True)
        env = {
            **invocation.base_env(),
            "GAFFER_TASK_FILE": str(task_file),
            "GAFFER_PROMPT_FILE": str(prompt_file),
            "GAFFER_SYSTEM_PROMPT_FILE": str(system_file),
            "GAFFER_SUMMARY_FILE": str(summary_file),
            "GAFFER_TURN": str(invocation.turn),
            "GAFFER_AGENT_TYPE": task.agent_type,
            "GAFFER_REPOSITORY": task.repository,
            "GAFFER_WORK_ITEM": task.work_item,
            "GAFFER_WORK_ITEM_TITLE": cap_utf8(task.title, ENV_TEXT_MAX_BYTES, TRUNCATION_MARK),
            "GAFFER_WORK_ITEM_BODY": cap_utf8(task.body, ENV_TEXT_MAX_BYTES, TRUNCATION_MARK),
            "GAFFER_PR_NUMBER": "" if task.pr_number is None else str(task.pr_number),
            "GAFFER_HEAD_SHA": task.head_sha or "",
            "GAFFER_TRIGGER": task.trigger,
        }
        model = invocation.model
        for name, value in (
            ("GAFFER_MODEL", model.model),
            ("GAFFER_MODEL_BASE_URL", model.base_url),
            ("GAFFER_MODEL_API_KEY", model.api_key),
        ):
            if value:
                env[name] = value
        invocation.reporter.emit(
            "engine_started", engine=self.name, command=command, turn=invocation.turn
        )
        last_line: str | None = None

        def on_line(text: str) -> None:
            nonlocal last_line
            invocation.reporter.log(text, stream="engine")
            if text.strip():
                last_line = text.strip()

        exit_code = run_cli(["/bin/sh", "-c", command], invocation, env, on_line)
        summary = (
            summary_file.read_text(errors="replace").strip() if summary_file.exists() else last_line
        )
        return EngineResult(exit_code=exit_code, summary=summary or None)
