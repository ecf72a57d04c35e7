"""Decode-only yardsticks on a dsgen run's clips: today's strategy's bound and the 7-frame floor.

Both run in a spawn pool of the dsgen run's size with the same decoder threads (cores ÷
workers), one job per dsgen task in submission order, one reader kept per worker process,
and do nothing with the frames.

* **bound of today's strategy**: the windows the run tried, in the order today's
  ``run_task`` decodes them (forward sweeps: a replacement position behind the reader waits
  for the next sweep), decoded by the frozen copy of today's ``ClipReader``
  (``legacy_decode``: forward walk, NONREF skipping before a window, seek when the
  keyframe before the next window lies beyond the decode position).
* **physical floor**: for every clip, a seek to the keyframe at or before its window and
  7 frames decoded from there (what a window opening at a keyframe costs, and no more).
"""

from __future__ import annotations

import bisect
import heapq
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import av

from common import cpu_seconds, wait_quiet
from legacy_decode import BenchProbe, ClipError, ClipReader

FRAMES = 7

Attempt = tuple[int, int, int, str]  # (slot_id, number, start, outcome) as in the state DB


def task_sequences(tasks: list[list[int]], attempts: list[Attempt]) -> list[list[int]]:
    """Per task (submission order; its slot ids), the window starts in today's decode order.

    Replays today's run_task heap on the starts the state DB recorded: (sweep, start, slot,
    attempt); a slot's next start goes into the next sweep when it lies behind the last.
    Slots no task covered (an engine that groups differently) form one extra task.
    """
    by_slot: dict[int, list[int]] = {}
    for slot_id, _number, start, _ in sorted(attempts, key=lambda a: (a[0], a[1])):
        by_slot.setdefault(slot_id, []).append(start)
    seen: set[int] = set()
    groups = []
    for slots in tasks:
        group = [s for s in slots if s in by_slot and s not in seen]
        seen.update(group)
        groups.append(group)
    rest = sorted(s for s in by_slot if s not in seen)
    if rest:
        groups.append(rest)
    out: list[list[int]] = []
    for group in groups:
        heap = [(0, by_slot[s][0], i, 0) for i, s in enumerate(group)]
        heapq.heapify(heap)
        seq: list[int] = []
        while heap:
            sweep, start, i, number = heapq.heappop(heap)
            seq.append(start)
            starts = by_slot[group[i]]
            if number + 1 < len(starts):
                nxt = starts[number + 1]
                heapq.heappush(heap, (sweep if nxt > start else sweep + 1, nxt, i, number + 1))
        if seq:
            out.append(seq)
    assert sum(map(len, out)) == len(attempts), "replayed plan differs from the state DB"
    return out


_readers: dict[str, ClipReader] = {}  # per worker process, like dsgen.extract._readers


def _bound_job(probe: BenchProbe, threads: int, starts: list[int]) -> dict[str, Any]:
    """Decode the windows with a kept (frozen, today's) ClipReader and drop the frames."""
    t0, c0 = time.time(), time.process_time()
    reader = _readers.get(probe.path)
    if reader is None:
        reader = _readers[probe.path] = ClipReader(probe, threads)
    f0, s0 = reader.frames_decoded, reader.seeks
    ok = errors = 0
    for start in starts:
        try:
            reader.clip(start, FRAMES)
            ok += 1
        except ClipError:
            errors += 1
    return {"clips": ok, "errors": errors, "frames": reader.frames_decoded - f0,
            "seeks": reader.seeks - s0, "t0": t0, "t1": time.time(),
            "cpu": time.process_time() - c0}


_floor: dict[str, Any] = {}  # per worker process: the open container


def _floor_job(probe: BenchProbe, threads: int, starts: list[int]) -> dict[str, Any]:
    """Per window: seek to the keyframe at or before it and decode 7 frames from there."""
    t0, c0 = time.time(), time.process_time()
    c = _floor.get(probe.path)
    if c is None:
        c = _floor[probe.path] = av.open(probe.path)
        cc = c.streams[probe.stream_index].codec_context
        cc.thread_type = "AUTO"
        cc.thread_count = max(1, threads)
    stream = c.streams[probe.stream_index]
    keys = probe.key_pts.tolist()
    frames = ok = 0
    for start in starts:
        key = keys[max(0, bisect.bisect_right(keys, int(probe.frame_pts[start])) - 1)]
        c.seek(key, stream=stream, backward=True, any_frame=False)
        got = 0
        for packet in c.demux(stream):
            for frame in packet.decode():
                frames += 1
                if frame.pts is not None and frame.pts >= key:
                    got += 1
            if got >= FRAMES:
                break
        ok += got >= FRAMES
    return {"clips": ok, "errors": len(starts) - ok, "frames": frames, "seeks": len(starts),
            "t0": t0, "t1": time.time(), "cpu": time.process_time() - c0}


def _run(job: Any, probe: BenchProbe, seqs: list[list[int]], workers: int, threads: int
         ) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")  # the engine's start method
    load = wait_quiet()
    c0, w0 = cpu_seconds(), time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = [pool.submit(job, probe, threads, s) for s in seqs if s]
        parts = [f.result() for f in futs]
    wall, cpu = time.time() - w0, cpu_seconds() - c0
    first = min((p["t0"] for p in parts), default=w0)
    last = max((p["t1"] for p in parts), default=w0)
    clips = sum(p["clips"] + p["errors"] for p in parts)
    return {"wall": wall, "cpu": cpu, "other_load": load, "clips": clips,
            "errors": sum(p["errors"] for p in parts),
            "frames_decoded": sum(p["frames"] for p in parts),
            "seeks": sum(p["seeks"] for p in parts),
            "startup": first - w0, "steady_wall": last - first,
            "steady_cpu": sum(p["cpu"] for p in parts)}


def run_bound(probe: BenchProbe, seqs: list[list[int]], workers: int, threads: int
              ) -> dict[str, Any]:
    """Today's strategy on these windows, in today's order: the decode-only bound."""
    return _run(_bound_job, probe, seqs, workers, threads)


def run_floor(probe: BenchProbe, seqs: list[list[int]], workers: int, threads: int
              ) -> dict[str, Any]:
    """Seek to a keyframe + 7 frames per window: the physical floor for as many clips."""
    return _run(_floor_job, probe, [sorted(s) for s in seqs], workers, threads)


def predecessor_frames(probe: BenchProbe, start: int) -> int:
    """Frames ffmpeg -ss decodes for a clip: from the keyframe before it to its end (index)."""
    keys = probe.key_pts.tolist()
    k = keys[max(0, bisect.bisect_right(keys, int(probe.frame_pts[start])) - 1)]
    kidx = int(probe.frame_pts.searchsorted(k))
    return start - kidx + FRAMES
