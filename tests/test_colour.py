"""Tests for dsgen.colour: crop conversion, HDR tone mapping, colour tags, luma preview.

Frames are built with PyAV from known planes (written through numpy views of the planes,
independently of the module under test); streams are real tiny H.264 / HEVC files encoded
with PyAV's libx264 / libx265. Reference maths (YCbCr equations, ST 2084, BT.2390, HLG)
is re-implemented here from the standards rather than imported from dsgen.colour.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.video.reformatter import Interpolation
from PIL import Image

from dsgen import colour, tonemap
from dsgen.colour import colour_info, crop_rgb, luma_small, plane_views
from dsgen.model import ColourInfo

# swscale flags of an accurate whole-frame reference conversion (default flags are ±2.5 off).
ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
SWS_CS = {"bt601": "ITU601", "bt709": "ITU709", "bt2020": "BT2020"}
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}


# ------------------------------------------------------------------------------------------
# Helpers (independent of dsgen.colour)
# ------------------------------------------------------------------------------------------


def raw_planes(frame: av.VideoFrame) -> list[npt.NDArray[Any]]:
    """Writable numpy views of every plane of a planar frame (uint8 or uint16)."""
    bits = frame.format.components[0].bits
    dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype("<u2")
    out = []
    for p in frame.planes:
        out.append(
            np.ndarray(
                (p.height, p.width), dtype=dtype, buffer=p, strides=(p.line_size, dtype.itemsize)
            )
        )
    return out


def make_frame(fmt: str, planes: list[npt.NDArray[Any]]) -> av.VideoFrame:
    """A frame of pixel format fmt whose planes hold the given arrays (luma first)."""
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, fmt)
    for dst, src in zip(raw_planes(frame), planes, strict=True):
        dst[...] = src
    return frame


def yuv_fmt(sub: str, bits: int, full: bool = False) -> str:
    """Planar YUV pixel format name for a subsampling and bit depth."""
    if bits == 8:
        return f"yuvj{sub}p" if full else f"yuv{sub}p"
    return f"yuv{sub}p{bits}le"


def noise_frame(
    fmt: str, width: int, height: int, seed: int = 0, full: bool = False
) -> av.VideoFrame:
    """Random in-range samples: the worst case for chroma interpolation at crop edges."""
    rng = np.random.default_rng(seed)
    sub = fmt[3:6] if not fmt.startswith("yuvj") else fmt[4:7]
    sx, sy = SUBSAMPLING[sub]
    bits = 8 if fmt.endswith("p") else int(fmt.split("p")[-1][:-2])
    s = 1 << (bits - 8)
    lo, hi = (0, (1 << bits) - 1) if full else (16 * s, 235 * s)
    clo, chi = (0, (1 << bits) - 1) if full else (16 * s, 240 * s)
    dtype = np.uint8 if bits == 8 else np.uint16
    cw, ch = -(-width >> sx), -(-height >> sy)
    y = rng.integers(lo, hi + 1, (height, width)).astype(dtype)
    u = rng.integers(clo, chi + 1, (ch, cw)).astype(dtype)
    v = rng.integers(clo, chi + 1, (ch, cw)).astype(dtype)
    return make_frame(fmt, [y, u, v])


def ref_ycbcr_to_rgb(
    y: npt.ArrayLike, cb: npt.ArrayLike, cr: npt.ArrayLike, bits: int, full: bool, matrix: str
) -> npt.NDArray[np.float64]:
    """Float Y'CbCr → R'G'B' in [0, 1] (clipped), per BT.601 / BT.709 / BT.2020 equations."""
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    s = float(1 << (bits - 8))
    yf, cbf, crf = (np.asarray(a, dtype=np.float64) for a in (y, cb, cr))
    if full:
        m = float((1 << bits) - 1)
        yn, pb, pr = yf / m, (cbf - 128 * s) / m, (crf - 128 * s) / m
    else:
        yn, pb, pr = (
            (yf - 16 * s) / (219 * s),
            (cbf - 128 * s) / (224 * s),
            (crf - 128 * s) / (224 * s),
        )
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def info_for(matrix: str, bits: int, full: bool, transfer: str = "sdr", peak: float = 1000.0):
    """A ColourInfo built by hand (tests of colour_info itself use real streams)."""
    return ColourInfo(matrix, full, bits, transfer, peak)  # type: ignore[arg-type]


# Independent reference maths for HDR ------------------------------------------------------
M1, M2 = 2610 / 16384, 2523 / 4096 * 128
C1, C2, C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def ref_pq_to_nits(e: float) -> float:
    """ST 2084 EOTF."""
    p = e ** (1 / M2)
    return 10000.0 * (max(p - C1, 0.0) / (C2 - C3 * p)) ** (1 / M1)


def ref_nits_to_pq(nits: float) -> float:
    """ST 2084 inverse EOTF."""
    y = (nits / 10000.0) ** M1
    return ((C1 + C2 * y) / (1 + C3 * y)) ** M2


def ref_eetf(nits: float, src_peak: float, dst_peak: float = 100.0) -> float:
    """BT.2390-9 §5.4.1 EETF with zero black levels, written out from the standard."""
    src = ref_nits_to_pq(src_peak)
    max_lum = ref_nits_to_pq(dst_peak) / src
    if max_lum >= 1:
        return min(nits, dst_peak)
    e1 = min(ref_nits_to_pq(nits) / src, 1.0)
    ks = 1.5 * max_lum - 0.5
    if e1 < ks:
        e2 = e1
    else:
        t = (e1 - ks) / (1 - ks)
        e2 = (
            (2 * t**3 - 3 * t**2 + 1) * ks
            + (t**3 - 2 * t**2 + t) * (1 - ks)
            + (-2 * t**3 + 3 * t**2) * max_lum
        )
    return min(ref_pq_to_nits(e2 * src), dst_peak)


def ref_sdr_code(nits: float) -> int:
    """Display light relative to 100 nits → 8-bit inverse BT.1886 (gamma 2.4) code."""
    return round(255 * min(max(nits / 100.0, 0.0), 1.0) ** (1 / 2.4))


def pq_grey_frame(nits: list[float], bits: int = 10, rows: int = 4) -> av.VideoFrame:
    """4:2:0 limited-range grey patches (8 px wide each) at the given PQ luminances."""
    s = 1 << (bits - 8)
    codes = [round(64 * s / 4 + 876 * s / 4 * ref_nits_to_pq(n)) for n in nits]
    y = np.repeat(np.array(codes, dtype=np.uint16), 8)[None, :].repeat(rows, axis=0)
    c = np.full((rows // 2, y.shape[1] // 2), 512 * s // 4, dtype=np.uint16)
    return make_frame(f"yuv420p{bits}le", [y, c, c])


# ------------------------------------------------------------------------------------------
# (1) SDR crops equal whole-frame conversion
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "matrix", "full"),
    [
        ("yuv420p", "bt709", False),
        ("yuv420p", "bt601", False),
        ("yuvj420p", "bt601", True),
        ("yuv420p", "bt709", True),
        ("yuv422p", "bt709", False),
        ("yuv444p", "bt2020", False),
        ("yuv420p10le", "bt709", False),
        ("yuv420p10le", "bt2020", False),
        ("yuv422p10le", "bt709", False),
        ("yuv444p12le", "bt709", False),
    ],
)
def test_sdr_crop_equals_whole_frame_conversion(fmt: str, matrix: str, full: bool) -> None:
    """An SDR crop equals frame.to_ndarray("rgb24") of the whole frame (same matrix, range
    and accurate swscale flags) cropped to the same box, within ±1 code."""
    frame = noise_frame(fmt, 320, 240, seed=1, full=full)
    whole = frame.to_ndarray(
        format="rgb24",
        src_colorspace=SWS_CS[matrix],
        src_color_range="JPEG" if full else "MPEG",
        dst_color_range="JPEG",
        interpolation=ACCURATE,
    )
    info = info_for(matrix, frame.format.components[0].bits, full)
    for box in [(0, 0, 320, 240), (64, 32, 128, 96), (2, 4, 100, 60), (220, 140, 100, 100)]:
        x, y, w, h = box
        got = crop_rgb(frame, box, info)
        assert got.shape == (h, w, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - whole[y : y + h, x : x + w])
        assert diff.max() <= 1, (box, diff.max())


def test_default_swscale_flags_are_less_accurate_than_crop_rgb() -> None:
    """Documents why crop_rgb does not use swscale's default flags: on flat 8×8 blocks of
    random 4:2:0 colours the default rgb24 path is off by more than 1 code from the float
    equations, crop_rgb stays within ±0.5 (block interiors, away from chroma interpolation)."""
    rng = np.random.default_rng(2)
    blocks = 12
    y8 = rng.integers(16, 236, (blocks, blocks))
    u8 = rng.integers(16, 241, (blocks, blocks))
    v8 = rng.integers(16, 241, (blocks, blocks))
    big = np.ones((8, 8), dtype=np.int64)
    small = np.ones((4, 4), dtype=np.int64)
    frame = make_frame(
        "yuv420p",
        [np.kron(y8, big).astype(np.uint8)]
        + [np.kron(c, small).astype(np.uint8) for c in (u8, v8)],
    )
    ref = ref_ycbcr_to_rgb(*(np.kron(a, big) for a in (y8, u8, v8)), 8, False, "bt709") * 255
    inner = np.zeros((8, 8), dtype=bool)
    inner[2:6, 2:6] = True
    mask = np.kron(np.ones((blocks, blocks), dtype=bool), inner)
    default = frame.to_ndarray(
        format="rgb24", src_colorspace="ITU709", src_color_range="MPEG", dst_color_range="JPEG"
    )
    ours = crop_rgb(frame, (0, 0, 8 * blocks, 8 * blocks), info_for("bt709", 8, False))
    assert np.abs(default - ref)[mask].max() > 1.5
    assert np.abs(ours - ref)[mask].max() <= 0.52


# ------------------------------------------------------------------------------------------
# (2) Known levels and colours
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "full", "black", "white", "neutral"),
    [
        ("yuv420p", False, 16, 235, 128),
        ("yuvj420p", True, 0, 255, 128),
        ("yuv420p10le", False, 64, 940, 512),
        ("yuv420p10le", True, 0, 1023, 512),
        ("yuv420p12le", False, 256, 3760, 2048),
    ],
)
def test_nominal_black_and_white_map_to_0_and_255(
    fmt: str, full: bool, black: int, white: int, neutral: int
) -> None:
    """Nominal black/white of each range and depth (limited 16/235, 64/940; full 0/max) map
    to RGB 0/255 exactly, and codes beyond them clip instead of wrapping."""
    bits = frame_bits = 8 if fmt.endswith("p") else int(fmt[-4:-2])
    del frame_bits
    dtype = np.uint8 if bits == 8 else np.uint16
    top = (1 << bits) - 1
    lum = np.array([[black, white, 0, top]], dtype=dtype).repeat(8, axis=1).repeat(2, axis=0)
    c = np.full((1, 16), neutral, dtype=dtype)
    frame = make_frame(fmt, [lum, c, c])
    got = crop_rgb(frame, (0, 0, 32, 2), info_for("bt709", bits, full))
    assert (got[:, 0:8] == 0).all()
    assert (got[:, 8:16] == 255).all()
    assert (got[:, 16:24] == 0).all()
    assert (got[:, 24:32] == 255).all()


# Rec. ITU-R BT.709 100% colour bars in 8-bit limited Y'CbCr (rounded), and their RGB.
BARS_709 = [
    ((235, 128, 128), (255, 255, 255)),
    ((219, 16, 138), (255, 255, 0)),
    ((188, 154, 16), (0, 255, 255)),
    ((173, 42, 26), (0, 255, 0)),
    ((78, 214, 230), (255, 0, 255)),
    ((63, 102, 240), (255, 0, 0)),
    ((32, 240, 118), (0, 0, 255)),
    ((16, 128, 128), (0, 0, 0)),
]


@pytest.mark.parametrize("bits", [8, 10])
def test_bt709_colour_bars(bits: int) -> None:
    """100% BT.709 colour bars (8-bit limited codes, ×4 for 10-bit) decode to the pure
    primaries/secondaries within ±2 (the published codes are themselves rounded)."""
    s = 1 << (bits - 8)
    dtype = np.uint8 if bits == 8 else np.uint16
    ycc = np.array([b[0] for b in BARS_709], dtype=np.int64) * s
    y = np.repeat(ycc[:, 0], 8)[None, :].repeat(4, axis=0).astype(dtype)
    u = np.repeat(ycc[:, 1], 4)[None, :].repeat(2, axis=0).astype(dtype)
    v = np.repeat(ycc[:, 2], 4)[None, :].repeat(2, axis=0).astype(dtype)
    frame = make_frame("yuv420p" if bits == 8 else "yuv420p10le", [y, u, v])
    got = crop_rgb(frame, (0, 0, 64, 4), info_for("bt709", bits, False))
    for i, (_, rgb) in enumerate(BARS_709):
        patch = got[:, i * 8 + 2 : i * 8 + 6].reshape(-1, 3).astype(int)
        assert np.abs(patch - np.array(rgb)).max() <= 2, (i, patch[0], rgb)


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize(("bits", "full"), [(8, False), (8, True), (10, False), (10, True)])
def test_matches_float_reference_equations(matrix: str, bits: int, full: bool) -> None:
    """Random 4:4:4 Y'CbCr (including out-of-gamut colours, which clip) converts to the
    float BT.601/709/2020 equations to within rounding (≤ 0.52 code) for 8- and 10-bit,
    limited and full range."""
    fmt = "yuv444p" if bits == 8 else "yuv444p10le"
    frame = noise_frame(fmt, 48, 32, seed=3, full=full)
    y, u, v = (p.copy() for p in raw_planes(frame))
    ref = ref_ycbcr_to_rgb(y, u, v, bits, full, matrix) * 255
    got = crop_rgb(frame, (0, 0, 48, 32), info_for(matrix, bits, full))
    assert np.abs(got - ref).max() <= 0.52  # rounding, plus swscale's fixed point (≤ 0.01)


def test_bt2020_sdr_10bit_uses_bt2020_matrix() -> None:
    """A 10-bit SDR BT.2020 frame is decoded with BT.2020 coefficients: the same samples read
    as BT.709 give a visibly different colour."""
    y = np.full((2, 8), 500, np.uint16)
    u = np.full((1, 4), 400, np.uint16)
    v = np.full((1, 4), 700, np.uint16)
    frame = make_frame("yuv420p10le", [y, u, v])
    got = crop_rgb(frame, (0, 0, 8, 2), info_for("bt2020", 10, False))[0, 0]
    ref = ref_ycbcr_to_rgb(500, 400, 700, 10, False, "bt2020") * 255
    assert np.abs(got - ref).max() <= 1
    as709 = crop_rgb(frame, (0, 0, 8, 2), info_for("bt709", 10, False))[0, 0]
    assert np.abs(as709.astype(int) - got).max() > 5


# ------------------------------------------------------------------------------------------
# (3) SDR is never tone-mapped
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("matrix", ["bt709", "bt2020"])
def test_sdr_10bit_equals_8bit_equivalent(matrix: str) -> None:
    """An SDR 10-bit frame whose samples are the 8-bit samples × 4 converts to the same RGB
    as the 8-bit frame (±1): high bit depth alone never triggers tone mapping."""
    f8 = noise_frame("yuv420p", 64, 48, seed=4)
    p8 = [p.copy() for p in raw_planes(f8)]
    f10 = make_frame("yuv420p10le", [p.astype(np.uint16) * 4 for p in p8])
    a = crop_rgb(f8, (3, 5, 50, 40), info_for(matrix, 8, False))
    b = crop_rgb(f10, (3, 5, 50, 40), info_for(matrix, 10, False))
    assert np.abs(a.astype(int) - b).max() <= 1
    pq = crop_rgb(f10, (3, 5, 50, 40), info_for("bt2020", 10, False, "pq"))
    assert np.abs(pq.astype(int) - b).max() > 10  # the HDR path really is different


# ------------------------------------------------------------------------------------------
# (4) HDR PQ / HLG
# ------------------------------------------------------------------------------------------


def test_pq_reference_levels() -> None:
    """PQ greys follow ST 2084 → BT.2390 EETF (peak 1000 → 100 nits) → gamma 1/2.4 within ±1:
    100-nit white lands near SDR white (~222), BT.2408 reference white 203 nits ≥ 235,
    and the 1000-nit peak reaches 255."""
    nits = [0.0, 0.5, 5.0, 20.0, 100.0, 203.0, 500.0, 1000.0]
    frame = pq_grey_frame(nits)
    got = crop_rgb(frame, (0, 0, 8 * len(nits), 4), info_for("bt2020", 10, False, "pq", 1000))
    values = got[1, 4::8]
    # the patch codes are rounded to 10 bits: compare with the decoded-code luminance
    codes = raw_planes(frame)[0][0, ::8].astype(float)
    expect = [ref_sdr_code(ref_eetf(ref_pq_to_nits((c - 64) / 876), 1000.0)) for c in codes]
    assert np.abs(values[:, 0].astype(int) - np.array(expect)).max() <= 1, (values, expect)
    v100, v203, v1000 = int(values[4, 0]), int(values[5, 0]), int(values[7, 0])
    assert 200 <= v100 <= 235
    assert v203 >= 235
    assert v1000 == 255


def test_pq_ramp_is_monotonic_neutral_and_not_hard_clipped() -> None:
    """A fine grey PQ ramp stays grey (R=G=B ±1), is monotonic non-decreasing, and the
    100→1000-nit highlights roll off smoothly: many distinct levels, still below 255 at
    500 nits, 255 only at the 1000-nit peak (a hard clip would give 255 from 100 nits on)."""
    codes = np.arange(64, 941, dtype=np.uint16)
    codes = codes[: len(codes) // 2 * 2]
    y = np.repeat(codes, 2)[None, :].repeat(2, axis=0)
    c = np.full((1, len(codes)), 512, np.uint16)
    frame = make_frame("yuv420p10le", [y, c, c])
    got = crop_rgb(frame, (0, 0, y.shape[1], 2), info_for("bt2020", 10, False, "pq", 1000))
    row = got[0, ::2].astype(int)
    assert np.abs(row[:, 0] - row[:, 1]).max() <= 1 and np.abs(row[:, 2] - row[:, 1]).max() <= 1
    g = row[:, 1]
    assert (np.diff(g) >= 0).all()
    pq = (codes - 64) / 876
    nits = np.array([ref_pq_to_nits(float(e)) for e in pq])
    highlights = g[(nits >= 100) & (nits <= 1000)]
    assert len(np.unique(highlights)) >= 25
    assert g[np.argmin(np.abs(nits - 300))] < 252
    assert g[np.argmin(np.abs(nits - 500))] < 255
    assert g[np.argmin(np.abs(nits - 1000))] == 255


def test_pq_peak_selects_the_curve() -> None:
    """A brighter source peak compresses more (500 nits is darker with peak 4000 than with
    peak 1000); a peak at or below 100 nits means no compression (100 nits → 255)."""
    frame = pq_grey_frame([100.0, 500.0])
    box = (0, 0, 16, 4)
    p1000 = crop_rgb(frame, box, info_for("bt2020", 10, False, "pq", 1000))[1, 12, 1]
    p4000 = crop_rgb(frame, box, info_for("bt2020", 10, False, "pq", 4000))[1, 12, 1]
    assert p4000 < p1000
    flat = crop_rgb(frame, box, info_for("bt2020", 10, False, "pq", 100))
    assert flat[1, 4, 1] >= 254 and flat[1, 12, 1] == 255


def test_pq_bt709_colour_survives_gamut_conversion() -> None:
    """A BT.709 red at 40 nits stored as BT.2020 PQ Y'CbCr (12-bit 4:4:4) comes back as
    BT.709 red: G and B stay ~0 (≤ 4) and R matches the tone-mapped reference (±2)."""
    to2020 = np.array(  # BT.2087 Annex: linear BT.709 → BT.2020
        [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
    )
    lin2020 = to2020 @ np.array([0.4, 0.0, 0.0])  # relative to 100 nits
    rp, gp, bp = (ref_nits_to_pq(100 * v) for v in lin2020)
    yp = 0.2627 * rp + 0.6780 * gp + 0.0593 * bp
    cb, cr = (bp - yp) / 1.8814, (rp - yp) / 1.4746
    ycc = [round(256 + 3504 * yp), round(2048 + 3584 * cb), round(2048 + 3584 * cr)]
    planes = [np.full((4, 4), v, np.uint16) for v in ycc]
    frame = make_frame("yuv444p12le", planes)
    got = crop_rgb(frame, (0, 0, 4, 4), info_for("bt2020", 12, False, "pq", 1000))[1, 1]
    m = 100 * lin2020.max()
    expect_r = ref_sdr_code(40.0 * ref_eetf(m, 1000.0) / m)
    assert got[1] <= 4 and got[2] <= 4  # 12-bit rounding of ~0 after gamma 1/2.4
    assert abs(int(got[0]) - expect_r) <= 2, (got, expect_r)


def ref_hlg_grey(signal: float, peak: float = 1000.0) -> int:
    """HLG grey: inverse OETF, OOTF (γ 1.2, L_W 1000), BT.2390 EETF, gamma 1/2.4."""
    a, b = 0.17883277, 1 - 4 * 0.17883277
    c = 0.5 - a * math.log(4 * a)
    e = signal * signal / 3 if signal <= 0.5 else (math.exp((signal - c) / a) + b) / 12
    nits = peak * e**1.2  # grey: Y_S = E
    return ref_sdr_code(ref_eetf(nits, peak))


def test_hlg_grey_ramp() -> None:
    """HLG greys follow inverse OETF → OOTF (1000 nits) → BT.2390 → gamma 1/2.4 within ±1;
    the ramp is monotonic and neutral, and 75% HLG (BT.2408 reference white) is bright."""
    codes = np.arange(64, 941, 8, dtype=np.uint16)
    codes = codes[: len(codes) // 2 * 2]
    y = np.repeat(codes, 2)[None, :].repeat(2, axis=0)
    c = np.full((1, len(codes)), 512, np.uint16)
    frame = make_frame("yuv420p10le", [y, c, c])
    info = ColourInfo("bt2020", False, 10, "hlg", 1000.0, peak_source="nominal")
    row = crop_rgb(frame, (0, 0, y.shape[1], 2), info)[0, ::2].astype(int)
    assert np.abs(row[:, 0] - row[:, 1]).max() <= 1 and np.abs(row[:, 2] - row[:, 1]).max() <= 1
    assert (np.diff(row[:, 1]) >= 0).all()
    expect = np.array([ref_hlg_grey((float(v) - 64) / 876) for v in codes])
    assert np.abs(row[:, 1] - expect).max() <= 1
    ref_white = row[np.argmin(np.abs((codes - 64) / 876 - 0.75)), 1]
    assert 230 <= ref_white <= 250


# ------------------------------------------------------------------------------------------
# (5) Box alignment
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "transfer"),
    [
        ("yuv420p", "sdr"),
        ("yuv422p", "sdr"),
        ("yuv420p10le", "sdr"),
        ("yuv420p10le", "pq"),
        ("yuv444p", "sdr"),
    ],
)
@pytest.mark.parametrize("siting", ["center", "left", "topleft"])
def test_odd_boxes_equal_crop_of_whole_conversion(fmt: str, transfer: str, siting: str) -> None:
    """Any box, odd position and size included, gives exactly the pixels of the same box cut
    from the whole-frame conversion with the same chroma siting: boxes are aligned outward
    to the chroma grid and padded by 2 chroma samples before conversion, then cut (so a box
    starting half a chroma sample in still sees chroma where the siting puts it)."""
    frame = noise_frame(fmt, 96, 64, seed=5)
    bits = frame.format.components[0].bits
    info = dataclasses.replace(
        info_for("bt2020" if transfer == "pq" else "bt709", bits, False, transfer),
        chroma_siting=siting)
    full = crop_rgb(frame, (0, 0, 96, 64), info)
    rng = np.random.default_rng(6)
    boxes = [(1, 1, 1, 1), (95, 63, 1, 1), (0, 0, 95, 63), (1, 1, 95, 63), (33, 17, 7, 9)]
    for _ in range(25):
        x, y = int(rng.integers(0, 95)), int(rng.integers(0, 63))
        boxes.append((x, y, int(rng.integers(1, 97 - x)), int(rng.integers(1, 65 - y))))
    for x, y, w, h in boxes:
        got = crop_rgb(frame, (x, y, w, h), info)
        assert np.array_equal(got, full[y : y + h, x : x + w]), (x, y, w, h)


def test_odd_sized_420_frame_is_handled() -> None:
    """Odd-sized 4:2:0 frames (MPEG-1/2/4, VP9 and FFV1 decode to them, e.g. 720×405)
    convert every box, including ones touching the odd right/bottom edge, consistently with
    the whole-frame result (crops are padded to whole chroma samples, so the chroma ratio is
    always exactly 2:1)."""
    frame = noise_frame("yuv420p", 33, 21, seed=7)
    info = info_for("bt709", 8, False)
    full = crop_rgb(frame, (0, 0, 33, 21), info)
    assert full.shape == (21, 33, 3)
    for x, y, w, h in [(30, 18, 3, 3), (32, 20, 1, 1), (0, 0, 33, 1), (7, 3, 26, 18)]:
        assert np.array_equal(crop_rgb(frame, (x, y, w, h), info), full[y : y + h, x : x + w])


@pytest.mark.parametrize("box", [(0, 0, 0, 4), (-1, 0, 4, 4), (0, 0, 97, 4), (90, 60, 8, 8)])
def test_bad_boxes_raise(box: tuple[int, int, int, int]) -> None:
    """Empty or out-of-frame boxes raise ValueError instead of returning garbage."""
    frame = noise_frame("yuv420p", 96, 64)
    with pytest.raises(ValueError, match="crop box"):
        crop_rgb(frame, box, info_for("bt709", 8, False))


def test_reused_swscale_context_gives_stable_results() -> None:
    """The per-thread swscale context is reused across sizes, depths and output formats
    without leaking state: repeating a conversion after others gives identical pixels."""
    f8 = noise_frame("yuv420p", 96, 64, seed=8)
    f10 = noise_frame("yuv420p10le", 128, 96, seed=9)
    calls: list[Callable[[], npt.NDArray[np.uint8]]] = [
        lambda: crop_rgb(f8, (1, 1, 31, 17), info_for("bt709", 8, False)),
        lambda: crop_rgb(f10, (4, 6, 64, 40), info_for("bt2020", 10, False, "pq")),
        lambda: crop_rgb(f8, (10, 20, 50, 30), info_for("bt601", 8, True)),
        lambda: crop_rgb(f10, (0, 0, 128, 96), info_for("bt709", 10, False)),
    ]
    first = [c() for c in calls]
    for c, expected in zip(reversed(calls), reversed(first), strict=True):
        assert np.array_equal(c(), expected)


# ------------------------------------------------------------------------------------------
# Other pixel formats
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "semi"), [("yuv420p", "nv12"), ("yuv420p", "nv21")])
def test_semi_planar_8bit_equals_planar(src: str, semi: str) -> None:
    """nv12/nv21 frames (as from hardware decoders) crop to exactly the planar result."""
    planar = noise_frame(src, 64, 48, seed=10)
    converted = planar.reformat(format=semi)
    info = info_for("bt709", 8, False)
    box = (3, 5, 41, 33)
    assert np.array_equal(crop_rgb(converted, box, info), crop_rgb(planar, box, info))
    assert np.array_equal(luma_small(converted, 2, info), luma_small(planar, 2, info))


def test_p010_equals_planar_10bit() -> None:
    """p010le (10 bits stored in the high bits) crops and previews exactly like yuv420p10le,
    for SDR and for PQ."""
    planar = noise_frame("yuv420p10le", 64, 48, seed=11)
    p010 = planar.reformat(format="p010le")
    y_p010 = plane_views(p010)[0]
    assert np.array_equal(y_p010 >> 6, plane_views(planar)[0])  # lossless repack
    for transfer in ("sdr", "pq"):
        info = info_for("bt2020", 10, False, transfer)
        box = (1, 3, 45, 31)
        assert np.array_equal(crop_rgb(p010, box, info), crop_rgb(planar, box, info))
    info = info_for("bt2020", 10, False)
    assert np.array_equal(luma_small(p010, 3, info), luma_small(planar, 3, info))


@pytest.mark.parametrize("fmt", sorted(colour.FAST_YUV_FORMATS))
def test_every_fast_yuv_format_matches_its_planar_equivalent(fmt: str) -> None:
    """Every YUV format on the fast path (planar, yuvj, semi-planar, 8–16 bit) gives the
    same crop and luma preview as the same samples in its planar equivalent."""
    probe_fmt = av.VideoFrame(16, 16, fmt).format
    bits = probe_fmt.components[0].bits
    cw = probe_fmt.chroma_width(16)
    ch = probe_fmt.chroma_height(16)
    sub = {(8, 8): "420", (8, 16): "422", (16, 16): "444", (16, 8): "440"}[(cw, ch)]
    full = fmt.startswith("yuvj")
    planar_fmt = yuv_fmt(sub, bits, full)
    rng = np.random.default_rng(17)
    dtype = np.uint8 if bits == 8 else np.uint16
    planes = [rng.integers(0, 1 << bits, (48, 64)).astype(dtype)]
    planes += [rng.integers(0, 1 << bits, (48 * ch // 16, 64 * cw // 16)).astype(dtype)] * 2
    planar = make_frame(planar_fmt, planes)
    other = planar.reformat(format=fmt) if fmt != planar_fmt else planar
    info = info_for("bt709", bits, full)
    box = (3, 1, 41, 37)
    assert np.array_equal(crop_rgb(other, box, info), crop_rgb(planar, box, info))
    assert np.array_equal(luma_small(other, 3, info), luma_small(planar, 3, info))


@pytest.mark.parametrize("fmt", sorted(colour.FAST_RGB_FORMATS))
def test_every_fast_rgb_format_reads_its_samples(fmt: str) -> None:
    """Every RGB format on the fast path crops to its own samples, rescaled to 8 bits."""
    rng = np.random.default_rng(18)
    rgb16 = rng.integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    frame = av.VideoFrame.from_ndarray(rgb16, format="rgb48le").reformat(format=fmt)
    bits = frame.format.components[0].bits
    back = frame.reformat(format="rgb48le").to_ndarray()  # swscale's own bit-depth mapping
    expect = np.rint((back >> (16 - bits)).astype(np.float64) * 255 / ((1 << bits) - 1))
    got = crop_rgb(frame, (2, 3, 17, 15), info_for("bt709", bits, True))
    assert np.abs(got.astype(int) - expect[3:18, 2:19]).max() <= 1


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "rgba", "gbrp"])
def test_rgb_formats_are_read_directly(fmt: str) -> None:
    """8-bit RGB frames crop to their own samples unchanged (no YUV round trip)."""
    rng = np.random.default_rng(12)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    got = crop_rgb(frame, (5, 3, 20, 17), info_for("bt709", 8, True))
    assert np.array_equal(got, rgb[3:20, 5:25])


def test_high_bit_depth_rgb_scales_to_8bit() -> None:
    """gbrp10le SDR samples scale to round(v · 255 / 1023)."""
    rng = np.random.default_rng(13)
    rgb = rng.integers(0, 1024, (16, 16, 3), dtype=np.uint16)
    frame = av.VideoFrame.from_ndarray(rgb, format="gbrp10le")
    got = crop_rgb(frame, (0, 0, 16, 16), info_for("bt709", 10, True))
    assert np.array_equal(got, np.rint(rgb.astype(np.float64) * 255 / 1023).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["yuva420p", "yuv420p9le", "yuyv422", "gray"])
def test_exotic_formats_fall_back_correctly(fmt: str) -> None:
    """Formats without a fast path are converted whole-frame to one that has, with the same
    matrix and range, and then match the planar result (±1; ±2 where swscale re-quantises:
    9-bit → 10-bit, and gray, which swscale handles as full range internally)."""
    planar = noise_frame("yuv420p" if fmt != "yuyv422" else "yuv422p", 64, 48, seed=14)
    if fmt == "gray":
        for p in raw_planes(planar)[1:]:
            p[...] = 128
    other = planar.reformat(
        format=fmt,
        src_colorspace="ITU709",
        dst_colorspace="ITU709",
        src_color_range="MPEG",
        dst_color_range="MPEG",
    )
    info = info_for("bt709", 8, False)
    box = (2, 2, 40, 30)
    diff = np.abs(crop_rgb(other, box, info).astype(int) - crop_rgb(planar, box, info))
    assert diff.max() <= (2 if fmt in ("yuv420p9le", "gray") else 1)
    assert luma_small(other, 2, info).shape == (24, 32)


# ------------------------------------------------------------------------------------------
# plane_views and luma_small
# ------------------------------------------------------------------------------------------


def test_plane_views_are_zero_copy_with_padding() -> None:
    """plane_views returns read-only, zero-copy views of the right dtype and shape even when
    line_size has padding; writable views write straight into the frame."""
    frame = av.VideoFrame(50, 30, "yuv420p10le")  # 100-byte rows are padded to 128
    assert frame.planes[0].line_size > 50 * 2
    y, u, v = plane_views(frame, writable=True)
    assert (y.shape, u.shape, v.shape) == ((30, 50), (15, 25), (15, 25))
    assert y.dtype == np.uint16 and u.dtype == np.uint16
    y[...] = np.arange(50, dtype=np.uint16)[None, :]
    u[...] = 300
    v[...] = 700
    flat = frame.to_ndarray()  # PyAV's own copy: Y rows, then U, then V
    assert np.array_equal(flat[:30], np.broadcast_to(np.arange(50), (30, 50)))
    ro = plane_views(frame)
    assert not ro[0].flags.writeable
    assert np.shares_memory(ro[0], y)
    with pytest.raises(ValueError):
        plane_views(av.VideoFrame(8, 8, "rgb24"))


def test_plane_views_of_nv12_split_u_and_v() -> None:
    """For nv12 the interleaved chroma plane is exposed as separate strided U and V views."""
    planar = noise_frame("yuv420p", 32, 16, seed=15)
    nv12 = planar.reformat(format="nv12")
    for a, b in zip(plane_views(nv12), raw_planes(planar), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("fmt", "full", "codes", "expect"),
    [
        ("yuv420p", False, [0, 16, 126, 235, 255], [0.0, 0.0, 128.0822, 255.0, 255.0]),
        ("yuvj420p", True, [0, 128, 255], [0.0, 128.0, 255.0]),
        ("yuv420p10le", False, [64, 502, 940, 1023], [0.0, 127.5, 255.0, 255.0]),
        ("yuv420p10le", True, [0, 1023], [0.0, 255.0]),
    ],
)
def test_luma_small_scale(fmt: str, full: bool, codes: list[int], expect: list[float]) -> None:
    """luma_small maps luma to the 8-bit full-range scale: limited (Y−16)·255/219 (10-bit:
    (Y−64)·255/876), full Y·255/(2^n−1), clipped to [0, 255]; and subsamples by step."""
    bits = 8 if fmt.endswith("p") else 10
    dtype = np.uint8 if bits == 8 else np.uint16
    y = np.repeat(np.array(codes, dtype=dtype), 4)[None, :].repeat(4, axis=0)
    c = np.full((2, y.shape[1] // 2), 1 << (bits - 1), dtype=dtype)
    frame = make_frame(fmt, [y, c, c])
    got = luma_small(frame, 4, info_for("bt709", bits, full))
    assert got.dtype == np.float32 and got.shape == (1, len(codes))
    assert np.allclose(got[0], expect, atol=1e-3)


def test_luma_small_of_rgb_uses_bt709_weights() -> None:
    """RGB frames give BT.709 luma of their R'G'B' samples on the 0–255 scale."""
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:, :2] = (255, 0, 0)
    rgb[:, 2:] = (0, 255, 0)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    got = luma_small(frame, 2, info_for("bt709", 8, True))
    assert np.allclose(got, [[0.2126 * 255, 0.7152 * 255]] * 2, atol=1e-3)


