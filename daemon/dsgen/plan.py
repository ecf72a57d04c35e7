"""Sampling plan: targets split over videos, slots spread over the runtime, all from the seed."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from dsgen.config import Config, FormatCfg
from dsgen.patches import Geometry, fits, geometry
from dsgen.probe import VideoProbe

# Rounds of replacement slots a video gets before its deficit moves to other videos:
# a round that yields nothing also ends it (the video cannot give more).
MAX_ROUNDS = 8


@dataclass(frozen=True)
class SlotPlan:
    """One sample slot: the positions to try, in order, and what it serves per category."""

    slot_id: int
    phase: int
    round: int
    starts: tuple[int, ...]  # first-frame indices of the windows to try, in trial order
    formats: tuple[tuple[str, str], ...]  # (category, format) pairs this slot must produce


def name_key(name: str) -> int:
    """A stable 63-bit identity of a name (video, category) for seeding."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") >> 1


def rng_for(seed: int, name: str, *parts: int) -> np.random.Generator:
    """The generator for one decision, derived only from the seed, the video and `parts`."""
    return np.random.default_rng([seed, name_key(name), *parts])


def allocate(total: int, weights: list[float], caps: list[int]) -> list[int]:
    """Split `total` by `weights` (largest remainder), never above `caps`; spill goes elsewhere."""
    alloc = [0] * len(weights)
    active = [i for i, (w, c) in enumerate(zip(weights, caps, strict=True)) if w > 0 and c > 0]
    remaining = total
    while remaining > 0 and active:
        wsum = sum(weights[i] for i in active)
        ideal = {i: remaining * weights[i] / wsum for i in active}
        take = {i: math.floor(v) for i, v in ideal.items()}
        left = remaining - sum(take.values())
        for i in sorted(active, key=lambda i: (-(ideal[i] - take[i]), i))[:left]:
            take[i] += 1
        for i in active:
            alloc[i] += min(take[i], caps[i] - alloc[i])
        active = [i for i in active if alloc[i] < caps[i]]
        remaining = total - sum(alloc)
    return alloc


def start_range(probe: VideoProbe, cfg: Config) -> tuple[int, int]:
    """First and last allowed window start (inclusive); empty when last < first."""
    margin = round(cfg.extraction.edge_margin_seconds * probe.fps)
    return margin, probe.n_frames - margin - cfg.extraction.frames_per_clip


def capacity(probe: VideoProbe, cfg: Config) -> int:
    """How many non-overlapping windows the usable runtime holds."""
    lo, hi = start_range(probe, cfg)
    return max(0, (hi - lo + cfg.extraction.frames_per_clip) // cfg.extraction.frames_per_clip)


def fitting_formats(cfg: Config, geo: Geometry, category: str) -> list[tuple[FormatCfg, float]]:
    """The category's formats that this picture can give, with their weights."""
    mix = cfg.category(category).formats
    return [(cfg.format(f), w) for f, w in mix if fits(geo, cfg.format(f))]


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


def free_starts(probe: VideoProbe, cfg: Config, used: list[int]) -> np.ndarray:
    """Bool per frame index: may a new window start here (in range, overlapping no used one)?"""
    n = cfg.extraction.frames_per_clip
    lo, hi = start_range(probe, cfg)
    ok = np.zeros(probe.n_frames, dtype=bool)
    if hi < lo:
        return ok
    ok[lo:hi + 1] = True
    for s in used:
        ok[max(0, s - n + 1):s + n] = False  # any window overlapping [s, s+n) is taken
    return ok


def place_round(cfg: Config, probe: VideoProbe, name: str, deficits: dict[str, int],
                used: list[int], first_slot: int, phase: int, rnd: int) -> list[SlotPlan]:
    """New slots for `deficits` (category → samples still owed) in windows no slot has tried."""
    need = max(deficits.values(), default=0)
    if need <= 0:
        return []
    n = cfg.extraction.frames_per_clip
    rng = rng_for(cfg.seed, name, phase, rnd)
    cand = np.flatnonzero(free_starts(probe, cfg, used))
    if cand.size == 0:
        return []
    step_pref = max(n, round(cfg.extraction.retry_skip_seconds * probe.fps))
    chunks = np.array_split(cand, min(need, cand.size))
    attempts: list[tuple[int, ...]] = []
    for i, chunk in enumerate(chunks):
        nxt = chunks[i + 1][0] if i + 1 < len(chunks) and chunks[i + 1].size else None
        if nxt is not None:
            chunk = chunk[chunk + n <= nxt]  # keep this stretch's windows off the next one's
        if chunk.size == 0:
            continue
        step = max(n, min(step_pref, chunk.size // cfg.extraction.max_attempts))
        attempts.append(_nearby(chunk, int(rng.integers(chunk.size)), step,
                                cfg.extraction.max_attempts))
    geo = geometry(probe, cfg.extraction.reference_height)
    serve: list[list[tuple[str, str]]] = [[] for _ in attempts]
    for cat in sorted(deficits):
        k = min(deficits[cat], len(attempts))
        fmts = fitting_formats(cfg, geo, cat)
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
            out.append(SlotPlan(first_slot + len(out), phase, rnd, starts, tuple(formats)))
    return out


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
