"""The demo's agent: a small script the ``command`` engine runs in the checkout.

It reads the task file (``GAFFER_TASK_FILE``) and leaves what the agent's finish rule asks for:
``PLAN.md`` in the checkout for implementation (the issue's title and body); a review (JSON, to
``$GAFFER_REVIEW_FILE``) for review, with one inline comment on the first line the PR adds
when gaffer put the PR's diff in the context (``$GAFFER_CONTEXT_DIR/github-pr-diff.md``); a
plan (``$GAFFER_PLAN_FILE``) for planning; a reply (``$GAFFER_REPLY_FILE``) and ``NOTES.md``
for the other agents. Run as ``python -m gaffer.demo.agent``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def first_added_line(diff: str) -> tuple[str, int] | None:
    """(path, line in the new file) of the first line a unified diff adds, or None."""
    path, line = None, 0
    for text in diff.splitlines():
        if text.startswith("+++ "):
            path = text[4:].removeprefix("b/") if text[4:] != "/dev/null" else None
            continue
        hunk = _HUNK.match(text)
        if hunk:
            line = int(hunk.group(1))
            continue
        if path is None or not line or text.startswith(("---", "diff ")):
            continue
        if text.startswith("+"):
            return path, line
        if not text.startswith("-"):
            line += 1
    return None


def inline_comments() -> list[dict[str, Any]]:
    """One review comment on the first added line of the PR's diff in the run's context."""
    context = os.environ.get("GAFFER_CONTEXT_DIR")
    diff_file = Path(context) / "github-pr-diff.md" if context else None
    if diff_file is None or not diff_file.is_file():
        return []
    found = first_added_line(diff_file.read_text())
    if found is None:
        return []
    path, line = found
    body = f"The demo agent read this line ({path}:{line}) in the PR's diff."
    return [{"path": path, "line": line, "side": "RIGHT", "body": body}]


def main() -> int:
    """Write the files for the task; returns the exit code (0)."""
    task = json.loads(Path(os.environ["GAFFER_TASK_FILE"]).read_text())
    agent, item = task["agent_type"], task["work_item"]
    lines = [
        f"# {agent}: {task['repository']}#{item}",
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
    text = "\n".join(lines)
    if agent == "review":
        review = {
            "event": "COMMENT",
            "body": f"Looked at #{item}.\n\n{text}",
            "comments": inline_comments(),
        }
        Path(os.environ["GAFFER_REVIEW_FILE"]).write_text(json.dumps(review))
        wrote = "a review"
    elif agent == "planning":
        plan = {"title": f"Plan for #{item}", "body": text}
        Path(os.environ["GAFFER_PLAN_FILE"]).write_text(json.dumps(plan))
        wrote = "a plan"
    elif agent == "implementation":
        Path("PLAN.md").write_text(text)
        wrote = "PLAN.md"
    else:
        Path("NOTES.md").write_text(text)
        reply = {"body": f"Done: wrote NOTES.md for #{item}."}
        Path(os.environ["GAFFER_REPLY_FILE"]).write_text(json.dumps(reply))
        wrote = "NOTES.md and a reply"
    print(f"wrote {wrote} for {agent} on #{item}")
    summary = os.environ.get("GAFFER_SUMMARY_FILE")
    if summary:
        Path(summary).write_text(f"Wrote {wrote} from the task of #{item}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