# ------------------------------------------------------------------------------------------
# Transfer-function building blocks
# ------------------------------------------------------------------------------------------


def test_transfer_functions_known_values() -> None:
    """ST 2084: 100 nits ↔ 0.5081, 1000 nits ↔ 0.7518, 1.0 ↔ 10000 nits, round trip exact;
    HLG inverse OETF: 0.5 → 1/12, 1.0 → 1; BT.2390 is the identity below the knee, hits the
    target at the source peak and is monotonic."""
    assert float(tonemap.pq_inverse_eotf(100.0)) == pytest.approx(0.5081, abs=1e-4)
    assert float(tonemap.pq_inverse_eotf(1000.0)) == pytest.approx(0.7518, abs=1e-4)
    assert float(tonemap.pq_eotf(1.0)) == pytest.approx(10000.0)
    xs = np.geomspace(0.001, 10000, 200)
    assert np.allclose(tonemap.pq_eotf(tonemap.pq_inverse_eotf(xs)), xs, rtol=1e-9)
    assert float(tonemap.hlg_inverse_oetf(0.5)) == pytest.approx(1 / 12)
    assert float(tonemap.hlg_inverse_oetf(1.0)) == pytest.approx(1.0, abs=1e-6)
    ramp = np.linspace(0, 1000, 2001)
    out = tonemap.bt2390_eetf(ramp, 1000.0, 100.0)
    assert np.allclose(out[ramp < 20], ramp[ramp < 20])
    assert float(out[-1]) == pytest.approx(100.0)
    assert (np.diff(out) >= -1e-12).all()
    for nits in (0.1, 30.0, 150.0, 700.0):
        assert float(tonemap.bt2390_eetf(nits, 1000.0, 100.0)) == pytest.approx(
            ref_eetf(nits, 1000.0), rel=1e-9
        )


