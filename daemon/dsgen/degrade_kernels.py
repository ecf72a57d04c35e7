"""Spatial operators of the degradations: Real-ESRGAN's blur kernels, convolution, resizing.

Kernels follow Real-ESRGAN / BasicSR (`basicsr/data/degradations.py`): bivariate Gaussian
(isotropic or rotated anisotropic), generalised Gaussian exp(-½·(xᵀΣ⁻¹x)^β), plateau
1 / (1 + (xᵀΣ⁻¹x)^β) and the circular low-pass ("sinc") filter with cutoff ω_c. Frames are
float32 arrays (n, h, w, 3) on the 0–255 scale; every kernel is point-symmetric, so
convolution and Real-ESRGAN's correlation (`filter2D`) agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import fft as sfft  # type: ignore[import-untyped]
from scipy import special  # type: ignore[import-untyped]

# Pillow filters for the resize stage. area = box averaging (PyTorch's "area" for
# downscaling); Pillow's bilinear/bicubic/lanczos widen their support when downscaling
# (antialiased, like MATLAB imresize), which PyTorch's interpolate does not.
RESIZE_FILTERS: dict[str, Image.Resampling] = {
    "area": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _grid(size: int) -> np.ndarray:
    """(size, size, 2) pixel offsets (x, y) from the kernel centre."""
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _quadratic(size: int, sigma_x: float, sigma_y: float, rotation_deg: float) -> np.ndarray:
    """xᵀ Σ⁻¹ x over the kernel grid, Σ = R·diag(σx², σy²)·Rᵀ rotated by `rotation_deg`."""
    t = math.radians(rotation_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    g = _grid(size)
    return np.asarray(np.einsum("...i,ij,...j->...", g, np.linalg.inv(cov), g))


def blur_kernel(p: dict[str, Any]) -> np.ndarray:
    """The normalised (size × size) kernel described by a drawn blur stage."""
    size, kind = int(p["kernel_size"]), str(p["kernel"])
    if kind == "sinc":
        return sinc_kernel(size, float(p["cutoff"]) * math.pi)
    q = _quadratic(size, float(p["sigma_x"]), float(p["sigma_y"]), float(p["rotation"]))
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, float(p["beta"])))
    else:  # plateau
        k = 1.0 / (np.power(q, float(p["beta"])) + 1.0)
    return np.asarray(k / k.sum())


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circularly symmetric ideal low-pass of cutoff `cutoff` rad/px, truncated to size²:
    ω_c·J1(ω_c·r) / (2π·r), centre ω_c² / 4π (Real-ESRGAN's `circular_lowpass_kernel`)."""
    g = _grid(size)
    r = np.hypot(g[..., 0], g[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * math.pi * r)
    k[size // 2, size // 2] = cutoff ** 2 / (4 * math.pi)
    return np.asarray(k / k.sum())


def convolve(frames: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each frame of (n, h, w, 3) convolved with `kernel`, borders reflected (as Real-ESRGAN
    pads); one FFT over all frames and channels, single-threaded."""
    r = kernel.shape[0] // 2
    padded = np.pad(frames, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    _, ph, pw, _ = padded.shape
    shape = (sfft.next_fast_len(ph, real=True), sfft.next_fast_len(pw, real=True))
    spec = sfft.rfft2(padded, s=shape, axes=(1, 2), workers=1)
    kspec = sfft.rfft2(kernel.astype(np.float32), s=shape, workers=1)
    out = sfft.irfft2(spec * kspec[None, :, :, None], s=shape, axes=(1, 2), workers=1)
    h, w = frames.shape[1:3]
    # The full convolution of the padded frame starts 2r earlier than the frame: crop it.
    return np.ascontiguousarray(out[:, 2 * r:2 * r + h, 2 * r:2 * r + w], dtype=np.float32)


def resize(frames: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """Every frame resized to `size` (w, h) with Pillow's `kernel` filter, as float32.

    uint8 input (the GT frames of a leading resize) is resized as RGB; float input channel by
    channel in Pillow's float mode, so no rounding happens between stages.
    """
    filt = RESIZE_FILTERS[kernel]
    if frames.dtype == np.uint8:
        out = [np.asarray(Image.fromarray(f).resize(size, filt)) for f in frames]
        return np.stack(out).astype(np.float32)
    chans = [[np.asarray(Image.fromarray(np.ascontiguousarray(f[..., c])).resize(size, filt))
              for c in range(3)] for f in frames]
    return np.stack([np.stack(c, axis=-1) for c in chans]).astype(np.float32)
