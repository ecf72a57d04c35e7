"""Prometheus metrics of the parent process: what the engine records, served over HTTP.

Only the parent records metrics: workers return `TaskResult`s and the engine feeds their
figures here, so no multiprocess mode is needed. Every label has a bounded set of values
(category and format names come from the config; states, reasons and stages from the fixed
lists below) — never a video name or a path. Metric names and meanings: docs/metrics.md.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)

from dsgen import __version__
from dsgen.metrics_http import MAX_CONNECTIONS, READ_SECONDS, BoundedServer
from dsgen.model import REASONS, SPLITS, TRAIN, VAL, VIDEO_STATES, WORKER_CRASH

log = logging.getLogger(__name__)

# Label value for anything outside a fixed list: a typo in the engine must neither crash
# the daemon nor create an unbounded series.
OTHER = "other"
# Attempt outcomes: the quality gates' reasons plus a slot given up after killing workers.
ATTEMPT_REASONS = (*REASONS, WORKER_CRASH)
# Timed stages: the worker's (TaskResult.seconds) plus the parent's write and probe.
STAGES = ("decode", "quality", "patch", "encode", "write", "probe")
# Per-clip stage times run from milliseconds (a gate on a small luma) to a minute (a 4K
# seek far away); a full probe scans a whole film, hence the long tail up to 10 minutes.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                 120.0, 300.0, 600.0)
# What the engine reports in Engine.status, plus the states a dashboard wants to tell apart.
RUN_STATES = ("initialized", "running", "idle", "paused", "stopping", "interrupted", "finished",
              OTHER)
WORKER_STATES = ("busy", "idle")
# How a worker failed: its process died (pool rebuilt) or its task raised an exception.
WORKER_FAILURES = ("died", "error")
RELOAD_RESULTS = ("success", "failure")
# Frames decoded per clip: 7 is the floor (a window opening at a keyframe), a random window
# in a 2–5 s GOP costs 20–70, a lone 10 s GOP up to ≈ 250.
CLIP_FRAME_BUCKETS = (7, 8, 10, 12, 15, 20, 30, 50, 80, 120, 200, 500)

_warned: set[tuple[str, str]] = set()  # (what, value) pairs already logged as unknown


def _bounded(value: str, allowed: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `allowed`, else OTHER (logged once per value)."""
    if value in allowed:
        return value
    if (what, value) not in _warned:
        _warned.add((what, value))
        log.warning("unknown %s %r recorded as %r", what, value, OTHER)
    return OTHER


def _versions() -> dict[str, str]:
    """dsgen, Python, PyAV and FFmpeg versions for dsgen_build_info."""
    try:
        import av

        pyav = str(av.__version__)
        ffmpeg = str(getattr(av, "ffmpeg_version_info", "unknown"))
    except ImportError:  # pragma: no cover - av is a dependency
        pyav = ffmpeg = "unknown"
    return {"version": __version__, "python": platform.python_version(), "pyav": pyav,
            "ffmpeg": ffmpeg}


