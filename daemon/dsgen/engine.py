"""The scheduler loop: dispatches work, records results, stops, reloads and waits cleanly.

The loop owns one `RunState` (`self.run`); its helpers — `Library`, `Progress`, `DiskGuard`,
`Dispatcher` — receive that and never the engine. Work runs behind the `Executor` seam;
workers return encoded files and the parent alone writes them under final names
(`_record`) and records them in the state.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from dsgen import __version__, ledger, split
from dsgen.config import Config, file_slug, load_config
from dsgen.damage import DamageLog, entry, entry_seconds
from dsgen.diskspace import DiskGuard, StateGuard
from dsgen.dispatch import HEADER_BATCH, Dispatcher
from dsgen.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_WARNING,
    DsgenError,
    OutputError,
    StateDamaged,
    StateError,
    StateFull,
    VideoError,
)
from dsgen.executor import Done, Executor, make_executor
from dsgen.extract import HeaderRequest, header_task
from dsgen.indexer import Indexer
from dsgen.journal import Backups, Safekeeper
from dsgen.library import Library, read_headers
from dsgen.metrics import Metrics
from dsgen.migrate import check_scheme, identity
from dsgen.model import (
    DAMAGED,
    WORKER_CRASH,
    Attempt,
    SlotResult,
    TaskResult,
    VideoProbe,
    split_key,
)
from dsgen.notify import Notifier
from dsgen.patches import geometry, scale_note
from dsgen.planner import OPENING, PLAN_META, new_phase, openers, plan_opening, plan_rest
from dsgen.probe import QuickProbe, probe_summary
from dsgen.progress import Progress
from dsgen.report import Reporter
from dsgen.runstate import PROBE, HeaderWork, IndexWork, ProbeWork, RunState, TaskWork, Work
from dsgen.state import State, clear_damage_mark, mark_damaged, translate
from dsgen.statecheck import verify_after_reboot
from dsgen.statelock import StateLock
from dsgen.writer import (
    DiskFull,
    PathScheme,
    alias_paths,
    clear_tmp,
    remove_stale_parts,
    write_descriptions,
    write_meta_info,
    write_sample,
)

# A slot or probe that kills its worker (running alone) this many times is given up.
MAX_TASK_CRASHES = 3
# Seconds between progress lines in plain mode.
PROGRESS_SECONDS = 10.0
# Seconds a stopping run waits for a worker to finish its current clip.
STOP_WAIT_SECONDS = 120.0
# How long one poll of the executor waits for results before the loop's periodic work.
POLL_SECONDS = 1.0
# A running run records that it is alive this often, so a killed run's time is known.
HEARTBEAT_SECONDS = 30.0
# At exit, how long a backup that is being made may still take.
BACKUP_WAIT_SECONDS = 30.0


def _unless_full(e: OSError, cfg: Config) -> None:
    """A full output disk is no reason to stop (the disk guard pauses the work); any other
    error that keeps dsgen from writing the dataset is: an OutputError saying where."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise OutputError(f"{e.filename or cfg.output_root}: cannot write the dataset: "
                          f"{e.strerror or e}",
                          hint="check that output_root is a folder dsgen may write to") from None


