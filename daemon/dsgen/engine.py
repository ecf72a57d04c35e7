"""The scheduler: plans, dispatches tasks to the worker pool, records results, stops cleanly."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsgen import __version__
from dsgen.config import Config, VideoCfg
from dsgen.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_WARNING,
    StateError,
    VideoError,
)
from dsgen.extract import Task, TaskResult, init_worker, run_task
from dsgen.patches import geometry
from dsgen.plan import (
    MAX_ROUNDS,
    capacity,
    fitting_formats,
    place_round,
    split_targets,
    usable_seconds,
)
from dsgen.probe import VideoProbe, probe_summary, probe_video, quick_probe
from dsgen.quality import OK
from dsgen.report import Reporter, bar, gb, human_time
from dsgen.state import State, VideoRow
from dsgen.status import write_status
from dsgen.writer import (
    clear_tmp,
    remove_files,
    sample_files,
    write_descriptions,
    write_meta_info,
)

# A task that kills its worker this many times is given up (its slots marked failed).
MAX_TASK_CRASHES = 3
# Seconds between progress lines in plain mode.
PROGRESS_SECONDS = 10.0
# Free space needed above the point where a write failed before extraction resumes.
RESUME_HEADROOM = 64 * 1024 * 1024
# Seconds between free-space re-checks while paused on a full disk.
DISK_RETRY_SECONDS = 5.0


def probe_task(path: str, min_frames: int) -> VideoProbe | VideoError:
    """Worker-side full probe (index scan is I/O + demux heavy): returns the probe or the error."""
    try:
        return probe_video(Path(path), min_frames)
    except VideoError as e:
        return e


@dataclass
class Counters:
    """Live figures for progress lines, the status file and metrics."""

    started: float = field(default_factory=time.time)
    samples_this_run: int = 0
    attempts: int = 0
    attempts_ok: int = 0
    slots_done: int = 0
    slot_attempts: int = 0


class Engine:
    """Runs one config to completion (or until stopped), owning state, logs and the pool."""

    def __init__(self, cfg: Config, reporter: Reporter | None = None) -> None:
        self.cfg = cfg
        self.ui = reporter or Reporter()
        self.stopping = threading.Event()
        self.stop_signal = 0
        self.paused = threading.Event()
        self.counters = Counters()
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.state: State | None = None
        self.videos: dict[int, VideoRow] = {}
        self.cfg_by_id: dict[int, VideoCfg] = {}
        self.crashes: dict[tuple[int, int], int] = {}
        self.warned_low: set[int] = set()
        self.finished_videos: set[int] = set()
        self._last_status = 0.0
        self._last_progress = 0.0
        self._last_disk = 0.0
        self.status = "initialized"
        self._resume_free = 0
        self._warned_space = False

    # -- signals ---------------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop taking work; in-flight clips finish or are discarded; progress is kept."""
        if self.stopping.is_set():
            return
        self.stop_signal = signum
        self.stopping.set()
        self.stop_event.set()

    def install_signals(self) -> None:
        """Ctrl+C / SIGTERM → graceful stop; a second Ctrl+C stops at once (still safe)."""
        def handler(signum: int, _frame: Any) -> None:
            if self.stopping.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.ui.line()
            self.ui.line("Received shutdown signal. Saving progress...")
            self.request_stop(signum)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # -- main ------------------------------------------------------------------------------

    def run(self) -> int:
        """Plan and extract until every target is met, the videos are exhausted, or a stop."""
        cfg, ui = self.cfg, self.ui
        ui.line(f"🚀 Initializing dsgen {__version__}...")
        ui.line(f"✓ Config loaded: {len(cfg.videos)} videos ({cfg.source})")
        ui.line("✓ Creating output directories...")
        cfg.output_root.mkdir(parents=True, exist_ok=True)
        write_descriptions(cfg)
        ui.line("✓ Checking for existing checkpoints...")
        self.state = st = State(cfg.state_dir)
        self._check_identity(st)
        leftovers = clear_tmp(cfg)
        resumed = st.phase() >= 0
        self._sync_videos(st)
        self._rollback_unrecorded(st)
        if leftovers:
            ui.line(f"→ Removed {leftovers} temporary file(s) of an interrupted write")
        if resumed:
            self._resume_message(st)
        else:
            ui.line("→ No checkpoint found, starting fresh")
        run_id = st.start_run()
        self.status = "running"
        self._write_status(force=True)
        code = EXIT_OK
        try:
            self._loop(st)
        except KeyboardInterrupt:
            self.request_stop(signal.SIGINT)
        finally:
            status = "interrupted" if self.stopping.is_set() else "finished"
            self.status = status
            if cfg.layout == "basicsr":
                write_meta_info(cfg, ((c, f, self._slug(n), s) for c, f, n, s in st.sample_keys()))
            self._write_status(force=True)
            st.end_run(run_id, status)
        if self.stopping.is_set():
            self._shutdown_message(st)
            code = EXIT_TERMINATED if self.stop_signal == signal.SIGTERM else EXIT_INTERRUPTED
        else:
            code = self._completion(st)
        st.close()
        return code

    def _slug(self, name: str) -> str:
        return next((v.slug for v in self.cfg.videos if v.name == name), name)

    def _check_identity(self, st: State) -> None:
        """Refuse to mix datasets: seed, layout and frame count must match the state's."""
        ident = json.dumps({"seed": self.cfg.seed, "layout": self.cfg.layout,
                            "frames": self.cfg.extraction.frames_per_clip,
                            "root": str(self.cfg.output_root.resolve())}, sort_keys=True)
        old = st.get_meta("identity")
        if old is None:
            st.set_meta("identity", ident)
        elif old != ident:
            raise StateError(
                f"{st.path}: this state was made with {old}, the config now says {ident}",
                hint="restore the old seed/layout/output_root, or use a new state_dir and "
                     "output_root for a new dataset")

    # -- videos ----------------------------------------------------------------------------

    def _sync_videos(self, st: State) -> None:
        """Read every configured video's header; record missing and unusable ones with why."""
        known = {v.name: v for v in st.videos()}
        for vc in self.cfg.videos:
            row = known.get(vc.name)
            try:
                q = quick_probe(vc.path)
            except VideoError as e:
                status = "missing" if e.reason == "file not found" else "failed"
                vid = st.upsert_video(vc.name, str(vc.path), status, stage=e.stage,
                                      reason=e.reason)
                if status == "missing":
                    self.ui.warn("Video file not found", [f"Path: {vc.path}", f"Video: {vc.name}"],
                                 ["Skipping and continuing..."])
                else:
                    self._warn_unusable(vc.name, str(vc.path), e.stage, e.reason, e.hint)
                self.cfg_by_id[vid] = vc
                continue
            frames = round(q.duration_s * q.fps)
            if frames < self.cfg.extraction.frames_per_clip:
                reason = (f"only {frames} frame(s) ({q.duration_s:.2f} s); a clip needs "
                          f"{self.cfg.extraction.frames_per_clip}")
                vid = st.upsert_video(vc.name, str(vc.path), "failed", stage="probe",
                                      reason=reason)
                self._warn_unusable(vc.name, str(vc.path), "probe", reason, "use a longer video")
                self.cfg_by_id[vid] = vc
                continue
            if row is not None and row.size is not None and (row.size, row.mtime_ns) != (
                    q.size, q.mtime_ns) and row.status not in ("missing", "failed"):
                self.ui.warn("Video changed since it was planned",
                             [f"Path: {vc.path}", f"Video: {vc.name}"],
                             ["Its samples so far are kept; it is not extracted further",
                              "Give it a new name in the config to extract it as a new video"])
                vid = st.upsert_video(vc.name, str(vc.path), "changed", stage="open",
                                      reason="size or mtime changed")
            else:
                status = row.status if row is not None and row.status == "ready" else "new"
                vid = st.upsert_video(vc.name, str(vc.path), status, size=q.size,
                                      mtime_ns=q.mtime_ns, duration=q.duration_s, fps=q.fps)
            self.cfg_by_id[vid] = vc
        self.videos = {v.id: v for v in st.videos() if v.id in self.cfg_by_id}

    def _warn_unusable(self, name: str, path: str, stage: str, reason: str,
                       hint: str | None) -> None:
        self.ui.warn("Video unusable", [f"Path: {path}", f"Video: {name}",
                                        f"Reason: {stage}: {reason}"],
                     [hint or "Check the file", "Skipping and continuing..."])

    def _usable(self, v: VideoRow) -> bool:
        return v.status in ("new", "ready")

    def _rollback_unrecorded(self, st: State) -> None:
        """Delete files of slots that were never recorded (a crash between write and commit)."""
        for vid in self.videos:
            slug = self.cfg_by_id[vid].slug
            for slot in st.slots(vid, pending_only=True):
                for cat, fmt in slot.formats:
                    remove_files(sample_files(self.cfg, self.cfg.category(cat),
                                              self.cfg.format(fmt), slug, slot.slot_id))

    def _resume_message(self, st: State) -> None:
        order = list(self.videos)
        for i, vid in enumerate(order, 1):
            total, pending, _, _ = st.slot_stats(vid)
            if pending:
                v = self.videos[vid]
                self.ui.line(f"📍 Resuming from video {i} ({v.name})")
                self.ui.line(f"→ Last frame: {total - pending}/{total}")
                return
        self.ui.line("📍 Resuming: every planned slot is done; checking targets")

    # -- planning --------------------------------------------------------------------------

    def _shares(self, st: State, exclude: dict[tuple[int, str], str]
                ) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, int]]]:
        """Per category: each usable video's share (usable seconds × weight) and capacity."""
        shares: dict[str, dict[int, float]] = {}
        caps: dict[str, dict[int, int]] = {}
        used = st.quotas()
        for vid, v in self.videos.items():
            if not self._usable(v) or not v.fps or not v.duration:
                continue
            for cat, weight in self.cfg_by_id[vid].categories:
                if (vid, cat) in exclude:
                    continue
                if v.probe is not None:
                    secs, cap = usable_seconds(v.probe, self.cfg), capacity(v.probe, self.cfg)
                else:
                    margin = 2 * self.cfg.extraction.edge_margin_seconds
                    secs = max(0.0, v.duration - margin)
                    cap = int(secs * v.fps) // self.cfg.extraction.frames_per_clip
                cap -= used.get((vid, cat), 0)
                if cap > 0 and secs > 0:
                    shares.setdefault(cat, {})[vid] = secs * weight
                    caps.setdefault(cat, {})[vid] = cap
        return shares, caps

    def _new_phase(self, st: State) -> bool:
        """Give each category's missing samples to videos that can still give; False if none."""
        phase = st.phase() + 1
        totals = {c: n for c, (n, _) in st.category_totals().items()}
        if phase == 0:
            deficits = {c.name: c.target for c in self.cfg.categories}
        else:
            deficits = {c.name: c.target - totals.get(c.name, 0) for c in self.cfg.categories}
        deficits = {c: d for c, d in deficits.items() if d > 0}
        if not deficits:
            return False
        shares, caps = self._shares(st, st.exhausted())
        amounts = split_targets(self.cfg, deficits, shares, caps)
        amounts = {c: a for c, a in amounts.items() if a}
        if not amounts:
            return False
        st.add_quotas(phase, amounts)
        if phase > 0:
            for cat, per in amounts.items():
                self.ui.line(f"→ {cat.upper()}: {sum(per.values())} more samples planned on "
                             f"{len(per)} video(s) to replace what exhausted videos could not give")
        return True

    def _plan_round(self, st: State, vid: int) -> bool:
        """Create the next round of slots for a video that still owes samples; False if none."""
        v = self.videos[vid]
        assert v.probe is not None
        quotas, achieved, exhausted = st.quotas(), st.achieved(), st.exhausted()
        owed = {}
        for cat, _ in self.cfg_by_id[vid].categories:
            d = quotas.get((vid, cat), 0) - achieved.get((vid, cat), 0)
            if d > 0 and (vid, cat) not in exhausted:
                owed[cat] = d
        if not owed:
            return False
        _, pending, next_id, last_round = st.slot_stats(vid)
        assert pending == 0
        reason = None
        if last_round + 1 >= MAX_ROUNDS:
            reason = f"{MAX_ROUNDS} rounds of replacement positions used"
        elif last_round >= 0 and st.round_yield(vid, last_round) == 0:
            reason = "the last round of positions gave no usable clip"
        geo = geometry(v.probe, self.cfg.extraction.reference_height)
        for cat in list(owed):
            if not fitting_formats(self.cfg, geo, cat):
                st.mark_exhausted(vid, [cat], "no format of the category fits the picture")
                self.ui.line(f"→ {v.name}: no {cat} format fits its {geo.width}×{geo.height} "
                             "picture; its share goes to other videos")
                del owed[cat]
        if reason is None and owed:
            slots = place_round(self.cfg, v.probe, v.name, owed, st.used_starts(vid), next_id,
                                st.phase(), last_round + 1)
            if slots:
                st.add_slots(vid, slots)
                return True
            reason = "no unused positions left"
        if owed:
            st.mark_exhausted(vid, list(owed), reason or "exhausted")
        return False

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, st: State) -> None:
        if st.phase() < 0:
            self._new_phase(st)
        workers = self.cfg.worker_count
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = self._pool(workers)
        inflight: dict[Future[Any], tuple[str, Any]] = {}
        busy_slots: set[tuple[int, int]] = set()
        probing: set[int] = set()
        ready: deque[Task] = deque()
        try:
            while True:
                self._tick(st)
                if self.stopping.is_set():
                    break
                if not self.paused.is_set():
                    self._fill(st, pool, inflight, busy_slots, probing, ready, workers, threads)
                if not inflight:
                    if self.paused.is_set():
                        time.sleep(DISK_RETRY_SECONDS)
                        continue
                    if self._new_phase(st):
                        continue
                    break
                done, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    kind, payload = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        pool = self._recover(pool, inflight, busy_slots, probing, ready, kind,
                                             payload, workers)
                        break
                    except Exception as e:
                        self._task_failed(kind, payload, e, busy_slots, probing)
                        continue
                    self._handle(st, kind, payload, result, busy_slots, probing)
            # Stopping: workers finish their current attempt and return what is complete.
            for fut in list(inflight):
                kind, payload = inflight.pop(fut)
                try:
                    self._handle(st, kind, payload, fut.result(timeout=120), busy_slots, probing)
                except Exception:
                    self._discard(payload)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._rollback_unrecorded(st)

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.ctx,
                                   initializer=init_worker, initargs=(self.stop_event,))

    def _fill(self, st: State, pool: ProcessPoolExecutor, inflight: dict[Future[Any], Any],
              busy: set[tuple[int, int]], probing: set[int], ready: deque[Task],
              workers: int, threads: int) -> None:
        """Keep every worker busy (plus one queued task), videos in config order."""
        limit = workers + 1
        if len(inflight) >= limit:
            return
        if not ready:
            self._make_tasks(st, ready, busy, probing, pool, inflight, threads)
        while ready and len(inflight) < limit:
            task = ready.popleft()
            fut = pool.submit(run_task, task)
            inflight[fut] = ("task", task)

    def _make_tasks(self, st: State, ready: deque[Task], busy: set[tuple[int, int]],
                    probing: set[int], pool: ProcessPoolExecutor,
                    inflight: dict[Future[Any], Any], threads: int) -> None:
        quotas = st.quotas()
        for vid, v in self.videos.items():
            if not self._usable(v) or vid in probing:
                continue
            if not any(q > 0 for (qv, _), q in quotas.items() if qv == vid):
                continue
            if v.probe is None:
                probing.add(vid)
                fut = pool.submit(probe_task, v.path, self.cfg.extraction.frames_per_clip)
                inflight[fut] = ("probe", vid)
                continue
            pending = [s for s in st.slots(vid, pending_only=True)
                       if (vid, s.slot_id) not in busy]
            if not pending and not any(b[0] == vid for b in busy):
                if self._plan_round(st, vid):
                    pending = st.slots(vid, pending_only=True)
                else:
                    self._video_finished(st, vid)
            pending.sort(key=lambda s: s.starts[0] if s.starts else 0)
            size = self.cfg.segment_slots
            for i in range(0, len(pending), size):
                chunk = tuple(pending[i:i + size])
                busy.update((vid, s.slot_id) for s in chunk)
                ready.append(Task(self.cfg, vid, v.name, self.cfg_by_id[vid].slug, v.probe,
                                  chunk, threads))
            if len(ready) >= 2:
                return

    def _handle(self, st: State, kind: str, payload: Any, result: Any,
                busy: set[tuple[int, int]], probing: set[int]) -> None:
        if kind == "probe":
            vid = payload
            probing.discard(vid)
            v = self.videos[vid]
            if isinstance(result, VideoError):
                st.upsert_video(v.name, v.path, "failed", stage=result.stage, reason=result.reason)
                st.mark_exhausted(vid, [c for c, _ in self.cfg_by_id[vid].categories],
                                  f"{result.stage}: {result.reason}")
                self._warn_unusable(v.name, v.path, result.stage, result.reason, result.hint)
            else:
                st.set_probe(vid, result)
                st.upsert_video(v.name, v.path, "ready")
                self.ui.line(f"🎬 Processing: {v.name}")
                cats = " + ".join(f"{c}({w:g})" for c, w in self.cfg_by_id[vid].categories)
                self.ui.line(f"   Categories: {cats}")
                self.ui.line(f"   {probe_summary(result)}")
            self.videos[vid] = next(r for r in st.videos() if r.id == vid)
            return
        task: Task = payload
        res: TaskResult = result
        if res.error is not None:
            self.ui.warn("Video cannot be decoded", [f"Video: {task.name}", f"Reason: {res.error}"],
                         ["Skipping and continuing..."])
        for slot in res.slots:
            busy.discard((task.video_id, slot.slot_id))
            if slot.complete:
                st.record_slot(task.video_id, slot)
                c = self.counters
                c.samples_this_run += len(slot.samples)
                c.attempts += len(slot.attempts)
                c.attempts_ok += sum(a.outcome == OK for a in slot.attempts)
                c.slots_done += 1
                c.slot_attempts += len(slot.attempts)
            else:
                remove_files(self.cfg.output_root / f for s in slot.samples for f, _ in s.files)
        if res.error is not None:
            st.upsert_video(task.name, task.probe.path, "failed", stage="decode", reason=res.error)
            st.mark_exhausted(task.video_id, [c for c, _ in self.cfg_by_id[task.video_id]
                                              .categories], res.error)
            self.videos[task.video_id] = next(r for r in st.videos() if r.id == task.video_id)
        if res.disk_full:
            self._pause_for_disk()

    def _task_failed(self, kind: str, payload: Any, err: BaseException,
                     busy: set[tuple[int, int]], probing: set[int]) -> None:
        """An unexpected worker error: report it, roll back, retry a bounded number of times."""
        where = self.videos[payload].name if kind == "probe" else payload.name
        self.ui.warn("Internal error in a worker", [f"Video: {where}",
                                                    f"Error: {type(err).__name__}: {err}"],
                     ["The work is rolled back and retried; please report this as a bug"])
        if kind == "probe":
            probing.discard(payload)
            return
        self._discard(payload)
        for s in payload.slots:
            busy.discard((payload.video_id, s.slot_id))
            key = (payload.video_id, s.slot_id)
            self.crashes[key] = self.crashes.get(key, 0) + 1
        self._give_up_crashing()

    def _discard(self, payload: Any) -> None:
        if isinstance(payload, Task):
            for s in payload.slots:
                for cat, fmt in s.formats:
                    remove_files(sample_files(self.cfg, self.cfg.category(cat),
                                              self.cfg.format(fmt), payload.slug, s.slot_id))

    def _recover(self, pool: ProcessPoolExecutor, inflight: dict[Future[Any], Any],
                 busy: set[tuple[int, int]], probing: set[int], ready: deque[Task], kind: str,
                 payload: Any, workers: int) -> ProcessPoolExecutor:
        """A worker died (OOM, kill): rebuild the pool and requeue its work (state has it)."""
        self.ui.warn("A worker process died", ["Its clips were not recorded and will be redone"],
                     ["Rebuilding the worker pool and continuing..."])
        lost = [(kind, payload), *inflight.values()]
        inflight.clear()
        ready.clear()
        pool.shutdown(wait=False, cancel_futures=True)
        for k, p in lost:
            if k == "probe":
                probing.discard(p)
                continue
            self._discard(p)
            for s in p.slots:
                busy.discard((p.video_id, s.slot_id))
                key = (p.video_id, s.slot_id)
                self.crashes[key] = self.crashes.get(key, 0) + 1
        self._give_up_crashing()
        return self._pool(workers)

    def _give_up_crashing(self) -> None:
        """Slots whose tasks killed workers again and again are recorded as failed."""
        from dsgen.extract import Attempt, SlotResult

        assert self.state is not None
        for (vid, slot_id), n in list(self.crashes.items()):
            if n >= MAX_TASK_CRASHES:
                res = SlotResult(slot_id, [Attempt(slot_id, 0, -1, "worker_crash", 0.0)],
                                 complete=True)
                for s in self.state.slots(vid, pending_only=True):
                    if s.slot_id == slot_id:
                        res.failed = {c: "worker_crash" for c, _ in s.formats}
                        self.state.record_slot(vid, res)
                del self.crashes[(vid, slot_id)]

    def _video_finished(self, st: State, vid: int) -> None:
        if vid in self.finished_videos:
            return
        self.finished_videos.add(vid)
        v = self.videos[vid]
        outcomes = st.outcome_counts(vid)
        total = sum(outcomes.values())
        ok = outcomes.get(OK, 0)
        rate = ok / total if total else 0.0
        made = sum(n for (qv, _), n in st.achieved().items() if qv == vid)
        idx = list(self.videos).index(vid) + 1
        self.ui.line(f"✓ Video {idx}/{len(self.videos)} {v.name}: {made} samples, "
                     f"{total} clips tried, success rate {rate:.1%}")
        if total and rate < self.cfg.extraction.low_success_warning:
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()) if k != OK)
            self.ui.warn("Low success rate on video",
                         [f"Video: {v.name}", f"Success Rate: {rate:.1%} "
                          f"(< {self.cfg.extraction.low_success_warning:.0%} threshold)",
                          f"Rejected: {reasons}"],
                         ["Consider checking video file quality", "Continuing with next video..."])

    # -- periodic --------------------------------------------------------------------------

    def _tick(self, st: State) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            self._progress_line(st)
        if now - self._last_disk >= self.cfg.disk.check_seconds or self.paused.is_set():
            self._last_disk = now
            self._check_disk(st)
        self._write_status()

    def _progress_line(self, st: State) -> None:
        totals = st.category_totals()
        parts = []
        for c in self.cfg.categories:
            n = totals.get(c.name, (0, 0))[0]
            frac = n / c.target if c.target else 1.0
            parts.append(f"{c.name.upper()} {n}/{c.target} {frac:.1%}")
        k = self.counters
        mins = max(1e-9, (time.time() - k.started) / 60)
        rate = k.attempts_ok / k.attempts if k.attempts else 0.0
        self.ui.line(f"… {' | '.join(parts)} | {k.samples_this_run / mins:.1f} patches/min, "
                     f"success {rate:.1%}")

    def _check_disk(self, st: State) -> None:
        try:
            usage = shutil.disk_usage(self.cfg.output_root)
        except OSError:
            return
        free_gb = gb(usage.free)
        if free_gb < self.cfg.disk.min_free_gb:
            self._pause_for_disk(free_gb)
            return
        if self.paused.is_set():
            if usage.free < self._resume_free:
                return
            self.paused.clear()
            self.ui.line(f"✓ Disk space is back ({free_gb:.2f} GB free); resuming")
        needed = self._bytes_needed(st)
        if needed > usage.free and not self._warned_space:
            self._warned_space = True
            self.ui.warn("Low disk space", [f"Available: {free_gb:.1f} GB",
                                            f"Estimated needed: {gb(needed):.1f} GB remaining"],
                         ["Consider freeing up disk space"])

    def _bytes_needed(self, st: State) -> int:
        """Bytes still to write: remaining samples × this category's average sample size."""
        need = 0
        for c in self.cfg.categories:
            n, b = st.category_totals().get(c.name, (0, 0))
            if n:
                need += int(b / n * max(0, c.target - n))
        return need

    def _pause_for_disk(self, free_gb: float | None = None) -> None:
        """Stop dispatching until the output filesystem has room again (never write a part)."""
        if self.paused.is_set():
            return
        self.paused.set()
        free = shutil.disk_usage(self.cfg.output_root).free
        # Resume only with clear headroom over the failure point, or we would retry and
        # fail in a tight loop while a nearly full disk hovers around the threshold.
        self._resume_free = max(int(self.cfg.disk.min_free_gb * 1e9), free + RESUME_HEADROOM)
        if free_gb is None:
            free_gb = gb(free)
        self.ui.warn("Disk full: extraction paused",
                     [f"Output: {self.cfg.output_root}", f"Available: {free_gb:.3f} GB",
                      f"Resuming when {gb(self._resume_free):.3f} GB are free"],
                     ["Nothing half-written was kept; free space and dsgen resumes by itself"])

    def _write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < self.cfg.status_seconds:
            return
        self._last_status = now
        assert self.state is not None
        try:
            write_status(self.cfg, self.state, self.status, self.counters.started,
                         list(self.videos))
        except OSError as e:
            self.ui.line(f"⚠️  Status file not written: {e}")

    # -- endings ---------------------------------------------------------------------------

    def _shutdown_message(self, st: State) -> None:
        self.ui.line(f"✓ Progress saved to {self.cfg.status_path.name} and {st.path}")
        for i, vid in enumerate(self.videos, 1):
            total, pending, _, _ = st.slot_stats(vid)
            if pending:
                self.ui.line(f"✓ Video {i}: {total - pending}/{total} frames completed")
                break
        self.ui.line(f"✓ Safe to resume later with: dsgen run --config {self.cfg.source}")

    def _completion(self, st: State) -> int:
        cfg, ui = self.cfg, self.ui
        totals = st.category_totals()
        images = sum(n for n, _ in totals.values())
        size = sum(b for _, b in totals.values())
        started = st.first_start() or self.counters.started
        done_videos = sum(1 for v in st.videos() if v.probe is not None)
        rule = "━" * 46
        short = [c for c in cfg.categories if totals.get(c.name, (0, 0))[0] < c.target]
        ui.line()
        ui.line("✅ Dataset generation complete!" if not short else
                "⚠️  Dataset generation finished with categories short of target")
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
        for c in short:
            ui.line(f"  ⚠ {c.name.upper()}: {c.target - totals.get(c.name, (0, 0))[0]:,} short —"
                    " its videos are exhausted; add videos to this category to reach the target")
        ui.line()
        ui.line(f"Output: {cfg.output_root}/")
        ui.line(rule)
        return EXIT_WARNING if short else EXIT_OK
