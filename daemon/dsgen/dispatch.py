"""Dispatch: turn the run's pending slots (and new rounds) into work, cheapest first.

It looks only at videos that still have work and stops as soon as every worker has
something to do: a dispatch costs the same with 5 or 5,000 videos in the library.
"""

from __future__ import annotations

import os
import time
from collections import Counter, OrderedDict

from dsgen import split
from dsgen.executor import Executor
from dsgen.extract import ProbeRequest, Task, probe_task, run_task
from dsgen.model import SlotPlan, SlotResult, VideoProbe
from dsgen.planner import plan_round
from dsgen.progress import Progress
from dsgen.report import Reporter
from dsgen.runstate import PROBE, ProbeWork, RunState, TaskWork
from dsgen.state import State

# Tasks made ahead of the workers: enough to refill at once, few enough that a reload or a
# stop has little planned work to throw away.
READY_AHEAD = 2
# Probes (frame indexes) kept in the parent: those of the videos being worked on. The state
# holds them all; a task carries its video's.
PROBE_CACHE = 8


class Dispatcher:
    """Fills the executor from the run's videos, in run order."""

    def __init__(self, run: RunState, ui: Reporter, progress: Progress) -> None:
        self.run = run
        self.ui = ui
        self.progress = progress
        self._probes: OrderedDict[int, VideoProbe] = OrderedDict()
        # a pending slot whose category a reload removed: recorded empty at once
        self.orphans: list[tuple[int, SlotResult]] = []

    def probe(self, st: State, vid: int) -> VideoProbe | None:
        """A video's probe from the cache or the state (None before it is probed)."""
        p = self._probes.get(vid)
        if p is None:
            p = st.probe(vid)
            if p is None:
                return None
            self._probes[vid] = p
            while len(self._probes) > PROBE_CACHE:
                self._probes.popitem(last=False)
        else:
            self._probes.move_to_end(vid)
        return p

    def forget_probe(self, vid: int) -> None:
        """Drop a cached probe (the video changed)."""
        self._probes.pop(vid, None)

    def probing(self) -> set[int]:
        """Videos whose probe is in flight."""
        return {w.video_id for w in self.run.inflight.values() if isinstance(w, ProbeWork)}

    def fill(self, st: State, executor: Executor) -> None:
        """Keep every worker busy (plus one queued task); alone while suspects are retried."""
        run = self.run
        limit = executor.capacity() + 1
        if run.suspects:
            if not run.inflight:
                self._submit_suspect(st, executor)
            return
        if len(run.inflight) >= limit:
            return
        if not run.ready:
            self._make_tasks(st, executor, limit)
        while run.ready and len(run.inflight) < limit:
            self.submit(executor, run.ready.popleft())

    def submit(self, executor: Executor, task: Task) -> None:
        """Send a task to the executor."""
        key = executor.submit(run_task, task)
        self.run.inflight[key] = TaskWork(task, time.monotonic())

    def submit_probe(self, executor: Executor, vid: int) -> None:
        """Send a video's full probe to the executor."""
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
        return Task(run.cfg, vid, vc.name, vc.slug, probe, slots, threads)

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
            if not c.pending and not owed:
                if c.slots and not busy[vid]:
                    self.progress.video_finished(st, vid)
                continue
            if c.pending and c.pending <= busy[vid]:
                continue  # every pending slot is already in flight
            probe = self.probe(st, vid)
            if probe is None:
                if len(run.inflight) < limit:
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
            size = run.cfg.segment_slots
            for i in range(0, len(pending), size):
                chunk = tuple(pending[i:i + size])
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