class Metrics:
    """All of dsgen's metrics in one private registry; every method is cheap and thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 process_metrics: bool = True) -> None:
        # No `*_created` series: Prometheus stores them as extra gauges that only double the
        # series count. The switch is process-wide; only the parent records metrics anyway.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = registry if registry is not None else CollectorRegistry()
        if process_metrics:  # process_* (CPU, memory, fds), python_info, python_gc_*
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._server: BoundedServer | None = None

        self._videos = Gauge("dsgen_videos", "Configured videos by state.", ["state"],
                             registry=r)
        self._damaged = Gauge("dsgen_damaged_videos",
                              "Videos found damaged (decode errors, missing frames, truncated).",
                              registry=r)
        self._attempts = Counter(
            "dsgen_clip_attempts", "Clip attempts by outcome (ok or the rejection reason).",
            ["reason"], registry=r)
        # `split` is "train" or "val": a category's validation samples apart from training.
        self._written = Counter(
            "dsgen_samples_written", "Samples recorded durably by this process.",
            ["category", "format", "split"], registry=r)
        self._written_bytes = Counter(
            "dsgen_written_bytes", "Bytes of samples recorded durably by this process.",
            ["category", "split"], registry=r)
        self._samples = Gauge("dsgen_samples", "Samples durable in the state, all runs.",
                              ["category", "split"], registry=r)
        self._targets = Gauge("dsgen_category_target_samples",
                              "Samples each category must reach.", ["category", "split"],
                              registry=r)
        self._bytes = Gauge("dsgen_output_bytes",
                            "Bytes of the samples durable in the state, all runs.",
                            ["category", "split"], registry=r)
        self._fs_free = Gauge("dsgen_filesystem_free_bytes",
                              "Free bytes (for unprivileged users) on the output filesystem.",
                              registry=r)
        self._fs_size = Gauge("dsgen_filesystem_size_bytes",
                              "Size in bytes of the output filesystem.", registry=r)
        self._workers = Gauge("dsgen_workers", "Worker processes by state.", ["state"],
                              registry=r)
        self._worker_busy = Gauge(
            "dsgen_worker_busy", "1 while a worker runs dsgen's work, else 0; one series per "
            "connected worker (local pool or Dask cluster).", ["worker", "host"], registry=r)
        self._worker_labels: set[tuple[str, str]] = set()
        self._worker_failures = Counter(
            "dsgen_worker_failures", "Worker processes that died or tasks that raised.",
            ["kind"], registry=r)
        self._frames = Counter("dsgen_frames_decoded", "Video frames decoded by the workers.",
                               registry=r)
        self._seeks = Counter("dsgen_seeks", "Seeks the workers' decoders made.", registry=r)
        self._clip_frames = Histogram(
            "dsgen_clip_frames_decoded", "Frames decoded per clip attempt (7 is the floor).",
            buckets=CLIP_FRAME_BUCKETS, registry=r)
        self._stage_seconds = Counter(
            "dsgen_stage_seconds", "Worker and parent time spent per stage.", ["stage"],
            registry=r)
        self._stage_hist = Histogram(
            "dsgen_stage_duration_seconds", "Time per item (clip, sample, video) and stage.",
            ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self._last_success = Gauge("dsgen_last_success_timestamp_seconds",
                                   "When the last sample was recorded durably.", registry=r)
        self._eta = Gauge("dsgen_estimated_completion_timestamp_seconds",
                          "When every target should be met at the current rate (NaN: unknown).",
                          registry=r)
        self._reload_ok = Gauge("dsgen_config_reload_success",
                                "1 if the last config (re)load succeeded, else 0.", registry=r)
        self._reload_ts = Gauge("dsgen_config_reload_timestamp_seconds",
                                "When the config was last loaded successfully.", registry=r)
        self._reloads = Counter("dsgen_config_reloads", "Config reload attempts by result.",
                                ["result"], registry=r)
        self._paused = Gauge("dsgen_paused",
                             "1 while extraction is paused because the output disk is full.",
                             registry=r)
        self._run_state = Enum("dsgen_run_state", "What the engine is doing.",
                               states=list(RUN_STATES), registry=r)
        self._build = Info("dsgen_build", "Versions of dsgen and its decoding stack.",
                           registry=r)

        # Every fixed label value exists from the start, so rate() and sums see zeros
        # instead of missing series.
        for state in VIDEO_STATES:
            self._videos.labels(state).set(0)
        for reason in ATTEMPT_REASONS:
            self._attempts.labels(reason)
        for stage in STAGES:
            self._stage_seconds.labels(stage)
            self._stage_hist.labels(stage)
        for wstate in WORKER_STATES:
            self._workers.labels(wstate).set(0)
        for kind in WORKER_FAILURES:
            self._worker_failures.labels(kind)
        for result in RELOAD_RESULTS:
            self._reloads.labels(result)
        # The daemon runs only with a config that loaded: that first load is a success.
        self._reload_ok.set(1)
        self._reload_ts.set(time.time())
        self._eta.set(math.nan)
        self._run_state.state("initialized")
        self._build.info(_versions())

    # -- HTTP ------------------------------------------------------------------------------

    def start_http(self, port: int, address: str = "127.0.0.1", *,
                   max_connections: int = MAX_CONNECTIONS,
                   read_seconds: float = READ_SECONDS) -> int:
        """Serve /metrics from one daemon thread (bounded connections and read time, see
        metrics_http); port 0 picks a free port; returns the port."""
        if self._server is not None:
            return self.port
        self._server = BoundedServer(make_wsgi_app(self.registry), address, port,
                                     max_connections=max_connections,
                                     read_seconds=read_seconds)
        self._server.start()
        return self.port

    @property
    def port(self) -> int:
        """The port /metrics is served on (0 before start_http)."""
        return self._server.port if self._server is not None else 0

    @property
    def server(self) -> BoundedServer | None:
        """The HTTP server while it runs."""
        return self._server

    def alive(self) -> bool:
        """True while the HTTP thread serves (for health checks)."""
        return self._server is not None and self._server.thread.is_alive()

    def stop_http(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    def render(self) -> bytes:
        """The exposition text a scrape would get."""
        return generate_latest(self.registry)

    # -- declaration -----------------------------------------------------------------------

    def declare(self, formats_by_category: Mapping[str, Iterable[str]],
                val_formats: Mapping[str, Iterable[str]] | None = None) -> None:
        """Create every (category, format) series at zero: {c.name: [f for f, _ in c.formats]}
        for training, and `val_formats` likewise for the categories with a validation split."""
        for split, table in ((TRAIN, formats_by_category), (VAL, val_formats or {})):
            for cat, fmts in table.items():
                for fmt in fmts:
                    self._written.labels(cat, fmt, split)
                self._written_bytes.labels(cat, split)
                self._samples.labels(cat, split)
                self._bytes.labels(cat, split)
                self._targets.labels(cat, split)

    # -- events ----------------------------------------------------------------------------

    def attempt(self, reason: str, n: int = 1) -> None:
        """Count `n` clip attempts ending with `reason` (ok, a gate's reason, worker_crash)."""
        self._attempts.labels(_bounded(reason, ATTEMPT_REASONS, "reason")).inc(n)

    def sample_written(self, category: str, fmt: str, nbytes: int, ts: float | None = None,
                       split: str = TRAIN) -> None:
        """A sample is durable (call after the state commit): counts, totals, last success."""
        split = _bounded(split, SPLITS, "split")
        self._written.labels(category, fmt, split).inc()
        self._written_bytes.labels(category, split).inc(nbytes)
        self._samples.labels(category, split).inc()
        self._bytes.labels(category, split).inc(nbytes)
        self._last_success.set(time.time() if ts is None else ts)

    def stage(self, stage: str, seconds: float, n: int = 1) -> None:
        """`seconds` spent in `stage` over `n` items (clips, samples): total + n per-item times.

        A task reports one total per stage, so each of its `n` items is observed at the mean;
        the histogram's sum and count stay exact.
        """
        label = _bounded(stage, STAGES, "stage")
        seconds = max(0.0, seconds)
        self._stage_seconds.labels(label).inc(seconds)
        n = max(1, n)
        hist = self._stage_hist.labels(label)
        per = seconds / n
        for _ in range(n):
            hist.observe(per)

    def decoded(self, frames: int, seeks: int, per_clip: Iterable[int] = ()) -> None:
        """Add a task's decoded frames and seeks (TaskResult.frames_decoded, .seeks) and each
        clip's frames (TaskResult.clip_frames) to the per-clip histogram."""
        self._frames.inc(max(0, frames))
        self._seeks.inc(max(0, seeks))
        for n in per_clip:
            self._clip_frames.observe(max(0, n))

    def worker_failure(self, kind: str) -> None:
        """A worker process died ("died") or a task raised ("error")."""
        self._worker_failures.labels(_bounded(kind, WORKER_FAILURES, "worker failure")).inc()

    def reload(self, ok: bool, ts: float | None = None) -> None:
        """A config reload was tried: success flag, counter, and the time of a success."""
        self._reload_ok.set(1 if ok else 0)
        self._reloads.labels("success" if ok else "failure").inc()
        if ok:
            self._reload_ts.set(time.time() if ts is None else ts)

    # -- levels ----------------------------------------------------------------------------

    def set_samples(self, category: str, n: int, nbytes: int, split: str = TRAIN) -> None:
        """Durable samples and their bytes of a category's split, from the state (start-up)."""
        split = _bounded(split, SPLITS, "split")
        self._samples.labels(category, split).set(n)
        self._bytes.labels(category, split).set(nbytes)

    def set_targets(self, targets: Mapping[str, int], split: str = TRAIN) -> None:
        """Each category's target sample count (of training, or validation)."""
        split = _bounded(split, SPLITS, "split")
        for cat, n in targets.items():
            self._targets.labels(cat, split).set(n)

    def set_videos(self, counts: Mapping[str, int]) -> None:
        """Videos per state; states not given are set to 0."""
        totals = dict.fromkeys(VIDEO_STATES, 0)
        for state, n in counts.items():
            key = _bounded(state, VIDEO_STATES, "video state")
            totals[key] = totals.get(key, 0) + n
        for state, n in totals.items():
            self._videos.labels(state).set(n)

    def set_damaged(self, n: int) -> None:
        """How many of the run's videos are damaged (their damage: status file, summary)."""
        self._damaged.set(max(0, n))

    def set_workers(self, busy: int, total: int) -> None:
        """Worker processes busy with a task, and the rest idle."""
        busy = max(0, min(busy, total))
        self._workers.labels("busy").set(busy)
        self._workers.labels("idle").set(total - busy)

    def set_worker_list(self, workers: Iterable[tuple[str, str, bool]]) -> None:
        """(name, host, busy) of every worker now; series of workers that left are removed."""
        now = set()
        for name, host, busy in workers:
            self._worker_busy.labels(name, host).set(1 if busy else 0)
            now.add((name, host))
        for gone in self._worker_labels - now:
            self._worker_busy.remove(*gone)
        self._worker_labels = now

    def set_disk(self, free: int, size: int) -> None:
        """Free and total bytes of the output filesystem (shutil.disk_usage)."""
        self._fs_free.set(free)
        self._fs_size.set(size)

    def last_success(self, ts: float) -> None:
        """When the last sample became durable (at start-up: the newest sample in the state)."""
        self._last_success.set(ts)

    def eta(self, ts: float | None) -> None:
        """Estimated completion time (Unix seconds), or None when there is no rate yet."""
        self._eta.set(math.nan if ts is None else ts)

    def paused(self, on: bool) -> None:
        """Extraction paused (1) for a full disk, or running (0)."""
        self._paused.set(1 if on else 0)

    def run_state(self, state: str) -> None:
        """The engine's state: initialized, running, paused, stopping, interrupted, finished."""
        self._run_state.state(_bounded(state, RUN_STATES, "run state"))
