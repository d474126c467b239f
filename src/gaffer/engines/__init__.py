"""One adapter per agent CLI (``claude-code``, ``codex``, ``opencode``, ``aider``) and
``command``, which runs any shell command. Each lives in a module of its own behind the
:class:`~gaffer.engines.base.Engine` interface; :data:`ENGINES` names them, imported on first
use (the worker imports only the engine its job names)."""

from __future__ import annotations

import importlib

from gaffer.engines.base import Engine, EngineError, EngineResult

ENGINES: dict[str, str] = {
    "command": "gaffer.engines.command:CommandEngine",
    "claude-code": "gaffer.engines.claude_code:ClaudeCodeEngine",
    "codex": "gaffer.engines.codex:CodexEngine",
    "opencode": "gaffer.engines.opencode:OpencodeEngine",
    "aider": "gaffer.engines.aider:AiderEngine",
}
"""Engine name -> ``module:class`` of its adapter."""

DEFAULT_CREDENTIALS: dict[str, str | None] = {
    "command": None,
    "claude-code": "ANTHROPIC_API_KEY",
    "codex": "OPENAI_API_KEY",
    "opencode": "OPENAI_API_KEY",
    "aider": "OPENAI_API_KEY",
}
"""The project credential each engine's API key is read from unless the agent names another."""


def engine_class(name: str) -> type[Engine]:
    """The adapter class of engine ``name``. Raises :class:`EngineError` for an unknown
    engine."""
    target = ENGINES.get(name)
    if target is None:
        raise EngineError(f"unknown engine {name!r} (known: {', '.join(sorted(ENGINES))})")
    module, _, attribute = target.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module), attribute)
    return cls


def get_engine(name: str) -> Engine:
    """An engine instance by name. Raises :class:`EngineError` for an unknown engine."""
    return engine_class(name)()


__all__ = [
    "DEFAULT_CREDENTIALS",
    "ENGINES",
    "Engine",
    "EngineError",
    "EngineResult",
    "engine_class",
    "get_engine",
]
