"""Chroma and colour operators (the predecessor's `chroma` and `color` template sections):
saturation, horizontal chroma bleed, contrast, brightness, black lift and gamma.

All work on float32 frames (n, h, w, 3) on the 0–255 scale, in BT.709 Y'CbCr where luma
and chroma have to be told apart (the frames are BT.709 RGB, see colour.py).
"""

from __future__ import annotations

import math

import numpy as np

KR, KB = 0.2126, 0.0722  # BT.709 luma coefficients
KG = 1.0 - KR - KB
CB_SCALE = 2.0 * (1.0 - KB)  # Cb = (B − Y) / CB_SCALE
CR_SCALE = 2.0 * (1.0 - KR)  # Cr = (R − Y) / CR_SCALE
# Horizontal chroma blur σ (LR pixels) per unit of bleed strength: strength 0.2 gives
# σ 1.2 px, close to the predecessor's 5-tap kernel at 0.2 (its σ ≈ 1.1).
BLEED_SIGMA_PER_STRENGTH = 6.0


def _luma(frames: np.ndarray) -> np.ndarray:
    return np.asarray(KR * frames[..., 0] + KG * frames[..., 1] + KB * frames[..., 2],
                      dtype=np.float32)


def saturation(frames: np.ndarray, factor: float) -> np.ndarray:
    """Chroma scaled by `factor` around each pixel's BT.709 luma (luma kept), clipped."""
    y = _luma(frames)[..., None]
    return np.asarray(np.clip(y + (frames - y) * np.float32(factor), 0.0, 255.0),
                      dtype=np.float32)


def _blur_rows(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (n, h, w) along w only, borders reflected."""
    r = max(1, math.ceil(3.0 * sigma))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    padded = np.pad(plane, ((0, 0), (0, 0), (r, r)), mode="reflect")
    w = plane.shape[2]
    out = np.zeros_like(plane)
    for i, t in enumerate(taps):
        out += t * padded[:, :, i:i + w]
    return out


def chroma_bleed(frames: np.ndarray, strength: float) -> np.ndarray:
    """Cb and Cr smeared horizontally (σ = 6 px × strength), as analogue video's narrow
    chroma bandwidth does; luma untouched."""
    if strength <= 0:
        return frames
    y = _luma(frames)
    cb = _blur_rows((frames[..., 2] - y) / CB_SCALE, BLEED_SIGMA_PER_STRENGTH * strength)
    cr = _blur_rows((frames[..., 0] - y) / CR_SCALE, BLEED_SIGMA_PER_STRENGTH * strength)
    r = y + CR_SCALE * cr
    b = y + CB_SCALE * cb
    g = (y - KR * r - KB * b) / KG
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 255.0)


def tone(frames: np.ndarray, contrast: float, brightness: float, black_lift: float,
         gamma: float) -> np.ndarray:
    """On x ∈ [0, 1]: black lifted (x → l + (1 − l)·x), contrast around mid-grey, brightness
    added, clipped, then x^(1/gamma) — one 256-entry curve would do, but the frames are float
    between stages, so the curve is evaluated per pixel."""
    x = frames / np.float32(255.0)
    x = np.float32(black_lift) + np.float32(1.0 - black_lift) * x
    x = (x - np.float32(0.5)) * np.float32(contrast) + np.float32(0.5 + brightness)
    x = np.clip(x, 0.0, 1.0)
    if gamma != 1.0:
        x = np.power(x, np.float32(1.0 / gamma))
    return np.asarray(x * np.float32(255.0), dtype=np.float32)
