"""What every CLI command shares: the settings read once at start-up, and its error type."""

from __future__ import annotations

from functools import lru_cache

from gaffer.errors import UserError
from gaffer.settings import Settings


class CliError(UserError, RuntimeError):
    """A usage error a command reports as one line (exit code 1)."""


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read from the environment on first use, then kept."""
    return Settings()
