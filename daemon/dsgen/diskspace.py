"""Free space on the output filesystem: warn early, pause before a write can fail, resume later."""

from __future__ import annotations

import shutil
import time

from dsgen.errors import StateError
from dsgen.metrics import Metrics
from dsgen.report import Reporter, gb
from dsgen.runstate import PAUSE_DISK, PAUSE_STATE, RunState
from dsgen.split import targets as split_targets

# Free space needed above the point where a write failed before extraction resumes:
# without headroom a nearly full disk makes the engine retry and fail in a tight loop.
RESUME_HEADROOM = 64 * 1024 * 1024
# The same for the state's filesystem: a slot's rows are a few KB, so this is room for
# thousands of slots and a WAL checkpoint.
STATE_RESUME_HEADROOM = 8 * 1024 * 1024


class DiskGuard:
    """Decides when the engine may write: it holds `PAUSE_DISK` in the run's pauses."""

    def __init__(self, run: RunState, ui: Reporter, metrics: Metrics | None) -> None:
        self.run = run
        self.ui = ui
        self.metrics = metrics
        self.resume_free = 0
        self.warned_short = False
        self._last = 0.0

    @property
    def paused(self) -> bool:
        """Paused because the output filesystem is full."""
        return PAUSE_DISK in self.run.pauses

    def _usage(self) -> tuple[int, int] | None:
        try:
            u = shutil.disk_usage(self.run.cfg.output_root)
        except OSError:
            return None
        return u.free, u.total

    def tick(self) -> None:
        """Check free space every `disk.check_seconds` (every tick while paused)."""
        now = time.monotonic()
        if not self.paused and now - self._last < self.run.cfg.disk.check_seconds:
            return
        self._last = now
        usage = self._usage()
        if usage is None:
            return
        free, total = usage
        m = self.metrics
        if m is not None:
            m.set_disk(free, total)
        cfg, ui = self.run.cfg, self.ui
        if gb(free) < cfg.disk.min_free_gb:
            self.pause()
            return
        if self.paused:
            if free < self.resume_free:
                return
            self.run.pauses.discard(PAUSE_DISK)
            if m is not None:
                m.paused(self.run.paused)
            ui.line(f"✓ Disk space is back ({gb(free):.2f} GB free); resuming",
                    event="disk_resumed", free_bytes=free)
        needed = self.bytes_needed()
        if needed > free and not self.warned_short:
            self.warned_short = True
            ui.warn("Low disk space", [f"Available: {gb(free):.1f} GB",
                                       f"Estimated needed: {gb(needed):.1f} GB remaining"],
                    ["Consider freeing up disk space"], event="disk_low", free_bytes=free,
                    needed_bytes=needed)

    def bytes_needed(self) -> int:
        """Bytes still to write: samples still owed × the average sample size, per category
        and split (training, validation)."""
        need = 0
        run = self.run
        for k, target in split_targets(run.cfg).items():
            n, b = run.totals.get(k, 0), run.total_bytes.get(k, 0)
            if n:
                need += int(b / n * max(0, target - n))
        return need

    def pause(self) -> None:
        """Stop dispatching until the output filesystem has room again (never write a part)."""
        if self.paused:
            return
        self.run.pauses.add(PAUSE_DISK)
        usage = self._usage()
        free = usage[0] if usage else 0
        cfg = self.run.cfg
        self.resume_free = max(int(cfg.disk.min_free_gb * 1e9), free + RESUME_HEADROOM)
        if self.metrics is not None:
            self.metrics.paused(True)
        self.ui.warn(
            "Disk full: extraction paused",
            [f"Output: {cfg.output_root}", f"Available: {gb(free):.3f} GB",
             f"Resuming when {gb(self.resume_free):.3f} GB are free"],
            ["Nothing half-written was kept; free space and dsgen resumes by itself"],
            event="disk_full", free_bytes=free, resume_bytes=self.resume_free)


class StateGuard:
    """Holds `PAUSE_STATE` while the state's filesystem is full: a commit that failed was
    rolled back (its files removed, its work redone later), and none is tried until space
    returns."""

    def __init__(self, run: RunState, ui: Reporter, metrics: Metrics | None) -> None:
        self.run = run
        self.ui = ui
        self.metrics = metrics
        self.resume_free = 0

    @property
    def paused(self) -> bool:
        """Paused because the state's filesystem is full."""
        return PAUSE_STATE in self.run.pauses

    def _free(self) -> int | None:
        try:
            return shutil.disk_usage(self.run.cfg.state_dir).free
        except OSError:
            return None

    def pause(self, err: StateError | None = None) -> None:
        """Stop dispatching until the state's filesystem has room again."""
        if self.paused:
            return
        free = self._free() or 0
        self.resume_free = free + STATE_RESUME_HEADROOM
        self.run.pauses.add(PAUSE_STATE)
        if self.metrics is not None:
            self.metrics.paused(True)
        mb = 1024 * 1024
        self.ui.warn(
            "State disk full: extraction paused",
            [f"State: {self.run.cfg.state_dir}", f"Available: {free / mb:.1f} MB",
             f"Resuming when {self.resume_free / mb:.1f} MB are free"],
            ["Nothing recorded was lost: the failed commit was rolled back and its work is "
             "redone", "Free space on that filesystem and dsgen resumes by itself"],
            event="state_full", free_bytes=free, resume_bytes=self.resume_free,
            error=str(err) if err else None)

    def tick(self) -> bool:
        """Resume once the state's filesystem has room; True when it just did."""
        if not self.paused:
            return False
        free = self._free()
        if free is None or free < self.resume_free:
            return False
        self.run.pauses.discard(PAUSE_STATE)
        if self.metrics is not None:
            self.metrics.paused(self.run.paused)
        self.ui.line(f"✓ State disk space is back ({free / (1024 * 1024):.1f} MB free); "
                     "resuming", event="state_resumed", free_bytes=free)
        return True
