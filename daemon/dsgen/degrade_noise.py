"""Additive noise as Real-ESRGAN defines it: Gaussian (σ on the 0–255 scale) and Poisson
(shot noise at the image's own quantisation, times a scale), in colour or grey."""

from __future__ import annotations

import numpy as np

# Grey for grey Poisson noise: ITU-R BT.601 luma, what Real-ESRGAN's rgb_to_grayscale uses.
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gaussian(frame: np.ndarray, sigma: float, grey: bool, rng: np.random.Generator
             ) -> np.ndarray:
    """`frame` (h, w, 3, 0–255) plus N(0, σ²) noise — one field for all channels if grey —
    clipped to 0–255."""
    h, w, _ = frame.shape
    shape = (h, w, 1) if grey else (h, w, 3)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    return np.asarray(np.clip(frame + noise, 0.0, 255.0), dtype=np.float32)


def poisson(frame: np.ndarray, scale: float, grey: bool, rng: np.random.Generator
            ) -> np.ndarray:
    """Real-ESRGAN's Poisson noise: on x ∈ [0, 1] rounded to 8 bits with v distinct values,
    vals = 2^⌈log2 v⌉ and noise = (Poisson(x·vals)/vals − x)·scale; grey noise is computed on
    the BT.601 grey image and added to every channel. Result clipped to 0–255."""
    x = np.clip(np.rint(frame), 0.0, 255.0)
    if grey:
        x = np.clip(np.rint(x @ BT601), 0.0, 255.0)[..., None]
    distinct = int(np.count_nonzero(np.bincount(x.astype(np.int64).ravel(), minlength=256)))
    vals = float(2 ** np.ceil(np.log2(max(distinct, 1))))
    unit = x.astype(np.float64) / 255.0
    noisy = rng.poisson(unit * vals) / vals
    noise = ((noisy - unit) * scale * 255.0).astype(np.float32)
    return np.asarray(np.clip(frame + noise, 0.0, 255.0), dtype=np.float32)
