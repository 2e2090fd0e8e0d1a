"""structlog set-up shared by every process: JSON lines by default, console style on a terminal.

Logs go to stderr; stdout is kept for command results (a JSON summary line, a plan, events).

Context rides on structlog's contextvars: `configure` binds the process's (``shard=3``,
``process="merger"``), a feed connection binds ``exchange`` and ``connection`` in its task and a
session ``session`` in its own (asyncio tasks copy the context they are created in, so what a
connection starts inherits them); lines about one symbol name it (``symbol``). Lines of libraries
that use the standard `logging` module (aiohttp, the simulator) go through the same renderer with
the same context.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", **context: Any) -> None:
    """Configure structlog (and the standard `logging` root) for this process; ``context`` (e.g.
    shard=3) is bound to every line."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),  # one write per line: processes share stderr
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_LEVELS[level])
    structlog.contextvars.clear_contextvars()
    if context:
        structlog.contextvars.bind_contextvars(**context)
