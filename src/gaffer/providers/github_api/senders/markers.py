"""The hidden marker in everything gaffer posts: ``<!-- gaffer:run=<run id> -->`` (the ack),
``<!-- gaffer:run=<run id> kind=<kind> -->`` (any other post of the run),
``<!-- gaffer:notice=<id> -->`` (a post that follows from no run: a trigger ignored over a cap).

It makes creates idempotent (look for it before posting) and lets the loop guard know a
comment is gaffer's own even when gaffer posts as a person's PAT (:func:`is_gaffer_post`).
"""

from __future__ import annotations

import re

_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_KIND = re.compile(r"[a-z][a-z0-9_:-]{0,60}")
MARKER_RE = re.compile(
    r"<!-- gaffer:run=([A-Za-z0-9_.-]{1,80})(?: kind=([a-z][a-z0-9_:-]{0,60}))? -->"
)

NOTICE_RE = re.compile(r"<!-- gaffer:notice=([a-z0-9]{8,64}) -->")
_NOTICE_ID = re.compile(r"[a-z0-9]{8,64}")


def marker(run_id: str, kind: str | None = None) -> str:
    """The marker of ``run_id``'s post of ``kind`` (None: the ack comment).

    Raises ``ValueError`` for a run id or kind outside ``[A-Za-z0-9_.-]`` / ``[a-z0-9_:-]``
    (they must not end the HTML comment early).
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} cannot go in a marker")
    if kind is None:
        return f"<!-- gaffer:run={run_id} -->"
    if not _KIND.fullmatch(kind):
        raise ValueError(f"kind {kind!r} cannot go in a marker")
    return f"<!-- gaffer:run={run_id} kind={kind} -->"


def with_marker(body: str, run_id: str, kind: str | None = None) -> str:
    """``body`` ending with its marker (on a line of its own)."""
    return f"{body.rstrip()}\n\n{marker(run_id, kind)}"


def has_marker(body: str | None, run_id: str, kind: str | None = None) -> bool:
    """True when ``body`` carries exactly the marker of ``run_id`` and ``kind``."""
    return bool(body) and marker(run_id, kind) in str(body)


def notice_marker(notice_id: str) -> str:
    """The marker of the run-less post ``notice_id`` (lower-case hex or digits, 8 to 64).

    Raises ``ValueError`` for any other id."""
    if not _NOTICE_ID.fullmatch(notice_id):
        raise ValueError(f"notice id {notice_id!r} cannot go in a marker")
    return f"<!-- gaffer:notice={notice_id} -->"


def is_gaffer_post(body: str | None) -> bool:
    """True when ``body`` carries any gaffer marker (the loop guard: never a trigger)."""
    if not body:
        return False
    text = str(body)
    return MARKER_RE.search(text) is not None or NOTICE_RE.search(text) is not None
