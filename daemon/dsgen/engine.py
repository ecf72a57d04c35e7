"""The scheduler loop: dispatches work, records results, stops, reloads and waits cleanly.

The loop owns one `RunState` (`self.run_state`); its helpers — `Library`, `Progress`,
`DiskGuard`, `Dispatcher`, `Results` — receive that and never the engine. Work runs behind
the `Executor` seam; workers return encoded files and the parent alone writes them under
final names and records them in the state (`Results.record`).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsgen import __version__, ledger
from dsgen.config import Config, file_slug, load_config
from dsgen.damage import DamageLog
from dsgen.diskspace import DiskGuard, StateGuard
from dsgen.dispatch import Dispatcher
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
)
from dsgen.executor import Executor, make_executor
from dsgen.headers import HeaderReader
from dsgen.indexer import Indexer
from dsgen.journal import Backups, Safekeeper
from dsgen.library import Library
from dsgen.metrics import Metrics
from dsgen.migrate import check_scheme, identity
from dsgen.notify import Notifier
from dsgen.planner import (
    fresh_plan,
    load_opening,
    new_phase,
    openers,
    plan_opening,
    plan_rest,
)
from dsgen.progress import Progress
from dsgen.report import Reporter
from dsgen.results import Results
from dsgen.runstate import HeaderWork, RunState
from dsgen.state import State, clear_damage_mark, mark_damaged, translate
from dsgen.statecheck import verify_after_reboot
from dsgen.statelock import StateLock
from dsgen.writer import (
    PathScheme,
    clear_tmp,
    remove_stale_parts,
    write_descriptions,
    write_meta_info,
)

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
        self.headers = HeaderReader()  # sync's header checks, in the workers
        self.library = Library(run, self.ui, self.progress.video_metrics, self.headers)
        self.dispatch = Dispatcher(run, self.ui, self.progress)
        self.library.forget_probe = self.dispatch.forget_probe
        self.damage = DamageLog(run, self.ui, self.progress.video_metrics)
        self.indexer = Indexer(run, self.ui, self.damage)
        self.results = Results(run, self.ui, metrics, self.library, self.progress, self.disk,
                               self.state_guard, self.damage, self.indexer, self.dispatch)
        self.executor: Executor | None = None
        self.safekeeper: Safekeeper | None = None
        self._lock = lock
        self._run_id = 0
        self._cfg_mtime = _mtime(cfg.source)
        self._fresh: str | None = None  # a fresh state's phase 0: "one" or "two" steps

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
            self.executor = self.headers.executor = self._executor_factory(cfg)
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
        load_opening(self.run_state, st)
        self._fresh = fresh_plan(self.run_state, st, self.library.video_cfgs())
        self._sync(st)
        self.indexer.resume(st)
        self.library.rollback_unrecorded(st)
        self._run_id = st.start_run()

    def _sync(self, st: State) -> None:
        """Sync the library; new videos' headers are read as work proceeds, except those a
        fresh plan opens with, and all of them for a fresh plan in one step."""
        if self._fresh == "one":
            self.library.sync(st)
            return
        first = {n for n, _ in openers(self.cfg, self.library.video_cfgs()).values()}
        self.library.sync(st, later=lambda vc: vc.name not in first)

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

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, st: State) -> None:
        run = self.run_state
        assert self.executor is not None
        if self._fresh == "two":
            plan_opening(run, st, self.library.video_cfgs())
        elif self._fresh == "one":
            new_phase(run, st)
        self._fresh = None
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
            self.results.record_orphans(st)
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
        stashed, self.headers.stash = self.headers.stash, []
        self.results.collect(st, stashed + self.executor.poll(0.0 if stashed else POLL_SECONDS))
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
                        self.results.handle(st, work, d.result)
        run.inflight.clear()

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
        self._sync(st)
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


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0

