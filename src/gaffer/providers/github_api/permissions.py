"""The permissions an installation token of a run is minted with (least privilege).

GitHub's permission names and levels (``read``/``write``) are those of the
``app-permissions`` schema in GitHub's REST description.
"""

from __future__ import annotations

from typing import Literal

BranchMode = Literal["new", "pr-head", "read-only"]


def permissions_for(branch_mode: BranchMode) -> dict[str, str]:
    """The token permissions of a run whose agent has ``branch_mode``.

    Pushing agents (``new``, ``pr-head``) get ``contents: write``; ``read-only`` agents get
    ``contents: read``. Every run may comment, review, open PRs, and report a check run, and
    reads Actions logs (respond-to-ci): ``issues``, ``pull_requests``, ``checks`` write,
    ``actions`` and ``metadata`` read.
    """
    return {
        "contents": "read" if branch_mode == "read-only" else "write",
        "issues": "write",
        "pull_requests": "write",
        "checks": "write",
        "actions": "read",
        "metadata": "read",
    }