def test_gamut_matrix_matches_bt2087() -> None:
    """The derived BT.2020→BT.709 matrix matches ITU-R BT.2087 and keeps white white."""
    bt2087 = [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]]
    assert np.allclose(tonemap.BT2020_TO_BT709, bt2087, atol=1e-4)
    assert np.allclose(tonemap.BT2020_TO_BT709.sum(axis=1), 1.0)


# ------------------------------------------------------------------------------------------
# (6) colour_info from real encoded streams
# ------------------------------------------------------------------------------------------

MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"


def encode(
    path: Path,
    codec: str,
    pix_fmt: str,
    width: int,
    height: int,
    *,
    options: dict[str, str] | None = None,
    ctx_tags: dict[str, int] | None = None,
    frames: list[av.VideoFrame] | None = None,
) -> Path:
    """Encode a few frames (grey unless given) into a tiny MP4/MKV with PyAV."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for key, value in (ctx_tags or {}).items():
            setattr(stream.codec_context, key, value)
        if frames is None:
            frames = []
            for _ in range(2):
                f = av.VideoFrame(width, height, pix_fmt)
                for p in raw_planes(f):
                    p[...] = p.dtype.type(100 if p.dtype == np.uint8 else 400)
                frames.append(f)
        for i, f in enumerate(frames):
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def x265(extra: str) -> dict[str, str]:
    """libx265 options with quiet logging."""
    return {"x265-params": f"{extra}:log-level=error"}


def probe(path: Path) -> tuple[ColourInfo, ColourInfo, av.VideoFrame]:
    """(info from stream only, info from stream + first frame, first frame)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        without = colour_info(s)
        frame = next(c.decode(s))
        return without, colour_info(s, frame), frame


