"""One adapter per agent CLI; ``command`` runs any shell command."""

from __future__ import annotations

from gaffer.engines.base import Engine, EngineError, EngineResult
from gaffer.engines.command import CommandEngine

ENGINES: dict[str, type[Engine]] = {"command": CommandEngine}


def get_engine(name: str) -> Engine:
    """An engine instance by name. Raises :class:`EngineError` for an unknown engine."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise EngineError(
            f"unknown engine {name!r} (known: {', '.join(sorted(ENGINES))})"
        ) from None


__all__ = ["ENGINES", "Engine", "EngineError", "EngineResult", "get_engine"]
