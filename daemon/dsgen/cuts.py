"""Scene cuts told from motion: align each pair of a clip's small lumas, judge it by the window.

A pair of consecutive frames is aligned coarse to fine (a global shift searched on a 1/4-size
pyramid level, refined per 8×8 block with a ±1-pixel tolerance), on a working copy about
WORK_WIDTH pixels wide. That gives, per pair:

* ``diff``: what alignment cannot explain, the 75th percentile over blocks of the mean
  residual (0–255 luma) — a pan, zoom, shake or moving object leaves almost none, a cut a lot;
* ``gain``: how much better the best shift matches than a typical one (1 − best/median of
  the global search): near 0 when the frames are unrelated;
* ``motion``: the camera's shift (fraction of the width) and zoom of the pair.

A pair is a cut when its diff is above the absolute ceiling, or stands out from the other
pairs of the window (ratio to their median, PySceneDetect's AdaptiveDetector idea), or the
frames do not align at all, or the camera jumps (a cut to another view of the same set aligns
well but moves far more than the other pairs do). "The other pairs" are all the window's
pairs but this one, so the first and last pair are judged like the others (one-sided).
Pure and deterministic: numpy only, same lumas → same findings.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# Width of the working level, pixels: the small luma is block-averaged down to about this
# (1080p's 480-wide Y[::4, ::4] → 60, 4K → 64, 640×360 → 80). 8×8 blocks of it still hold
# real structure, and aligning six pairs at this size costs well under a frame's decode.
WORK_WIDTH = 64
# Block side on the working level: per-block alignment follows zoom, parallax, moving objects.
BLOCK = 8
# Global search on the coarsest level (1/4 of the working level), its pixels each way:
# ±12 working pixels, 15–20% of the width per frame (a whip pan is faster and blurred).
SEARCH = 3
# Pyramid levels above the working one (each halves the size) while both sides stay >= this.
PYRAMID_LEVELS = 2
PYRAMID_MIN = 6
# A pixel counts as matched when it lies within the range of its 3×3 neighbourhood in the
# other frame: sub-pixel motion and blur leave no residual; a different picture does.
TOLERANCE = 1
# The pair's diff is this percentile of its blocks' residuals: what a moving object or the
# strip a fast pan uncovers adds (< 25% of the picture) does not count, a cut moves them all.
QUANTILE = 75.0
# Smallest reference diff (0–255): a still shot's codec noise, so a ratio to ~0 means nothing.
NOISE = 0.3
# Blocks flatter than this (luma std, 0–255) that also match within it carry no evidence:
# letterbox bars would otherwise pull the percentile down.
FLAT_BLOCK = 1.0
# Frames whose coarsest level (mean removed) differs from its shifted copies by less than
# this on average (0–255) have no structure to align (fog, a flat wall): no alignment gain.
STRUCTURE = 2.0
# The motion cue needs the other pairs' motion to be known: their median alignment gain
# must reach this (turbulent water has no one motion to continue).
MOTION_MIN_GAIN = 0.5
# A zoom counts by the displacement it gives a point this fraction of the width from the
# centre, so shift and zoom jumps are measured in the same unit.
ZOOM_RADIUS = 0.25


@dataclass(frozen=True)
class PairScore:
    """What aligning one pair of consecutive frames found."""

    diff: float  # residual after alignment, 75th percentile over blocks (0–255)
    gain: float  # 1 − best/median global-search difference: ~0 for unrelated frames,
    # -1 for frames without structure (no evidence either way)
    shift: tuple[float, float]  # camera shift (x, y), fraction of the width
    zoom: float  # relative scale change between the frames


@dataclass(frozen=True)
class CutFinding:
    """The window's verdict on cuts: the first pair judged a cut (or none) and why."""

    pair: int  # index k of the pair (frame k → k+1) judged a cut, -1 for none
    cue: str  # "ceiling", "spike", "unaligned", "jump", or "" for none
    diff: float  # that pair's diff, or the largest diff when there is no cut
    ratio: float  # that pair's diff over the other pairs' median (NOISE at least)
    jump: float  # that pair's camera jump against the other pairs, fraction of the width
    pairs: tuple[PairScore, ...]


@dataclass(frozen=True)
class CutRule:
    """Thresholds of the cut decision (from [extraction] and [extraction.quality])."""

    ceiling: float  # diff above which a pair is a cut whatever its neighbours
    ratio: float  # diff (or jump) this many times the other pairs' is a cut
    min_diff: float  # ...when the diff is at least this
    min_gain: float  # a pair whose alignment gain is at or below this does not align
    min_jump: float  # smallest camera jump (fraction of the width) that is a cut


