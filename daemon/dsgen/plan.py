"""Sampling plan: targets split over videos, slots spread over the runtime, all from the seed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from dsgen.config import Config, FormatCfg
from dsgen.model import NO_FENCE, SlotPlan, VideoProbe
from dsgen.patches import Geometry, fits, geometry
from dsgen.split import EVERYWHERE, TRAIN, Region
from dsgen.split import formats as split_formats

# Rounds of replacement slots a video gets before its deficit moves to other videos:
# a round that yields nothing also ends it (the video cannot give more).
MAX_ROUNDS = 8
# Ticks a frame's real pts may stray from its nominal one (timestamps rounded to the time
# base) when region bounds in frames become pts.
PTS_SLACK = 1


def name_key(name: str) -> int:
    """A stable 63-bit identity of a name (video, category) for seeding."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") >> 1


def rng_for(seed: int, name: str, *parts: int) -> np.random.Generator:
    """The generator for one decision, derived only from the seed, the video and `parts`."""
    return np.random.default_rng([seed, name_key(name), *parts])


def allocate(total: int, weights: list[float], caps: list[int]) -> list[int]:
    """Split `total` by `weights`, never above `caps`; what a capped entry cannot take goes to
    the others (water-filling), then largest remainder: every share is the floor or ceiling of
    min(cap, λ·weight), and the shares sum to min(total, Σ caps). Exact rational arithmetic,
    so float weights never make the rounding over- or under-shoot."""
    alloc = [0] * len(weights)
    w = {i: Fraction(wt) for i, (wt, c) in enumerate(zip(weights, caps, strict=True))
         if wt > 0 and c > 0}
    if total <= 0 or not w:
        return alloc
    rest = sorted(w)
    remaining = total
    while rest:  # cap every entry whose proportional share reaches its cap, until none does
        wsum = sum(w[i] for i in rest)
        full = [i for i in rest if remaining * w[i] >= caps[i] * wsum]
        if not full:
            break
        for i in full:
            alloc[i] = caps[i]
            remaining -= caps[i]
        rest = [i for i in rest if i not in full]
    if rest and remaining > 0:
        wsum = sum(w[i] for i in rest)
        ideal = {i: remaining * w[i] / wsum for i in rest}
        take = {i: math.floor(v) for i, v in ideal.items()}
        left = remaining - sum(take.values())
        for i in sorted(rest, key=lambda i: (-(ideal[i] - take[i]), i))[:left]:
            take[i] += 1
        for i in rest:
            alloc[i] = take[i]
    return alloc


def allocate_floored(total: int, weights: list[float], caps: list[int], floors: list[int]
                     ) -> list[int]:
    """`allocate`, where entry i never gets less than `floors[i]` (≤ its cap; Σ floors ≤
    total): an entry whose share would fall below its floor gets the floor, the others share
    the rest by weight. With no floor reached this is `allocate` exactly."""
    fixed: dict[int, int] = {}
    while True:
        free_w = [0.0 if i in fixed else w for i, w in enumerate(weights)]
        free_c = [0 if i in fixed else c for i, c in enumerate(caps)]
        alloc = allocate(total - sum(fixed.values()), free_w, free_c)
        low = [i for i, a in enumerate(alloc) if i not in fixed and a < floors[i]]
        if not low:
            break
        fixed.update((i, floors[i]) for i in low)
    for i, n in fixed.items():
        alloc[i] = n
    return alloc


def frame_length(probe: VideoProbe) -> Fraction:
    """One frame's duration in ticks, from the average rate."""
    if probe.fps <= 0:
        return Fraction(max(1, probe.frame_ticks))
    return 1 / (Fraction(probe.fps).limit_denominator(100_000) * probe.time_base)


def window_ticks(probe: VideoProbe, cfg: Config) -> int:
    """The room a window takes, in ticks: its frames plus one, as a window opens at the first
    frame at or after its position (up to a frame later), so windows planned a room apart
    never share a frame."""
    return math.ceil((cfg.extraction.frames_per_clip + 1) * frame_length(probe))


def start_range(probe: VideoProbe, cfg: Config) -> tuple[int, int]:
    """First and last allowed window position (pts, inclusive), from the header's runtime
    minus the edge margins and a window; empty when last < first."""
    margin = round(Fraction(cfg.extraction.edge_margin_seconds) / probe.time_base)
    return (probe.first_pts + margin,
            probe.end_pts - margin - window_ticks(probe, cfg))


