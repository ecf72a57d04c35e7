"""Dispatch: turn the run's pending slots (and new rounds) into work, cheapest first.

It looks only at videos that still have work and stops as soon as every worker has
something to do: a dispatch costs the same with 5 or 5,000 videos in the library.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter, OrderedDict
from fractions import Fraction

import numpy as np

from dsgen import split
from dsgen.config import Config
from dsgen.executor import Executor
from dsgen.extract import (
    HeaderRequest,
    IndexRequest,
    ProbeRequest,
    Task,
    header_task,
    index_task,
    probe_task,
    run_task,
)
from dsgen.headers import HEADER_BATCH
from dsgen.model import SlotPlan, SlotResult, VideoProbe
from dsgen.planner import plan_round
from dsgen.progress import Progress
from dsgen.report import Reporter
from dsgen.runstate import PROBE, HeaderWork, IndexWork, ProbeWork, RunState, TaskWork
from dsgen.state import State

# Tasks made ahead of the workers: enough to refill at once, few enough that a reload or a
# stop has little planned work to throw away.
READY_AHEAD = 2
# Probes kept in the parent: those of the videos being worked on, without frame indexes
# (only their keyframes, to cut tasks between GOPs). The state holds the rest.
PROBE_CACHE = 8
# Without keyframes known, a task is cut where two slots' positions lie this far apart
# (more than any GOP), so one GOP's reference frames are decoded by one worker.
CUT_GAP_SECONDS = 10.0
# A task grows past `segment_slots` at most this many times while looking for such a cut.
CUT_GROWTH = 2


class Dispatcher:
    """Fills the executor from the run's videos, in run order."""

    def __init__(self, run: RunState, ui: Reporter, progress: Progress) -> None:
        self.run = run
        self.ui = ui
        self.progress = progress
        self._probes: OrderedDict[int, tuple[VideoProbe, np.ndarray | None]] = OrderedDict()
        self._cfgs: tuple[Config, Config] | None = None  # (config, what tasks carry of it)
        # a pending slot whose category a reload removed: recorded empty at once
        self.orphans: list[tuple[int, SlotResult]] = []

    def probe(self, st: State, vid: int) -> VideoProbe | None:
        """A video's probe from the cache or the state (None before it is probed), without its
        frame index except for videos whose timestamps were interpolated (tasks need it)."""
        hit = self._probes.get(vid)
        if hit is None:
            p = st.probe(vid)
            if p is None:
                return None
            keys = p.key_pts.copy() if p.index_complete else None
            hit = (p if p.pts_interpolated else p.light(), keys)
            self._probes[vid] = hit
            while len(self._probes) > PROBE_CACHE:
                self._probes.popitem(last=False)
        else:
            self._probes.move_to_end(vid)
        return hit[0]

    def keyframes(self, vid: int) -> np.ndarray | None:
        """A cached video's keyframe pts, once its index is complete (to cut tasks)."""
        hit = self._probes.get(vid)
        return None if hit is None else hit[1]

    def forget_probe(self, vid: int) -> None:
        """Drop a cached probe (the video changed)."""
        self._probes.pop(vid, None)

    def probing(self) -> set[int]:
        """Videos whose probe is in flight."""
        return {w.video_id for w in self.run.inflight.values() if isinstance(w, ProbeWork)}

    def index_more(self, st: State, executor: Executor) -> None:
        """Keep one chunk scan of a frame index in flight (the io lane), videos in run order:
        indexes are built as work proceeds, never ahead of the first samples."""
        run = self.run
        if any(isinstance(w, IndexWork) for w in run.inflight.values()):
            return
        for vid in list(run.index_todo):
            todo = run.index_todo[vid]
            if not todo or vid not in run.videos or run.videos[vid].status != "ready":
                run.index_todo.pop(vid, None)
                continue
            probe = self.probe(st, vid)
            if probe is None:
                run.index_todo.pop(vid, None)
                continue
            chunk = todo[0]
            key = executor.submit(index_task, IndexRequest(probe.light(), chunk), lane="io")
            run.inflight[key] = IndexWork(vid, chunk, time.monotonic())
            return

    def fill(self, st: State, executor: Executor) -> None:
        """Keep every worker busy (plus one queued task); alone while suspects are retried.
        New videos' headers are read on the io lane meanwhile, and on the decoding lane when
        it has nothing else to do."""
        run = self.run
        limit = executor.capacity() + 1
        if run.suspects:
            self.read_headers(executor, spare=False)
            if not self.busy():
                self._submit_suspect(st, executor)
            return
        if self.busy() < limit:
            if not run.ready:
                self._make_tasks(st, executor, limit)
            while run.ready and self.busy() < limit:
                self.submit(executor, run.ready.popleft())
        self.read_headers(executor, spare=self.busy() < executor.capacity())
        self.index_more(st, executor)

    def busy(self) -> int:
        """Probes, tasks and header reads in flight on the decoding lane."""
        return sum(1 for w in self.run.inflight.values() if not isinstance(w, IndexWork)
                   and not (isinstance(w, HeaderWork) and w.lane == "io"))

    def read_headers(self, executor: Executor, spare: bool) -> None:
        """Keep a batch of unread headers in flight on the io lane, and with `spare`, fill the
        decoding lane's idle workers with more (a name whose batch was lost goes alone)."""
        run = self.run
        if not run.unread:
            return
        flying = [w for w in run.inflight.values() if isinstance(w, HeaderWork)]
        taken = {n for w in flying for n in w.names}
        lanes = [] if any(w.lane == "io" for w in flying) else ["io"]
        if spare:
            lanes += ["cpu"] * max(0, executor.capacity() - self.busy())
        for lane in lanes:
            names: list[str] = []
            for name in run.unread:
                if name in taken:
                    continue
                if name in run.header_suspects:  # alone, on the io lane: if it kills its
                    if lane == "io" and not names:  # worker, the file is to blame
                        names = [name]
                        break
                    continue
                names.append(name)
                if len(names) >= HEADER_BATCH:
                    break
            if not names:
                return
            paths = tuple(str(run.unread[n][1].path) for n in names)
            key = executor.submit(header_task, HeaderRequest(paths), lane=lane)
            run.inflight[key] = HeaderWork(tuple(names), lane, time.monotonic())
            taken.update(names)

    def submit(self, executor: Executor, task: Task) -> None:
        """Send a task to the executor."""
        key = executor.submit(run_task, task)
        self.run.inflight[key] = TaskWork(task, time.monotonic())

    def submit_probe(self, executor: Executor, vid: int) -> None:
        """Send a video's probe to the executor (seconds, whatever the file's size)."""
        req = ProbeRequest(self.run.videos[vid].path, self.run.cfg.extraction.frames_per_clip)
        key = executor.submit(probe_task, req)
        self.run.inflight[key] = ProbeWork(vid, time.monotonic())

    def _submit_suspect(self, st: State, executor: Executor) -> None:
        """One suspect alone: a probe, or a single slot (a task of one)."""
        run = self.run
        vid, slot_id = min(run.suspects)
        if vid not in run.videos or run.videos[vid].status not in ("new", "ready"):
            run.suspects.discard((vid, slot_id))
            return
        if slot_id == PROBE:
            self.submit_probe(executor, vid)
            return
        probe = self.probe(st, vid)
        slot = next((s for s in st.slots(vid, pending_only=True) if s.slot_id == slot_id), None)
        if probe is None or slot is None:
            run.suspects.discard((vid, slot_id))
            return
        run.busy.add((vid, slot_id))
        self.submit(executor, self._task(vid, probe, (slot,)))

    def _task(self, vid: int, probe: VideoProbe, slots: tuple[SlotPlan, ...]) -> Task:
        run = self.run
        # codec threads per task: the local cores shared by the pool; one on a Dask cluster
        # (one worker process per core there, docs/scaling.md)
        threads = 1 if run.cfg.executor == "dask" else max(
            1, (os.cpu_count() or 1) // run.cfg.worker_count)
        vc = run.cfg_by_id[vid]
        index = probe.frame_pts if probe.pts_interpolated else None
        return Task(self._task_cfg(), vid, vc.name, vc.slug, probe.light(), slots, threads,
                    index)

    def _task_cfg(self) -> Config:
        """The config without the video list and watch folders (workers need neither): a
        task's size does not grow with the library."""
        cfg = self.run.cfg
        if self._cfgs is None or self._cfgs[0] is not cfg:
            self._cfgs = (cfg, dataclasses.replace(cfg, videos=(), watch=()))
        return self._cfgs[1]

    def _make_tasks(self, st: State, executor: Executor, limit: int) -> None:
        run = self.run
        known = set(run.category_names)
        busy = Counter(v for v, _ in run.busy)
        probing = self.probing()
        for vid in list(run.active()):
            c = run.video_counts(vid)
            vc = run.cfg_by_id[vid]
            owed = c.owed_total(split.video_keys(run.cfg, vc))
            if vid in probing:
                continue
            if run.plan_pending and c.slots and not c.pending:
                continue  # an opening round done: the next one waits for the rest of phase 0
            if not c.pending and not owed:
                if c.slots and not busy[vid]:
                    self.progress.video_finished(st, vid)
                continue
            if c.pending and c.pending <= busy[vid]:
                continue  # every pending slot is already in flight
            probe = self.probe(st, vid)
            if probe is None:
                if self.busy() < limit:
                    self.submit_probe(executor, vid)
                    probing.add(vid)
                    continue
                return  # enough in flight: probe it when a worker frees up
            pending = [s for s in st.slots(vid, pending_only=True)
                       if (vid, s.slot_id) not in run.busy] if c.pending else []
            if not pending and not busy[vid]:
                pending = self._next_round(st, vid, probe)
            pending.sort(key=lambda s: s.starts[0] if s.starts else 0)
            for s in pending:
                if not any(cat in known for cat, _ in s.formats):  # category removed (reload)
                    self.orphans.append((vid, SlotResult(s.slot_id, complete=True)))
            pending = [s for s in pending if any(cat in known for cat, _ in s.formats)]
            # Until this run records a slot, a video's first task is a single slot (where
            # it shares no GOP with the next): the first sample comes after one clip, not
            # after `segment_slots` of them (a 4K slot takes seconds).
            opening = 1 if not run.counters.slots else None
            for chunk in segments(pending, run.cfg.segment_slots, probe, self.keyframes(vid),
                                  opening):
                run.busy.update((vid, s.slot_id) for s in chunk)
                run.ready.append(self._task(vid, probe, chunk))
            if len(run.ready) >= READY_AHEAD:
                return

    def _next_round(self, st: State, vid: int, probe: VideoProbe) -> list[SlotPlan]:
        v = self.run.videos[vid]
        out = plan_round(self.run, st, vid, probe)
        said = self.run.video_notes.get(vid, ())
        for note in out.notes:
            if note not in said:  # once a run per video (the status file keeps them)
                self.ui.line(f"→ {v.name}: {note}", event="note", video=v.name, note=note)
                said = (*said, note)
        if said:
            self.run.video_notes[vid] = said
        if out.planned:
            return list(st.slots(vid, pending_only=True))
        self.progress.video_finished(st, vid)
        return []


def segments(slots: list[SlotPlan], size: int, probe: VideoProbe,
             keys: np.ndarray | None = None, first_size: int | None = None
             ) -> list[tuple[SlotPlan, ...]]:
    """Slots (sorted by first position) in tasks of about `size` (the first one of about
    `first_size`, when given), cut between two slots whose first windows lie in different GOPs
    (by `keys`, the keyframes, when known; else where their positions are more than
    CUT_GAP_SECONDS apart, growing a task up to CUT_GROWTH times), so one worker decodes a
    GOP once for both.

    Only the cost depends on this (each slot's result depends on its plan alone)."""
    if not slots:
        return []
    gap = round(Fraction(CUT_GAP_SECONDS) / probe.time_base)

    def first(s: SlotPlan) -> int:
        return s.starts[0] if s.starts else 0

    def apart(a: SlotPlan, b: SlotPlan) -> bool:
        if keys is not None and keys.shape[0]:  # known: never split a GOP
            return bool(np.searchsorted(keys, first(a), "right")
                        != np.searchsorted(keys, first(b), "right"))
        return first(b) - first(a) > gap
    known = keys is not None and keys.shape[0] > 0
    out: list[tuple[SlotPlan, ...]] = []
    chunk: list[SlotPlan] = []
    for s in slots:
        lim = first_size if first_size is not None and not out else size
        grown = not known and len(chunk) >= CUT_GROWTH * lim
        if len(chunk) >= lim and (apart(chunk[-1], s) or grown):
            out.append(tuple(chunk))
            chunk = []
        chunk.append(s)
    out.append(tuple(chunk))
    return out
