"""Which lines of a unified diff a review comment may be placed on.

GitHub's rule (REST "Create a review for a pull request"): ``line`` is a line of the file in
the diff, on ``side`` ``RIGHT`` (the new file: added or context lines) or ``LEFT`` (the old
file: removed or context lines); a comment on any other line makes GitHub reject the whole
review (422 "Pull request review thread line must be part of the diff").
"""

from __future__ import annotations

import re

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def commentable_lines(diff: str) -> dict[str, dict[str, set[int]]]:
    """``{path: {"RIGHT": {lines}, "LEFT": {lines}}}`` for every file of ``diff``."""
    out: dict[str, dict[str, set[int]]] = {}
    sides: dict[str, set[int]] | None = None
    old = new = 0
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            path = line.split(" b/", 1)[-1]
            sides = out.setdefault(path, {"RIGHT": set(), "LEFT": set()})
            in_hunk = False
            continue
        if sides is None:
            continue
        match = _HUNK.match(line)
        if match:
            old, new = int(match.group(1)), int(match.group(2))
            in_hunk = True
            continue
        if not in_hunk:
            continue
        if line.startswith("+"):
            sides["RIGHT"].add(new)
            new += 1
        elif line.startswith("-"):
            sides["LEFT"].add(old)
            old += 1
        elif line.startswith("\\"):
            continue  # "\ No newline at end of file"
        else:
            sides["RIGHT"].add(new)
            sides["LEFT"].add(old)
            old += 1
            new += 1
    return out


def is_commentable(
    lines: dict[str, dict[str, set[int]]], path: str, line: int, side: str = "RIGHT"
) -> bool:
    """True when ``path``:``line`` on ``side`` is in the diff (see the module docstring)."""
    return line in lines.get(path, {}).get(side.upper(), set())