HDR10 = "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"


def test_colour_info_h264_bt709_tagged(tmp_path: Path) -> None:
    """A BT.709-tagged H.264 stream reads as bt709 limited 8-bit SDR, tagged, with left-sited
    chroma (H.264's default when the VUI says nothing)."""
    tags = {"colorspace": 1, "color_range": 1, "color_trc": 1, "color_primaries": 1}
    p = encode(tmp_path / "a.mp4", "libx264", "yuv420p", 64, 48, ctx_tags=tags)
    without, info, _ = probe(p)
    assert info == without
    assert (info.matrix, info.full_range, info.bit_depth, info.transfer) == (
        "bt709",
        False,
        8,
        "sdr",
    )
    assert info.matrix_tagged and not info.is_hdr
    assert info.chroma_siting == "left"
    assert info.describe() == "bt709 limited 8-bit SDR (no tone mapping), left-sited chroma"


def test_colour_info_hevc_hdr10_reads_maxcll(tmp_path: Path) -> None:
    """HEVC 10-bit PQ/BT.2020 with HDR10 SEI: pq, bt2020, peak = MaxCLL (1000) read from the
    frame's CONTENT_LIGHT_LEVEL side data; without a frame the peak is the default."""
    opts = x265(f"{HDR10}:hdr10=1:master-display={MASTER}L(40000000,50):max-cll=1000,400")
    without, info, _ = probe(
        encode(tmp_path / "h.mkv", "libx265", "yuv420p10le", 64, 48, options=opts)
    )
    assert (info.matrix, info.full_range, info.bit_depth, info.transfer) == (
        "bt2020",
        False,
        10,
        "pq",
    )
    assert info.is_hdr and info.peak_nits == 1000.0 and info.peak_source == "maxcll"
    assert without.transfer == "pq" and without.peak_source == "default"
    assert info.describe() == (
        "bt2020 limited 10-bit PQ (peak 1000 nits from maxcll) → tone-mapped to BT.709 SDR, "
        "left-sited chroma"
    )


