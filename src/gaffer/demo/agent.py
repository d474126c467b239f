"""The demo's agent: a small script the ``command`` engine runs in the checkout.

It reads the task file (``GAFFER_TASK_FILE``) and writes one Markdown file from it: ``PLAN.md``
for implementation (the issue's title and body), ``REVIEW.md`` for review, ``NOTES.md`` for the
other agents. Run as ``python -m gaffer.demo.agent``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FILES = {"implementation": "PLAN.md", "review": "REVIEW.md", "planning": "PLAN.md"}


def main() -> int:
    """Write the file for the task; returns the exit code (0)."""
    task = json.loads(Path(os.environ["GAFFER_TASK_FILE"]).read_text())
    name = FILES.get(task["agent_type"], "NOTES.md")
    lines = [
        f"# {task['agent_type']}: {task['repository']}#{task['work_item']}",
        "",
        f"Triggered by `{task['trigger']}`.",
        "",
    ]
    if task.get("title"):
        lines += [f"## {task['title']}", ""]
    if task.get("body"):
        lines += [task["body"], ""]
    if task.get("head_sha"):
        lines += [f"Head commit: `{task['head_sha']}`", ""]
    Path(name).write_text("\n".join(lines))
    print(f"wrote {name} for {task['agent_type']} on #{task['work_item']}")
    summary = os.environ.get("GAFFER_SUMMARY_FILE")
    if summary:
        Path(summary).write_text(f"Wrote {name} from the task of #{task['work_item']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
