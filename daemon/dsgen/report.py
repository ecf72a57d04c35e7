"""What a person reads in the terminal: start, resume, warnings, progress, shutdown, summary."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

BAR_WIDTH = 20
# Warnings kept for dashboards: enough to see what happened since one last looked.
EVENTS_KEPT = 50


def human_time(seconds: float) -> str:
    """1 day, 8:32:15 — the predecessor's format."""
    return str(timedelta(seconds=round(max(0.0, seconds))))


def gb(n: int | float) -> float:
    """Bytes to GB (10^9, as disks are sold)."""
    return float(n) / 1e9


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text progress bar."""
    full = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * full + "░" * (width - full)


@dataclass
class Reporter:
    """Where engine events go: plain lines for people, or JSON events when `log` is set."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    log: Any = None  # a structlog logger: every line becomes one JSON event
    # A live dashboard takes the lines instead of the terminal: sink(level, text).
    sink: Callable[[str, str], None] | None = None
    # Recent warnings (time, title, details) for the status file and dashboards.
    events: deque[tuple[float, str, list[str]]] = field(
        default_factory=lambda: deque(maxlen=EVENTS_KEPT))

    def line(self, text: str = "", event: str | None = None, **fields: Any) -> None:
        """One line, flushed (systemd and pipes see it at once); `event` names it for JSON."""
        if self.log is not None:
            if event is not None or text.strip():
                self.log.info(event or "message", message=text.strip() or None, **fields)
            return
        if self.sink is not None:
            if text.strip():
                self.sink("info", text)
            return
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def warn(self, title: str, details: list[str], advice: list[str], event: str = "warning",
             **fields: Any) -> None:
        """A warning block as the predecessor showed them."""
        self.events.append((time.time(), title, details))
        if self.sink is not None:
            self.sink("warning", f"⚠️  {title}: " + "; ".join(details))
            return
        if self.log is not None:
            self.log.warning(event, message=title, details=details, advice=advice, **fields)
            return
        self.line(f"⚠️  Warning: {title}")
        for d in details:
            self.line(f"    {d}")
        for a in advice:
            self.line(f"    → {a}")