def capacity(probe: VideoProbe, cfg: Config) -> int:
    """How many non-overlapping windows the usable runtime holds."""
    lo, hi = start_range(probe, cfg)
    return max(0, (hi - lo) // window_ticks(probe, cfg) + 1) if hi >= lo else 0


def fitting_formats(cfg: Config, geo: Geometry, category: str, split: str = TRAIN
                    ) -> list[tuple[FormatCfg, float]]:
    """The formats of a category's split that this picture can give, with their configured
    weights (drawing by them re-weights the mix among the formats that fit)."""
    mix = split_formats(cfg, category, split)
    return [(cfg.format(f), w) for f, w in mix if fits(geo, cfg.format(f))]


def window_capacity(frames: int, fps: float, cfg: Config) -> tuple[float, int]:
    """(usable seconds, non-overlapping windows) of a video with `frames` frames at `fps`."""
    n = cfg.extraction.frames_per_clip
    margin = round(cfg.extraction.edge_margin_seconds * fps)
    lo, hi = margin, frames - margin - n
    secs = max(0.0, (hi - lo + 1) / fps) if fps > 0 else 0.0
    return secs, max(0, (hi - lo + n) // n)


def usable_seconds(probe: VideoProbe, cfg: Config) -> float:
    """Runtime the planner may sample from."""
    lo, hi = start_range(probe, cfg)
    return max(0.0, float((hi - lo + probe.frame_ticks) * probe.time_base)) if hi >= lo else 0.0


def split_targets(cfg: Config, amounts: dict[str, int], shares: dict[str, dict[int, float]],
                  caps: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """Per category, `amounts[c]` split over videos by share (duration × weight), capped."""
    out: dict[str, dict[int, int]] = {}
    for cat, amount in amounts.items():
        vids = sorted(shares.get(cat, {}))
        alloc = allocate(amount, [shares[cat][v] for v in vids], [caps[cat][v] for v in vids])
        out[cat] = {v: a for v, a in zip(vids, alloc, strict=True) if a > 0}
    return out


Interval = tuple[int, int]  # [first, last] pts, inclusive


def free_intervals(probe: VideoProbe, cfg: Config, used: Iterable[Interval],
                   blocked: Iterable[Interval] = (), region: Region = EVERYWHERE
                   ) -> list[Interval]:
    """Positions where a new window may start: in range, its (nominal) frames overlapping no
    used window (`used`: windows tried before, first and last pts) and no `blocked` range
    (damage, the part past a truncated file's end), where the split's region allows it
    (`split.Region`, the held-out validation ranges and their guard band)."""
    lo, hi = start_range(probe, cfg)
    if hi < lo:
        return []
    span = window_ticks(probe, cfg)
    region_allowed, region_blocked = region_intervals(probe, cfg, region)
    cuts = sorted((a - span + 1, b) for a, b in [*used, *blocked, *region_blocked])
    out: list[Interval] = []
    at = lo
    for a, b in cuts:
        if a > at:
            out.append((at, min(a - 1, hi)))
        at = max(at, b + 1)
        if at > hi:
            break
    if at <= hi:
        out.append((at, hi))
    out = [(a, b) for a, b in out if a <= b]
    if region_allowed is not None:
        out = _intersect(out, region_allowed)
    return out


def _nominal(probe: VideoProbe, frame: int) -> int:
    """The pts frame `frame` has at the nominal rate (the header's: planning needs no
    index, and a plan must never depend on when an index scan finished)."""
    return probe.first_pts + math.floor(frame * frame_length(probe))


def region_intervals(probe: VideoProbe, cfg: Config, region: Region
                     ) -> tuple[list[Interval] | None, list[Interval]]:
    """A split region (`split.Region`: held-out frame ranges chosen from the header's frame
    count, guard band in frames, other-split windows to keep the guard from in pts) as pts:
    (the ranges window starts must lie in, None: anywhere; the pts ranges a window's frames
    must not touch). Frame f is at its nominal pts, ± PTS_SLACK (timestamps rounded to the
    time base)."""
    h = region.holdout
    if h is None and not region.inside:
        return None, []
    n = cfg.extraction.frames_per_clip
    length = frame_length(probe)
    g = h.guard if h is not None else 1
    allowed: list[Interval] | None = [] if region.inside else None
    blocked: list[Interval] = []
    for b0, b1 in (h.blocks if h is not None else ()):
        if allowed is not None:  # all n frames of the window in [b0, b1)
            a = _nominal(probe, b0) + PTS_SLACK
            b = _nominal(probe, b1) - math.ceil(n * length) - PTS_SLACK
            if a <= b:
                allowed.append((a, b))
        else:  # no frame closer than g frames to a frame of the block
            blocked.append((_nominal(probe, b0) - math.floor(g * length) + 1 - PTS_SLACK,
                            _nominal(probe, b1 - 1) + math.ceil(g * length) - 1 + PTS_SLACK))
    for u in region.avoid:  # a window of the other split opens at pts u: its n frames ± g
        blocked.append((u - math.floor(g * length) + 1 - PTS_SLACK,
                        u + math.ceil((n - 1 + g) * length) - 1 + PTS_SLACK))
    return allowed, blocked


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The intersection of two sorted lists of disjoint inclusive intervals."""
    out: list[Interval] = []
    i = j = 0
    b = sorted(b)
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def place_round(cfg: Config, probe: VideoProbe, name: str, deficits: dict[str, int],
                used: list[Interval], first_slot: int, phase: int, rnd: int,
                region: Region = EVERYWHERE, blocked: Iterable[Interval] = (),
                tol: int = 0) -> list[SlotPlan]:
    """New slots for `deficits` (category → samples still owed) of one split, in windows no
    slot has tried and the split's region allows.

    The free runtime is cut into one stretch per slot; a slot's positions are a random one
    in its stretch and replacements around it, each with the bounds a window there must
    keep (so windows of different slots never overlap, and never leave the region). Positions
    are pts; `tol` (ticks) lets a window move to open at a keyframe."""
    geo = geometry(probe, cfg.extraction.reference_height)
    fitting = {cat: fitting_formats(cfg, geo, cat, region.split) for cat in sorted(deficits)}
    need = max((d for cat, d in deficits.items() if fitting[cat]), default=0)
    if need <= 0:
        return []
    rng = rng_for(cfg.seed, name, phase, rnd, *region.salt)
    free = free_intervals(probe, cfg, used, blocked, region)
    if not free:
        return []
    span = window_ticks(probe, cfg)
    step_pref = max(span, round(Fraction(cfg.extraction.retry_skip_seconds) / probe.time_base))
    # One stretch of the free runtime per slot, cut at evenly chosen windows of a greedy
    # packing, so every stretch holds a window that ends before the next stretch begins.
    packed = _packed_windows(free, span)
    stretches = min(need, packed.size)
    bounds = packed[(np.arange(stretches) * packed.size) // stretches].tolist()
    plans: list[tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]] = []
    for i, first in enumerate(bounds):
        fence = bounds[i + 1] if i + 1 < len(bounds) else NO_FENCE
        last = fence - span if i + 1 < len(bounds) else NO_FENCE
        parts = [(max(a, first), min(b, last)) for a, b in free if b >= first and a <= last]
        parts = [(a, b) for a, b in parts if a <= b]
        measure = sum(b - a + 1 for a, b in parts)
        step = max(span, min(step_pref, measure // cfg.extraction.max_attempts))
        offsets = _nearby(measure, int(rng.integers(measure)), step,
                          cfg.extraction.max_attempts)
        plans.append(_positions(parts, offsets, fence, span))
    serve: list[list[tuple[str, str]]] = [[] for _ in plans]
    for cat, fmts in fitting.items():
        k = min(deficits[cat], len(plans))
        if k <= 0 or not fmts:
            continue
        chosen = np.sort(rng.choice(len(plans), size=k, replace=False))
        weights = np.asarray([w for _, w in fmts], dtype=np.float64)
        picks = rng.choice(len(fmts), size=k, p=weights / weights.sum())
        for slot_idx, f in zip(chosen.tolist(), picks.tolist(), strict=True):
            serve[slot_idx].append((cat, fmts[f][0].name))
    out: list[SlotPlan] = []
    for (starts, limits), formats in zip(plans, serve, strict=True):
        if formats:
            out.append(SlotPlan(first_slot + len(out), phase, rnd, starts, tuple(formats),
                                region.split, limits, tol))
    return out


def _packed_windows(free: list[Interval], span: int) -> np.ndarray:
    """Starts of the most disjoint windows in the free intervals (greedy, left first)."""
    out: list[np.ndarray] = []
    edge = free[0][0]
    for a, b in free:  # each interval's windows are a grid from its first free position
        first = max(a, edge)
        if first > b:
            continue
        grid = np.arange(first, b + 1, span, dtype=np.int64)
        out.append(grid)
        edge = int(grid[-1]) + span
    return np.concatenate(out)


def _nearby(measure: int, u0: int, step: int, limit: int) -> list[int]:
    """Offsets into a stretch to try: u0, then alternately forward and back by `step`."""
    offsets = [u0]
    k = 1
    while len(offsets) < limit:
        moved = False
        for u in (u0 + k * step, u0 - k * step):
            if 0 <= u < measure and len(offsets) < limit:
                offsets.append(u)
                moved = True
        if not moved:
            break
        k += 1
    return offsets


def _positions(parts: list[Interval], offsets: list[int], fence: int, span: int
               ) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
    """Positions (pts) for offsets into the stretch's free parts, each with the bounds of
    its part: (lo, hi) where its window may start, and the fence its frames stay below."""
    starts: list[int] = []
    limits: list[tuple[int, int, int]] = []
    for u in offsets:
        for a, b in parts:
            if u <= b - a:
                starts.append(a + u)
                part_fence = b + span if b + span < fence else fence
                limits.append((a, b, part_fence))
                break
            u -= b - a + 1
    return tuple(starts), tuple(limits)
