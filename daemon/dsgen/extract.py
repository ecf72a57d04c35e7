"""The worker: pure, picklable functions from (video, slots) to encoded samples and outcomes.

Workers write nothing: they return each sample's PNG bytes, and the parent alone writes them
under their final names and records them (so any executor, local or remote, will do).
"""

from __future__ import annotations

import ctypes
import heapq
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dsgen.colour import luma_small
from dsgen.config import Config
from dsgen.decode import ClipDamaged, ClipError, ClipReader, WindowPlan
from dsgen.degrade import degrade_clip
from dsgen.errors import VideoError
from dsgen.index import ChunkScan, scan_chunk
from dsgen.model import (
    DAMAGED,
    DECODE_ERROR,
    OK,
    Attempt,
    Sample,
    SlotPlan,
    SlotResult,
    TaskResult,
    VideoProbe,
)
from dsgen.patches import Geometry, geometry, grey, gt_patch, lr_frame, lr_stack, pick_box
from dsgen.plan import name_key, rng_for
from dsgen.probe import QuickProbe, file_key, open_probe, quick_probe
from dsgen.quality import check_clip, check_crop
from dsgen.writer import encode_png, sample_files

# Luma subsampling for the clip gates: Y[::4, ::4] costs 0.4 ms (1080p) and tracks
# the full-plane mean |ΔY| closely; measured in ../shared/notes/decoding-facts.md.
LUMA_STEP = 4
# Widest luma the clip gates look at: a 4K source is read at Y[::8, ::8] (480 px wide, as
# 1080p at LUMA_STEP), so the motion-compensated cut gate costs the same per clip at any
# resolution above 1080p and sees the picture at the size it was tuned on.
LUMA_MAX_WIDTH = 480