def test_colour_info_hevc_mastering_peak_without_maxcll(tmp_path: Path) -> None:
    """With MaxCLL 0 (unknown) the peak comes from the mastering display max luminance."""
    opts = x265(f"{HDR10}:hdr10=1:master-display={MASTER}L(40000000,50):max-cll=0,0")
    _, info, frame = probe(
        encode(tmp_path / "m.mkv", "libx265", "yuv420p10le", 64, 48, options=opts)
    )
    assert colour.hdr_metadata(frame)[1] == pytest.approx(4000.0)
    assert info.peak_nits == pytest.approx(4000.0) and info.peak_source == "mastering"


def test_colour_info_hevc_pq_without_metadata_defaults_to_1000(tmp_path: Path) -> None:
    """PQ without any HDR10 static metadata uses the documented 1000-nit default."""
    _, info, _ = probe(
        encode(tmp_path / "p.mkv", "libx265", "yuv420p10le", 64, 48, options=x265(HDR10))
    )
    assert info.transfer == "pq" and info.peak_nits == 1000.0 and info.peak_source == "default"


def test_colour_info_hevc_hlg(tmp_path: Path) -> None:
    """HLG (arib-std-b67) reads as hlg with the nominal 1000-nit peak."""
    opts = x265("colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc")
    _, info, _ = probe(encode(tmp_path / "l.mkv", "libx265", "yuv420p10le", 64, 48, options=opts))
    assert info.transfer == "hlg" and info.peak_source == "nominal"
    assert "HLG (peak 1000 nits) → tone-mapped" in info.describe()


