"""HDR to SDR for crops: PQ/HLG light, the BT.2390 tone map, BT.2020 → BT.709, BT.1886.

HDR sources (PQ / HLG) become BT.709 SDR. swscale gives 16-bit R'G'B' (BT.2020 matrix),
then numpy, on the crop only:

1. EOTF to linear light: PQ by SMPTE ST 2084; HLG by the BT.2100 inverse OETF and OOTF
   (L_W = 1000 cd/m², γ = 1.2).
2. Tone map with the ITU-R BT.2390 EETF (black levels 0) from the source peak (MaxCLL,
   else mastering max luminance, else 1000 nits) to a 100-nit SDR peak, applied to
   max(R, G, B): every channel is scaled by EETF(m)/m with m = max(R, G, B). Below the knee
   (≈ 31 nits for a 1000-nit source) light is unchanged; above it a Hermite spline rolls
   off to exactly 100 nits at the source peak. Scaling by max(R, G, B) keeps hue and
   saturation, keeps greys grey and never pushes a channel past the SDR peak (luminance-based
   scaling would clip saturated highlights; per-channel curves would shift hue).
3. BT.2020 → BT.709 primaries with the 3×3 linear-light matrix (ITU-R BT.2087), then clip.
4. Encode for a BT.1886 display (gamma 2.4, black 0): V = L^(1/2.4); PQ light is
   display-referred, so inverting the SDR display EOTF reproduces the tone-mapped light
   (the BT.709 camera OETF would brighten mid-tones). Round to uint8.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dsgen.model import ColourInfo

U8Array = npt.NDArray[np.uint8]
F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]

# --- Photometry -------------------------------------------------------------------------
SDR_WHITE_NITS: Final = 100.0  # SDR target peak (BT.2390 / BT.1886 reference display)
HLG_NOMINAL_PEAK_NITS: Final = 1000.0  # BT.2100 HLG reference display peak L_W
PQ_MAX_NITS: Final = 10000.0  # ST 2084 absolute peak
# SMPTE ST 2084 (PQ) constants, exact rationals from the standard.
PQ_M1: Final = 2610.0 / 16384.0
PQ_M2: Final = 2523.0 / 4096.0 * 128.0
PQ_C1: Final = 3424.0 / 4096.0
PQ_C2: Final = 2413.0 / 4096.0 * 32.0
PQ_C3: Final = 2392.0 / 4096.0 * 32.0
# ITU-R BT.2100 HLG OETF constants.
HLG_A: Final = 0.17883277
HLG_B: Final = 1.0 - 4.0 * HLG_A
HLG_C: Final = 0.5 - HLG_A * math.log(4.0 * HLG_A)
HLG_GAMMA: Final = 1.2  # BT.2100 system gamma at L_W = 1000 cd/m² (+0.42·log10(L_W/1000))
BT2020_LUMA: Final = (0.2627, 0.6780, 0.0593)  # BT.2020 / BT.2100 luminance coefficients
BT1886_GAMMA: Final = 2.4  # BT.1886 reference EOTF exponent (black level 0)
_TONE_LUT_SIZE: Final = 16384  # HLG tone-scale table, indexed by sqrt(max/peak)
_POW_FLOOR: Final = np.float32(1e-10)  # clip floor before pow: avoids numpy's slow 0**x path

# Chromaticities (x, y) of R, G, B and the D65 white point (BT.709 / BT.2020 tables).
_BT709_XY: Final = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
_BT2020_XY: Final = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
_D65_XY: Final = (0.3127, 0.3290)


# =========================================================================================
# Transfer functions (float64, used to build lookup tables and by tests)
# =========================================================================================


def pq_eotf(signal: npt.ArrayLike) -> F64Array:
    """SMPTE ST 2084 EOTF: non-linear PQ signal in [0, 1] → absolute luminance in cd/m²."""
    e = np.clip(np.asarray(signal, dtype=np.float64), 0.0, 1.0)
    p = e ** (1.0 / PQ_M2)
    y = np.maximum(p - PQ_C1, 0.0) / (PQ_C2 - PQ_C3 * p)
    return np.asarray(PQ_MAX_NITS * y ** (1.0 / PQ_M1), dtype=np.float64)


def pq_inverse_eotf(nits: npt.ArrayLike) -> F64Array:
    """SMPTE ST 2084 inverse EOTF: luminance in cd/m² → PQ signal in [0, 1]."""
    y = np.clip(np.asarray(nits, dtype=np.float64) / PQ_MAX_NITS, 0.0, 1.0)
    ym = y**PQ_M1
    return np.asarray(((PQ_C1 + PQ_C2 * ym) / (1.0 + PQ_C3 * ym)) ** PQ_M2, dtype=np.float64)


def hlg_inverse_oetf(signal: npt.ArrayLike) -> F64Array:
    """BT.2100 HLG inverse OETF: non-linear signal in [0, 1] → normalised scene light [0, 1]."""
    e = np.clip(np.asarray(signal, dtype=np.float64), 0.0, 1.0)
    low = e * e / 3.0
    high = (np.exp((np.maximum(e, 0.5) - HLG_C) / HLG_A) + HLG_B) / 12.0
    return np.asarray(np.where(e <= 0.5, low, high), dtype=np.float64)


def bt2390_eetf(nits: npt.ArrayLike, source_peak: float, target_peak: float) -> F64Array:
    """ITU-R BT.2390 EETF (black levels 0): compress luminance from source to target peak.

    Works in the PQ domain: values below the knee KS = 1.5·maxLum − 0.5 (normalised to the
    source peak) pass unchanged, above it a Hermite spline rolls off to exactly the target
    peak at the source peak. Monotonic; inputs above the source peak clamp to the target peak.
    """
    x = np.asarray(nits, dtype=np.float64)
    src_pq = float(pq_inverse_eotf(source_peak))
    max_lum = float(pq_inverse_eotf(target_peak)) / src_pq
    if max_lum >= 1.0:  # source fits in the target: no compression, only the final clip
        return np.asarray(np.minimum(x, target_peak), dtype=np.float64)
    e1 = np.minimum(pq_inverse_eotf(x) / src_pq, 1.0)
    ks = 1.5 * max_lum - 0.5
    t = (e1 - ks) / (1.0 - ks)
    t2 = t * t
    t3 = t2 * t
    spline = ((2.0 * t3 - 3.0 * t2 + 1.0) * ks + (t3 - 2.0 * t2 + t) * (1.0 - ks)) + (
        -2.0 * t3 + 3.0 * t2
    ) * max_lum
    e2 = np.where(e1 < ks, e1, spline)
    return np.asarray(np.minimum(pq_eotf(e2 * src_pq), target_peak), dtype=np.float64)


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...]) -> F64Array:
    """RGB→XYZ matrix of a colour space from its primaries and D65 (SMPTE RP 177)."""
    cols = np.array([[x / y, 1.0, (1.0 - x - y) / y] for x, y in primaries]).T
    wx, wy = _D65_XY
    white = np.array([wx / wy, 1.0, (1.0 - wx - wy) / wy])
    return np.asarray(cols * np.linalg.solve(cols, white), dtype=np.float64)


# Linear-light BT.2020 → BT.709 (matches ITU-R BT.2087 to 4 decimals: 1.6605, −0.5876, …).
BT2020_TO_BT709: Final[F64Array] = np.linalg.inv(_rgb_to_xyz(_BT709_XY)) @ _rgb_to_xyz(_BT2020_XY)
_GAMUT_F32: Final[F32Array] = BT2020_TO_BT709.astype(np.float32)


# =========================================================================================
# Lookup tables
# =========================================================================================


def _normalised_codes(black: float, white: float) -> F64Array:
    """Every 16-bit code mapped to [0, 1] between the given black and white codes."""
    codes = np.arange(65536, dtype=np.float64)
    return np.asarray(np.clip((codes - black) / (white - black), 0.0, 1.0), dtype=np.float64)


@functools.lru_cache(maxsize=16)
def sdr_lut(black: float, white: float) -> U8Array:
    """16-bit code → rounded 8-bit full-range value."""
    lut = np.rint(_normalised_codes(black, white) * 255.0).astype(np.uint8)
    lut.flags.writeable = False
    return lut


@functools.lru_cache(maxsize=16)
def _pq_luts(black: float, white: float, peak: float) -> tuple[F32Array, F32Array]:
    """(code → linear light / SDR white, max-code → BT.2390 tone scale) for PQ."""
    nits = pq_eotf(_normalised_codes(black, white))
    mapped = bt2390_eetf(nits, peak, SDR_WHITE_NITS)
    scale = np.divide(mapped, nits, out=np.ones_like(nits), where=nits > 0.0)
    lin = (nits / SDR_WHITE_NITS).astype(np.float32)
    tone = scale.astype(np.float32)
    lin.flags.writeable = False
    tone.flags.writeable = False
    return lin, tone


@functools.lru_cache(maxsize=16)
def _hlg_luts(black: float, white: float, peak: float) -> tuple[F32Array, F32Array]:
    """(code → HLG scene light, sqrt(max/peak) index → BT.2390 tone scale) for HLG."""
    scene = hlg_inverse_oetf(_normalised_codes(black, white)).astype(np.float32)
    u = np.linspace(0.0, 1.0, _TONE_LUT_SIZE)
    nits = u * u * peak
    mapped = bt2390_eetf(nits, peak, SDR_WHITE_NITS)
    tone = np.divide(mapped, nits, out=np.ones_like(nits), where=nits > 0.0).astype(np.float32)
    scene.flags.writeable = False
    tone.flags.writeable = False
    return scene, tone


def hdr_to_sdr(
    planes: tuple[npt.NDArray[Any], ...], black: float, white: float, info: ColourInfo
) -> U8Array:
    """BT.2100 R'G'B' (PQ or HLG, BT.2020 primaries) → tone-mapped BT.709 SDR uint8 RGB."""
    h, w = planes[0].shape
    r, g, b = planes
    peak = min(max(float(info.peak_nits), SDR_WHITE_NITS), PQ_MAX_NITS)
    lin = np.empty((3, h, w), dtype=np.float32)  # BT.2020 linear light, 1.0 = SDR white
    if info.transfer == "pq":
        eotf, tone = _pq_luts(black, white, peak)
        for i, p in enumerate((r, g, b)):
            np.take(eotf, p, out=lin[i])
        # max(R',G',B') in PQ code space is the PQ code of max(R,G,B): one LUT lookup.
        lin *= np.take(tone, np.maximum(np.maximum(r, g), b))
    else:  # HLG: inverse OETF, BT.2100 OOTF with L_W = peak, then the same tone curve
        scene, tone = _hlg_luts(black, white, peak)
        for i, p in enumerate((r, g, b)):
            np.take(scene, p, out=lin[i])
        ys = BT2020_LUMA[0] * lin[0] + BT2020_LUMA[1] * lin[1] + BT2020_LUMA[2] * lin[2]
        np.maximum(ys, _POW_FLOOR, out=ys)
        gamma = HLG_GAMMA + 0.42 * math.log10(peak / HLG_NOMINAL_PEAK_NITS)
        np.power(ys, np.float32(gamma - 1.0), out=ys)
        ys *= np.float32(peak / SDR_WHITE_NITS)
        lin *= ys
        mx = np.maximum(np.maximum(lin[0], lin[1]), lin[2])
        mx *= np.float32(SDR_WHITE_NITS / peak)
        np.sqrt(mx, out=mx)
        mx *= np.float32(_TONE_LUT_SIZE - 1)
        mx += np.float32(0.5)
        idx = np.minimum(mx.astype(np.intp), _TONE_LUT_SIZE - 1)
        lin *= np.take(tone, idx)
    out709 = np.empty_like(lin)
    tmp = np.empty_like(lin[0])
    for i in range(3):  # explicit 3×3 product: BLAS matmul spins extra threads for no gain
        row = out709[i]
        np.multiply(lin[0], _GAMUT_F32[i, 0], out=row)
        np.multiply(lin[1], _GAMUT_F32[i, 1], out=tmp)
        row += tmp
        np.multiply(lin[2], _GAMUT_F32[i, 2], out=tmp)
        row += tmp
    # Out-of-BT.709-gamut colours clip per channel. The floor is not 0 because numpy's SIMD
    # pow falls back to a 4x slower path on exact zeros; 1e-10 still encodes to code 0.
    np.clip(out709, _POW_FLOOR, 1.0, out=out709)
    np.power(out709, np.float32(1.0 / BT1886_GAMMA), out=out709)
    out709 *= np.float32(255.0)
    out709 += np.float32(0.5)
    out = np.empty((h, w, 3), dtype=np.uint8)
    for i in range(3):
        np.copyto(out[..., i], out709[i], casting="unsafe")
    return out