def luma_step(width: int) -> int:
    """The luma subsampling step for a picture `width` pixels wide."""
    return max(LUMA_STEP, -(-width // LUMA_MAX_WIDTH))
# prctl option: deliver a signal to this process when its parent exits (linux/prctl.h).
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Task:
    """One unit of work: some slots of one video (picklable, sent to a worker process)."""

    cfg: Config
    video_id: int
    name: str  # configured video name: seeds the randomness
    slug: str
    probe: VideoProbe  # without its frame index
    slots: tuple[SlotPlan, ...]
    threads: int = 1
    # every frame's pts, only for videos whose timestamps were interpolated (they need it)
    index: np.ndarray | None = None


# Per worker thread (a Dask worker may run several tasks at once): one open reader, so the
# decode position carries over between tasks of the same video.
_local = threading.local()
# Asked between attempts: has the parent asked to stop? (a multiprocessing Event locally,
# the cluster's stop event under Dask)
def _never() -> bool:
    return False


_stop_check: Callable[[], bool] = _never


def set_stop_check(check: Callable[[], bool]) -> None:
    """Install how this worker learns that the parent stops (executor backends call it)."""
    global _stop_check
    _stop_check = check


def init_worker(stop_event: Any) -> None:
    """Process-pool initializer: keep the stop event, ignore Ctrl+C, die with the parent."""
    set_stop_check(stop_event.is_set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the parent dies (kill -9 must not leave writers behind)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


@dataclass(frozen=True)
class ProbeRequest:
    """A video's probe at its turn (header, colour, bars; seconds, whatever its size)."""

    path: str
    min_frames: int


def probe_task(req: ProbeRequest) -> VideoProbe | VideoError:
    """Worker-side probe: the probe (without frame index) or the error."""
    try:
        return open_probe(Path(req.path), req.min_frames)
    except VideoError as e:
        return e


@dataclass(frozen=True)
class IndexRequest:
    """Scan one chunk of a video's frame index (demux only)."""

    probe: VideoProbe  # without its index
    chunk: int


def index_task(req: IndexRequest) -> ChunkScan:
    """Worker-side scan of one chunk of the index."""
    probe = req.probe
    try:
        if file_key(Path(probe.path)) != (probe.size, probe.mtime_ns):
            return ChunkScan(req.chunk, _no_pts(), _no_pts(), None, None,
                             error="the file changed since it was probed")
    except OSError as e:
        return ChunkScan(req.chunk, _no_pts(), _no_pts(), None, None,
                         error=f"cannot read the file: {e.strerror}")
    return scan_chunk(probe, req.chunk)


def _no_pts() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class HeaderRequest:
    """Header checks of some videos (what sync needs: duration, rate, size)."""

    paths: tuple[str, ...]


def header_task(req: HeaderRequest) -> list[QuickProbe | VideoError]:
    """Worker-side header reads, in order: each header or why the file is unusable."""
    out: list[QuickProbe | VideoError] = []
    for path in req.paths:
        try:
            out.append(quick_probe(Path(path)))
        except VideoError as e:
            out.append(e)
    return out


def _reader(probe: VideoProbe, threads: int, index: np.ndarray | None) -> ClipReader:
    old: ClipReader | None = getattr(_local, "reader", None)
    if old is not None and old.probe.path == probe.path and old.probe.size == probe.size and (
            old.probe.mtime_ns == probe.mtime_ns):
        return old
    if old is not None:
        old.close()
        _local.reader = None
    r = ClipReader(probe, threads, index)
    _local.reader = r
    return r


def run_task(task: Task) -> TaskResult:
    """Walk the task's slots in position order, write every sample that passes, report all."""
    res = TaskResult(task.video_id, [SlotResult(s.slot_id) for s in task.slots],
                     worker=f"{socket.gethostname()}:{os.getpid()}")
    secs = dict.fromkeys(("decode", "quality", "patch", "encode"), 0.0)
    res.seconds = secs
    try:
        reader = _reader(task.probe, task.threads, task.index)
    except VideoError as e:
        res.error = e.message
        return res
    before = (reader.frames_decoded, reader.seeks)
    n = task.cfg.extraction.frames_per_clip
    geo = geometry(task.probe, task.cfg.extraction.reference_height)
    step = luma_step(task.probe.width)
    # (pass, start, slot, attempt): one forward sweep per pass. A replacement position behind
    # the reader waits for the next sweep instead of seeking back (and re-decoding a GOP).
    heap = [(0, s.starts[0], i, 0) for i, s in enumerate(task.slots) if s.starts]
    heapq.heapify(heap)
    pending = {i: {c for c, _ in s.formats} for i, s in enumerate(task.slots)}
    for i, s in enumerate(task.slots):
        if not s.starts:
            res.slots[i].complete = True
    taken: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(task.slots))}
    while heap:
        if _stop_check():
            res.stopped = True
            break
        sweep, target, i, number = heapq.heappop(heap)
        slot, out = task.slots[i], res.slots[i]
        t0 = time.perf_counter()
        res.clips += 1
        # what may be asked next: the next window in the sweep, and this slot's replacement
        then = [heap[0][1]] if heap and heap[0][0] == sweep else []
        if number + 1 < len(slot.starts):
            then.append(slot.starts[number + 1])
        lo, hi, fence = slot.limits(number)
        decoded = reader.frames_decoded
        try:
            window = reader.window(WindowPlan(target, lo, hi, fence, slot.tol), n, taken[i],
                                   then)
        except ClipDamaged as e:
            # the damaged range counts as tried: no later window of this slot or round
            # is planned over it
            secs["decode"] += time.perf_counter() - t0
            detail = f"{e.what}: {e}"
            out.attempts.append(Attempt(slot.slot_id, number, e.first, DAMAGED, 0.0, detail,
                                        end=e.last, target=target))
            taken[i].append((e.first, e.last))
            res.damage.append((e.what, e.first, e.last, str(e)))
            window = None
        except ClipError as e:
            secs["decode"] += time.perf_counter() - t0
            out.attempts.append(Attempt(slot.slot_id, number, target, DECODE_ERROR, 0.0, str(e),
                                        target=target))
            window = None
        if window is not None:
            frames = window.frames
            start = window.pts[0]
            taken[i].append((start, window.pts[-1]))
            t1 = time.perf_counter()
            secs["decode"] += t1 - t0
            lumas = [luma_small(f, step, task.probe.colour) for f in frames]
            verdict = check_clip(lumas, task.cfg.extraction.scene_cut_threshold,
                                 task.cfg.extraction.quality)
            secs["quality"] += time.perf_counter() - t1
            attempt = Attempt(slot.slot_id, number, start, verdict.reason, verdict.scene_diff,
                              end=window.pts[-1], target=target, origin=window.origin)
            out.attempts.append(attempt)
            if verdict.reason == OK:
                made = len(out.samples)
                _make_samples(task, geo, slot, out, pending[i], frames, start, number,
                              verdict.scene_diff, secs)
                # where each window came from (the gates may have rewritten the attempt)
                out.attempts[-1] = replace(out.attempts[-1], end=attempt.end, target=target,
                                           origin=attempt.origin)
                origin = {"target": target, "origin": window.origin,
                          "moved_seconds": round(float((start - target) * task.probe.time_base),
                                                 3),
                          "tolerance_seconds": round(float(slot.tol * task.probe.time_base), 3)}
                out.samples[made:] = [replace(smp, window=origin) for smp in out.samples[made:]]
        res.clip_frames.append(reader.frames_decoded - decoded)
        if pending[i] and number + 1 < len(slot.starts):
            nxt = slot.starts[number + 1]
            heapq.heappush(heap, (sweep if nxt > target else sweep + 1, nxt, i, number + 1))
        else:
            for cat in pending[i]:
                out.failed.setdefault(cat, out.attempts[-1].outcome)
            out.complete = True
    res.frames_decoded = reader.frames_decoded - before[0]
    res.seeks = reader.seeks - before[1]
    return res


def _make_samples(task: Task, geo: Geometry, slot: SlotPlan, out: SlotResult, pending: set[str],
                  frames: list[Any], start: int, number: int, scene_diff: float,
                  secs: dict[str, float]) -> None:
    """For each category still owed by the slot: find a detailed crop, build and write it."""
    cfg = task.cfg
    centre = frames[len(frames) // 2]
    info = task.probe.colour
    for cat_name, fmt_name in slot.formats:
        if cat_name not in pending:
            continue
        fmt = cfg.format(fmt_name)
        t0 = time.perf_counter()
        rng = rng_for(cfg.seed, task.name, slot.slot_id, number, name_key(cat_name))
        tries = cfg.extraction.quality.crop_retries if fmt.mode == "crop" else 1
        for _ in range(tries):
            box = pick_box(geo, fmt, rng)
            gt = gt_patch(centre, box, fmt, info)
            cv = check_crop(grey(gt), cfg.extraction.quality)
            if cv.reason == OK:
                break
        secs["quality"] += time.perf_counter() - t0
        if cv.reason != OK:
            out.failed[cat_name] = cv.reason
            out.attempts[-1] = Attempt(slot.slot_id, number, start, out.attempts[-1].outcome,
                                       scene_diff, f"{cat_name}: {cv.reason}")
            continue
        t1 = time.perf_counter()
        gts = [gt if f is centre else gt_patch(f, box, fmt, info) for f in frames]
        clean = [lr_frame(g, fmt, cfg.extraction.lr_filter) for g in gts]
        lrs, degradation = degrade_clip(cfg, task.name, slot.slot_id, number, cat_name, fmt,
                                        gts, clean)
        images = _layout_images(cfg, gts, lrs, clean)
        secs["patch"] += time.perf_counter() - t1
        t2 = time.perf_counter()
        encoded = [encode_png(image, cfg.png_compression) for image in images]
        secs["encode"] += time.perf_counter() - t2
        paths = sample_files(cfg, cfg.category(cat_name), fmt, task.slug, slot.slot_id,
                             slot.split)
        files = tuple((os.path.relpath(p, cfg.output_root), len(data))
                      for p, data in zip(paths, encoded, strict=True))
        pts = tuple(int(f.pts) for f in frames)
        out.samples.append(Sample(slot.slot_id, cat_name, fmt_name, files, start, pts,
                                  box, {"scene_diff": round(scene_diff, 3),
                                        "crop_std": round(cv.std, 3),
                                        "detail": round(cv.detail, 3)}, tuple(encoded),
                                  degradation, slot.split))
        out.failed.pop(cat_name, None)
        pending.discard(cat_name)


def _layout_images(cfg: Config, gts: list[np.ndarray], lrs: list[np.ndarray],
                   clean: list[np.ndarray]) -> list[np.ndarray]:
    """Images in the order of `sample_files`: stacked (GT, LR stacks[, clean LR stacks]) or
    basicsr (GT…, LR…[, clean LR…])."""
    extra = [clean] if cfg.extraction.write_clean_lr else []
    if cfg.layout == "stacked":
        return [gts[len(gts) // 2], *[lr_stack(f, k) for f in (lrs, *extra)
                                      for k in cfg.extraction.lr_stacks]]
    return [*gts, *lrs, *(f for frames in extra for f in frames)]
