"""Unified diffs: the files of a diff and the lines a review comment may be placed on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class FileDiff:
    """One file of a diff: its name, status, counts, patch, and commentable lines by side."""

    filename: str
    status: str = "modified"
    additions: int = 0
    deletions: int = 0
    patch: str = ""
    right: set[int] = field(default_factory=set)  # new-file lines in a hunk (added/context)
    left: set[int] = field(default_factory=set)  # old-file lines in a hunk (removed/context)


def parse(diff: str) -> list[FileDiff]:
    """The files of a ``git diff`` text, in order."""
    files: list[FileDiff] = []
    current: FileDiff | None = None
    old = new = 0
    in_hunk = False
    patch: list[str] = []
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            if current is not None:
                current.patch = "\n".join(patch)
            name = line.split(" b/", 1)[-1]
            current = FileDiff(filename=name)
            files.append(current)
            patch = []
            in_hunk = False
            continue
        if current is None:
            continue
        if not in_hunk:
            if line.startswith("new file mode"):
                current.status = "added"
            elif line.startswith("deleted file mode"):
                current.status = "removed"
            elif line.startswith("rename to "):
                current.status = "renamed"
        match = _HUNK.match(line)
        if match:
            old, new = int(match.group(1)), int(match.group(3))
            in_hunk = True
            patch.append(line)
            continue
        if not in_hunk:
            continue
        patch.append(line)
        if line.startswith("+"):
            current.additions += 1
            current.right.add(new)
            new += 1
        elif line.startswith("-"):
            current.deletions += 1
            current.left.add(old)
            old += 1
        elif line.startswith(" ") or line == "":
            current.right.add(new)
            current.left.add(old)
            old += 1
            new += 1
    if current is not None:
        current.patch = "\n".join(patch)
    return files


def commentable(diff: str, path: str, line: int, side: str = "RIGHT") -> bool:
    """True when GitHub would accept a review comment on ``path`` line ``line`` of ``side``
    (``RIGHT``: the new file, ``LEFT``: the old): the line is inside one of the diff's hunks."""
    for f in parse(diff):
        if f.filename == path:
            return line in (f.left if side.upper() == "LEFT" else f.right)
    return False
