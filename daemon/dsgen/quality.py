"""Quality gates: scene cuts inside a clip, black/flat frames, and per-crop detail."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from skimage.filters import laplace

from dsgen.config import QualityCfg
from dsgen.model import BLACK, FLAT, LOW_DETAIL, LOW_TEXTURE, OK, SCENE_CUT


@dataclass(frozen=True)
class ClipVerdict:
    """The outcome of the clip-level gates, with the numbers that decided it."""

    reason: str
    scene_diff: float  # the largest mean |ΔY| between consecutive frames
    mean_luma: float  # the darkest frame's mean luma
    min_std: float  # the flattest frame's luma std


def check_clip(lumas: list[np.ndarray], threshold: float, q: QualityCfg) -> ClipVerdict:
    """Reject a clip that crosses a scene cut anywhere or holds a black or flat frame.

    `lumas` are luma planes on the 0–255 scale, float or integer (differences are taken in
    float32, so integer planes never wrap around).
    """
    diffs = [float(np.mean(np.abs(np.subtract(a, b, dtype=np.float32))))
             for a, b in itertools.pairwise(lumas)]
    worst = max(diffs) if diffs else 0.0
    means = [float(y.mean()) for y in lumas]
    stds = [float(y.std()) for y in lumas]
    verdict = ClipVerdict(OK, worst, min(means), min(stds))
    if worst > threshold:
        return ClipVerdict(SCENE_CUT, worst, verdict.mean_luma, verdict.min_std)
    if verdict.mean_luma < q.black_level:
        return ClipVerdict(BLACK, worst, verdict.mean_luma, verdict.min_std)
    if verdict.min_std < q.flat_frame_std:
        return ClipVerdict(FLAT, worst, verdict.mean_luma, verdict.min_std)
    return verdict


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
