"""Logging: structlog and stdlib logging (watchdog, PyAV/FFmpeg) through one renderer.

Every record — from `get_logger(...)` or from any stdlib logger — goes to a single handler
on stdout whose `ProcessorFormatter` renders it as one JSON object per line (`json`, for
journald/Loki) or as aligned, coloured text (`console`, for people). Tracebacks never carry
local variables: a decoded frame in a local would put megabytes of array repr in the log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from dsgen.config import LogFormat

LEVELS = ("debug", "info", "warning", "error", "critical")
# Fields first in every JSON object, in this order, so a line reads well in `journalctl`.
LEADING_KEYS = ("timestamp", "level", "logger", "event")
# Enough frames for dsgen's call depth; a runaway recursion still gives a bounded line.
TRACEBACK_MAX_FRAMES = 30
# FFmpeg messages routed to the `libav.*` loggers: errors only. PyAV runs every error
# through Python anyway (to keep the last one for exceptions), so this adds no GIL
# traffic; warnings and below stay in C, where FFmpeg's threads never wait on Python.
FFMPEG_LEVEL_NAME = "error"

_handler: logging.Handler | None = None  # ours, replaced when configure_logging runs again


def _order_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Move timestamp, level, logger and event to the front; keep the rest in order."""
    head = {k: event_dict.pop(k) for k in LEADING_KEYS if k in event_dict}
    head.update(event_dict)
    return head


def _shared() -> list[Processor]:
    """Processors for both structlog and foreign (stdlib) records: context, names, time."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: LogFormat, colors: bool) -> list[Processor]:
    """The final processors: exceptions without locals, then JSON or console text."""
    if fmt == "json":
        transformer = structlog.tracebacks.ExceptionDictTransformer(
            show_locals=False, max_frames=TRACEBACK_MAX_FRAMES)
        return [
            structlog.processors.ExceptionRenderer(transformer),
            _order_keys,
            structlog.processors.JSONRenderer(),  # ASCII-escaped: odd file names stay writable
        ]
    tb = structlog.dev.RichTracebackFormatter(
        show_locals=False, max_frames=TRACEBACK_MAX_FRAMES,
        color_system="truecolor" if colors else None)
    return [structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=tb)]


def _level(level: str) -> int:
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of: {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[name.upper()]


def configure_logging(fmt: LogFormat = "json", level: str = "info", *,
                      stream: TextIO | None = None, ffmpeg: bool = True) -> None:
    """Send structlog and stdlib records at `level` and above to stdout as `fmt`.

    Safe to call again (e.g. after a config reload): the previous handler is replaced.
    `ffmpeg` routes FFmpeg's errors (PyAV's `libav.*` loggers) into the same output.
    """
    global _handler
    if fmt not in ("json", "console"):
        raise ValueError(f"log format {fmt!r} is not one of: json, console")
    lvl = _level(level)
    out = stream if stream is not None else sys.stdout
    colors = fmt == "console" and out.isatty()

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_renderer(fmt, colors)],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(lvl)
    _handler = handler
    logging.captureWarnings(True)  # warnings.warn → the `py.warnings` logger → same output
    if ffmpeg:
        _route_ffmpeg()


def _route_ffmpeg() -> None:
    """Let PyAV pass FFmpeg's errors to the `libav.*` stdlib loggers (our handler)."""
    import av.logging

    av.logging.set_level(av.logging.ERROR)
    libav = logging.getLogger("libav")
    libav.setLevel(FFMPEG_LEVEL_NAME.upper())
    libav.propagate = True


def get_logger(name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (e.g. __name__), optionally with bound context."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**context) if context else logger
