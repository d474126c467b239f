"""The worker's report: one JSON object per line on stdout.

Every line the worker writes is ``{"event": <name>, ...}``:

* ``log``: ``{"stream": "worker"|"engine", "message": str}``, a line of progress or engine output;
* ``result``: ``{"ok": bool, "branch": str|None, "commit": str|None, "summary": str|None,
  "error": str|None}``, written once, last;
* anything else is a named milestone (``job_loaded``, ``repository_cloned``, ...) with fields.

Dispatch parses these lines (:func:`parse_line`); a line that is not such an object (a traceback
from a crash, say) is kept as raw ``worker`` output.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO


class Reporter:
    """Writes report lines to ``stream`` (stdout by default), flushed one by one."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        """Write one ``{"event": event, **fields}`` line."""
        self._stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._stream.flush()

    def log(self, message: str, stream: str = "worker") -> None:
        """Write a ``log`` line."""
        self.emit("log", stream=stream, message=message)


@dataclass(frozen=True)
class ReportLine:
    """One parsed line: ``event`` is None for raw (non-JSON) output."""

    event: str | None
    fields: dict[str, Any]
    raw: str


def parse_line(line: str) -> ReportLine:
    """Parse one line of worker output (never raises)."""
    text = line.rstrip("\n")
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("event"), str):
            event = obj.pop("event")
            return ReportLine(event=event, fields=obj, raw=text)
    return ReportLine(event=None, fields={}, raw=text)