@pytest.mark.parametrize(("width", "height", "expect"), [(1280, 720, "bt709"), (640, 360, "bt601")])
def test_colour_info_untagged_guesses_by_height(
    tmp_path: Path, width: int, height: int, expect: str
) -> None:
    """An untagged stream gets bt709 from 720 lines up and bt601 below, marked as guessed;
    untagged range is limited and untagged transfer is SDR."""
    p = encode(
        tmp_path / "u.mp4", "libx264", "yuv420p", width, height, options={"preset": "ultrafast"}
    )
    _, info, _ = probe(p)
    assert info.matrix == expect and not info.matrix_tagged
    assert not info.full_range and info.transfer == "sdr"
    assert "untagged, guessed" in info.describe()


def test_colour_info_untagged_matrix_with_bt2020_primaries(tmp_path: Path) -> None:
    """A 10-bit stream tagged only with BT.2020 primaries gets the bt2020 matrix (guessed)."""
    _, info, _ = probe(
        encode(
            tmp_path / "b.mkv", "libx265", "yuv420p10le", 64, 48, options=x265("colorprim=bt2020")
        )
    )
    assert info.matrix == "bt2020" and not info.matrix_tagged and info.transfer == "sdr"


def test_colour_info_yuvj_is_full_range(tmp_path: Path) -> None:
    """yuvj420p streams are full range even when color_range is untagged."""
    _, info, _ = probe(encode(tmp_path / "j.mp4", "libx264", "yuvj420p", 64, 48))
    assert info.full_range


