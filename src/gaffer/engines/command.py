"""The ``command`` engine: run a configured shell command in the checkout.

Settings: ``{"command": "<shell command>"}``, run with ``/bin/sh -c`` in the checkout. The task
reaches the command two ways:

* ``GAFFER_TASK_FILE``: path of a JSON file with the whole task (:class:`TaskSpec` fields);
* env vars ``GAFFER_AGENT_TYPE``, ``GAFFER_REPOSITORY``, ``GAFFER_WORK_ITEM``,
  ``GAFFER_WORK_ITEM_TITLE``, ``GAFFER_WORK_ITEM_BODY``, ``GAFFER_PR_NUMBER``,
  ``GAFFER_HEAD_SHA``, ``GAFFER_TRIGGER`` (empty when not applicable).

Title and body env vars are cut at :data:`ENV_TEXT_MAX_BYTES` (UTF-8 bytes, on a character
boundary): Linux refuses ``execve`` when one env string exceeds ``MAX_ARG_STRLEN`` (128 KiB),
and a long issue description must not stop the engine from starting. The task file always has
the full text. The command's exit code decides success; it may write a one-paragraph summary to
``GAFFER_SUMMARY_FILE`` (read as UTF-8, undecodable bytes replaced), else the last line it
printed is the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from gaffer.engines.base import EngineError, EngineResult, EngineUser, cap_utf8
from gaffer.queue.jobs import JobData
from gaffer.worker.events import Reporter

ENV_TEXT_MAX_BYTES = 32 * 1024
TRUNCATION_MARK = "\n[truncated: full text in $GAFFER_TASK_FILE]"


class CommandEngine:
    """Runs ``engine.settings["command"]`` with ``/bin/sh -c``; see the module docstring."""

    name = "command"

    def run(
        self,
        job: JobData,
        checkout: Path,
        scratch: Path,
        reporter: Reporter,
        user: EngineUser | None = None,
    ) -> EngineResult:
        """Run the command to completion, as ``user`` when given (see :class:`EngineUser`).
        Raises :class:`EngineError` if no command is set."""
        command = job.engine.settings.get("command")
        if not isinstance(command, str) or not command.strip():
            raise EngineError("the command engine needs settings.command (a shell command)")
        task = job.task
        task_file = scratch / "task.json"
        task_file.write_text(json.dumps(task.model_dump(mode="json"), indent=2))
        summary_file = scratch / "summary.txt"
        env = {
            **os.environ,
            "GAFFER_TASK_FILE": str(task_file),
            "GAFFER_SUMMARY_FILE": str(summary_file),
            "GAFFER_AGENT_TYPE": task.agent_type,
            "GAFFER_REPOSITORY": task.repository,
            "GAFFER_WORK_ITEM": task.work_item,
            "GAFFER_WORK_ITEM_TITLE": cap_utf8(task.title, ENV_TEXT_MAX_BYTES, TRUNCATION_MARK),
            "GAFFER_WORK_ITEM_BODY": cap_utf8(task.body, ENV_TEXT_MAX_BYTES, TRUNCATION_MARK),
            "GAFFER_PR_NUMBER": "" if task.pr_number is None else str(task.pr_number),
            "GAFFER_HEAD_SHA": task.head_sha or "",
            "GAFFER_TRIGGER": task.trigger,
        }
        as_user: dict[str, object] = {}
        if user is not None:
            env["HOME"] = str(scratch / "home")
            as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
        reporter.emit("engine_started", engine=self.name, command=command)
        last_line: str | None = None
        with subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            **as_user,  # type: ignore[call-overload]
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                text = line.rstrip("\n")
                reporter.log(text, stream="engine")
                if text.strip():
                    last_line = text.strip()
            exit_code = process.wait()
        summary = (
            summary_file.read_text(errors="replace").strip() if summary_file.exists() else last_line
        )
        return EngineResult(exit_code=exit_code, summary=summary or None)
