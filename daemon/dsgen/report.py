"""What a person reads in the terminal: start, resume, warnings, progress, shutdown, summary."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

BAR_WIDTH = 20


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
    """Plain-line reporter (the live dashboard renders the same events elsewhere)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False

    def line(self, text: str = "") -> None:
        """One line, flushed (systemd and pipes see it at once)."""
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def warn(self, title: str, details: list[str], advice: list[str]) -> None:
        """A warning block as the predecessor showed them."""
        self.line(f"⚠️  Warning: {title}")
        for d in details:
            self.line(f"    {d}")
        for a in advice:
            self.line(f"    → {a}")
