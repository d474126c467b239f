"""The engine interface: play an agent on a checked-out repository.

The worker calls :meth:`Engine.run` once per *turn* of a run: the first with the rendered task
prompt, then (when the engine exited 0 and the agent's finish rule is not met) up to
``continuation_turns`` more with a message saying what is missing, each continuing the engine's
session where its CLI can (:attr:`Invocation.resume`). Each engine module (one per agent CLI)
builds its command line, environment and config files, runs the CLI through
:func:`gaffer.engines.process.run_cli`, parses its machine-readable output as it streams into
run-log lines, and returns an :class:`EngineResult` that says whether the CLI itself reported
success (``error``), what it said last (``summary``) and its own figures
(:class:`EngineFigures`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gaffer.queue.jobs import JobData
from gaffer.worker.events import Reporter

SUMMARY_MAX_BYTES = 64 * 1024
"""The most of a summary a worker reports (UTF-8 bytes). The report is one JSON line, and the
dispatcher cuts lines at 1 MiB (``backends.lines.MAX_LINE_BYTES``): an uncapped summary (an
engine's last line can be any length) would break the result line and fail a run that succeeded."""

SUMMARY_TRUNCATION_MARK = " [summary truncated]"


def cap_utf8(text: str, max_bytes: int, mark: str) -> str:
    """``text`` cut so that its UTF-8 encoding, with ``mark`` appended, fits ``max_bytes``.

    The cut falls on a character boundary; text that fits is returned unchanged (no mark).
    """
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(mark.encode())
    return encoded[:room].decode(errors="ignore") + mark


ENGINE_USER_ENV = "GAFFER_ENGINE_USER"
"""Env var through which a backend asks the worker to run the engine as ``uid[:gid]``."""


@dataclass(frozen=True)
class EngineUser:
    """The unprivileged user (``uid``, ``gid``) an engine runs as, while the worker stays root.

    Why: an agent runs commands of its own choosing. As root beside the worker it could read
    the job from the environment of the container's init (``/proc/1/environ``: same user, so
    the kernel allows it) and connect to the dispatcher's Redis socket mounted for offloaded
    jobs. As another user it can do neither: ``/proc/<pid>/environ`` of another user's process
    needs ``CAP_SYS_PTRACE``, and the socket is ``0700`` root.
    """

    uid: int
    gid: int

    @classmethod
    def parse(cls, text: str) -> EngineUser:
        """``"1000:1000"`` or ``"1000"`` (gid = uid). Raises ``ValueError`` for anything else."""
        uid, _, gid = text.partition(":")
        return cls(int(uid), int(gid or uid))


class EngineError(RuntimeError):
    """The engine is misconfigured or could not be started (not: it ran and failed)."""


ENGINE_API_KEY_ENV = "GAFFER_ENGINE_API_KEY"
"""Env var through which the dispatcher hands the worker the engine's API key (read once at
start-up and scrubbed from the worker's env; only the engine's own env gets it, under the name
its CLI reads)."""


ENGINE_BASE_URL_ENV = "GAFFER_ENGINE_BASE_URL"
"""Env var through which the dispatcher may give the engine another model API base URL than
the job's (the gateway's), read once at start-up by the worker like the key."""


@dataclass(frozen=True)
class ModelEndpoint:
    """Where the engine's model calls go: ``model`` name (None: the CLI's default),
    ``base_url`` of the provider API (None: the CLI's default) and ``api_key`` (None: none
    given; never logged, never on a command line)."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Invocation:
    """One turn of an engine in a run.

    * ``checkout``: the engine's own clone, on the run's branch (its ``.git`` is the engine's);
    * ``scratch``: the run's scratch directory (outside the checkout: task, output and context
      files); ``home``: the engine's ``HOME`` inside it, owned by ``user``;
    * ``system_prompt`` / ``prompt``: rendered text; on a continuation turn ``prompt`` is the
      message saying what is missing;
    * ``turn``: 1 for the first invocation, 2, 3... for continuations; ``resume``: continue the
      previous turn's session (when the CLI can: ``claude --continue``, ``codex exec resume``);
      ``session_id``: the id the previous turn reported, if any;
    * ``max_turns``: the most model turns within this invocation;
    * ``env``: variables the engine's process must get besides its own (``GAFFER_REVIEW_FILE``,
      ``GAFFER_REPLY_FILE``, ``GAFFER_PLAN_FILE``, ``GAFFER_CONTEXT_DIR``...).
    """

    job: JobData
    checkout: Path
    scratch: Path
    home: Path
    reporter: Reporter
    system_prompt: str
    prompt: str
    model: ModelEndpoint = field(default_factory=ModelEndpoint)
    user: EngineUser | None = None
    turn: int = 1
    resume: bool = False
    session_id: str | None = None
    max_turns: int = 30
    env: Mapping[str, str] = field(default_factory=dict)

    def base_env(self) -> dict[str, str]:
        """The engine process's environment before engine-specific entries: the worker's own
        (already scrubbed of the job and every infrastructure setting), ``HOME`` at
        :attr:`home`, and :attr:`env`."""
        return {**os.environ, "HOME": str(self.home), **self.env}


@dataclass
class EngineFigures:
    """What the CLI itself reported about its work (None: it did not say).

    ``turns``: model turns; tokens as the CLI counted them; ``cost_usd``: its own cost estimate
    in USD (Claude Code, opencode and aider print one; Codex does not).
    """

    turns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None

    def add(self, other: EngineFigures) -> EngineFigures:
        """The sum of two turns' figures (None + None stays None)."""

        def plus(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return EngineFigures(
            turns=_int(plus(self.turns, other.turns)),
            input_tokens=_int(plus(self.input_tokens, other.input_tokens)),
            output_tokens=_int(plus(self.output_tokens, other.output_tokens)),
            cache_read_tokens=_int(plus(self.cache_read_tokens, other.cache_read_tokens)),
            cache_write_tokens=_int(plus(self.cache_write_tokens, other.cache_write_tokens)),
            cost_usd=plus(self.cost_usd, other.cost_usd),
        )

    def as_dict(self) -> dict[str, int | float]:
        """The figures that were reported, by field name."""
        return {k: v for k, v in vars(self).items() if v is not None}


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class EngineResult:
    """How one engine invocation ended.

    ``exit_code`` is the CLI's; ``error`` the CLI's own message when it reported a failure
    even if it exited 0 (Claude Code's ``is_error``, Codex's ``turn.failed``, opencode's
    ``error`` events, aider's error lines); ``summary`` its final message (one paragraph or
    None); ``figures`` what it reported of turns, tokens and cost; ``session_id`` the id a
    continuation can resume. :meth:`reported_summary` is the summary as the worker reports it,
    cut at :data:`SUMMARY_MAX_BYTES`.
    """

    exit_code: int
    summary: str | None = None
    error: str | None = None
    figures: EngineFigures | None = None
    session_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the CLI exited 0 and reported no failure."""
        return self.exit_code == 0 and self.error is None

    def reported_summary(self) -> str | None:
        """The summary cut at :data:`SUMMARY_MAX_BYTES` UTF-8 bytes, or None."""
        if self.summary is None:
            return None
        return cap_utf8(self.summary, SUMMARY_MAX_BYTES, SUMMARY_TRUNCATION_MARK)


SHELL_SIGNAL_BASE = 128
"""A POSIX shell reports a child killed by signal N as exit status 128 + N."""


def describe_exit(engine: str, exit_code: int) -> str:
    """One line saying how an engine that did not succeed ended, for the run's error.

    ``exit_code`` is the engine process's return code as :mod:`subprocess` gives it: negative
    ``-N`` when signal N killed the process itself, or ``128 + N`` when a shell reports that
    signal N killed its child. A SIGKILL that gaffer did not send is almost always the kernel's
    out-of-memory killer choosing the engine (the biggest process in the worker's memory cgroup,
    while the worker survives), so the line says so; other signals are named.
    """
    number: int | None = None
    if exit_code < 0:
        number = -exit_code
    elif SHELL_SIGNAL_BASE < exit_code < SHELL_SIGNAL_BASE + 65:
        number = exit_code - SHELL_SIGNAL_BASE
    if number is None:
        return f"engine {engine} exited with code {exit_code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    line = f"engine {engine} killed by {name} (exit {exit_code})"
    if number == signal.SIGKILL:
        line += ", likely out of memory"
    return line


class Engine(Protocol):
    """An agent engine. ``run`` blocks until the engine exits.

    The checkout is the engine's own clone, on the run's branch: the worker commits the files
    it leaves there (its ``.git`` is the engine's to use, and is never used by the worker).
    Output goes to the invocation's reporter as ``log`` lines on the ``engine`` stream: one
    line per assistant message, tool call and tool result (each capped, with the tool's name;
    :func:`gaffer.engines.process.engine_log`).

    ``cli`` is the executable it runs (None for ``command``), ``install_hint`` how to install
    it when missing; :func:`gaffer.engines.discovery.find_cli` finds it.
    """

    name: str
    cli: str | None
    install_hint: str
    can_resume: bool
    """True when a continuation turn continues the CLI's session (else it starts afresh with
    the continuation message and the original task)."""

    def run(self, invocation: Invocation) -> EngineResult:
        """Run one turn (as ``invocation.user`` when given, with ``HOME`` at
        ``invocation.home``); raises :class:`EngineError` when it cannot start."""
        ...
