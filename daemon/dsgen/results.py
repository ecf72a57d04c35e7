"""Results: what finished work becomes (durable samples, probes, headers, index chunks),
and what lost or failed work costs (a retry, run alone, bounded).

The loop hands everything that finished to `Results.collect`; like the loop's other
helpers, `Results` receives the run-state and its sibling helpers, never the engine. A
sample becomes durable in `Results.record`: its files under final names, then one state
transaction.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from dsgen import ledger, split
from dsgen.damage import DamageLog, entry, entry_seconds
from dsgen.diskspace import DiskGuard, StateGuard
from dsgen.dispatch import Dispatcher
from dsgen.errors import OutputError, StateError, StateFull, VideoError
from dsgen.executor import Done
from dsgen.headers import MAX_HEADER_CRASHES, header_crash
from dsgen.indexer import Indexer
from dsgen.library import Library
from dsgen.metrics import Metrics
from dsgen.model import (
    DAMAGED,
    WORKER_CRASH,
    Attempt,
    SlotResult,
    TaskResult,
    VideoProbe,
    split_key,
)
from dsgen.patches import geometry, scale_note
from dsgen.probe import probe_summary
from dsgen.progress import Progress
from dsgen.report import Reporter
from dsgen.runstate import PROBE, HeaderWork, IndexWork, ProbeWork, RunState, TaskWork, Work
from dsgen.state import State
from dsgen.writer import DiskFull, PathScheme, alias_paths, write_sample

# A slot or probe that kills its worker (running alone) this many times is given up.
MAX_TASK_CRASHES = 3


class Results:
    """Records finished work into the state and the output tree; requeues lost work."""

    def __init__(self, run: RunState, ui: Reporter, metrics: Metrics | None, library: Library,
                 progress: Progress, disk: DiskGuard, state_guard: StateGuard,
                 damage: DamageLog, indexer: Indexer, dispatch: Dispatcher) -> None:
        self.run = run
        self.ui = ui
        self.metrics = metrics
        self.library = library
        self.progress = progress
        self.disk = disk
        self.state_guard = state_guard
        self.damage = damage
        self.indexer = indexer
        self.dispatch = dispatch

    def collect(self, st: State, done: list[Done]) -> None:
        """Record what finished; roll back and requeue what a dead worker lost."""
        run = self.run
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
                    self.handle(st, work, d.result)
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
            self.run.busy.difference_update(
                (work.task.video_id, s.slot_id) for s in work.task.slots)

    def record_orphans(self, st: State) -> None:
        """Record empty the pending slots whose category a reload removed."""
        while self.dispatch.orphans:
            vid, res = self.dispatch.orphans.pop()
            self.record(st, vid, res)

    def handle(self, st: State, work: Work, result: Any) -> None:
        """Record one finished piece of work by its kind."""
        if isinstance(work, HeaderWork):
            self.run.header_suspects.pop(work.names[0], None)
            self.library.apply_headers(st, work.names, result)
            return
        if isinstance(work, ProbeWork):
            self._handle_probe(st, work, result)
            return
        if isinstance(work, IndexWork):
            self.indexer.handle(st, work.video_id, result)
            return
        run = self.run
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
                    disk_full = not self.record(st, task.video_id, slot)
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
        run = self.run
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
                  f"{scale_note(geometry(result, self.run.cfg.extraction.reference_height))}")
        self.ui.line(f"🎬 Processing: {v.name}", event="video_started", video=v.name,
                     categories=cats, source=source)
        if self.ui.log is None:
            self.ui.line(f"   Categories: {cats}")
            self.ui.line(f"   {source}")

    def record(self, st: State, vid: int, slot: SlotResult) -> bool:
        """Write a complete slot's files and make it durable; False (nothing kept) on a full
        disk. Samples beyond a (lowered) target are dropped."""
        run, cfg = self.run, self.run.cfg
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
        run = self.run
        if err.errno == errno.ENAMETOOLONG and vid in run.videos:
            v = run.videos[vid]
            reason = f"cannot write its files: {err.strerror} ({err.filename})"
            self.library.warn_unusable(v.name, v.path, "write", reason,
                                       "use a shorter output_root, category path or format dir")
            self.library.set_status(st, vid, "failed", "write", reason)
            return True
        raise OutputError(f"{err.filename or self.run.cfg.output_root}: cannot write a sample: "
                          f"{err.strerror or err}",
                          hint="check that output_root is writable and healthy; the run "
                               "resumes where it stopped")

    def _work_failed(self, st: State, work: Work, err: BaseException) -> None:
        """A worker raised (a bug, or input no check caught): report, requeue, bounded."""
        run = self.run
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
        run = self.run
        for task in run.ready:  # queued, never started: simply no longer reserved
            run.busy.difference_update((task.video_id, s.slot_id) for s in task.slots)
        run.ready.clear()
        self._forget(st, lost, count=alone, why="it killed its worker process")

    def _forget(self, st: State, works: list[Work], count: bool, why: str) -> None:
        """Lost work is pending in the state and will be redone; its slots (or probe) become
        suspects, run alone; counted failures beyond MAX_TASK_CRASHES give it up."""
        run = self.run
        for w in works:
            if isinstance(w, IndexWork):
                self.indexer.failed(st, w.video_id, w.chunk, why)
                continue
            if isinstance(w, HeaderWork):
                # blamed only when it was the io lane's one piece of lost work
                alone = sum(isinstance(x, IndexWork) or (isinstance(x, HeaderWork)
                            and x.lane == "io") for x in works) == 1
                self._header_lost(st, w, why, alone)
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

    def _header_lost(self, st: State, work: HeaderWork, why: str, alone: bool) -> None:
        """A lost header batch: its names are read again one at a time on the io lane; a
        file whose header read alone fails its worker MAX_HEADER_CRASHES times is failed."""
        run = self.run
        blamed = alone and len(work.names) == 1 and work.lane == "io"
        for name in work.names:
            n = run.header_suspects.get(name, 0) + blamed
            run.header_suspects[name] = n
            if n >= MAX_HEADER_CRASHES and name in run.unread:
                del run.header_suspects[name]
                path = str(run.unread[name][1].path)
                self.library.apply_headers(st, (name,), [header_crash(path, why)])

    def _give_up(self, st: State, key: tuple[int, int], why: str) -> None:
        """A slot (or probe) that failed its worker again and again is recorded as failed."""
        run = self.run
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
                self.record(st, vid, res)


def _remove_quietly(paths: list[Path]) -> None:
    """Roll back written files; one that cannot be removed is replaced by the redo."""
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)
