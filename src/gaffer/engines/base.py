"""The engine interface: play an agent on a checked-out repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gaffer.queue.jobs import JobData
from gaffer.worker.events import Reporter


class EngineError(RuntimeError):
    """The engine is misconfigured or could not be started (not: it ran and failed)."""


@dataclass(frozen=True)
class EngineResult:
    """How the engine ended: ``exit_code`` 0 is success; ``summary`` is one paragraph or None."""

    exit_code: int
    summary: str | None = None


class Engine(Protocol):
    """An agent engine. ``run`` blocks until the engine exits.

    ``checkout`` is the repository working tree on the run's branch; ``scratch`` a directory
    outside it for files that must not be committed (the task file, say). Output goes to
    ``reporter`` as ``log`` lines on the ``engine`` stream.
    """

    name: str

    def run(self, job: JobData, checkout: Path, scratch: Path, reporter: Reporter) -> EngineResult:
        """Run the engine; raises :class:`EngineError` when it cannot start."""
        ...