def test_hdr10_stream_end_to_end(tmp_path: Path) -> None:
    """A losslessly encoded HEVC PQ grey ramp decodes to exactly the source samples, and
    colour_info + crop_rgb on the decoded frame equal crop_rgb on the source frame."""
    codes = np.linspace(64, 940, 64).astype(np.uint16)
    y = np.repeat(codes, 2)[None, :].repeat(32, axis=0)
    c = np.full((16, 64), 512, np.uint16)
    src = make_frame("yuv420p10le", [y, c, c])
    opts = x265(f"{HDR10}:hdr10=1:master-display={MASTER}L(10000000,1):max-cll=1000,400:lossless=1")
    p = encode(tmp_path / "e.mkv", "libx265", "yuv420p10le", 128, 32, options=opts, frames=[src])
    _, info, frame = probe(p)
    assert np.array_equal(plane_views(frame)[0], y)
    box = (3, 5, 120, 20)
    out = crop_rgb(frame, box, info)
    assert np.array_equal(out, crop_rgb(src, box, info))
    assert (np.diff(out[0, ::2, 1].astype(int)) >= 0).all()


# ------------------------------------------------------------------------------------------
# (7) Chroma siting
# ------------------------------------------------------------------------------------------

# Where chroma sample (0, 0) sits, in luma samples (x, y): ITU-T H.273 ChromaSampleLocType
# (H.264/HEVC Annex E, Figure E-1) under FFmpeg's names. Written from the standard.
H273_POSITION = {
    "left": (0.0, 0.5),
    "center": (0.5, 0.5),
    "topleft": (0.0, 0.0),
    "top": (0.5, 0.0),
    "bottomleft": (0.0, 1.0),
    "bottom": (0.5, 1.0),
}
LOC_TYPE = {0: "left", 1: "center", 2: "topleft", 3: "top", 4: "bottomleft", 5: "bottom"}


def ref_upsample(c: npt.NDArray[np.float64], n: int, offset: float, axis: int
                 ) -> npt.NDArray[np.float64]:
    """Chroma at n luma positions along `axis`: luma sample i sees chroma coordinate
    (i − offset) / 2, linearly interpolated between its two neighbours; positions before the
    first or after the last chroma sample take that edge sample."""
    u = (np.arange(n) - offset) / 2.0
    lo = np.floor(u).astype(int)
    frac = u - lo
    last = c.shape[axis] - 1
    a = np.take(c, np.clip(lo, 0, last), axis=axis)
    b = np.take(c, np.clip(lo + 1, 0, last), axis=axis)
    shape = [1, 1]
    shape[axis] = n
    frac = frac.reshape(shape)
    return np.asarray(a * (1.0 - frac) + b * frac, dtype=np.float64)


