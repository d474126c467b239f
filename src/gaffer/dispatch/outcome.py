"""Reading a worker's report into the run's outcome.

The worker writes JSON lines (:mod:`gaffer.worker.events`); :class:`WorkerReport` keeps what the
dispatcher needs from them as they stream (the ``result`` line, the job-data error events, the
last raw line of a crash, whether the engine is running and when it last spoke, for the stall
timeout), and :func:`outcome_of_exit` turns the exit and the report into the :class:`Outcome`
recorded on the run: status, exit code, error, branch, commit, summary, the CLI's own figures
(``engine_usage``) and the agent's validated outputs.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

from gaffer.store.models import RunStatus
from gaffer.worker.events import ReportLine


@dataclass
class Outcome:
    """How a run ended, as the dispatcher records it (see :class:`gaffer.store.models.Run` for
    ``engine_usage`` and ``outputs``)."""

    status: RunStatus
    exit_code: int | None = None
    error: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    summary: str | None = None
    engine_usage: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None

    def columns(self) -> dict[str, Any]:
        """The run columns this outcome sets."""
        return {
            "exit_code": self.exit_code,
            "error": self.error,
            "branch": self.branch,
            "commit_sha": self.commit_sha,
            "summary": self.summary,
            "engine_usage": self.engine_usage,
            "outputs": self.outputs,
        }


ACTIVITY_CHARS = 200
"""The longest activity line put on an ack comment (characters)."""


def activity_of(line: str) -> str | None:
    """What an ``engine``-stream run-log line (:func:`gaffer.engines.process.engine_log`) may
    show on GitHub, or None: an assistant message (``"assistant: <text>"`` -> the text, capped
    at :data:`ACTIVITY_CHARS`), or a tool call's tool name only (``"tool <name>: <input>"`` ->
    ``"tool <name>"``). Tool results, errors and unparsed output are never shown: they hold what
    the tools read (files, environment), which goes to the run log, not to a public comment."""
    text = " ".join(line.split())
    if text.startswith("assistant: "):
        said = text.removeprefix("assistant: ")
        if not said:
            return None
        return said if len(said) <= ACTIVITY_CHARS else said[: ACTIVITY_CHARS - 1] + "…"
    if text.startswith("tool ") and ":" in text:
        name = text.removeprefix("tool ").split(":", 1)[0].strip()
        return f"tool {name}"[:ACTIVITY_CHARS] if name and " " not in name else None
    return None


@dataclass
class WorkerReport:
    """What the dispatcher has read of a worker's report so far.

    ``engine_running`` is True between an ``engine_turn_started`` and its ``engine_finished``;
    ``last_engine_output`` the monotonic time (s) of the last line while it ran, or of its
    start: the stall timeout counts from there.
    """

    result: dict[str, Any] | None = None
    error_events: list[str] = field(default_factory=list)
    last_raw: str | None = None
    """The last non-empty line that was not a report event (a crash's last words)."""
    engine_running: bool = False
    last_engine_output: float = field(default_factory=time.monotonic)
    activity: str | None = None
    """What the ack comment says the engine did last (:func:`activity_of` of its latest
    assistant message or tool call)."""

    def note(self, parsed: ReportLine) -> None:
        """Take one parsed line into account."""
        now = time.monotonic()
        if parsed.event is None:
            if parsed.raw.strip():
                self.last_raw = parsed.raw.strip()
        elif parsed.event == "result":
            self.result = parsed.fields
        elif parsed.event.startswith("worker_job_data"):
            self.error_events.append(parsed.event)
        elif parsed.event == "engine_turn_started":
            self.engine_running = True
        elif parsed.event == "engine_finished":
            self.engine_running = False
        elif parsed.event == "log" and parsed.fields.get("stream") == "engine":
            activity = activity_of(str(parsed.fields.get("message", "")))
            if activity is not None:
                self.activity = activity
        self.last_engine_output = now

    def stalled_for(self, now: float | None = None) -> float:
        """Seconds since the engine last printed anything while running (0 when it is not
        running)."""
        if not self.engine_running:
            return 0.0
        return (now if now is not None else time.monotonic()) - self.last_engine_output


def _usage(result: dict[str, Any]) -> dict[str, Any] | None:
    figures = result.get("figures")
    usage = dict(figures) if isinstance(figures, dict) else {}
    invocations = result.get("invocations")
    if isinstance(invocations, int) and invocations > 0:
        usage["invocations"] = invocations
    return usage or None


def outcome_of_exit(exit_code: int, report: WorkerReport, reason: str | None = None) -> Outcome:
    """The outcome of a worker that exited by itself. ``reason`` is the backend's reading of
    the exit (:meth:`~gaffer.backends.base.WorkerHandle.exit_reason`); it wins over the
    worker's own report."""
    result = report.result or {}
    outputs = result.get("outputs")
    common: dict[str, Any] = {
        "branch": result.get("branch"),
        "commit_sha": result.get("commit"),
        "summary": result.get("summary"),
        "engine_usage": _usage(result),
        "outputs": dict(outputs) if isinstance(outputs, dict) and outputs else None,
    }
    if exit_code == 0 and result.get("ok"):
        return Outcome(RunStatus.SUCCEEDED, exit_code, None, **common)
    if reason:
        error = reason
    elif exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else "?"
        error = f"worker killed by signal {-exit_code} ({name})"
    elif result.get("error"):
        error = str(result["error"])
    elif exit_code == 0:
        error = "worker exited 0 without reporting a result"
    else:
        error = f"worker exited with code {exit_code}"
        if report.last_raw:
            error += f": {report.last_raw}"
    return Outcome(RunStatus.FAILED, exit_code, error, **common)
