"""The loop's one run-state: videos, work in flight, counters, pauses, totals, and its view.

The engine loop owns exactly one `RunState`; its helpers (library, progress, disk guard,
dispatch) receive it and never the engine. Other threads (the live dashboard) read only
`RunState.view()`, an immutable `LiveView` the loop publishes, never the mutable fields.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsgen import split
from dsgen.config import Config, VideoCfg
from dsgen.model import FAILED, USABLE, VAL, VideoCounts, VideoRow, VideoState, video_state

if TYPE_CHECKING:
    from dsgen.extract import Task

# Samples/min is measured over this trailing window: long enough to smooth the bursts of a
# task finishing, short enough that the ETA follows a change of video.
RATE_WINDOW_SECONDS = 600.0
# The slot number standing for a video's probe in `suspects` and `deaths`.
PROBE = -1
# Pause reasons (a set: the disk can fill while the user has paused).
PAUSE_DISK = "disk"
PAUSE_STATE = "state"
PAUSE_USER = "user"
PAUSE_TEXT = {PAUSE_DISK: "disk full", PAUSE_STATE: "state disk full",
              PAUSE_USER: "by user: press p to resume"}


@dataclass
class Counters:
    """Live figures of this run (the state holds the durable ones)."""

    started: float = field(default_factory=time.time)
    work_started: float | None = None  # when this run first sent work: rates count from it
    samples: int = 0
    attempts: int = 0
    attempts_ok: int = 0
    slots: int = 0
    frames_decoded: int = 0
    clips_decoded: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (time, samples) events
    recent_total: int = 0  # the samples in `recent` (a rate costs O(1), not O(window))

    def add_samples(self, n: int, now: float) -> None:
        """Count `n` durable samples at `now` (for the trailing rate)."""
        self.samples += n
        if n:
            self.recent.append((now, n))
            self.recent_total += n
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self.recent and now - self.recent[0][0] > RATE_WINDOW_SECONDS:
            self.recent_total -= self.recent.popleft()[1]

    def rate_per_min(self, now: float | None = None) -> float:
        """Samples per minute over the trailing window (whole run while shorter)."""
        now = time.time() if now is None else now
        self._prune(now)
        n = self.recent_total
        since = self.work_started if self.work_started is not None else self.started
        span = min(RATE_WINDOW_SECONDS, max(1e-9, now - since))
        return n / span * 60

    def measured_rate(self, now: float | None = None) -> float | None:
        """Samples per minute once this run recorded a slot; None before (nothing measured
        yet: a resumed run's start-up is not a rate of 0)."""
        return self.rate_per_min(now) if self.slots else None

    def success_rate(self) -> float | None:
        """Share of this run's clip attempts that passed the gates."""
        return self.attempts_ok / self.attempts if self.attempts else None


@dataclass(frozen=True)
class ProbeWork:
    """A full probe of one video in flight."""

    video_id: int
    started: float
    tries: int = 1


@dataclass(frozen=True)
class TaskWork:
    """A task (some slots of one video) in flight."""

    task: Task
    started: float


@dataclass(frozen=True)
class IndexWork:
    """A scan of one chunk of a video's frame index in flight (the io lane)."""

    video_id: int
    chunk: int
    started: float


@dataclass(frozen=True)
class HeaderWork:
    """Header checks of newly configured videos in flight (by name, in config order)."""

    names: tuple[str, ...]
    lane: str
    started: float


Work = ProbeWork | TaskWork | IndexWork | HeaderWork


@dataclass(frozen=True)
class VideoLine:
    """A video as dashboards and the status file list it."""

    index: int
    id: int
    name: str
    path: str
    state: VideoState
    stored: str  # the stored status (new, ready, failed…)
    reason: str | None
    slots: int
    pending: int
    samples: int
    target: int
    tried: int
    ok: int
    by_category: tuple[tuple[str, int], ...] = ()  # durable samples per category


@dataclass(frozen=True)
class LiveView:
    """What only the running process knows, frozen at one moment (safe for other threads)."""

    pid: int
    host: str
    mode: str  # "run" | "daemon"
    state: str  # running, idle, paused, stopping, finished, interrupted…
    paused_reason: str | None
    stopping: bool
    started: float
    workers: int
    workers_busy: int
    worker_names: tuple[tuple[str, str, bool], ...]  # (name, host, busy)
    damaged: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]  # (video, its damage)
    current: tuple[VideoLine, ...]
    totals: tuple[tuple[str, int], ...]  # category → durable training samples
    patches_per_min: float
    success_rate: float | None
    retry_rate: float | None
    average_attempts: float | None
    samples_this_run: int
    frames_per_clip_decoded: float | None
    frames_per_sample_decoded: float | None
    eta_seconds: float | None
    taken_at: float
    # category → (durable validation samples, validation target), categories with a split
    validation: tuple[tuple[str, int, int], ...] = ()
    video_notes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # video name → its notes

    def to_block(self) -> dict[str, Any]:
        """The status file's `dsgen` block (documented in docs/status.md)."""
        return {
            "pid": self.pid, "host": self.host, "mode": self.mode, "state": self.state,
            "paused_reason": self.paused_reason, "stopping": self.stopping,
            "started": self.started,
            "workers": self.workers, "workers_busy": self.workers_busy,
            "worker_list": [{"name": n, "host": h, "busy": b} for n, h, b in self.worker_names],
            "damaged_videos": [{"name": n, "damage": list(d)} for n, d in self.damaged],
            "current_videos": [{
                "index": v.index, "name": v.name, "path": v.path,
                "slots_done": v.slots - v.pending, "slots_planned": v.slots,
                "samples": v.samples, "samples_target": v.target,
                "success_rate": round(v.ok / v.tried, 4) if v.tried else None,
                "status": "running"} for v in self.current],
            "performance": {
                "patches_per_min": round(self.patches_per_min, 3),
                "success_rate": _round(self.success_rate, 4),
                "retry_rate": _round(self.retry_rate, 4),
                "average_attempts": _round(self.average_attempts, 3),
                "samples_this_run": self.samples_this_run,
                "frames_decoded_per_clip": _round(self.frames_per_clip_decoded, 2),
                "frames_decoded_per_sample": _round(self.frames_per_sample_decoded, 2),
            },
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "validation": {c: {"samples": n, "target": t} for c, n, t in self.validation},
            "video_notes": {name: list(notes) for name, notes in self.video_notes},
        }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


