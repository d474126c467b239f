"""Logging set-up: structlog events (snake_case names, stable to grep) on stderr.

``GAFFER_LOG_FORMAT=json`` prints one JSON object per line for log shippers; the default console
format is for people. Standard-library loggers (uvicorn, bullmq) go through the same renderer.
"""

from __future__ import annotations

import logging
import sys

import structlog

from gaffer.settings import Settings


def configure_logging(settings: Settings, *, quiet: bool = False) -> None:
    """Configure structlog and the standard ``logging`` root for this process.

    ``quiet`` raises the level to WARNING (the CLI's own commands print their results instead).
    """
    level = logging.WARNING if quiet else logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