def _block_mean(y: F32, f: int) -> F32:
    """y (..., H, W) averaged over f×f blocks (rows/columns that fill no block dropped)."""
    *_lead, hh, ww = y.shape
    h, w = hh // f, ww // f
    out = _block_sums(y[..., : h * f, : w * f], f, f)
    out *= np.float32(1.0 / (f * f))
    return out


def _block_sums(x: F32, bh: int, bw: int) -> F32:
    """Sums over bh × bw blocks of the last two axes (sizes multiples of the block).

    Rows are summed by a reshape (numpy adds whole rows), columns by strided adds: a
    reduction over a short innermost axis is several times slower in numpy.
    """
    *lead, hh, ww = x.shape
    rows = x.reshape(*lead, hh // bh, bh, ww).sum(axis=-2, dtype=np.float32)
    out: F32 = rows[..., 0::bw].copy()
    for j in range(1, bw):
        out += rows[..., j::bw]
    return out


@dataclass(frozen=True)
class _Geometry:
    """Sizes for frames of one shape: working-level factor, levels, working size."""

    factor: int  # small-luma pixels per working pixel (each way)
    levels: int  # coarser levels above the working one
    height: int  # working level, a multiple of 2**levels
    width: int


@functools.lru_cache(maxsize=16)
def _geometry(shape: tuple[int, int]) -> _Geometry:
    f = max(1, round(shape[1] / WORK_WIDTH))
    h, w = shape[0] // f, shape[1] // f
    levels = 0
    while levels < PYRAMID_LEVELS and min(h, w) >> (levels + 1) >= PYRAMID_MIN:
        levels += 1
    scale = 1 << levels
    return _Geometry(f, levels, max(1, h // scale * scale), max(1, w // scale * scale))


@functools.lru_cache(maxsize=64)
def _offsets(h: int, w: int, pad: int, radius: int) -> npt.NDArray[np.intp]:
    """Flat indices into an (h + 2·pad) × (w + 2·pad) array: row s of the result lists, for
    the s-th shift (dy, dx) in ±radius (row-major), where each pixel of an h × w frame lands."""
    wp = w + 2 * pad
    ys, xs = np.mgrid[0:h, 0:w]
    base = ((ys + pad) * wp + xs + pad).ravel()
    span = range(-radius, radius + 1)
    shifts = [dy * wp + dx for dy in span for dx in span]
    out: npt.NDArray[np.intp] = np.array(shifts, dtype=np.intp)[:, None] + base[None, :]
    out.flags.writeable = False
    return out


def _pad_edge(x: F32, p: int) -> F32:
    """x (n, h, w) with its last two axes padded by p, edges replicated (np.pad is slower)."""
    n, h, w = x.shape
    out = np.empty((n, h + 2 * p, w + 2 * p), dtype=np.float32)
    out[:, p : p + h, p : p + w] = x
    out[:, p : p + h, :p] = x[:, :, :1]
    out[:, p : p + h, p + w :] = x[:, :, -1:]
    out[:, :p] = out[:, p : p + 1]
    out[:, p + h :] = out[:, p + h - 1 : p + h]
    return out


def _gather(frames: F32, pad: int, radius: int, shifts: npt.NDArray[np.intp]) -> F32:
    """frames (n, h, w) edge-padded by `pad`, sampled at every shift in ±radius around each
    frame's own (dy, dx) from `shifts` (n, 2): result (n, (2·radius+1)², h·w)."""
    n, h, w = frames.shape
    padded = _pad_edge(frames, pad)
    size = padded.shape[1] * padded.shape[2]
    offset = shifts[:, 0] * padded.shape[2] + shifts[:, 1] + np.arange(n) * size
    index = _offsets(h, w, pad, radius)[None, :, :] + offset[:, None, None]
    return padded.reshape(-1)[index]  # type: ignore[no-any-return]


def _local_range(y: F32) -> tuple[F32, F32]:
    """3×3 minimum and maximum of each frame of y (n, h, w), edges replicated."""
    p = _pad_edge(y, TOLERANCE)
    h, w = y.shape[1], y.shape[2]
    lo = np.minimum(np.minimum(p[:, :, :w], p[:, :, 1 : w + 1]), p[:, :, 2 : w + 2])
    hi = np.maximum(np.maximum(p[:, :, :w], p[:, :, 1 : w + 1]), p[:, :, 2 : w + 2])
    lo = np.minimum(np.minimum(lo[:, :h], lo[:, 1 : h + 1]), lo[:, 2 : h + 2])
    hi = np.maximum(np.maximum(hi[:, :h], hi[:, 1 : h + 1]), hi[:, 2 : h + 2])
    return lo, hi


def score_pairs(lumas: list[np.ndarray]) -> list[PairScore]:
    """Score every consecutive pair of the clip (frames of one shape, 0–255 luma)."""
    n = len(lumas)
    if n < 2:
        return []
    g = _geometry(tuple(np.shape(lumas[0])))  # type: ignore[arg-type]
    f = g.factor
    work = np.stack([_block_mean(np.asarray(y[: g.height * f, : g.width * f], np.float32), f)
                     for y in lumas])
    pyramid = [work]
    for _ in range(g.levels):
        pyramid.append(_block_mean(pyramid[-1], 2))
    # Global search on the coarsest level: every shift in ±SEARCH for every pair at once, on
    # frames with their mean removed, so a fade or an exposure change still aligns.
    top = pyramid[-1] - pyramid[-1].mean(axis=(1, 2), keepdims=True)
    zero = np.zeros((n - 1, 2), dtype=np.intp)
    cand = _gather(top[1:], SEARCH, SEARCH, zero)
    sad = np.abs(cand - top[:-1].reshape(n - 1, 1, -1)).mean(axis=2)
    best = sad.argmin(axis=1)
    side = 2 * SEARCH + 1
    shift = np.stack([best // side - SEARCH, best % side - SEARCH], axis=1).astype(np.intp)
    typical = np.median(sad, axis=1)
    low = sad[np.arange(n - 1), best]
    gains = np.where(typical >= STRUCTURE, 1.0 - low / np.maximum(typical, STRUCTURE), -1.0)
    # Refine by ±1 on each finer level above the working one.
    for level in range(g.levels - 1, 0, -1):
        shift = 2 * shift
        frames = pyramid[level]
        cand = _gather(frames[1:], int(np.abs(shift).max()) + 1, 1, shift)
        sad = np.abs(cand - frames[:-1].reshape(n - 1, 1, -1)).mean(axis=2)
        k = sad.argmin(axis=1)
        shift = shift + np.stack([k // 3 - 1, k % 3 - 1], axis=1)
    if g.levels:
        shift = 2 * shift
    return _score_blocks(work, shift, gains)


def _score_blocks(work: F32, shift: npt.NDArray[np.intp], gains: npt.NDArray[np.float64]
                  ) -> list[PairScore]:
    """Per-block alignment (±1 around each pair's global shift, ±TOLERANCE tolerant) on the
    working level, then each pair's diff, motion and zoom."""
    n, h, w = work.shape
    bh, bw = min(BLOCK, h), min(BLOCK, w)
    nby, nbx = h // bh, w // bw
    pad = int(np.abs(shift).max()) + 1
    a = work[:-1].reshape(n - 1, 1, -1)
    b = _gather(work[1:], pad, 1, shift)  # (n-1, 9, h·w): b at the 9 candidate shifts
    lo, hi = _local_range(work)
    # a against b's local range, and b against a's: the minimum of the two forgives a blur
    # that one frame has and the other not (a blurred value lies within the sharp range).
    forward = np.maximum(_gather(lo[1:], pad, 1, shift) - a, a - _gather(hi[1:], pad, 1, shift))
    lo_a, hi_a = lo[:-1].reshape(n - 1, 1, -1), hi[:-1].reshape(n - 1, 1, -1)
    backward = np.maximum(lo_a - b, b - hi_a)
    np.maximum(forward, 0.0, out=forward)
    np.maximum(backward, 0.0, out=backward)
    scale = np.float32(1.0 / (bh * bw))
    blocks = np.minimum(_block_sums(_grid(forward, h, w, nby * bh, nbx * bw), bh, bw),
                        _block_sums(_grid(backward, h, w, nby * bh, nbx * bw), bh, bw))
    blocks *= scale  # (n-1, 9, nby, nbx): each block's mean residual per candidate
    choice = blocks.argmin(axis=1)
    res = blocks.min(axis=1)
    a_blocks = work[:-1, : nby * bh, : nbx * bw]
    mean = _block_sums(a_blocks, bh, bw) / np.float32(bh * bw)
    var = _block_sums(a_blocks * a_blocks, bh, bw) / np.float32(bh * bw) - mean * mean
    textured = var >= FLAT_BLOCK**2
    cy, cx = np.mgrid[0:nby, 0:nbx]
    oy, ox = (cy + 0.5) * bh - h / 2, (cx + 0.5) * bw - w / 2
    out = []
    for k in range(n - 1):
        valid = textured[k] | (res[k] >= FLAT_BLOCK)
        if not valid.any():
            out.append(PairScore(0.0, float(gains[k]), (0.0, 0.0), 0.0))
            continue
        vy = (choice[k] // 3 - 1 + shift[k, 0])[valid].astype(np.float64)
        vx = (choice[k] % 3 - 1 + shift[k, 1])[valid].astype(np.float64)
        my, mx = _median(vy.tolist()), _median(vx.tolist())
        # Zoom: least squares of the block vectors' deviation against their offset from centre.
        py, px = oy[valid], ox[valid]
        norm = float(px @ px + py @ py)
        zoom = float(px @ (vx - mx) + py @ (vy - my)) / norm if norm > 0 else 0.0
        diff = _quantile(res[k][valid].tolist(), QUANTILE / 100)
        out.append(PairScore(diff, float(gains[k]), (mx / w, my / w), zoom))
    return out


def _grid(x: F32, h: int, w: int, gh: int, gw: int) -> F32:
    """(n, 9, h·w) residuals as (n, 9, gh, gw) images cropped to whole blocks."""
    return x.reshape(x.shape[0], x.shape[1], h, w)[:, :, :gh, :gw]


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a short list."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    i = int(pos)
    return v[i] if i + 1 >= len(v) else v[i] + (v[i + 1] - v[i]) * (pos - i)


def _median(values: list[float]) -> float:
    return _quantile(values, 0.5)




Vector = tuple[float, float, float]


def _motion(p: PairScore) -> Vector:
    """The pair's camera motion: shift (x, y) and the zoom's displacement at ZOOM_RADIUS."""
    return p.shift[0], p.shift[1], ZOOM_RADIUS * p.zoom


def _distance(a: Vector, b: Vector) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _jump(motions: list[Vector], k: int, resolution: float, rule: CutRule) -> float:
    """How far pair k's motion departs from the window's, or 0 when it is no jump.

    Motion is continued from each side of the pair separately (a cut often joins two shots
    that move differently): the pair must depart from every side's motion by min_jump and by
    `ratio` times that side's own spread. Returns the smallest such departure.
    """
    jumps = []
    for side in (motions[:k], motions[k + 1 :]):
        if not side:
            continue
        centre = (_median([m[0] for m in side]), _median([m[1] for m in side]),
                  _median([m[2] for m in side]))
        jump = _distance(motions[k], centre)
        spread = max(_distance(m, centre) for m in side)
        if jump < rule.min_jump or jump < rule.ratio * max(spread, resolution):
            return 0.0
        jumps.append(jump)
    return min(jumps) if jumps else 0.0


def _reference(others: list[float]) -> float:
    """What the window's other pairs differ by: the second largest of them (the largest may
    be another cut; below it lies how much this content moves), their median when fewer
    than three."""
    if len(others) >= 3:
        return sorted(others)[-2]
    return _median(others) if others else 0.0


def judge(pairs: list[PairScore], rule: CutRule, resolution: float) -> CutFinding:
    """Apply the cut rule to every pair of a window; `resolution` is one working-level pixel
    as a fraction of the width (the smallest motion the alignment can tell)."""
    diffs = [p.diff for p in pairs]
    gains = [p.gain for p in pairs]
    motions = [_motion(p) for p in pairs]
    for k, d in enumerate(diffs):
        others = diffs[:k] + diffs[k + 1 :]
        ratio = d / max(_reference(others), NOISE)
        jump = 0.0
        cue = ""
        if others and _median(gains[:k] + gains[k + 1 :]) >= MOTION_MIN_GAIN:
            jump = _jump(motions, k, resolution, rule)
            if jump > 0:
                cue = "jump"
        if d > rule.ceiling:
            cue = "ceiling"
        elif d >= rule.min_diff and others and ratio >= rule.ratio:
            cue = "spike"
        elif d >= rule.min_diff and 0 <= gains[k] <= rule.min_gain:
            cue = "unaligned"
        if cue:
            return CutFinding(k, cue, d, ratio, jump, tuple(pairs))
    return CutFinding(-1, "", max(diffs, default=0.0), 0.0, 0.0, tuple(pairs))


def find_cut(lumas: list[np.ndarray], rule: CutRule) -> CutFinding:
    """Score the clip's pairs and judge them: the first pair that is a cut, or none."""
    pairs = score_pairs(lumas)
    if not pairs:
        return CutFinding(-1, "", 0.0, 0.0, 0.0, ())
    width = _geometry(tuple(np.shape(lumas[0]))).width  # type: ignore[arg-type]
    return judge(pairs, rule, 1.0 / width)