@dataclass
class RunState:
    """Everything the loop knows about this run (owned by the loop's thread)."""

    cfg: Config
    daemon: bool = False
    status: str = "initialized"
    videos: dict[int, VideoRow] = field(default_factory=dict)  # rows without frame indexes
    cfg_by_id: dict[int, VideoCfg] = field(default_factory=dict)
    watched: dict[Path, VideoCfg] = field(default_factory=dict)
    counts: dict[int, VideoCounts] = field(default_factory=dict)
    # planning key (`model.split_key`: category, or `<category>@val`) → durable samples
    totals: dict[str, int] = field(default_factory=dict)
    total_bytes: dict[str, int] = field(default_factory=dict)
    video_notes: dict[int, tuple[str, ...]] = field(default_factory=dict)  # said once a run
    alias_copies: int = 0  # LR aliases written as copies (no hard links): warned once
    busy: set[tuple[int, int]] = field(default_factory=set)  # (video, slot) in flight/queued
    inflight: dict[int, Work] = field(default_factory=dict)  # executor key → work
    ready: deque[Task] = field(default_factory=deque)  # tasks made, not yet submitted
    # Work that was in flight when a worker died: run alone, one at a time, until each has
    # finished once; a slot or probe that kills its worker alone MAX times is given up.
    suspects: set[tuple[int, int]] = field(default_factory=set)  # (video, slot | PROBE)
    deaths: dict[tuple[int, int], int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)  # videos whose summary was printed
    # Newly configured videos whose header is not read yet (in config order), recorded as
    # unchecked: read in the workers as work proceeds, so a large new library does not delay
    # the first sample. name → (id, config).
    unread: dict[str, tuple[int, VideoCfg]] = field(default_factory=dict)
    # Names of a header batch that was lost (its worker died or raised): read one at a time,
    # counting the losses of a name read alone.
    header_suspects: dict[str, int] = field(default_factory=dict)
    # Phase 0 of a fresh state is planned in two steps: its opening (the first video of each
    # planning key, from the config alone) at once, the rest once every header is read.
    plan_pending: bool = False
    # The opening (video → planning key → samples): an opening video's first round is
    # planned from it alone, so that round does not depend on when the rest came.
    opening: dict[int, dict[str, int]] = field(default_factory=dict)
    # Videos whose frame index is still being built: chunks not scanned yet, in order.
    index_todo: dict[int, list[int]] = field(default_factory=dict)
    pauses: set[str] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    idle: bool = False  # nothing to do until something changes (daemon)
    last: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("status", "progress", "scan", "watchdog", "publish"), 0.0))
    workers: tuple[tuple[str, str, bool], ...] = ()  # (name, host, busy), from the executor
    stopping: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)  # re-check now
    reload_requested: threading.Event = field(default_factory=threading.Event)
    stop_signal: int = 0
    _view: LiveView | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- controls (safe from any thread: signal handlers, the dashboard) --------------------

    def request_stop(self, signum: int) -> bool:
        """Stop taking work; in-flight clips finish or are discarded. False if already asked."""
        if self.stopping.is_set():
            return False
        self.stop_signal = signum
        self.stopping.set()
        self.wake.set()
        return True

    def toggle_pause(self) -> bool:
        """Pause or resume dispatching (running clips finish); True when now paused."""
        if PAUSE_USER in self.pauses:
            self.pauses.discard(PAUSE_USER)
        else:
            self.pauses.add(PAUSE_USER)
        self.wake.set()
        return PAUSE_USER in self.pauses

    # -- derived ---------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Dispatching is held (disk full or the user's pause)."""
        return bool(self.pauses)

    @property
    def category_names(self) -> tuple[str, ...]:
        """Categories of the current config, in order."""
        return tuple(c.name for c in self.cfg.categories)

    def video_counts(self, vid: int) -> VideoCounts:
        """The counts of a video (created empty on first use)."""
        c = self.counts.get(vid)
        if c is None:
            c = self.counts[vid] = VideoCounts()
        return c

    def state_of(self, vid: int) -> VideoState:
        """The one derived state of a video (see `model.video_state`)."""
        v = self.videos[vid]
        c = self.counts.get(vid, VideoCounts())
        vc = self.cfg_by_id.get(vid)
        owed = c.owed_total(split.video_keys(self.cfg, vc)) if vc else 0
        return video_state(v.status, c.slots, c.pending, owed)

    def lines(self) -> Iterator[VideoLine]:
        """Every video in run order with its figures."""
        for i, vid in enumerate(self.videos):
            yield self._line(i, vid)

    def _line(self, index: int, vid: int) -> VideoLine:
        """One video's figures; `index` is its place in run order."""
        v = self.videos[vid]
        c = self.counts.get(vid, VideoCounts())
        return VideoLine(index, vid, v.name, v.path, self.state_of(vid), v.status, v.reason,
                         c.slots, c.pending, c.samples, c.target, c.tried, c.ok,
                         tuple(sorted(c.achieved.items())))

    def active(self) -> Iterator[int]:
        """Videos that may still give work, in run order (finished ones are skipped)."""
        for vid, v in self.videos.items():
            if v.status not in USABLE or vid in self.finished:
                continue
            yield vid

    def in_flight(self, vid: int) -> bool:
        """Work of a video is running or queued."""
        return any(v == vid for v, _ in self.busy) or any(
            (w.task.video_id if isinstance(w, TaskWork) else w.video_id) == vid
            for w in self.inflight.values() if not isinstance(w, HeaderWork))

    def busy_videos(self) -> list[int]:
        """Videos with slots in flight or queued."""
        return sorted({vid for vid, _ in self.busy})

    def remaining(self) -> int:
        """Samples still missing to reach every target."""
        return sum(max(0, target - self.totals.get(k, 0))
                   for k, target in split.targets(self.cfg).items())

    def failed_videos(self) -> list[VideoRow]:
        """Videos that give nothing more right now, with why."""
        return [v for v in self.videos.values() if v.status in FAILED]

    # -- the published view ----------------------------------------------------------------

    def publish(self) -> LiveView:
        """Freeze what other threads may read (called by the loop's thread)."""
        k = self.counters
        now = time.time()
        rate = k.rate_per_min(now)
        remaining = self.remaining()
        busy = set(self.busy_videos())  # only their lines: a view costs O(work), not O(library)
        current = tuple(self._line(i, vid) for i, vid in enumerate(self.videos) if vid in busy)
        paused_reason = next((PAUSE_TEXT[p] for p in (PAUSE_DISK, PAUSE_STATE, PAUSE_USER)
                              if p in self.pauses), None)
        state = "paused" if self.pauses and self.status == "running" else self.status
        view = LiveView(
            pid=os.getpid(), host=socket.gethostname(),
            mode="daemon" if self.daemon else "run", state=state,
            paused_reason=paused_reason,
            stopping=self.stopping.is_set() and self.status not in ("finished", "interrupted"),
            started=k.started, workers=len(self.workers) or self.cfg.worker_count,
            workers_busy=(sum(1 for _, _, b in self.workers if b) if self.workers else
                          min(self.cfg.worker_count, len(self.inflight))),
            worker_names=self.workers, current=current,
            damaged=tuple((v.name, tuple(v.damage)) for v in self.videos.values() if v.damage),
            totals=tuple((c, self.totals.get(c, 0)) for c in self.category_names),
            patches_per_min=rate, success_rate=k.success_rate(),
            retry_rate=1 - k.slots / k.attempts if k.attempts else None,
            average_attempts=k.attempts / k.slots if k.slots else None,
            samples_this_run=k.samples,
            frames_per_clip_decoded=(k.frames_decoded / k.clips_decoded
                                     if k.clips_decoded else None),
            frames_per_sample_decoded=k.frames_decoded / k.samples if k.samples else None,
            eta_seconds=(0.0 if not remaining else remaining / rate * 60 if rate > 0
                         else None),
            taken_at=now,
            validation=tuple((c.name, self.totals.get(split.key(c.name, VAL), 0), c.val_target)
                             for c in self.cfg.categories if c.val_target),
            video_notes=tuple((self.videos[vid].name, notes)
                              for vid, notes in self.video_notes.items() if vid in self.videos))
        with self._lock:
            self._view = view
        return view

    def view(self) -> LiveView | None:
        """The last published view (any thread)."""
        with self._lock:
            return self._view
