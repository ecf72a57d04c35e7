"""Progress as people and tools see it: lines, the status file, metrics and the systemd STATUS.

Everything here is derived from the run's state (`RunState`) and, for the final figures,
from the database; nothing reads the engine.
"""

from __future__ import annotations

import time
from collections import Counter as Tally

from dsgen import split
from dsgen.damage import describe
from dsgen.metrics import Metrics
from dsgen.model import OK, VAL, SlotResult, TaskResult
from dsgen.notify import Notifier
from dsgen.report import Reporter, bar, gb, human_time
from dsgen.runstate import RunState
from dsgen.state import State
from dsgen.status import write_status

# Damaged ranges listed per video in the run summary (the status file has them all).
DAMAGE_LISTED = 5


class Progress:
    """The run's reporting: metrics, progress lines, summaries and the status file."""

    def __init__(self, run: RunState, ui: Reporter, metrics: Metrics | None,
                 notify: Notifier) -> None:
        self.run = run
        self.ui = ui
        self.metrics = metrics
        self.notify = notify
        self.state_path = ""  # the database path, for the status file and messages
        # Lines said once: a video's summary (again only when its figures changed) and its
        # low-success warning; only videos that recorded a slot in this run are summarised.
        self._worked: set[int] = set()
        self._said: dict[int, tuple[int, int]] = {}
        self._warned_low: set[int] = set()

    # -- metrics ---------------------------------------------------------------------------

    def start_metrics(self, st: State) -> None:
        """Initialise every metric series from the run's totals."""
        cfg, m, run = self.run.cfg, self.metrics, self.run
        if m is None:
            return
        val = [c for c in cfg.categories if c.val_target]
        m.declare({c.name: [f for f, _ in c.formats] for c in cfg.categories},
                  {c.name: [f for f, _ in c.val_formats] for c in val})
        m.set_targets({c.name: c.target for c in cfg.categories})
        m.set_targets({c.name: c.val_target for c in val}, VAL)
        for c in cfg.categories:
            m.set_samples(c.name, run.totals.get(c.name, 0), run.total_bytes.get(c.name, 0))
        for c in val:
            k = split.key(c.name, VAL)
            m.set_samples(c.name, run.totals.get(k, 0), run.total_bytes.get(k, 0), VAL)
        last = st.last_sample_time()
        if last is not None:
            m.last_success(last)
        self.video_metrics()

    def video_metrics(self) -> None:
        """Videos per state (the one derived state, `RunState.state_of`), damaged videos."""
        if self.metrics is not None:
            self.metrics.set_videos(Tally(self.run.state_of(vid) for vid in self.run.videos))
            self.metrics.set_damaged(sum(1 for v in self.run.videos.values() if v.damage))

    def worker_metrics(self) -> None:
        """Busy and idle workers, pause and run state."""
        m, run = self.metrics, self.run
        if m is None:
            return
        m.set_workers(sum(1 for _, _, b in run.workers if b), len(run.workers)
                      or run.cfg.worker_count)
        m.set_worker_list(run.workers)
        m.paused(run.paused)
        m.run_state("paused" if run.paused and run.status == "running" else run.status)

    def task_metrics(self, res: TaskResult) -> None:
        """Per-stage times and decoding work of a finished task."""
        run = self.run
        run.counters.frames_decoded += res.frames_decoded
        run.counters.clips_decoded += res.clips
        m = self.metrics
        if m is None:
            return
        clips = sum(len(s.attempts) for s in res.slots)
        samples = sum(len(s.samples) for s in res.slots)
        for stage, secs in res.seconds.items():
            m.stage(stage, secs, clips if stage in ("decode", "quality") else samples)
        m.decoded(res.frames_decoded, res.seeks, res.clip_frames)

    def slot_recorded(self, slot: SlotResult, vid: int | None = None) -> None:
        """A slot became durable: metrics (the counters are kept by `ledger.record_slot`)."""
        m, run = self.metrics, self.run
        if vid is not None:
            self._worked.add(vid)
        if m is None:
            return
        now = time.time()
        for a in slot.attempts:
            m.attempt(a.outcome)
        for s in slot.samples:
            m.sample_written(s.category, s.format, sum(b for _, b in s.files), now, s.split)
        remaining, rate = run.remaining(), run.counters.rate_per_min(now)
        m.eta(now + remaining / rate * 60 if rate > 0 and remaining else (now if not remaining
                                                                          else None))

    # -- lines -----------------------------------------------------------------------------

    def progress_line(self) -> None:
        """`… GENERAL 120/400 30.0% | … | 8.2 patches/min, success 94.3%`."""
        run = self.run
        parts = []
        for c in run.cfg.categories:
            n = run.totals.get(c.name, 0)
            frac = n / c.target if c.target else 1.0
            parts.append(f"{c.name.upper()} {n}/{c.target} {frac:.1%}" + self._val(c.name))
        k = run.counters
        rate, success = k.measured_rate(), k.success_rate()
        shown_rate = "—" if rate is None else f"{rate:.1f}"
        shown_success = "—" if success is None else f"{success:.1%}"
        self.ui.line(f"… {' | '.join(parts)} | {shown_rate} patches/min, "
                     f"success {shown_success}", event="progress", samples=dict(run.totals),
                     patches_per_min=None if rate is None else round(rate, 2),
                     success_rate=None if success is None else round(success, 4))
        self.notify.status(self.status_line())

    def _val(self, category: str) -> str:
        """` (val 3/10)` for a category with a validation split, else ``."""
        target = self.run.cfg.category(category).val_target
        if not target:
            return ""
        return f" (val {self.run.totals.get(split.key(category, VAL), 0)}/{target})"

    def status_line(self) -> str:
        """One line for systemd's STATUS=: videos done, per-category %, patches/min."""
        run = self.run
        done = sum(1 for vid in run.videos if run.state_of(vid) == "done")
        cats = ", ".join(f"{c.name.upper()} {run.totals.get(c.name, 0) / c.target:.1%}"
                         if c.target else f"{c.name.upper()} done" for c in run.cfg.categories)
        state = "" if run.status == "running" else f"{run.status}: "
        rate = run.counters.measured_rate()
        return (f"{state}{done}/{len(run.videos)} videos, {cats}, "
                f"{'—' if rate is None else f'{rate:.1f}'} patches/min")

    def idle_line(self) -> None:
        """The daemon has nothing to do until videos arrive or targets change."""
        self.write_status(force=True)
        self.ui.line("💤 Idle: every target is met or no video can give more; waiting "
                     "for new videos or a config change", event="idle",
                     samples=dict(self.run.totals))
        self.notify.status(self.status_line())

    def write_status(self, force: bool = False) -> None:
        """Publish the live view; rewrite the status file every `status_seconds`."""
        run = self.run
        view = run.publish()
        now = time.monotonic()
        if not force and now - run.last["status"] < run.cfg.status_seconds:
            return
        run.last["status"] = now
        try:
            write_status(run.cfg, list(run.lines()), run.totals, run.total_bytes, run.status,
                         run.counters.started, self.state_path,
                         {**view.to_block(), "events": self._events(),
                          "headers_unread": len(run.unread)})
        except OSError as err:
            self.ui.line(f"⚠️  Status file not written: {err}", event="status_file_error",
                         error=str(err))

    def _events(self) -> list[dict[str, object]]:
        from dsgen.status import iso_time

        return [{"time": iso_time(t), "title": title, "details": details}
                for t, title, details in list(self.ui.events)[-20:]]

    def resume_lines(self) -> None:
        """`📍 Resuming from video N (name)` and `→ Last frame: done/planned`."""
        run = self.run
        for i, (vid, v) in enumerate(run.videos.items(), 1):
            c = run.video_counts(vid)
            if c.pending:
                self.ui.line(f"📍 Resuming from video {i} ({v.name})", event="resuming",
                             index=i, video=v.name, done=c.slots - c.pending, planned=c.slots)
                self.ui.line(f"→ Last frame: {c.slots - c.pending}/{c.slots}")
                return
        self.ui.line("📍 Resuming: every planned slot is done; checking targets",
                     event="resuming")

    def video_finished(self, st: State, vid: int) -> None:
        """A video has no work left: its summary line and, below the threshold, the
        low-success warning — each said once (the summary again only with new figures, after
        a later phase gave the video more work); videos finished in earlier runs are not
        summarised again."""
        run = self.run
        if vid in run.finished:
            return
        run.finished.add(vid)
        c = run.video_counts(vid)
        figures = (c.samples, c.tried)
        if vid not in self._worked or self._said.get(vid) == figures:
            self.video_metrics()
            return
        self._said[vid] = figures
        v = run.videos[vid]
        outcomes = st.outcome_counts(vid)
        total = sum(outcomes.values())
        rate = outcomes.get(OK, 0) / total if total else 0.0
        made = c.samples
        idx = list(run.videos).index(vid) + 1
        rejected = {k: n for k, n in sorted(outcomes.items()) if k != OK}
        self.ui.line(f"✓ Video {idx}/{len(run.videos)} {v.name}: {made} samples, {total} "
                     f"clips tried, success rate {rate:.1%}", event="video_finished",
                     video=v.name, samples=made, clips=total, success_rate=round(rate, 4),
                     rejected=rejected)
        threshold = run.cfg.extraction.low_success_warning
        if total and rate < threshold and vid not in self._warned_low:
            self._warned_low.add(vid)
            reasons = ", ".join(f"{k} {n}" for k, n in rejected.items())
            self.ui.warn("Low success rate on video",
                         [f"Video: {v.name}", f"Success Rate: {rate:.1%} (< {threshold:.0%} "
                          "threshold)", f"Rejected: {reasons}"],
                         ["Consider checking video file quality",
                          "Continuing with next video..."],
                         event="low_success", video=v.name, success_rate=round(rate, 4),
                         rejected=rejected)
        self.video_metrics()

    def shutdown_lines(self) -> None:
        """What the predecessor printed after Ctrl+C, with our resume command."""
        run = self.run
        self.ui.line(f"✓ Progress saved to {run.cfg.status_path.name} and {self.state_path}",
                     event="saved")
        for i, vid in enumerate(run.videos, 1):
            c = run.video_counts(vid)
            if c.pending:
                self.ui.line(f"✓ Video {i}: {c.slots - c.pending}/{c.slots} frames completed")
                break
        command = "daemon" if run.daemon else "run"
        self.ui.line(f"✓ Safe to resume later with: dsgen {command} --config {run.cfg.source}",
                     event="stopped")

    def completion_lines(self, st: State) -> list[str]:
        """The predecessor's "Final Statistics", validation apart; returns the planning keys
        left short (`<category>` for training, `<category>@val` for validation)."""
        run, ui = self.run, self.ui
        cfg = run.cfg
        targets = split.targets(cfg)
        totals = {k: (run.totals.get(k, 0), run.total_bytes.get(k, 0))
                  for k in set(run.totals) | set(run.total_bytes)}
        images = sum(n for n, _ in totals.values())
        val_images = sum(n for k, (n, _) in totals.items() if split.parse(k)[1] == VAL)
        size = sum(b for _, b in totals.values())
        running = st.running_seconds()  # time spent running, idle time between runs left out
        done_videos = st.probed_count()
        short = [k for k, t in targets.items() if totals.get(k, (0, 0))[0] < t]
        rule = "━" * 46
        ui.line()
        ui.line("✅ Dataset generation complete!" if not short else
                "⚠️  Dataset generation finished with categories short of target",
                event="finished", short=short, images=images, bytes=size,
                validation_images=val_images)
        ui.line()
        ui.line("Final Statistics:")
        ui.line(rule)
        ui.line(f"Total Videos Processed: {done_videos}")
        ui.line(f"Total Images Created: {images:,}" + (
            f" ({images - val_images:,} training, {val_images:,} validation)"
            if val_images else ""))
        ui.line(f"Total Disk Usage: {gb(size):.1f} GB")
        ui.line(f"Total Time: {human_time(running)}")
        k = run.counters
        if k.clips_decoded:
            per_sample = (f", {k.frames_decoded / k.samples:.1f} per sample" if k.samples
                          else "")
            ui.line(f"Frames Decoded: {k.frames_decoded:,} this run, "
                    f"{k.frames_decoded / k.clips_decoded:.1f} per clip{per_sample}",
                    event="decoding", frames=k.frames_decoded, clips=k.clips_decoded,
                    samples=k.samples)
        ui.line()
        ui.line("Category Breakdown:")
        width = max(len(c.name) for c in cfg.categories) + 1
        for c in cfg.categories:
            n, b = totals.get(c.name, (0, 0))
            frac = n / c.target if c.target else 1.0
            ui.line(f"  {(c.name.upper() + ':'):<{width}} {n:,} / {c.target:,} images "
                    f"({gb(b):.1f} GB) {bar(frac, 10)} {frac:.0%}")
            if c.val_target:
                n, b = totals.get(split.key(c.name, VAL), (0, 0))
                frac = n / c.val_target
                ui.line(f"  {'':<{width}} {n:,} / {c.val_target:,} validation "
                        f"({gb(b):.1f} GB) {bar(frac, 10)} {frac:.0%} → "
                        f"{c.path}/{c.validation.dir}")
        for key in short:
            cat, sp = split.parse(key)
            missing = targets[key] - totals.get(key, (0, 0))[0]
            what = cat.upper() + (" validation" if sp == VAL else "")
            ui.line(f"  ⚠ {what}: {missing:,} short — its videos are exhausted; "
                    "add videos to this category to reach the target")
        damaged = [v for v in run.videos.values() if v.damage]
        if damaged:
            ui.line()
            ui.line("Damaged Videos (damaged parts skipped, the rest used):")
            for v in damaged:
                ranges = v.damage or []
                more = f"; and {len(ranges) - DAMAGE_LISTED} more" if len(
                    ranges) > DAMAGE_LISTED else ""
                ui.line(f"  {v.name}: " + "; ".join(describe(d) for d in ranges[:DAMAGE_LISTED])
                        + more, event="damaged_video", video=v.name, damage=ranges)
        ui.line()
        ui.line(f"Output: {cfg.output_root}/")
        ui.line(rule)
        return short
