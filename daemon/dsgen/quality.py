"""Quality gates: scene cuts inside a clip, black/flat frames, and per-crop detail."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import laplace

from dsgen.config import QualityCfg
from dsgen.cuts import CutRule, find_cut
from dsgen.model import BLACK, FLAT, LOW_DETAIL, LOW_TEXTURE, OK, SCENE_CUT

# Subsampling of the small luma for the black and flat frame statistics.
STATS_STEP = 2


@dataclass(frozen=True)
class ClipVerdict:
    """The outcome of the clip-level gates, with the numbers that decided it."""

    reason: str
    # Motion-compensated difference (0–255 luma, see dsgen.cuts): of the pair judged a cut for
    # "scene_cut", else the largest over the clip's consecutive pairs. A pan or a moving
    # object leaves ~0–3; a cut typically 5–60.
    scene_diff: float
    mean_luma: float  # the darkest frame's mean luma
    min_std: float  # the flattest frame's luma std
    cut_pair: int = -1  # scene_cut: the pair (frame k → k+1) judged a cut
    cut_cue: str = ""  # scene_cut: "ceiling", "spike", "unaligned" or "jump" (dsgen.cuts)
    cut_ratio: float = 0.0  # scene_cut: that pair's diff over the other pairs' median
    cut_jump: float = 0.0  # scene_cut: its camera jump against the others (fraction of width)


def cut_rule(threshold: float, q: QualityCfg) -> CutRule:
    """The cut thresholds: `threshold` (extraction.scene_cut_threshold) is the ceiling."""
    return CutRule(ceiling=threshold, ratio=q.cut_ratio, min_diff=q.cut_min_diff,
                   min_gain=q.cut_min_gain, min_jump=q.cut_min_jump)


def check_clip(lumas: list[np.ndarray], threshold: float, q: QualityCfg) -> ClipVerdict:
    """Reject a clip that crosses a scene cut anywhere or holds a black or flat frame.

    `lumas` are luma planes on the 0–255 scale, float or integer (all arithmetic is in
    float32, so integer planes never wrap around). A cut is told from motion by aligning
    every consecutive pair and comparing it with the clip's other pairs (`dsgen.cuts`);
    `threshold` is the motion-compensated difference above which a pair is a cut anyway.
    """
    found = find_cut(lumas, cut_rule(threshold, q))
    # Black and flat are whole-frame statistics: every other row and column of the small luma
    # (Y[::8, ::8]) estimate them within a fraction of a per cent at a quarter of the cost.
    subs = [np.asarray(y)[::STATS_STEP, ::STATS_STEP] for y in lumas]
    means = [float(np.mean(y, dtype=np.float32)) for y in subs]
    stds = [float(np.std(y, dtype=np.float32)) for y in subs]
    mean_luma, min_std = min(means), min(stds)
    if found.pair >= 0:
        return ClipVerdict(SCENE_CUT, found.diff, mean_luma, min_std, found.pair, found.cue,
                           found.ratio, found.jump)
    if mean_luma < q.black_level:
        return ClipVerdict(BLACK, found.diff, mean_luma, min_std)
    if min_std < q.flat_frame_std:
        return ClipVerdict(FLAT, found.diff, mean_luma, min_std)
    return ClipVerdict(OK, found.diff, mean_luma, min_std)


@dataclass(frozen=True)
class CropVerdict:
    """The outcome of the per-crop gate on the GT patch."""

    reason: str
    std: float
    detail: float  # variance of the Laplacian of the grey patch (0–255 scale)


def check_crop(grey: np.ndarray, q: QualityCfg) -> CropVerdict:
    """Reject a GT patch without texture (grey std) or without detail (Laplacian variance).

    `grey` is on the 0–255 scale, float or integer: it is measured as float32, because
    skimage would rescale an integer image to 0–1 and every patch would look blurred.
    """
    grey = np.asarray(grey, dtype=np.float32)
    std = float(grey.std())
    if std < q.crop_min_std:
        return CropVerdict(LOW_TEXTURE, std, 0.0)
    detail = float(np.var(laplace(grey, ksize=3)))  # type: ignore[no-untyped-call]
    if detail < q.crop_min_detail:
        return CropVerdict(LOW_DETAIL, std, detail)
    return CropVerdict(OK, std, detail)