def ref_sited_rgb(y: npt.NDArray[Any], u: npt.NDArray[Any], v: npt.NDArray[Any], bits: int,
                  full: bool, matrix: str, siting: str) -> npt.NDArray[np.float64]:
    """Float R'G'B' (0–255) of whole planes: chroma upsampled at the siting, then the matrix."""
    h, w = y.shape
    ox, oy = H273_POSITION[siting]

    def up(c: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        out = c.astype(np.float64)
        if c.shape[1] < w:
            out = ref_upsample(out, w, ox, 1)
        if c.shape[0] < h:
            out = ref_upsample(out, h, oy, 0)
        return out

    return ref_ycbcr_to_rgb(y, up(u), up(v), bits, full, matrix) * 255.0


def sharp_colour_planes(width: int, height: int, bits: int, sub: tuple[int, int], seed: int
                        ) -> list[npt.NDArray[Any]]:
    """Y'CbCr planes with hard colour edges: chroma jumps between extreme codes (16/240 at
    8 bits) in random blocks 1–4 chroma samples wide, luma in blocks of 1–6 samples."""
    rng = np.random.default_rng(seed)
    s = 1 << (bits - 8)
    dtype = np.uint8 if bits == 8 else np.uint16

    def blocks(rows: int, cols: int, lo: int, hi: int, widest: int) -> npt.NDArray[Any]:
        edges_x = np.cumsum(rng.integers(1, widest + 1, cols))
        edges_y = np.cumsum(rng.integers(1, widest + 1, rows))
        ix = np.searchsorted(edges_x, np.arange(cols), side="right")
        iy = np.searchsorted(edges_y, np.arange(rows), side="right")
        pick = rng.integers(0, 2, (rows + 1, cols + 1))[iy[:, None], ix[None, :]]
        return np.where(pick == 1, hi, lo).astype(dtype)

    cw, ch = -(-width >> sub[0]), -(-height >> sub[1])
    y = blocks(height, width, 60 * s, 200 * s, 6)
    return [y, blocks(ch, cw, 16 * s, 240 * s, 4), blocks(ch, cw, 16 * s, 240 * s, 4)]


@pytest.mark.parametrize("siting", sorted(H273_POSITION))
@pytest.mark.parametrize(("fmt", "width", "height"), [
    ("yuv420p", 64, 48), ("yuv420p", 33, 21), ("yuv420p10le", 48, 30), ("yuv422p", 41, 20),
    ("yuvj420p", 40, 24),
])
def test_crop_honours_siting_against_float_reference(fmt: str, width: int, height: int,
                                                     siting: str) -> None:
    """For every siting, crops (whole frame, odd boxes, boxes on odd edges of odd frames)
    equal the float reference — chroma upsampled at the H.273 position, then the BT.709
    equations — within rounding (≤ 0.52 code; the requirement is ≤ 1)."""
    sub = SUBSAMPLING[fmt[3:6] if not fmt.startswith("yuvj") else fmt[4:7]]
    bits = 8 if fmt.endswith("p") else 10
    full = fmt.startswith("yuvj")
    planes = sharp_colour_planes(width, height, bits, sub, seed=21)
    frame = make_frame(fmt, planes)
    info = dataclasses.replace(info_for("bt709", bits, full), chroma_siting=siting)
    ref = ref_sited_rgb(*planes, bits, full, "bt709", siting)
    boxes = [(0, 0, width, height), (1, 1, width - 2, height - 2), (3, 2, 7, 9),
             (width - 5, height - 3, 5, 3), (width - 1, height - 1, 1, 1)]
    for x, y, w, h in boxes:
        got = crop_rgb(frame, (x, y, w, h), info)
        err = np.abs(got - ref[y : y + h, x : x + w]).max()
        assert err <= 0.52, ((x, y, w, h), err)


@pytest.mark.parametrize("fmt", ["nv12", "nv21", "p010le", "nv16"])
def test_semi_planar_formats_honour_siting(fmt: str) -> None:
    """Semi-planar layouts (hardware decoders' output) crop with the siting like planar."""
    probe_fmt = av.VideoFrame(16, 16, fmt).format
    bits = probe_fmt.components[0].bits
    planar_fmt = {"nv12": "yuv420p", "nv21": "yuv420p", "p010le": "yuv420p10le",
                  "nv16": "yuv422p"}[fmt]
    sub = SUBSAMPLING[planar_fmt[3:6]]
    planes = sharp_colour_planes(48, 32, bits, sub, seed=22)
    planar = make_frame(planar_fmt, planes)
    other = planar.reformat(format=fmt)
    info = dataclasses.replace(info_for("bt709", bits, False), chroma_siting="topleft")
    ref = ref_sited_rgb(*planes, bits, False, "bt709", "topleft")
    assert np.abs(crop_rgb(other, (3, 1, 41, 29), info) - ref[1:30, 3:44]).max() <= 0.52


SITED_STREAMS = [  # (encoder, pix_fmt, options, siting the codec's spec gives)
    *[("libx264", "yuv420p", {"qp": "0", "preset": "ultrafast",
                              "x264-params": f"chromaloc={t}:log-level=error"}, s)
      for t, s in LOC_TYPE.items()],
    ("libx265", "yuv420p10le", x265("chromaloc=2:lossless=1"), "topleft"),
    ("libx265", "yuv420p10le", x265("lossless=1"), "left"),
    ("mpeg2video", "yuv420p", {"qscale": "1"}, "left"),
    ("mpeg1video", "yuv420p", {"qscale": "1"}, "center"),
]


def decoded_planes(frame: av.VideoFrame) -> list[npt.NDArray[Any]]:
    """Copies of a decoded planar frame's planes."""
    return [p.copy() for p in plane_views(frame)]


@pytest.mark.parametrize(("codec", "pix_fmt", "options", "siting"), SITED_STREAMS,
                         ids=[f"{c}-{s}" for c, _, o, s in SITED_STREAMS])
def test_real_streams_with_sharp_colour_edges_honour_their_siting(
        tmp_path: Path, codec: str, pix_fmt: str, options: dict[str, str], siting: str) -> None:
    """Real encoded streams with hard colour edges, one per siting tag (H.264 chromaloc 0–5,
    HEVC 10-bit top-left and untagged, MPEG-2, MPEG-1): colour_info reads the siting the
    codec's spec gives, and crops (odd boxes included) are within 1 code of the float
    reference at that siting, on the decoded samples. Read as centre (what dsgen did before),
    the same crops are off by tens of codes at the edges (checked, so this can fail)."""
    bits = 10 if pix_fmt.endswith("10le") else 8
    width, height = 96, 64
    src = make_frame(pix_fmt, sharp_colour_planes(width, height, bits, (1, 1), seed=23))
    path = encode(tmp_path / "s.mkv", codec, pix_fmt, width, height, options=options,
                  frames=[src])
    _, info, frame = probe(path)
    assert info.chroma_siting == siting
    planes = decoded_planes(frame)
    ref = ref_sited_rgb(*planes, bits, False, info.matrix, siting)
    for x, y, w, h in [(0, 0, width, height), (1, 3, 61, 37), (33, 17, 63, 47)]:
        got = crop_rgb(frame, (x, y, w, h), info)
        assert np.abs(got - ref[y : y + h, x : x + w]).max() <= 1.0
    if siting != "center":
        centred = crop_rgb(frame, (0, 0, width, height),
                           dataclasses.replace(info, chroma_siting="center"))
        assert np.abs(centred - ref).max() > 20


@pytest.mark.parametrize("siting", sorted(H273_POSITION))
def test_scaled_crop_honours_siting(siting: str) -> None:
    """The one-pass scaled conversion places chroma at the siting: one raised Cr sample in
    grey, halved, comes out (centroid of the red channel's response) where the H.273 position
    of that sample lands on the output grid — output pixel j covers luma 2j and 2j + 1, so
    luma position p maps to (p − 0.5) / 2."""
    y = np.full((64, 64), 126, np.uint8)
    u = np.full((32, 32), 128, np.uint8)
    v = np.full((32, 32), 128, np.uint8)
    v[16, 16] = 178
    frame = make_frame("yuv420p", [y, u, v])
    info = dataclasses.replace(info_for("bt709", 8, False), chroma_siting=siting)
    red = colour.crop_rgb_scaled(frame, (0, 0, 64, 64), info, (32, 32))[..., 0].astype(float)
    red -= np.median(red)
    ys, xs = np.mgrid[0:32, 0:32]
    got = ((red * xs).sum() / red.sum(), (red * ys).sum() / red.sum())
    px, py = H273_POSITION[siting]
    want = ((32 + px - 0.5) / 2, (32 + py - 0.5) / 2)
    assert got == pytest.approx(want, abs=0.05)


def test_scaled_odd_box_is_exactly_the_box() -> None:
    """A box off the chroma grid (odd x, y, width and height) is scaled from exactly its
    pixels: a flat colour box inside dark surroundings keeps its colour up to the last output
    row and column (taking the neighbouring dark row or column in, as aligning the box
    outward would, darkens that border), for every siting."""
    y = np.full((64, 96), 16, np.uint8)
    u = np.full((32, 48), 90, np.uint8)
    v = np.full((32, 48), 160, np.uint8)
    x0, y0, w, h = 11, 7, 61, 41
    y[y0 : y0 + h, x0 : x0 + w] = 180
    frame = make_frame("yuv420p", [y, u, v])
    for siting in ("center", "left", "topleft", "bottom"):
        info = dataclasses.replace(info_for("bt709", 8, False), chroma_siting=siting)
        inside = crop_rgb(frame, (x0 + 5, y0 + 5, 1, 1), info)[0, 0].astype(int)
        out = colour.crop_rgb_scaled(frame, (x0, y0, w, h), info, (30, 20)).astype(int)
        assert np.abs(out - inside).max() <= 1, siting


def test_scaled_fast_and_exact_paths_agree_on_smooth_content() -> None:
    """On smooth, unclipped content an even box (one swscale pass) and an odd one (convert,
    cut, then scale) both match Lanczos-scaling the exact full crop within 2 codes (SDR, 8
    and 10 bits), and for PQ the two paths agree on the same box within 2 codes: a sample's
    look never depends on which path its box took."""
    for fmt, transfer in (("yuv420p", "sdr"), ("yuv420p10le", "sdr"), ("yuv420p10le", "pq")):
        frame = av.VideoFrame(160, 96, fmt)
        bits = frame.format.components[0].bits
        for k, p in enumerate(plane_views(frame, writable=True)):
            rows, cols = p.shape
            yy, xx = np.mgrid[0:rows, 0:cols]
            # No clipping anywhere (R'G'B', BT.2020 → BT.709 gamut): the two paths clip at
            # different stages, which is a difference of order, not of geometry or siting.
            amp = 40 if k == 0 else (8 if transfer == "pq" else 30)
            base = 128 + amp * np.sin(xx / (9.0 + 3 * k)) * np.cos(yy / (7.0 + 2 * k))
            p[...] = (base * (1 << (bits - 8))).astype(p.dtype)
        info = dataclasses.replace(
            info_for("bt2020" if transfer == "pq" else "bt709", bits, False, transfer),
            chroma_siting="left")
        if transfer == "pq":  # tone mapping is not linear: compare the two paths directly
            layout = colour._YUV_LAYOUTS[fmt]
            box = (20, 10, 120, 72)
            black, white = colour._gbrp16_levels(layout.planar, False)
            exact = colour._planes_to_rgb(colour._scaled_exact(frame, layout, box, info,
                                                               (60, 36)), black, white, info)
            fast = colour.crop_rgb_scaled(frame, box, info, (60, 36))
            assert np.abs(fast.astype(int) - exact).max() <= 2
            continue
        for box in [(20, 10, 120, 72), (21, 11, 120, 72), (20, 10, 121, 73)]:
            got = colour.crop_rgb_scaled(frame, box, info, (60, 36)).astype(int)
            want = np.asarray(Image.fromarray(crop_rgb(frame, box, info)).resize(
                (60, 36), Image.Resampling.LANCZOS)).astype(int)
            assert np.abs(got - want)[2:-2, 2:-2].max() <= 2, (fmt, transfer, box)
