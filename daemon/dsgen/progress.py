"""Progress as people and tools see it: lines, the status file, metrics and the systemd STATUS."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsgen.model import OK, SlotResult, TaskResult
from dsgen.report import bar, gb, human_time
from dsgen.state import State
from dsgen.status import iso_time, write_status

if TYPE_CHECKING:
    from dsgen.engine import Engine

# Samples/min is measured over this trailing window: long enough to smooth the bursts of a
# task finishing, short enough that the ETA follows a change of video.
RATE_WINDOW_SECONDS = 600.0


@dataclass
class Counters:
    """Live figures of this run (the state holds the durable ones)."""

    started: float = field(default_factory=time.time)
    samples: int = 0
    attempts: int = 0
    attempts_ok: int = 0
    slots: int = 0
    recent: list[tuple[float, int]] = field(default_factory=list)  # (time, samples) events

    def rate_per_min(self) -> float:
        """Samples per minute over the trailing window (whole run while shorter)."""
        now = time.time()
        self.recent = [(t, n) for t, n in self.recent if now - t <= RATE_WINDOW_SECONDS]
        span = min(RATE_WINDOW_SECONDS, max(1e-9, now - self.started))
        return sum(n for _, n in self.recent) / span * 60


class Progress:
    """Everything the engine reports, derived from the state and this run's counters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.totals: dict[str, int] = {}  # durable samples per category (kept in step)
        self._last_status = 0.0

    @property
    def counters(self) -> Counters:
        """This run's counters."""
        return self.engine.counters

    # -- metrics ---------------------------------------------------------------------------

    def start_metrics(self, st: State) -> None:
        """Load totals from the state; initialise every metric series."""
        cfg, m = self.engine.cfg, self.engine.metrics
        totals = st.category_totals()
        self.totals = {c: n for c, (n, _) in totals.items()}
        if m is None:
            return
        m.declare({c.name: [f for f, _ in c.formats] for c in cfg.categories})
        m.set_targets({c.name: c.target for c in cfg.categories})
        for c in cfg.categories:
            n, b = totals.get(c.name, (0, 0))
            m.set_samples(c.name, n, b)
        last = st.last_sample_time()
        if last is not None:
            m.last_success(last)
        self.video_metrics()

    def video_metrics(self) -> None:
        """Videos per state."""
        m = self.engine.metrics
        if m is None:
            return
        e = self.engine
        counts: Tally[str] = Tally()
        for vid, v in e.videos.items():
            if v.status == "ready" and vid in e.finished_videos:
                counts["done"] += 1
            elif v.status == "ready" and any(b[0] == vid for b in e.busy):
                counts["in_progress"] += 1
            else:
                counts[v.status] += 1
        m.set_videos(counts)

    def worker_metrics(self) -> None:
        """Busy and idle workers."""
        m = self.engine.metrics
        if m is not None:
            e = self.engine
            busy = sum(1 for kind, _ in e.inflight.values() if kind in ("task", "probe"))
            m.set_workers(busy, e.cfg.worker_count)
            paused = e.disk.paused or e.user_paused.is_set()
            m.paused(paused)
            m.run_state("paused" if paused else e.status)

    def task_metrics(self, res: TaskResult) -> None:
        """Per-stage times and decoding work of a finished task."""
        m = self.engine.metrics
        if m is None:
            return
        clips = sum(len(s.attempts) for s in res.slots)
        samples = sum(len(s.samples) for s in res.slots)
        for stage, secs in res.seconds.items():
            m.stage(stage, secs, clips if stage in ("decode", "quality") else samples)
        m.decoded(res.frames_decoded, res.seeks)

    def slot_recorded(self, slot: SlotResult) -> None:
        """A slot became durable: counters and metrics."""
        c = self.counters
        now = time.time()
        c.samples += len(slot.samples)
        c.attempts += len(slot.attempts)
        c.attempts_ok += sum(a.outcome == OK for a in slot.attempts)
        c.slots += 1
        if slot.samples:
            c.recent.append((now, len(slot.samples)))
        m = self.engine.metrics
        if m is None:
            return
        for a in slot.attempts:
            m.attempt(a.outcome)
        for s in slot.samples:
            m.sample_written(s.category, s.format, sum(b for _, b in s.files), now)
        remaining = sum(max(0, c2.target - self.totals.get(c2.name, 0))
                        for c2 in self.engine.cfg.categories)
        rate = c.rate_per_min()
        m.eta(now + remaining / rate * 60 if rate > 0 and remaining else (now if not remaining
                                                                          else None))

    # -- lines -----------------------------------------------------------------------------

    def progress_line(self, st: State) -> None:
        """`… GENERAL 120/400 30.0% | … | 8.2 patches/min, success 94.3%`."""
        parts = []
        for c in self.engine.cfg.categories:
            n = self.totals.get(c.name, 0)
            frac = n / c.target if c.target else 1.0
            parts.append(f"{c.name.upper()} {n}/{c.target} {frac:.1%}")
        k = self.counters
        rate = k.attempts_ok / k.attempts if k.attempts else 0.0
        self.engine.ui.line(f"… {' | '.join(parts)} | {k.rate_per_min():.1f} patches/min, "
                            f"success {rate:.1%}", event="progress", samples=dict(self.totals),
                            patches_per_min=round(k.rate_per_min(), 2),
                            success_rate=round(rate, 4))
        self.engine.notify.status(self.status_line(st))

    def status_line(self, st: State) -> str:
        """One line for systemd's STATUS=: videos done, per-category %, patches/min."""
        e = self.engine
        done = sum(1 for vid in e.videos if vid in e.finished_videos)
        cats = ", ".join(f"{c.name.upper()} {self.totals.get(c.name, 0) / c.target:.1%}"
                         if c.target else f"{c.name.upper()} done" for c in e.cfg.categories)
        state = "" if e.status == "running" else f"{e.status}: "
        return (f"{state}{done}/{len(e.videos)} videos, {cats}, "
                f"{self.counters.rate_per_min():.1f} patches/min")

    def idle_line(self, st: State) -> None:
        """The daemon has nothing to do until videos arrive or targets change."""
        self.write_status(force=True)
        self.engine.ui.line("💤 Idle: every target is met or no video can give more; waiting "
                            "for new videos or a config change", event="idle",
                            samples=dict(self.totals))
        self.engine.notify.status(self.status_line(st))

    def write_status(self, force: bool = False) -> None:
        """The predecessor-compatible status file, every `status_seconds`."""
        e = self.engine
        now = time.monotonic()
        if not force and now - self._last_status < e.cfg.status_seconds:
            return
        self._last_status = now
        assert e.state is not None
        try:
            write_status(e.cfg, e.state, e.status, self.counters.started, list(e.videos),
                         self.live(e.state))
        except OSError as err:
            e.ui.line(f"⚠️  Status file not written: {err}", event="status_file_error",
                      error=str(err))

    def live(self, st: State) -> dict[str, Any]:
        """What only the running process knows: workers, current videos, rates, events."""
        e, k = self.engine, self.counters
        current = []
        busy_videos = sorted({vid for vid, _ in e.busy})
        achieved = st.achieved() if busy_videos else {}
        for vid in busy_videos:
            v = e.videos.get(vid)
            if v is None:
                continue
            total, pending, _, _ = st.slot_stats(vid)
            outcomes = st.outcome_counts(vid)
            tried = sum(outcomes.values())
            current.append({
                "index": list(e.videos).index(vid), "name": v.name, "path": v.path,
                "slots_done": total - pending, "slots_planned": total,
                "samples": sum(n for (qv, _), n in achieved.items() if qv == vid),
                "success_rate": round(outcomes.get(OK, 0) / tried, 4) if tried else None,
                "status": "running",
            })
        rate = k.rate_per_min()
        remaining = sum(max(0, c.target - self.totals.get(c.name, 0)) for c in e.cfg.categories)
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "mode": "daemon" if e.daemon else "run",
            "state": "paused" if (e.disk.paused or e.user_paused.is_set()) else e.status,
            "paused_reason": ("disk full" if e.disk.paused else
                              "by user" if e.user_paused.is_set() else None),
            "workers": e.cfg.worker_count,
            "workers_busy": min(e.cfg.worker_count, len(e.inflight)),
            "current_videos": current,
            "performance": {
                "patches_per_min": round(rate, 3),
                "success_rate": round(k.attempts_ok / k.attempts, 4) if k.attempts else None,
                "retry_rate": round(1 - k.slots / k.attempts, 4) if k.attempts else None,
                "average_attempts": round(k.attempts / k.slots, 3) if k.slots else None,
                "samples_this_run": k.samples,
            },
            "eta_seconds": round(remaining / rate * 60) if rate > 0 else None,
            "events": [{"time": iso_time(t), "title": title, "details": details}
                       for t, title, details in list(e.ui.events)[-20:]],
        }

    def resume_lines(self, st: State) -> None:
        """`📍 Resuming from video N (name)` and `→ Last frame: done/planned`."""
        ui = self.engine.ui
        for i, vid in enumerate(self.engine.videos, 1):
            total, pending, _, _ = st.slot_stats(vid)
            if pending:
                v = self.engine.videos[vid]
                ui.line(f"📍 Resuming from video {i} ({v.name})", event="resuming", index=i,
                        video=v.name, done=total - pending, planned=total)
                ui.line(f"→ Last frame: {total - pending}/{total}")
                return
        ui.line("📍 Resuming: every planned slot is done; checking targets", event="resuming")

    def video_finished(self, st: State, vid: int) -> None:
        """One summary line per finished video, and the low-success warning."""
        e = self.engine
        if vid in e.finished_videos:
            return
        e.finished_videos.add(vid)
        v = e.videos[vid]
        outcomes = st.outcome_counts(vid)
        total = sum(outcomes.values())
        rate = outcomes.get(OK, 0) / total if total else 0.0
        made = sum(n for (qv, _), n in st.achieved().items() if qv == vid)
        idx = list(e.videos).index(vid) + 1
        rejected = {k: n for k, n in sorted(outcomes.items()) if k != OK}
        e.ui.line(f"✓ Video {idx}/{len(e.videos)} {v.name}: {made} samples, {total} clips "
                  f"tried, success rate {rate:.1%}", event="video_finished", video=v.name,
                  samples=made, clips=total, success_rate=round(rate, 4), rejected=rejected)
        threshold = e.cfg.extraction.low_success_warning
        if total and rate < threshold:
            reasons = ", ".join(f"{k} {n}" for k, n in rejected.items())
            e.ui.warn("Low success rate on video",
                      [f"Video: {v.name}", f"Success Rate: {rate:.1%} (< {threshold:.0%} "
                       "threshold)", f"Rejected: {reasons}"],
                      ["Consider checking video file quality", "Continuing with next video..."],
                      event="low_success", video=v.name, success_rate=round(rate, 4),
                      rejected=rejected)
        self.video_metrics()

    def shutdown_lines(self, st: State) -> None:
        """What the predecessor printed after Ctrl+C, with our resume command."""
        e = self.engine
        e.ui.line(f"✓ Progress saved to {e.cfg.status_path.name} and {st.path}", event="saved")
        for i, vid in enumerate(e.videos, 1):
            total, pending, _, _ = st.slot_stats(vid)
            if pending:
                e.ui.line(f"✓ Video {i}: {total - pending}/{total} frames completed")
                break
        command = "daemon" if e.daemon else "run"
        e.ui.line(f"✓ Safe to resume later with: dsgen {command} --config {e.cfg.source}",
                  event="stopped")

    def completion_lines(self, st: State) -> list[str]:
        """The predecessor's "Final Statistics"; returns the categories left short."""
        e = self.engine
        cfg, ui = e.cfg, e.ui
        totals = st.category_totals()
        images = sum(n for n, _ in totals.values())
        size = sum(b for _, b in totals.values())
        started = st.first_start() or self.counters.started
        done_videos = st.probed_count()
        short = [c.name for c in cfg.categories if totals.get(c.name, (0, 0))[0] < c.target]
        rule = "━" * 46
        ui.line()
        ui.line("✅ Dataset generation complete!" if not short else
                "⚠️  Dataset generation finished with categories short of target",
                event="finished", short=short, images=images, bytes=size)
        ui.line()
        ui.line("Final Statistics:")
        ui.line(rule)
        ui.line(f"Total Videos Processed: {done_videos}")
        ui.line(f"Total Images Created: {images:,}")
        ui.line(f"Total Disk Usage: {gb(size):.1f} GB")
        ui.line(f"Total Time: {human_time(time.time() - started)}")
        ui.line()
        ui.line("Category Breakdown:")
        width = max(len(c.name) for c in cfg.categories) + 1
        for c in cfg.categories:
            n, b = totals.get(c.name, (0, 0))
            frac = n / c.target if c.target else 1.0
            ui.line(f"  {(c.name.upper() + ':'):<{width}} {n:,} / {c.target:,} images "
                    f"({gb(b):.1f} GB) {bar(frac, 10)} {frac:.0%}")
        for c in cfg.categories:
            if c.name in short:
                missing = c.target - totals.get(c.name, (0, 0))[0]
                ui.line(f"  ⚠ {c.name.upper()}: {missing:,} short — its videos are exhausted; "
                        "add videos to this category to reach the target")
        ui.line()
        ui.line(f"Output: {cfg.output_root}/")
        ui.line(rule)
        return short
