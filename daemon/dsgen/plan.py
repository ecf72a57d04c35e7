"""Sampling plan: targets split over videos, slots spread over the runtime, all from the seed."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np

from dsgen.config import Config, FormatCfg
from dsgen.model import SlotPlan, VideoProbe
from dsgen.patches import Geometry, fits, geometry
from dsgen.split import EVERYWHERE, TRAIN, Region
from dsgen.split import formats as split_formats

# Rounds of replacement slots a video gets before its deficit moves to other videos:
# a round that yields nothing also ends it (the video cannot give more).
MAX_ROUNDS = 8


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


def start_range(probe: VideoProbe, cfg: Config) -> tuple[int, int]:
    """First and last allowed window start (inclusive); empty when last < first."""
    margin = round(cfg.extraction.edge_margin_seconds * probe.fps)
    return margin, probe.n_frames - margin - cfg.extraction.frames_per_clip


def capacity(probe: VideoProbe, cfg: Config) -> int:
    """How many non-overlapping windows the usable runtime holds."""
    lo, hi = start_range(probe, cfg)
    return max(0, (hi - lo + cfg.extraction.frames_per_clip) // cfg.extraction.frames_per_clip)


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
    return max(0.0, (hi - lo + 1) / probe.fps) if probe.fps > 0 else 0.0


def split_targets(cfg: Config, amounts: dict[str, int], shares: dict[str, dict[int, float]],
                  caps: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """Per category, `amounts[c]` split over videos by share (duration × weight), capped."""
    out: dict[str, dict[int, int]] = {}
    for cat, amount in amounts.items():
        vids = sorted(shares.get(cat, {}))
        alloc = allocate(amount, [shares[cat][v] for v in vids], [caps[cat][v] for v in vids])
        out[cat] = {v: a for v, a in zip(vids, alloc, strict=True) if a > 0}
    return out


def free_starts(probe: VideoProbe, cfg: Config, used: list[int],
                region: Region = EVERYWHERE) -> np.ndarray:
    """Bool per frame index: may a new window start here (in range, overlapping no used one,
    where the split's region allows it: `split.Region`, the held-out validation ranges)?"""
    n = cfg.extraction.frames_per_clip
    lo, hi = start_range(probe, cfg)
    ok = np.zeros(probe.n_frames, dtype=bool)
    if hi < lo:
        return ok
    ok[lo:hi + 1] = True
    for s in used:
        ok[max(0, s - n + 1):s + n] = False  # any window overlapping [s, s+n) is taken
    allowed = region.allowed(probe.n_frames, n)
    if allowed is not None:
        ok &= allowed
    return ok


def place_round(cfg: Config, probe: VideoProbe, name: str, deficits: dict[str, int],
                used: list[int], first_slot: int, phase: int, rnd: int,
                region: Region = EVERYWHERE) -> list[SlotPlan]:
    """New slots for `deficits` (category → samples still owed) of one split, in windows no
    slot has tried and the split's region allows."""
    geo = geometry(probe, cfg.extraction.reference_height)
    fitting = {cat: fitting_formats(cfg, geo, cat, region.split) for cat in sorted(deficits)}
    need = max((d for cat, d in deficits.items() if fitting[cat]), default=0)
    if need <= 0:
        return []
    n = cfg.extraction.frames_per_clip
    rng = rng_for(cfg.seed, name, phase, rnd, *region.salt)
    cand = np.flatnonzero(free_starts(probe, cfg, used, region))
    if cand.size == 0:
        return []
    step_pref = max(n, round(cfg.extraction.retry_skip_seconds * probe.fps))
    # One stretch of the free runtime per slot, cut at evenly chosen windows of a greedy
    # packing, so every stretch holds a window that ends before the next stretch begins.
    packed = _packed_windows(cand, n)
    stretches = min(need, packed.size)
    bounds = packed[(np.arange(stretches) * packed.size) // stretches]
    firsts = np.searchsorted(cand, bounds)
    # a stretch's windows end before the next stretch begins
    ends = [*np.searchsorted(cand, bounds[1:] - n, side="right").tolist(), cand.size]
    attempts: list[tuple[int, ...]] = []
    for i0, i1 in zip(firsts.tolist(), ends, strict=True):
        chunk = cand[i0:i1]
        step = max(n, min(step_pref, chunk.size // cfg.extraction.max_attempts))
        attempts.append(_nearby(chunk, int(rng.integers(chunk.size)), step,
                                cfg.extraction.max_attempts))
    serve: list[list[tuple[str, str]]] = [[] for _ in attempts]
    for cat, fmts in fitting.items():
        k = min(deficits[cat], len(attempts))
        if k <= 0 or not fmts:
            continue
        chosen = np.sort(rng.choice(len(attempts), size=k, replace=False))
        weights = np.asarray([w for _, w in fmts], dtype=np.float64)
        picks = rng.choice(len(fmts), size=k, p=weights / weights.sum())
        for slot_idx, f in zip(chosen.tolist(), picks.tolist(), strict=True):
            serve[slot_idx].append((cat, fmts[f][0].name))
    out: list[SlotPlan] = []
    for starts, formats in zip(attempts, serve, strict=True):
        if formats:
            out.append(SlotPlan(first_slot + len(out), phase, rnd, starts, tuple(formats),
                                region.split))
    return out


def _packed_windows(cand: np.ndarray, n: int) -> np.ndarray:
    """Starts of the most disjoint windows among sorted free starts `cand` (greedy, left first)."""
    runs = np.split(cand, np.flatnonzero(np.diff(cand) > 1) + 1)
    out: list[np.ndarray] = []
    edge = int(cand[0])
    for run in runs:  # each run is contiguous: its windows are a grid from its first free start
        first = max(int(run[0]), edge)
        if first > int(run[-1]):
            continue
        grid = np.arange(first, int(run[-1]) + 1, n)
        out.append(grid)
        edge = int(grid[-1]) + n
    return np.concatenate(out)


def _nearby(chunk: np.ndarray, i0: int, step: int, limit: int) -> tuple[int, ...]:
    """Starts to try: chunk[i0], then alternately forward and back by `step` frames."""
    starts = [int(chunk[i0])]
    k = 1
    while len(starts) < limit:
        moved = False
        for j in (i0 + k * step, i0 - k * step):
            if 0 <= j < chunk.size and len(starts) < limit:
                s = int(chunk[j])
                if all(abs(s - t) >= step for t in starts):
                    starts.append(s)
                moved = True
        if not moved:
            break
        k += 1
    return tuple(starts)