class Engine:
    """Runs one config until its targets are met (`run`) or forever (`daemon=True`)."""

    def __init__(self, cfg: Config, reporter: Reporter | None = None, *, daemon: bool = False,
                 metrics: Metrics | None = None, notifier: Notifier | None = None,
                 executor_factory: Callable[[Config], Executor] = make_executor,
                 lock: StateLock | None = None) -> None:
        self.run_state = run = RunState(cfg, daemon)
        self._executor_factory = executor_factory
        self.ui = reporter or Reporter()
        self.metrics = metrics
        self.notify = notifier or Notifier(environ={})
        self.progress = Progress(run, self.ui, metrics, self.notify)
        self.disk = DiskGuard(run, self.ui, metrics)
        self.state_guard = StateGuard(run, self.ui, metrics)
        self.library = Library(run, self.ui, self.progress.video_metrics, self._headers)
        self.dispatch = Dispatcher(run, self.ui, self.progress)
        self.library.forget_probe = self.dispatch.forget_probe
        self.library.in_flight = self._in_flight
        self.damage = DamageLog(run, self.ui, self.progress.video_metrics)
        self.indexer = Indexer(run, self.ui, self.damage)
        self.executor: Executor | None = None
        self._stash: list[Done] = []  # work that finished while sync waited for its own
        self.safekeeper: Safekeeper | None = None
        self._lock = lock
        self._run_id = 0
        self._cfg_mtime = _mtime(cfg.source)

    @property
    def cfg(self) -> Config:
        """The configuration in force (reloads replace it)."""
        return self.run_state.cfg

    # -- signals ---------------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop taking work; in-flight clips finish or are discarded; progress is kept."""
        self.run_state.request_stop(signum)

    def install_signals(self) -> None:
        """Ctrl+C / SIGTERM → graceful stop (a second Ctrl+C stops at once); SIGHUP → reload."""
        run = self.run_state

        def handler(signum: int, _frame: Any) -> None:
            if run.stopping.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.ui.line()
            self.ui.line("Received shutdown signal. Saving progress...", event="stopping",
                         signal=signal.Signals(signum).name)
            run.request_stop(signum)

        def hup(_signum: int, _frame: Any) -> None:
            run.reload_requested.set()
            run.wake.set()
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGHUP, hup)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Plan and extract until done (or forever as a daemon), then report; the exit code.

        A second process on the same state dir is refused before anything starts
        (`StateInUse`); start-up problems with the output or state folder end with a
        DsgenError that says what to do, never a traceback.
        """
        ui, cfg = self.ui, self.cfg
        lock = self._lock or StateLock.acquire(cfg.state_dir)
        try:
            ui.line(f"🚀 Initializing dsgen {__version__}...", event="starting",
                    version=__version__)
            ui.line(f"✓ Config loaded: {len(cfg.videos)} videos ({cfg.source})", event="config",
                    videos=len(cfg.videos), path=str(cfg.source))
            # Workers start now: their imports overlap the header checks below.
            self.executor = self._executor_factory(cfg)
            ui.line("✓ Creating output directories...")
            self._prepare_output(cfg)
            ui.line("✓ Checking for existing checkpoints...")
            opened = self._open_state()
            if isinstance(opened, int):
                return opened  # stopped while the state disk was full
            st = opened
            self.progress.state_path = str(st.path)
            try:
                st.check_quick()
                clear_damage_mark(cfg.state_dir)
                return self._run(st)
            except StateDamaged as e:  # status and monitor say so too from now on
                mark_damaged(cfg.state_dir, e)
                raise
            except sqlite3.DatabaseError as e:  # met while iterating rows
                err = translate(e, str(st.path))
                if isinstance(err, StateDamaged):
                    mark_damaged(cfg.state_dir, err)
                raise err from None
            finally:
                if self.safekeeper is not None:
                    self.safekeeper.finish(BACKUP_WAIT_SECONDS)
                with contextlib.suppress(StateError, sqlite3.Error):
                    st.close()
        finally:
            if self.executor is not None:
                self.executor.shutdown()
            if self._lock is None:
                lock.release()

    def _open_state(self) -> State | int:
        """The state, once its disk has room to open it (else the exit code of a stop)."""
        while True:
            try:
                return State(self.cfg.state_dir)
            except StateFull as e:
                self.state_guard.pause(e)
                if not self._wait_for_state_space():
                    return self._stopped()

    def _stopped(self) -> int:
        """Stopped by a signal: the predecessor's lines and 130 / 143."""
        self.progress.shutdown_lines()
        run = self.run_state
        return EXIT_TERMINATED if run.stop_signal == signal.SIGTERM else EXIT_INTERRUPTED

    def _prepare_output(self, cfg: Config) -> None:
        """The output root with its dataset descriptions; leftovers of killed writes gone.
        A full disk is no reason to stop (the disk guard pauses the work); anything else
        that keeps dsgen from writing there is."""
        try:
            cfg.output_root.mkdir(parents=True, exist_ok=True)
            stale = remove_stale_parts(cfg)
        except OSError as e:
            _unless_full(e, cfg)
            self.ui.warn("Temporary files of an interrupted write not removed: the output "
                         "disk is full", [f"Output: {cfg.output_root}"],
                         ["They are removed at the next start"], event="stale_parts_failed",
                         error=str(e))
            stale = 0
        if stale:
            self.ui.line(f"→ Removed {stale} temporary file(s) of an interrupted status or "
                         "description write", event="stale_parts", files=stale)

    def _describe(self, cfg: Config) -> None:
        """dataset.json and the folders' descriptions; a full output disk only delays them."""
        try:
            write_descriptions(cfg)
        except OSError as e:
            _unless_full(e, cfg)
            self.ui.warn("dataset.json not written: the output disk is full",
                         [f"Output: {cfg.output_root}"], ["It is written at the next start"],
                         event="descriptions_failed", error=str(e))

    def _run(self, st: State) -> int:
        run, ui, cfg = self.run_state, self.ui, self.cfg
        try:
            leftovers = clear_tmp(cfg)
        except OSError as e:
            leftovers = 0
            ui.warn("Temporary files of an interrupted write could not be removed",
                    [f"Folder: {cfg.output_root}/.dsgen-tmp", f"Error: {e}"],
                    ["They do not count; remove them by hand"], event="tmp_not_cleared")
        self.safekeeper = Safekeeper(st.journal, Backups(st.path, cfg.state_dir),
                                     self._backup_failed)
        resumed = st.phase() >= 0
        while True:  # a full state disk at start-up waits for space, as it does later
            try:
                self._start(st)
                break
            except StateFull as e:
                self.state_guard.pause(e)
                if not self._wait_for_state_space():
                    return self._stopped()
        if leftovers:
            ui.line(f"→ Removed {leftovers} temporary file(s) of an interrupted write")
        if resumed:
            self.progress.resume_lines()
        else:
            ui.line("→ No checkpoint found, starting fresh", event="fresh_start")
        self.progress.start_metrics(st)
        run_id = self._run_id
        run.status = "running"
        self.progress.write_status(force=True)
        self.notify.ready(self.progress.status_line())
        failed: BaseException | None = None
        try:
            self._loop(st)
        except KeyboardInterrupt:
            run.request_stop(signal.SIGINT)
        except BaseException as e:
            failed = e
            raise
        finally:
            self.notify.stopping()
            self.library.stop_watching()
            run.status = ("interrupted" if run.stopping.is_set() or failed is not None
                          else "finished")
            self._finish_run(st, run_id)
        if run.stopping.is_set():
            return self._stopped()
        short = self.progress.completion_lines(st)
        return EXIT_WARNING if short else EXIT_OK

    def _start(self, st: State) -> None:
        """The start-up steps that write the state (each can be repeated after a failure)."""
        assert self.safekeeper is not None
        self._check_identity(self.cfg, st)
        check_scheme(self.cfg, st)
        self._describe(self.cfg)  # only once the dataset is known to be this config's
        self.safekeeper.tick()  # the first start with this state gets a backup at once
        self._verify_after_reboot(st)
        ledger.load(self.run_state, st)
        self.library.start_watching(st)
        run = self.run_state
        run.plan_pending = st.get_meta(PLAN_META) == OPENING
        # New videos' headers are read as work proceeds, but for those a fresh plan opens with
        first = {n for n, _ in openers(self.cfg, self.library.video_cfgs()).values()}
        self.library.sync(st, later=lambda vc: vc.name not in first)
        self.indexer.resume(st)
        self.library.rollback_unrecorded(st)
        self._run_id = st.start_run()

    def _wait_for_state_space(self) -> bool:
        """Wait while the state's disk is full; False if asked to stop meanwhile."""
        run = self.run_state
        run.status = "paused"
        while not self.state_guard.tick():
            self.progress.write_status()
            if run.stopping.wait(1.0):
                return False
        return True

    def _finish_run(self, st: State, run_id: int) -> None:
        """The end of a run on disk and in the state; a failure here is reported, never
        raised over the reason the run ended."""
        try:
            if self.cfg.layout == "basicsr":
                write_meta_info(self.cfg, ((c, f, self._slug(n), s, sp)
                                           for c, f, n, s, sp in st.sample_keys()))
        except (OSError, StateError, sqlite3.Error) as e:
            self.ui.warn("meta_info.txt not written", [f"Error: {e}"],
                         ["It is written again at the end of the next run"],
                         event="meta_info_failed", error=str(e))
        self.progress.write_status(force=True)
        try:
            st.end_run(run_id, self.run_state.status)
        except StateError as e:
            self.ui.warn("The end of the run was not recorded", [f"Error: {e}"],
                         ["Nothing recorded was lost"], event="end_run_failed", error=str(e))

    def _backup_failed(self, error: str) -> None:
        self.ui.warn("State backup failed", [f"State: {self.cfg.state_dir}", f"Error: {error}"],
                     ["The journal still has every recorded sample; the backup is tried "
                      "again later"], event="backup_failed", error=error)

    def _verify_after_reboot(self, st: State) -> None:
        """After an OS crash, the newest samples' files may be missing: check that run's."""
        redo = verify_after_reboot(self.cfg, st)
        if redo is None:
            return
        checked, missing = redo
        self.ui.line(f"→ The last run ended with the machine (reboot): checked the files of "
                     f"its {checked} samples; {missing} incomplete, redone", event="reboot_check",
                     checked=checked, missing=missing)

    def _in_flight(self, vid: int) -> bool:
        """Work of a video is running or queued."""
        run = self.run_state
        return any(v == vid for v, _ in run.busy) or any(
            (w.task.video_id if isinstance(w, TaskWork) else w.video_id) == vid
            for w in run.inflight.values() if not isinstance(w, HeaderWork))

    def _slug(self, name: str) -> str:
        return next((v.slug for v in self.run_state.cfg_by_id.values() if v.name == name),
                    file_slug(name))

    @staticmethod
    def _identity(cfg: Config) -> str:
        return identity(cfg)

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

    def _headers(self, paths: list[Path]) -> list[QuickProbe | VideoError]:
        """Header checks for sync, in the workers (batches spread over both lanes: nothing is
        decoding yet at start-up), waited for here; other work that finishes meanwhile is
        kept for the loop. A batch whose worker died or raised is read here instead."""
        ex = self.executor
        if ex is None or not paths:
            return read_headers(paths)
        batches = [paths[i:i + HEADER_BATCH] for i in range(0, len(paths), HEADER_BATCH)]
        keys = {ex.submit(header_task, HeaderRequest(tuple(str(p) for p in b)),
                          lane=("io", "cpu")[i % 2]): i for i, b in enumerate(batches)}
        got: dict[int, list[QuickProbe | VideoError]] = {}
        while keys:
            for d in ex.poll(POLL_SECONDS):
                i = keys.pop(d.key, None)
                if i is None:
                    self._stash.append(d)
                elif isinstance(d.result, list):
                    got[i] = d.result
                else:
                    got[i] = read_headers(batches[i])
        return [h for i in range(len(batches)) for h in got[i]]

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, st: State) -> None:
        run = self.run_state
        assert self.executor is not None
        if st.phase() < 0 and st.get_meta(PLAN_META) is None:
            plan_opening(run, st, self.library.video_cfgs())
        try:
            while True:
                try:
                    if not self._step(st):
                        break
                except StateFull as e:  # nothing changed in the state: pause, then go on
                    self.state_guard.pause(e)
            self._drain(st)
        finally:
            self.executor.shutdown()
            with contextlib.suppress(StateError, sqlite3.Error):
                self.library.rollback_unrecorded(st)

    def _step(self, st: State) -> bool:
        """One turn of the loop; False when the run is over."""
        run = self.run_state
        assert self.executor is not None
        self._tick(st)
        if run.stopping.is_set():
            return False
        if run.reload_requested.is_set():
            self._reload(st)
        if run.daemon and (run.wake.is_set() or time.monotonic() - run.last["scan"]
                           >= self.cfg.daemon.rescan_seconds):
            self.library.rescan(st)
        if run.plan_pending and not run.unread and not any(
                isinstance(w, HeaderWork) for w in run.inflight.values()):
            for per in plan_rest(run, st).values():
                run.finished.difference_update(per)  # they have work again
        if not run.paused and not run.idle:
            self.dispatch.fill(st, self.executor)
            self._record_orphans(st)
            if run.inflight and run.counters.work_started is None:
                run.counters.work_started = time.time()  # this run's rates count from here
        if not run.inflight:
            if run.paused or run.idle:
                run.wake.wait(self.cfg.daemon.idle_seconds if not self.state_guard.paused
                              else min(1.0, self.cfg.daemon.idle_seconds))
                return True
            if self._new_phase(st):
                return True
            if not run.daemon:
                return False
            run.idle = True
            run.status = "idle"
            self.progress.idle_line()
            return True
        run.status = "running"
        stashed, self._stash = self._stash, []
        self._collect(st, stashed + self.executor.poll(0.0 if stashed else POLL_SECONDS))
        return True

    def _new_phase(self, st: State) -> bool:
        run = self.run_state
        if run.unread or run.plan_pending:
            return True  # headers still to read: planning waits for them
        amounts = new_phase(run, st)
        for per in amounts.values():
            run.finished.difference_update(per)  # they have work again
        if st.phase() > 0:
            for cat, per in amounts.items():
                self.ui.line(f"→ {cat.upper()}: {sum(per.values())} more samples planned on "
                             f"{len(per)} video(s)", event="phase", category=cat,
                             samples=sum(per.values()), videos=len(per))
        return bool(amounts)

    def _collect(self, st: State, done: list[Done]) -> None:
        """Record what finished; roll back and requeue what a dead worker lost."""
        run = self.run_state
        lost: list[Work] = []
        for d in done:
            work = run.inflight.pop(d.key, None)
            if work is None:
                continue
            try:
                if d.lost:
                    lost.append(work)
                elif d.error is not None:
                    self._work_failed(st, work, d.error)
                else:
                    self._handle(st, work, d.result)
            except StateFull as e:  # its slots stay pending: redone when space returns
                self._release(work)
                self.state_guard.pause(e)
        if lost:
            try:
                self._lost(st, lost, alone=len(lost) == 1 and not run.inflight)
            except StateFull as e:
                for w in lost:
                    self._release(w)
                self.state_guard.pause(e)

    def _release(self, work: Work) -> None:
        """Work whose result could not be recorded: its slots are free to be redone."""
        if isinstance(work, TaskWork):
            self.run_state.busy.difference_update(
                (work.task.video_id, s.slot_id) for s in work.task.slots)

    def _drain(self, st: State) -> None:
        """Stopping: workers finish their current attempt and return what is complete."""
        run = self.run_state
        assert self.executor is not None
        run.status = "stopping"
        self.executor.request_stop()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while run.inflight and time.monotonic() < deadline:
            self.progress.write_status()  # monitors keep seeing a live process
            for d in self.executor.poll(POLL_SECONDS):
                work = run.inflight.pop(d.key, None)
                if work is not None and d.result is not None:
                    with contextlib.suppress(StateFull):  # not recorded: redone next run
                        self._handle(st, work, d.result)
        run.inflight.clear()

    def _record_orphans(self, st: State) -> None:
        while self.dispatch.orphans:
            vid, res = self.dispatch.orphans.pop()
            self._record(st, vid, res)

    # -- results ---------------------------------------------------------------------------

    def _handle(self, st: State, work: Work, result: Any) -> None:
        if isinstance(work, HeaderWork):
            self.run_state.header_suspects.pop(work.names[0], None)
            self.library.apply_headers(st, work.names, result)
            return
        if isinstance(work, ProbeWork):
            self._handle_probe(st, work, result)
            return
        if isinstance(work, IndexWork):
            self.indexer.handle(st, work.video_id, result)
            return
        run = self.run_state
        task, res = work.task, result
        assert isinstance(res, TaskResult)
        self.progress.task_metrics(res)
        if res.damage:
            p = task.probe
            self.damage.record(st, task.video_id, [
                entry(what, a, b, p.first_pts, p.time_base, detail)
                for what, a, b, detail in res.damage])
        for slot in res.slots:
            run.busy.discard((task.video_id, slot.slot_id))
            run.suspects.discard((task.video_id, slot.slot_id))
        v = run.videos.get(task.video_id)
        if v is not None and v.status == "changed":
            return  # made from a file that was replaced or rewritten since: not recorded
        disk_full = False
        for slot in res.slots:
            if slot.complete and not disk_full:
                try:
                    disk_full = not self._record(st, task.video_id, slot)
                except StateFull as e:  # this and the later slots stay pending
                    self.state_guard.pause(e)
                    return
        if res.error is not None and not Path(task.probe.path).exists():
            self.library.set_unavailable(st, task.video_id, "unavailable",
                                         "the file disappeared (library unmounted?)")
        elif res.error is not None:
            v = run.videos[task.video_id]
            self.library.warn_unusable(v.name, v.path, "decode", res.error, None)
            self.library.set_status(st, task.video_id, "failed", "decode", res.error)
            self.dispatch.forget_probe(task.video_id)
        if disk_full:
            self.disk.pause()

    def _handle_probe(self, st: State, work: ProbeWork, result: VideoProbe | VideoError
                      ) -> None:
        run = self.run_state
        vid = work.video_id
        run.suspects.discard((vid, PROBE))
        if self.metrics is not None:
            self.metrics.stage("probe", time.monotonic() - work.started)
        v = run.videos[vid]
        if v.status == "changed":
            return  # the file changed while it was probed
        if isinstance(result, VideoError):
            self.library.set_status(st, vid, "failed", result.stage, result.reason)
            if result.stage == DAMAGED:
                self.damage.record(st, vid, [entry_seconds(
                    "undecodable", 0.0, v.duration or 0.0, result.reason)])
            self.library.warn_unusable(v.name, v.path, result.stage, result.reason,
                                       result.hint)
            return
        st.set_probe(vid, result)
        self.library.set_status(st, vid, "ready")
        self.indexer.probed(st, vid, result)
        cats = " + ".join(f"{c}({w:g})" for c, w in run.cfg_by_id[vid].categories)
        source = (f"{probe_summary(result)}; "
                  f"{scale_note(geometry(result, self.cfg.extraction.reference_height))}")
        self.ui.line(f"🎬 Processing: {v.name}", event="video_started", video=v.name,
                     categories=cats, source=source)
        if self.ui.log is None:
            self.ui.line(f"   Categories: {cats}")
            self.ui.line(f"   {source}")

    def _record(self, st: State, vid: int, slot: SlotResult) -> bool:
        """Write a complete slot's files and make it durable; False (nothing kept) on a full
        disk. Samples beyond a (lowered) target are dropped."""
        run, cfg = self.run_state, self.cfg
        targets = split.targets(cfg)
        keep = []
        taken: dict[str, int] = {}
        for s in slot.samples:
            k = split_key(s.category, s.split)
            if run.totals.get(k, 0) + taken.get(k, 0) >= targets.get(k, 0):
                slot.failed[s.category] = "target_reached"
                continue
            taken[k] = taken.get(k, 0) + 1
            keep.append(s)
        written: list[Path] = []
        scheme = PathScheme.of(cfg)
        try:
            for s in keep:
                aliases = alias_paths(scheme, [f for f, _ in s.files])
                copies = write_sample(cfg, [(f, b) for (f, _), b in zip(s.files, s.blobs,
                                                                        strict=True)], aliases)
                written.extend(cfg.output_root / f for f, _ in s.files)
                written.extend(cfg.output_root / a for a, _ in aliases)
                if copies and not run.alias_copies:
                    self.ui.warn("No hard links on the output filesystem",
                                 [f"Output: {cfg.output_root}",
                                  "LR aliases (" + ", ".join(n for n, _ in cfg.lr_aliases)
                                  + ") are written as copies: more disk space per sample"],
                                 ["Set lr_aliases = {} if your trainer does not read them"],
                                 event="alias_copies", output=str(cfg.output_root))
                run.alias_copies += copies
        except DiskFull:
            _remove_quietly(written)
            return False
        except OSError as e:
            _remove_quietly(written)
            return self._write_failed(st, vid, e)
        slot.samples = [replace(s, blobs=()) for s in keep]
        try:
            ledger.record_slot(run, st, vid, slot)
        except StateError:  # not recorded: its files must not stay (the slot is redone)
            _remove_quietly(written)
            raise
        self.progress.slot_recorded(slot, vid)
        return True

    def _write_failed(self, st: State, vid: int, err: OSError) -> bool:
        """A file name the filesystem refuses fails its video (data, not a crash); any other
        write error means the output cannot be written at all: the run stops and says so."""
        run = self.run_state
        if err.errno == errno.ENAMETOOLONG and vid in run.videos:
            v = run.videos[vid]
            reason = f"cannot write its files: {err.strerror} ({err.filename})"
            self.library.warn_unusable(v.name, v.path, "write", reason,
                                       "use a shorter output_root, category path or format dir")
            self.library.set_status(st, vid, "failed", "write", reason)
            return True
        raise OutputError(f"{err.filename or self.cfg.output_root}: cannot write a sample: "
                          f"{err.strerror or err}",
                          hint="check that output_root is writable and healthy; the run "
                               "resumes where it stopped")

    def _work_failed(self, st: State, work: Work, err: BaseException) -> None:
        """A worker raised (a bug, or input no check caught): report, requeue, bounded."""
        run = self.run_state
        if isinstance(work, HeaderWork):
            where = ", ".join(work.names)
        else:
            vid = work.task.video_id if isinstance(work, TaskWork) else work.video_id
            where = run.videos[vid].name if vid in run.videos else str(vid)
        self.ui.warn("Internal error in a worker", [f"Video: {where}",
                                                    f"Error: {type(err).__name__}: {err}"],
                     ["The work is rolled back and retried; please report this as a bug"],
                     event="worker_error", video=where, error=f"{type(err).__name__}: {err}")
        if self.metrics is not None:
            self.metrics.worker_failure("error")
        self._forget(st, [work], count=True, why=f"{type(err).__name__}: {err}")

    def _lost(self, st: State, lost: list[Work], alone: bool) -> None:
        """A worker died (OOM, kill, a crashing decoder): requeue its work, retried alone."""
        self.ui.warn("A worker process died", ["Its clips were not recorded and will be redone"],
                     ["Rebuilding the worker pool and continuing..."], event="worker_died")
        if self.metrics is not None:
            self.metrics.worker_failure("died")
        run = self.run_state
        for task in run.ready:  # queued, never started: simply no longer reserved
            run.busy.difference_update((task.video_id, s.slot_id) for s in task.slots)
        run.ready.clear()
        self._forget(st, lost, count=alone, why="it killed its worker process")

    def _forget(self, st: State, works: list[Work], count: bool, why: str) -> None:
        """Lost work is pending in the state and will be redone; its slots (or probe) become
        suspects, run alone; counted failures beyond MAX_TASK_CRASHES give it up."""
        run = self.run_state
        for w in works:
            if isinstance(w, IndexWork):
                self.indexer.failed(st, w.video_id, w.chunk, why)
                continue
            if isinstance(w, HeaderWork):
                self._header_lost(st, w, why)
                continue
            if isinstance(w, ProbeWork):
                keys = [(w.video_id, PROBE)]
            else:
                keys = [(w.task.video_id, s.slot_id) for s in w.task.slots]
                run.busy.difference_update(keys)
            for key in keys:
                run.suspects.add(key)
                if count:
                    run.deaths[key] = run.deaths.get(key, 0) + 1
                if run.deaths.get(key, 0) >= MAX_TASK_CRASHES:
                    self._give_up(st, key, why)

    def _header_lost(self, st: State, work: HeaderWork, why: str) -> None:
        """A lost header batch: its names are read again one at a time on the io lane; a
        file whose header read alone fails its worker MAX_TASK_CRASHES times is failed."""
        run = self.run_state
        for name in work.names:
            n = run.header_suspects.get(name, 0) + (len(work.names) == 1 and work.lane == "io")
            run.header_suspects[name] = n
            if n >= MAX_TASK_CRASHES and name in run.unread:
                del run.header_suspects[name]
                path = str(run.unread[name][1].path)
                self.library.apply_headers(st, (name,), [VideoError(
                    path, "open", f"reading its header: {why} ({MAX_TASK_CRASHES} times)",
                    "the file is probably damaged; re-copy or remux it")])

    def _give_up(self, st: State, key: tuple[int, int], why: str) -> None:
        """A slot (or probe) that failed its worker again and again is recorded as failed."""
        run = self.run_state
        vid, slot_id = key
        run.suspects.discard(key)
        run.deaths.pop(key, None)
        reason = f"{why} ({MAX_TASK_CRASHES} times)"
        if slot_id == PROBE:
            v = run.videos[vid]
            self.library.warn_unusable(v.name, v.path, "probe", reason,
                                       "the file is probably damaged; re-copy or remux it")
            self.library.set_status(st, vid, "failed", "probe", reason)
            return
        for s in st.slots(vid, pending_only=True):
            if s.slot_id == slot_id:
                res = SlotResult(slot_id, [Attempt(slot_id, 0, -1, WORKER_CRASH, 0.0, reason)],
                                 failed={c: WORKER_CRASH for c, _ in s.formats}, complete=True)
                self._record(st, vid, res)

    # -- reload ----------------------------------------------------------------------------

    def _reload(self, st: State) -> None:
        """Validate the config file again and swap it in; a bad one keeps the old running."""
        run = self.run_state
        run.reload_requested.clear()
        self.notify.reloading()
        try:
            new = load_config(self.cfg.source)
            if self._identity(new) != self._identity(self.cfg):
                raise DsgenError(f"{new.source}: seed, layout, frames_per_clip or output_root "
                                 "changed", hint="these are fixed for a dataset; revert them")
            if PathScheme.of(new) != PathScheme.of(self.cfg):
                raise DsgenError(f"{new.source}: bucket_size or lr_aliases changed",
                                 hint="stop dsgen and run `dsgen migrate` to move the files")
        except DsgenError as e:
            self.ui.warn("Config reload failed", [str(e)], ["Keeping the running configuration"],
                         event="reload_failed", error=str(e))
            if self.metrics is not None:
                self.metrics.reload(False)
            self.notify.ready(self.progress.status_line())
            return
        old_watch = self.cfg.watch
        run.cfg = new
        write_descriptions(new)
        if new.watch != old_watch:
            self.library.start_watching(st)
        run = self.run_state
        run.plan_pending = st.get_meta(PLAN_META) == OPENING
        # New videos' headers are read as work proceeds, but for those a fresh plan opens with
        first = {n for n, _ in openers(self.cfg, self.library.video_cfgs()).values()}
        self.library.sync(st, later=lambda vc: vc.name not in first)
        run.idle = False
        self.progress.start_metrics(st)
        if self.metrics is not None:
            self.metrics.reload(True)
        self.ui.line(f"✓ Config reloaded: {len(new.videos)} videos, targets "
                     + ", ".join(f"{c.name} {c.target}" for c in new.categories),
                     event="reloaded", targets={c.name: c.target for c in new.categories})
        self.notify.ready(self.progress.status_line())

    # -- periodic --------------------------------------------------------------------------

    def _tick(self, st: State) -> None:
        run = self.run_state
        now = time.monotonic()
        if run.stopping.is_set() and self.executor is not None:
            self.executor.request_stop()
        if self.executor is not None:
            run.workers = tuple((w.name, w.host, w.busy) for w in self.executor.workers())
        if now - run.last["progress"] >= PROGRESS_SECONDS and not run.idle:
            run.last["progress"] = now
            self.progress.progress_line()
        self.disk.tick()
        if self.state_guard.tick():
            run.wake.set()
        if self.safekeeper is not None:
            self.safekeeper.tick()  # a backup when due (also one covering a journal gap)
        if now - run.last.get("heartbeat", 0.0) >= HEARTBEAT_SECONDS and self._run_id:
            run.last["heartbeat"] = now
            st.touch_run(self._run_id)
        self.progress.worker_metrics()
        self.progress.write_status()
        if self.cfg.daemon.reload_on_change and run.daemon:
            m = _mtime(self.cfg.source)
            if m != self._cfg_mtime:
                self._cfg_mtime = m
                run.reload_requested.set()
        interval = self.notify.watchdog_interval()
        if interval is not None and now - run.last["watchdog"] >= interval and self.healthy():
            run.last["watchdog"] = now
            self.notify.watchdog()

    def healthy(self) -> bool:
        """Observer threads alive, executor usable, metrics server alive: what WATCHDOG=1
        vouches."""
        if not self.library.alive():
            return False
        if self.metrics is not None and self.cfg.metrics.enabled and not self.metrics.alive():
            return False
        return self.executor is not None and self.executor.healthy()


def _remove_quietly(paths: list[Path]) -> None:
    """Roll back written files; one that cannot be removed is replaced by the redo."""
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0

