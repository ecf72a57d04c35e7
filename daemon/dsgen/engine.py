"""The scheduler: dispatches work to the pool, records results, stops, reloads and waits cleanly."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from dsgen import __version__
from dsgen.config import Config, VideoCfg, load_config
from dsgen.diskspace import DiskGuard
from dsgen.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_WARNING,
    DsgenError,
    StateError,
    VideoError,
)
from dsgen.extract import Task, init_worker, run_task
from dsgen.library import Library
from dsgen.metrics import Metrics
from dsgen.model import Attempt, SlotResult, TaskResult, VideoProbe, VideoRow
from dsgen.notify import Notifier
from dsgen.patches import geometry, scale_note
from dsgen.planner import USABLE, new_phase, plan_round
from dsgen.probe import probe_summary, probe_video
from dsgen.progress import Counters, Progress
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.watcher import FolderWatcher
from dsgen.writer import clear_tmp, remove_files, write_descriptions, write_meta_info

# A task that kills its worker this many times is given up (its slots marked failed).
MAX_TASK_CRASHES = 3
# Seconds between progress lines in plain mode.
PROGRESS_SECONDS = 10.0
# Seconds a stopping run waits for a worker to finish its current clip.
STOP_WAIT_SECONDS = 120.0


def probe_task(path: str, min_frames: int) -> VideoProbe | VideoError:
    """Worker-side full probe (index scan is I/O + demux heavy): returns the probe or the error."""
    try:
        return probe_video(Path(path), min_frames)
    except VideoError as e:
        return e


class Engine(Library):
    """Runs one config until its targets are met (`run`) or forever (`daemon=True`)."""

    def __init__(self, cfg: Config, reporter: Reporter | None = None, *, daemon: bool = False,
                 metrics: Metrics | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.ui = reporter or Reporter()
        self.daemon = daemon
        self.metrics = metrics
        self.notify = notifier or Notifier(environ={})
        self.stopping = threading.Event()
        self.stop_signal = 0
        self.wake = threading.Event()  # set by signals and folder events: re-check now
        self.reload_requested = threading.Event()
        self.user_paused = threading.Event()  # 'p' in the live dashboard
        self.counters = Counters()
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.state: State | None = None
        self.videos: dict[int, VideoRow] = {}
        self.cfg_by_id: dict[int, VideoCfg] = {}
        self.watched: dict[Path, VideoCfg] = {}
        self.watcher: FolderWatcher | None = None
        self.crashes: dict[tuple[int, int], int] = {}
        self.finished_videos: set[int] = set()
        self.status = "initialized"
        self.disk = DiskGuard(self)
        self.progress = Progress(self)
        # Loop state (the parent owns it; workers only see Tasks).
        self.pool: ProcessPoolExecutor | None = None
        self.inflight: dict[Future[Any], tuple[str, Any]] = {}
        self.busy: set[tuple[int, int]] = set()
        self.probing: set[int] = set()
        self.ready: deque[Task] = deque()
        self.idle = False  # nothing to do until something changes (daemon)
        self._probe_started: dict[int, float] = {}
        self._last = {"status": 0.0, "progress": 0.0, "scan": 0.0, "watchdog": 0.0}
        self._cfg_mtime = _mtime(cfg.source)

    # -- signals ---------------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop taking work; in-flight clips finish or are discarded; progress is kept."""
        if self.stopping.is_set():
            return
        self.stop_signal = signum
        self.stopping.set()
        self.stop_event.set()
        self.wake.set()

    def toggle_pause(self) -> bool:
        """Pause or resume dispatching (running clips finish); True when now paused."""
        if self.user_paused.is_set():
            self.user_paused.clear()
            self.ui.line("▶ Resumed", event="resumed")
        else:
            self.user_paused.set()
            self.ui.line("⏸ Paused: running clips finish, no new work starts", event="paused")
        self.wake.set()
        return self.user_paused.is_set()

    def install_signals(self) -> None:
        """Ctrl+C / SIGTERM → graceful stop (a second Ctrl+C stops at once); SIGHUP → reload."""
        def handler(signum: int, _frame: Any) -> None:
            if self.stopping.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.ui.line()
            self.ui.line("Received shutdown signal. Saving progress...", event="stopping",
                         signal=signal.Signals(signum).name)
            self.request_stop(signum)

        def hup(_signum: int, _frame: Any) -> None:
            self.reload_requested.set()
            self.wake.set()
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGHUP, hup)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Plan and extract until done (or forever as a daemon), then report; the exit code."""
        cfg, ui = self.cfg, self.ui
        ui.line(f"🚀 Initializing dsgen {__version__}...", event="starting", version=__version__)
        ui.line(f"✓ Config loaded: {len(cfg.videos)} videos ({cfg.source})", event="config",
                videos=len(cfg.videos), path=str(cfg.source))
        ui.line("✓ Creating output directories...")
        cfg.output_root.mkdir(parents=True, exist_ok=True)
        write_descriptions(cfg)
        ui.line("✓ Checking for existing checkpoints...")
        self.state = st = State(cfg.state_dir)
        self._check_identity(cfg, st)
        leftovers = clear_tmp(cfg)
        resumed = st.phase() >= 0
        if cfg.watch:
            self.watcher = FolderWatcher(cfg.watch, on_hint=self.wake.set)
            self.watcher.start()
            self._scan_watched(st, initial=True)
        self._sync_videos(st)
        self._rollback_unrecorded(st)
        if leftovers:
            ui.line(f"→ Removed {leftovers} temporary file(s) of an interrupted write")
        self.progress.resume_lines(st) if resumed else ui.line(
            "→ No checkpoint found, starting fresh", event="fresh_start")
        self.progress.start_metrics(st)
        run_id = st.start_run()
        self.status = "running"
        self.progress.write_status(force=True)
        self.notify.ready(self.progress.status_line(st))
        try:
            self._loop(st)
        except KeyboardInterrupt:
            self.request_stop(signal.SIGINT)
        finally:
            self.notify.stopping()
            if self.watcher is not None:
                self.watcher.stop()
            self.status = "interrupted" if self.stopping.is_set() else "finished"
            if self.cfg.layout == "basicsr":
                write_meta_info(self.cfg, ((c, f, self._slug(n), s)
                                           for c, f, n, s in st.sample_keys()))
            self.progress.write_status(force=True)
            st.end_run(run_id, self.status)
        if self.stopping.is_set():
            self.progress.shutdown_lines(st)
            code = EXIT_TERMINATED if self.stop_signal == signal.SIGTERM else EXIT_INTERRUPTED
        else:
            short = self.progress.completion_lines(st)
            code = EXIT_WARNING if short else EXIT_OK
        st.close()
        return code

    def _slug(self, name: str) -> str:
        return next((v.slug for v in self.cfg_by_id.values() if v.name == name), name)

    @staticmethod
    def _identity(cfg: Config) -> str:
        return json.dumps({"seed": cfg.seed, "layout": cfg.layout,
                           "frames": cfg.extraction.frames_per_clip,
                           "root": str(cfg.output_root.resolve())}, sort_keys=True)

    def _check_identity(self, cfg: Config, st: State) -> None:
        """Refuse to mix datasets: seed, layout, frame count and root must match the state's."""
        ident = self._identity(cfg)
        old = st.get_meta("identity")
        if old is None:
            st.set_meta("identity", ident)
        elif old != ident:
            raise StateError(
                f"{st.path}: this state was made with {old}, the config now says {ident}",
                hint="restore the old seed/layout/output_root, or use a new state_dir and "
                     "output_root for a new dataset")

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, st: State) -> None:
        if st.phase() < 0:
            new_phase(self.cfg, st, self.videos, self.cfg_by_id)
        self.pool = self._new_pool()
        try:
            while True:
                self._tick(st)
                if self.stopping.is_set():
                    break
                if self.reload_requested.is_set():
                    self._reload(st)
                if self.daemon and (self.wake.is_set() or time.monotonic() - self._last["scan"]
                                    >= self.cfg.daemon.rescan_seconds):
                    self._rescan(st)
                held = self.disk.paused or self.user_paused.is_set()
                if not held and not self.idle:
                    self._fill(st)
                if not self.inflight:
                    if held or self.idle:
                        self.wake.wait(self.cfg.daemon.idle_seconds)
                        continue
                    if self._new_phase(st):
                        continue
                    if not self.daemon:
                        break
                    self.idle = True
                    self.status = "idle"
                    self.progress.idle_line(st)
                    continue
                self.status = "running"
                self._collect(st)
            self._drain(st)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self._rollback_unrecorded(st)

    def _new_phase(self, st: State) -> bool:
        amounts = new_phase(self.cfg, st, self.videos, self.cfg_by_id)
        for per in amounts.values():
            self.finished_videos.difference_update(per)  # they have work again
        if st.phase() > 0:
            for cat, per in amounts.items():
                self.ui.line(f"→ {cat.upper()}: {sum(per.values())} more samples planned on "
                             f"{len(per)} video(s)", event="phase", category=cat,
                             samples=sum(per.values()), videos=len(per))
        return bool(amounts)

    def _collect(self, st: State) -> None:
        """Wait briefly for results and record them."""
        done, _ = wait(list(self.inflight), timeout=1.0, return_when=FIRST_COMPLETED)
        for fut in done:
            if fut not in self.inflight:
                continue  # dropped by a pool rebuild in this same batch
            kind, payload = self.inflight.pop(fut)
            try:
                result = fut.result()
            except BrokenProcessPool:
                self._recover(kind, payload)
                return
            except Exception as e:
                self._task_failed(kind, payload, e)
                continue
            self._handle(st, kind, payload, result)

    def _drain(self, st: State) -> None:
        """Stopping: workers finish their current attempt and return what is complete."""
        self.status = "stopping"
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self.inflight and time.monotonic() < deadline:
            self.progress.write_status()  # monitors keep seeing a live process
            done, _ = wait(list(self.inflight), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                kind, payload = self.inflight.pop(fut)
                try:
                    self._handle(st, kind, payload, fut.result())
                except Exception:  # unrecorded work is simply redone next time
                    self._discard(payload)
        for _kind, payload in self.inflight.values():
            self._discard(payload)
        self.inflight.clear()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.cfg.worker_count, mp_context=self.ctx,
                                   initializer=init_worker, initargs=(self.stop_event,))

    def _fill(self, st: State) -> None:
        """Keep every worker busy (plus one queued task), videos in config order."""
        assert self.pool is not None
        limit = self.cfg.worker_count + 1
        if len(self.inflight) >= limit:
            return
        if not self.ready:
            self._make_tasks(st)
        while self.ready and len(self.inflight) < limit:
            task = self.ready.popleft()
            self.inflight[self.pool.submit(run_task, task)] = ("task", task)
        self.progress.worker_metrics()

    def _make_tasks(self, st: State) -> None:
        assert self.pool is not None
        threads = max(1, (os.cpu_count() or 1) // self.cfg.worker_count)
        with_quota = {vid for (vid, _), q in st.quotas().items() if q > 0}
        known = {c.name for c in self.cfg.categories}
        for vid, v in self.videos.items():
            if v.status not in USABLE or vid in self.probing or vid not in with_quota:
                continue
            if v.probe is None:
                self.probing.add(vid)
                self._probe_started[vid] = time.monotonic()
                fut = self.pool.submit(probe_task, v.path, self.cfg.extraction.frames_per_clip)
                self.inflight[fut] = ("probe", vid)
                continue
            pending = [s for s in st.slots(vid, pending_only=True)
                       if (vid, s.slot_id) not in self.busy]
            if not pending and not any(b[0] == vid for b in self.busy):
                pending = self._next_round(st, vid)
            pending.sort(key=lambda s: s.starts[0] if s.starts else 0)
            for s in pending:
                if not any(c in known for c, _ in s.formats):  # category removed by a reload
                    self._record(st, vid, SlotResult(s.slot_id, complete=True))
            pending = [s for s in pending if any(c in known for c, _ in s.formats)]
            size = self.cfg.segment_slots
            for i in range(0, len(pending), size):
                chunk = tuple(pending[i:i + size])
                self.busy.update((vid, s.slot_id) for s in chunk)
                self.ready.append(Task(self.cfg, vid, v.name, self.cfg_by_id[vid].slug, v.probe,
                                       chunk, threads))
            if len(self.ready) >= 2:
                return

    def _next_round(self, st: State, vid: int) -> list[Any]:
        v = self.videos[vid]
        out = plan_round(self.cfg, st, v, self.cfg_by_id[vid])
        for note in out.notes:
            self.ui.line(f"→ {v.name}: {note}", event="note", video=v.name, note=note)
        if out.planned:
            return list(st.slots(vid, pending_only=True))
        self.progress.video_finished(st, vid)
        return []

    # -- results ---------------------------------------------------------------------------

    def _handle(self, st: State, kind: str, payload: Any, result: Any) -> None:
        if kind == "probe":
            self._handle_probe(st, payload, result)
            return
        task: Task = payload
        res: TaskResult = result
        self.progress.task_metrics(res)
        for slot in res.slots:
            self.busy.discard((task.video_id, slot.slot_id))
            if slot.complete:
                self._record(st, task.video_id, slot)
            else:
                remove_files(self.cfg.output_root / f for s in slot.samples for f, _ in s.files)
        if res.error is not None and not Path(task.probe.path).exists():
            self._set_unavailable(st, task.video_id, "unavailable",
                                  "the file disappeared (library unmounted?)")
        elif res.error is not None:
            v = self.videos[task.video_id]
            self._warn_unusable(v.name, v.path, "decode", res.error, None)
            st.upsert_video(v.name, v.path, "failed", stage="decode", reason=res.error)
            st.mark_exhausted(task.video_id, [c for c, _ in self.cfg_by_id[task.video_id]
                                              .categories], res.error)
            self.videos[task.video_id] = st.video(task.video_id)
        if res.disk_full:
            self.disk.pause()

    def _handle_probe(self, st: State, vid: int, result: VideoProbe | VideoError) -> None:
        self.probing.discard(vid)
        started = self._probe_started.pop(vid, None)
        if self.metrics is not None and started is not None:
            self.metrics.stage("probe", time.monotonic() - started)
        v = self.videos[vid]
        if isinstance(result, VideoError):
            st.upsert_video(v.name, v.path, "failed", stage=result.stage, reason=result.reason)
            st.mark_exhausted(vid, [c for c, _ in self.cfg_by_id[vid].categories],
                              f"{result.stage}: {result.reason}")
            self._warn_unusable(v.name, v.path, result.stage, result.reason, result.hint)
        else:
            st.set_probe(vid, result)
            st.upsert_video(v.name, v.path, "ready")
            cats = " + ".join(f"{c}({w:g})" for c, w in self.cfg_by_id[vid].categories)
            source = (f"{probe_summary(result)}; "
                      f"{scale_note(geometry(result, self.cfg.extraction.reference_height))}")
            self.ui.line(f"🎬 Processing: {v.name}", event="video_started", video=v.name,
                         categories=cats, source=source)
            if self.ui.log is None:
                self.ui.line(f"   Categories: {cats}")
                self.ui.line(f"   {source}")
        self.videos[vid] = st.video(vid)
        self.progress.video_metrics()

    def _record(self, st: State, vid: int, slot: SlotResult) -> None:
        """Make a complete slot durable; samples beyond a (lowered) target are dropped."""
        targets = {c.name: c.target for c in self.cfg.categories}
        keep = []
        for s in slot.samples:
            if self.progress.totals.get(s.category, 0) >= targets.get(s.category, 0):
                remove_files(self.cfg.output_root / f for f, _ in s.files)
                slot.failed[s.category] = "target_reached"
            else:
                keep.append(s)
                self.progress.totals[s.category] = self.progress.totals.get(s.category, 0) + 1
        slot.samples = keep
        st.record_slot(vid, slot)
        self.progress.slot_recorded(slot)

    def _task_failed(self, kind: str, payload: Any, err: BaseException) -> None:
        """An unexpected worker error: report it, roll back, retry a bounded number of times."""
        where = self.videos[payload].name if kind == "probe" else payload.name
        self.ui.warn("Internal error in a worker", [f"Video: {where}",
                                                    f"Error: {type(err).__name__}: {err}"],
                     ["The work is rolled back and retried; please report this as a bug"],
                     event="worker_error", video=where, error=f"{type(err).__name__}: {err}")
        if self.metrics is not None:
            self.metrics.worker_failure("error")
        self._forget([(kind, payload)])

    def _discard(self, payload: Any) -> None:
        if isinstance(payload, Task):
            for s in payload.slots:
                remove_files(self._slot_paths(payload.slug, s.slot_id, s.formats))

    def _forget(self, lost: list[tuple[str, Any]]) -> None:
        """Roll back lost work; it is pending in the state and will be dispatched again."""
        for k, p in lost:
            if k == "probe":
                self.probing.discard(p)
                continue
            self._discard(p)
            for s in p.slots:
                key = (p.video_id, s.slot_id)
                self.busy.discard(key)
                self.crashes[key] = self.crashes.get(key, 0) + 1
        self._give_up_crashing()

    def _recover(self, kind: str, payload: Any) -> None:
        """A worker died (OOM, kill): rebuild the pool and requeue its work (state has it)."""
        self.ui.warn("A worker process died", ["Its clips were not recorded and will be redone"],
                     ["Rebuilding the worker pool and continuing..."], event="worker_died")
        if self.metrics is not None:
            self.metrics.worker_failure("died")
        lost = [(kind, payload), *self.inflight.values()]
        self.inflight.clear()
        for task in self.ready:  # queued, never started: simply no longer reserved
            self.busy.difference_update((task.video_id, s.slot_id) for s in task.slots)
        self.ready.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self._forget(lost)
        self.pool = self._new_pool()

    def _give_up_crashing(self) -> None:
        """Slots whose tasks killed workers again and again are recorded as failed."""
        assert self.state is not None
        for (vid, slot_id), n in list(self.crashes.items()):
            if n < MAX_TASK_CRASHES:
                continue
            for s in self.state.slots(vid, pending_only=True):
                if s.slot_id == slot_id:
                    res = SlotResult(slot_id, [Attempt(slot_id, 0, -1, "worker_crash", 0.0)],
                                     failed={c: "worker_crash" for c, _ in s.formats},
                                     complete=True)
                    self._record(self.state, vid, res)
            del self.crashes[(vid, slot_id)]

    # -- reload ----------------------------------------------------------------------------

    def _reload(self, st: State) -> None:
        """Validate the config file again and swap it in; a bad one keeps the old running."""
        self.reload_requested.clear()
        self.notify.reloading()
        try:
            new = load_config(self.cfg.source)
            if self._identity(new) != self._identity(self.cfg):
                raise DsgenError(f"{new.source}: seed, layout, frames_per_clip or output_root "
                                 "changed", hint="these are fixed for a dataset; revert them")
        except DsgenError as e:
            self.ui.warn("Config reload failed", [str(e)], ["Keeping the running configuration"],
                         event="reload_failed", error=str(e))
            if self.metrics is not None:
                self.metrics.reload(False)
            self.notify.ready(self.progress.status_line(st))
            return
        old_watch = self.cfg.watch
        self.cfg = new
        write_descriptions(new)
        if new.watch != old_watch:
            if self.watcher is not None:
                self.watcher.stop()
            self.watched.clear()
            self.watcher = FolderWatcher(new.watch, on_hint=self.wake.set) if new.watch else None
            if self.watcher is not None:
                self.watcher.start()
                self._scan_watched(st, initial=True)
        self._sync_videos(st)
        self.idle = False
        self.progress.start_metrics(st)
        if self.metrics is not None:
            self.metrics.reload(True)
        self.ui.line(f"✓ Config reloaded: {len(new.videos)} videos, targets "
                     + ", ".join(f"{c.name} {c.target}" for c in new.categories),
                     event="reloaded", targets={c.name: c.target for c in new.categories})
        self.notify.ready(self.progress.status_line(st))

    # -- periodic --------------------------------------------------------------------------

    def _tick(self, st: State) -> None:
        now = time.monotonic()
        if now - self._last["progress"] >= PROGRESS_SECONDS and not self.idle:
            self._last["progress"] = now
            self.progress.progress_line(st)
        self.disk.tick(st)
        self.progress.worker_metrics()
        self.progress.write_status()
        if self.cfg.daemon.reload_on_change and self.daemon:
            m = _mtime(self.cfg.source)
            if m != self._cfg_mtime:
                self._cfg_mtime = m
                self.reload_requested.set()
        interval = self.notify.watchdog_interval()
        if interval is not None and now - self._last["watchdog"] >= interval and self.healthy():
            self._last["watchdog"] = now
            self.notify.watchdog()

    def healthy(self) -> bool:
        """Observer threads alive, pool usable, metrics server alive: what WATCHDOG=1 vouches."""
        if self.watcher is not None and not self.watcher.alive():
            return False
        if self.metrics is not None and self.cfg.metrics.enabled and not self.metrics.alive():
            return False
        return self.pool is not None


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
