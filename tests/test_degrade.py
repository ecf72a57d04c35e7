"""dsgen.degrade*: each LR degradation stage measurably does what it says on frames decoded
from a real encoded video; draws are deterministic, sizes exact, the codec stage's damage
behaves like a decoded stream's, and a manifest line reproduces a sample's LR bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dsgen import degrade_codec, degrade_colour, degrade_kernels
from dsgen.config import FormatCfg, load_config
from dsgen.decode import ClipReader
from dsgen.degrade import applied, apply, draw, reproduce
from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    BlurStage,
    ChromaStage,
    CodecStage,
    ColourStage,
    DegradationCfg,
    JpegStage,
    NoiseStage,
    ResizeStage,
)
from dsgen.manifest import gt_frames
from dsgen.patches import gt_patch, lr_frame
from dsgen.probe import probe_video
from dsgen.state import State
from dsgen.synth import SynthSpec
from dsgen.writer import encode_png
from helpers import wait_for_samples
from test_engine import _cli, dataset_files, long_videos  # the kill -9 harness

__all__ = ["long_videos"]  # a module-scoped fixture, shared with test_engine

VideoFixture = tuple[Path, SynthSpec]
FMT = FormatCfg("t", 288, 288, 3)  # GT 288² → LR 96²
LR = FMT.lr_size


@pytest.fixture(scope="module")
def clip(h264_cuts: VideoFixture) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """7 consecutive frames (3–9, one scene, panning texture) of the H.264 fixture: GT
    crops 288² and their clean bicubic LR (96²), built exactly as the worker builds them."""
    path, _ = h264_cuts
    probe = probe_video(path, 7)
    reader = ClipReader(probe)
    try:
        frames = reader.clip(3, 7)
        gts = [gt_patch(f, (120, 36, 288, 288), FMT, probe.colour) for f in frames]
    finally:
        reader.close()
    return gts, [lr_frame(g, FMT, "bicubic") for g in gts]


def _f32(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack(frames).astype(np.float32)


def _grey(x: np.ndarray) -> np.ndarray:
    return np.asarray(x @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32))


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Hann-windowed power spectra of the grey frames of (n, h, w, 3)."""
    g = _grey(x)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    h, w = g.shape[1:3]
    return np.abs(np.fft.fft2(g * np.outer(np.hanning(h), np.hanning(w)))) ** 2


def _freqs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    return fx, fy


def _band_energy(x: np.ndarray, lo: float, hi: float, axis: str = "radial") -> float:
    """Power of grey frames in a frequency band (cycles/px): radial, or along x or y only
    (the other frequency below 0.1)."""
    p = _spectrum(x)
    fx, fy = _freqs(*x.shape[1:3])
    if axis == "radial":
        band = (np.hypot(fx, fy) >= lo) & (np.hypot(fx, fy) <= hi)
    else:
        f, other = (np.abs(fx), np.abs(fy)) if axis == "x" else (np.abs(fy), np.abs(fx))
        band = (f >= lo) & (f <= hi) & (other <= 0.1)
    return float(p[:, band].sum())


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def blockiness(x: np.ndarray, block: int = 8) -> float:
    """Mean |horizontal step| across block-grid columns over the mean step elsewhere:
    1 for content without a grid, rising as block artefacts appear."""
    d = np.abs(np.diff(_grey(x), axis=2))
    edge = (np.arange(d.shape[2]) % block) == block - 1
    return float(d[:, :, edge].mean() / d[:, :, ~edge].mean())


def one(stage: Any, lrs: list[np.ndarray], gts: list[np.ndarray] | None = None,
        seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw and apply a one-stage template; the degraded frames and the drawn params."""
    h, w = lrs[0].shape[:2]
    p = draw(DegradationCfg("t", "", (stage,)), np.random.default_rng(seed), len(lrs), (w, h))
    return _f32(apply(p, gts, lrs)), p


# --------------------------------------------------------------------------- blur


@pytest.mark.parametrize("sigma", [0.5, 0.7, 1.0, 2.0])
def test_gaussian_blur_removes_the_high_frequency_energy_its_sigma_predicts(
        clip: tuple[list[np.ndarray], list[np.ndarray]], sigma: float) -> None:
    """An isotropic blur of σ keeps Σ|X|²·|K|² / Σ|X|² of each band's energy, K the drawn
    kernel's transfer function (within 3 %, in bands that keep ≥ 2 % — below that the 8-bit
    rounding dominates); and K is the σ Gaussian's exp(−2π²σ²f²): for σ ≥ 0.7 the predicted
    fractions agree with the continuous Gaussian's within 2 % up to 0.3 cycles/px."""
    _, lrs = clip
    x = _f32(lrs)
    out, p = one(BlurStage(sigma=(sigma, sigma), kernel_size=(21, 21)), lrs)
    assert p["stages"][0]["kernel"] == "iso" and p["stages"][0]["sigma_x"] == sigma
    before, after = _spectrum(x), _spectrum(out)
    fx, fy = _freqs(*x.shape[1:3])
    f = np.hypot(fx, fy)
    k = np.abs(np.fft.fft2(degrade_kernels.blur_kernel(p["stages"][0]), x.shape[1:3])) ** 2
    gauss = np.exp(-4 * math.pi ** 2 * sigma ** 2 * f ** 2)
    checked = 0
    for lo, hi in ((0.05, 0.15), (0.15, 0.3), (0.3, 0.5)):
        band = (f >= lo) & (f <= hi)
        total = before[:, band].sum()
        predicted = (before * k)[:, band].sum() / total
        if predicted >= 0.02:
            assert after[:, band].sum() / total == pytest.approx(predicted, rel=0.03), lo
            checked += 1
        if sigma >= 0.7 and hi <= 0.3:
            assert predicted == pytest.approx((before * gauss)[:, band].sum() / total, rel=0.02)
    assert checked >= 1
    assert out.shape == x.shape


def test_anisotropic_blur_acts_along_its_rotated_long_axis(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """σx = 2, σy = 0.3: at rotation 0 horizontal detail goes and vertical detail stays;
    rotated by 90° it is the other way round."""
    _, lrs = clip
    x = _f32(lrs)
    kept = {}
    for rot in (0.0, 90.0):
        p = {"kind": "blur", "applied": True, "kernel": "aniso", "kernel_size": 21,
             "sigma_x": 2.0, "sigma_y": 0.3, "rotation": rot}
        out = _f32(apply({"template": "t", "lr_size": list(LR), "stages": [p]}, None, lrs))
        kept[rot] = {a: _band_energy(out, 0.2, 0.5, a) / _band_energy(x, 0.2, 0.5, a)
                     for a in ("x", "y")}
    assert kept[0.0]["x"] < 0.05 < 0.5 < kept[0.0]["y"]
    assert kept[90.0]["y"] < 0.05 < 0.5 < kept[90.0]["x"]


def test_kernels_are_real_esrgans() -> None:
    """Kernels sum to 1 and are point-symmetric; generalised β = 1 is the Gaussian; the
    plateau kernel is flatter at its top than the Gaussian of the same σ; the sinc kernel
    passes frequencies below its cutoff and stops those above (with ringing lobes)."""
    base = {"kernel_size": 21, "sigma_x": 2.0, "sigma_y": 2.0, "rotation": 0.0}
    gauss = degrade_kernels.blur_kernel({**base, "kernel": "iso"})
    gen1 = degrade_kernels.blur_kernel({**base, "kernel": "generalized_iso", "beta": 1.0})
    plateau = degrade_kernels.blur_kernel({**base, "kernel": "plateau_iso", "beta": 2.0})
    for k in (gauss, gen1, plateau):
        assert k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1, ::-1])
    assert np.allclose(gen1, gauss)
    c = 10
    assert plateau[c, c + 1] / plateau[c, c] > gauss[c, c + 1] / gauss[c, c]
    sinc = degrade_kernels.sinc_kernel(21, 0.5 * math.pi)  # cutoff 0.25 cycles/px
    response = np.abs(np.fft.fftshift(np.fft.fft2(sinc, (128, 128))))
    f = np.hypot(*np.meshgrid(np.fft.fftshift(np.fft.fftfreq(128)),
                              np.fft.fftshift(np.fft.fftfreq(128))))
    assert response[f < 0.18].min() > 0.8 and response[f > 0.33].max() < 0.15
    assert sinc.min() < 0  # negative lobes: the ringing Real-ESRGAN adds it for


# --------------------------------------------------------------------------- resize


@pytest.mark.parametrize("scale", [0.37, 0.5, 1.0, 1.73])
def test_sizes_stay_exact_through_any_resize(clip: tuple[list[np.ndarray], list[np.ndarray]],
                                             scale: float) -> None:
    """Leading resize from the GT to LR·s, more stages at that size, then the exact LR
    size again; a non-leading resize from the current frame."""
    gts, lrs = clip
    stages = (ResizeStage(scale=(scale, scale)), BlurStage(), JpegStage(quality=(50, 50)))
    p = draw(DegradationCfg("t", "", stages), np.random.default_rng(1), 7, LR)
    assert p["stages"][0]["input"] == "gt"
    assert p["stages"][0]["size"] == [round(96 * scale)] * 2
    assert ("final_resize" in p) == (scale != 1.0)
    out = apply(p, gts, lrs)
    assert [o.shape for o in out] == [(96, 96, 3)] * 7 and out[0].dtype == np.uint8
    second = draw(DegradationCfg("t", "", (BlurStage(), ResizeStage(scale=(scale, scale)))),
                  np.random.default_rng(1), 7, LR)
    assert second["stages"][1]["input"] == "current"
    assert [o.shape for o in apply(second, None, lrs)] == [(96, 96, 3)] * 7
    with pytest.raises(ValueError, match="GT frames"):
        apply(p, None, lrs)


def test_a_leading_resize_starts_from_the_gt_not_the_clean_lr(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """A leading bicubic resize to exactly LR size gives the clean LR itself (the GT was
    resized once, not the LR twice); the same resize later in a template resizes the LR."""
    gts, lrs = clip
    lead, _ = one(ResizeStage(scale=(1.0, 1.0), kernels=(("bicubic", 1.0),)), lrs, gts)
    assert np.array_equal(lead, _f32(lrs))
    later = draw(DegradationCfg("t", "", (ColourStage(contrast=(1, 1), brightness=(0, 0),
                                                      black_lift=(0, 0), gamma=(1, 1)),
                                          ResizeStage(scale=(0.5, 0.5)))),
                 np.random.default_rng(0), 7, LR)
    assert later["stages"][1]["input"] == "current"


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize(("sigma", "grey"), [(3.0, False), (8.0, True), (20.0, False)])
def test_gaussian_noise_has_the_drawn_sigma(clip: tuple[list[np.ndarray], list[np.ndarray]],
                                            sigma: float, grey: bool) -> None:
    """Added noise (away from clipping) has the drawn σ within 4 %, including the 8-bit
    rounding; grey noise is the same in R, G and B; frames get independent noise fields."""
    _, lrs = clip
    stage = NoiseStage(gaussian_probability=1.0, gaussian_sigma=(sigma, sigma),
                       grey_probability=1.0 if grey else 0.0)
    out, p = one(stage, lrs)
    level = p["stages"][0]["frames"][0]
    assert level == {"type": "gaussian", "sigma": sigma, "grey": grey}
    noise = out - _f32(lrs)
    x = _f32(lrs)
    safe = (x > 3 * sigma) & (x < 255 - 3 * sigma)
    assert noise[safe].std() == pytest.approx(math.sqrt(sigma ** 2 + 1 / 12), rel=0.04)
    if grey:
        inner = safe.all(axis=-1)
        assert np.abs(noise[..., 0] - noise[..., 1])[inner].max() <= 1.0
    else:
        assert abs(_corr(noise[..., 0], noise[..., 1])) < 0.05
    assert abs(_corr(noise[0], noise[1])) < 0.05


def test_poisson_noise_variance_follows_the_signal(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """Poisson noise at scale s: variance ≈ s²·x/vals on x ∈ [0, 1] (vals = 2^⌈log2 of the
    distinct values⌉), so brighter pixels are noisier, as shot noise is."""
    _, lrs = clip
    scale = 2.0
    out, _ = one(NoiseStage(gaussian_probability=0.0, poisson_scale=(scale, scale),
                            grey_probability=0.0), lrs)
    x = _f32(lrs)
    noise = (out - x) / 255.0
    distinct = len(np.unique(np.rint(x[0])))
    vals = 2 ** math.ceil(math.log2(distinct))
    for lo, hi in ((20, 60), (90, 150)):
        sel = (x >= lo) & (x < hi)
        expected = scale ** 2 * (x[sel] / 255.0).mean() / vals
        assert noise[sel].var() == pytest.approx(expected, rel=0.15), (lo, hi)


def test_noise_level_per_clip_or_per_frame() -> None:
    """`per = "clip"` draws one level for all frames; `per = "frame"` one per frame."""
    x = [np.full((16, 16, 3), 128, np.uint8)] * 7
    _, clip_p = one(NoiseStage(per="clip"), x)
    _, frame_p = one(NoiseStage(per="frame"), x)
    assert len({json.dumps(v) for v in clip_p["stages"][0]["frames"]}) == 1
    assert len({json.dumps(v) for v in frame_p["stages"][0]["frames"]}) > 1


# --------------------------------------------------------------------------- compression


def test_jpeg_blockiness_rises_as_quality_falls(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """8×8-grid blockiness strictly increases as JPEG quality goes 95 → 60 → 30 → 10."""
    _, lrs = clip
    values = [blockiness(one(JpegStage(quality=(q, q)), lrs)[0]) for q in (95, 60, 30, 10)]
    assert values == sorted(values) and values[-1] > 2 * values[0], values


@pytest.mark.parametrize(("codec", "key", "levels"), [
    ("h264", "crf", (18, 30, 40, 51)), ("hevc", "crf", (18, 30, 40, 51)),
    ("mpeg2", "qscale", (2, 8, 16, 31)), ("mpeg4", "qscale", (2, 8, 16, 31))])
def test_codec_blockiness_and_error_rise_as_quality_falls(
        clip: tuple[list[np.ndarray], list[np.ndarray]], codec: str, key: str,
        levels: tuple[int, ...]) -> None:
    """For every codec, 8-px blockiness and the mean squared error both increase as CRF
    (H.264/HEVC) or qscale (MPEG-2/4) increases."""
    _, lrs = clip
    x = _f32(lrs)
    blk, mse = [], []
    for v in levels:
        stage = CodecStage(codecs=((codec, 1.0),), **{key: (v, v)}, gop=(12, 12))
        out, p = one(stage, lrs)
        assert p["stages"][0][key] == v
        blk.append(blockiness(out))
        mse.append(float(((out - x) ** 2).mean()))
    assert blk == sorted(blk) and mse == sorted(mse), (blk, mse)
    assert blk[-1] > blk[0] + 0.15 and mse[-1] > 5 * mse[0]


def test_codec_damage_moves_like_a_decoded_stream(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """H.264 over the 7 frames: the frames' error patterns are not copies of each other
    (first vs last correlate < 0.5) but are temporally coherent — consecutive frames' errors
    correlate more than per-frame JPEG errors of similar strength do, and more than distant
    frames' — and their strength follows the picture types: with 2 B-frames the B frames
    (1, 2, 4, 5) are worse than the I/P frames (0, 3, 6); without B-frames far less so."""
    _, lrs = clip
    x = _f32(lrs)
    video, _ = one(CodecStage(crf=(30, 30), gop=(12, 12), bframes=(2, 2)), lrs)
    jpeg, _ = one(JpegStage(quality=(30, 30)), lrs)
    ev, ej = video - x, jpeg - x
    assert (ev ** 2).mean() == pytest.approx((ej ** 2).mean(), rel=0.35)  # similar damage
    consecutive_v = np.mean([_corr(ev[i], ev[i + 1]) for i in range(6)])
    consecutive_j = np.mean([_corr(ej[i], ej[i + 1]) for i in range(6)])
    assert _corr(ev[0], ev[6]) < 0.5
    assert max(_corr(ev[i], ev[j]) for i in range(7) for j in range(i + 1, 7)) < 0.95
    assert consecutive_v > consecutive_j + 0.1
    assert consecutive_v > _corr(ev[0], ev[6]) + 0.3

    def b_over_ip(bframes: int) -> float:
        out, _ = one(CodecStage(crf=(18, 18), gop=(12, 12), bframes=(bframes, bframes)), lrs)
        m = ((out - x) ** 2).mean(axis=(1, 2, 3))
        return float(m[[1, 2, 4, 5]].mean() / m[[0, 3, 6]].mean())

    with_b, without_b = b_over_ip(2), b_over_ip(0)
    assert with_b > 1.3 and with_b > without_b + 0.2


@pytest.mark.parametrize("size", [(37, 51), (3, 5), (2, 40), (32, 40), (60, 34), (24, 48)])
def test_codec_stage_pads_odd_and_tiny_sizes_and_keeps_them(
        clip: tuple[list[np.ndarray], list[np.ndarray]], size: tuple[int, int]) -> None:
    """Odd and small frame sizes (after a resize: x265 refuses frames under 16×16 and
    corrupts its heap — a crash, or other codecs' output changed later in the process — on
    frames 34–48 px wide) go through every codec, twice, and come back at their size."""
    _, lrs = clip
    x = _f32(lrs)[:, :size[0], :size[1]]
    for codec in ("h264", "hevc", "mpeg2", "mpeg4") * 2:
        out = degrade_codec.video(x, {"codec": codec, "crf": 30, "qscale": 8,
                                      "preset": "medium", "gop": 12, "bframes": 2})
        assert out.shape == x.shape, codec


_ENCODE_SNIPPET = """
import hashlib, sys, numpy as np
from dsgen import degrade_codec
x = np.load(sys.argv[1])
for codec in ("h264", "hevc", "mpeg2", "mpeg4"):
    p = {"codec": codec, "crf": 28, "qscale": 6, "preset": "medium", "gop": 5, "bframes": 2}
    print(codec, hashlib.sha256(degrade_codec.to_uint8(degrade_codec.video(x, p)).tobytes())
          .hexdigest())
"""


def test_codec_output_is_byte_reproducible_across_processes(
        clip: tuple[list[np.ndarray], list[np.ndarray]], tmp_path: Path) -> None:
    """Every codec decodes to the same bytes in this process and in a fresh one (single
    threads, no timestamps in the pixels)."""
    _, lrs = clip
    x = _f32(lrs)
    np.save(tmp_path / "x.npy", x)
    here = {}
    for codec in ("h264", "hevc", "mpeg2", "mpeg4"):
        p = {"codec": codec, "crf": 28, "qscale": 6, "preset": "medium", "gop": 5, "bframes": 2}
        here[codec] = hashlib.sha256(degrade_codec.to_uint8(degrade_codec.video(x, p))
                                     .tobytes()).hexdigest()
    done = subprocess.run([sys.executable, "-c", _ENCODE_SNIPPET, str(tmp_path / "x.npy")],
                          capture_output=True, text=True, check=True)
    there = dict(line.split() for line in done.stdout.splitlines())
    assert there == here


def test_missing_codecs_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A codec whose encoder this FFmpeg build lacks (libopenh264 is not in PyAV's wheels)
    is reported with the encoder's name; the four configured codecs are all present."""
    from dsgen.degrade_config import CODECS

    for name in CODECS:
        assert degrade_codec.missing_codec(name) is None
    monkeypatch.setitem(CODECS, "h264", ("libopenh264", "h264"))
    assert degrade_codec.missing_codec("h264") == (
        "this PyAV/FFmpeg build has no libopenh264 encoder (for h264)")


# --------------------------------------------------------------------------- chroma, colour


def test_saturation_scales_chroma_and_keeps_luma(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """Saturation s multiplies each pixel's distance from its BT.709 grey by s (unclipped
    pixels) and leaves the grey unchanged."""
    _, lrs = clip
    x = _f32(lrs)
    for s in (0.5, 1.3):
        out = degrade_colour.saturation(x, s)
        ok = ((x > 40) & (x < 215)).all(axis=-1)
        ratio = np.linalg.norm((out - _grey(out)[..., None])[ok], axis=-1) / np.maximum(
            np.linalg.norm((x - _grey(x)[..., None])[ok], axis=-1), 1e-3)
        assert np.median(ratio) == pytest.approx(s, rel=0.01)
        assert np.abs(_grey(out) - _grey(x))[ok].max() < 0.01


def test_chroma_bleed_smears_colour_sideways_only(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """Bleed removes most horizontal high-frequency chroma (Cb, 0.15–0.5 cycles/px) but
    keeps the vertical chroma detail and the luma."""
    _, lrs = clip
    x = _f32(lrs)
    out = degrade_colour.chroma_bleed(x, 0.3)

    def cb(a: np.ndarray) -> np.ndarray:  # Cb as a grey image for _band_energy
        return np.repeat(((a[..., 2] - _grey(a)) / degrade_colour.CB_SCALE)[..., None], 3, -1)

    hx = _band_energy(cb(out), 0.15, 0.5, "x") / _band_energy(cb(x), 0.15, 0.5, "x")
    hy = _band_energy(cb(out), 0.15, 0.5, "y") / _band_energy(cb(x), 0.15, 0.5, "y")
    assert hx < 0.2 and hy > 0.7, (hx, hy)
    ok = ((x > 30) & (x < 225)).all(axis=-1)
    assert np.abs(_grey(out) - _grey(x))[ok].mean() < 0.5


def test_tone_curve_contrast_brightness_black_lift_gamma() -> None:
    """On a 0–255 ramp: black lift l maps 0 to l·255 and keeps 255; contrast c pivots on
    mid-grey; brightness b adds b·255; gamma g maps mid-grey to 0.5^(1/g)."""
    ramp = np.linspace(0, 255, 256, dtype=np.float32).reshape(1, 1, 256, 1).repeat(3, -1)
    lift = degrade_colour.tone(ramp, 1.0, 0.0, 0.1, 1.0)
    assert lift[0, 0, 0, 0] == pytest.approx(25.5) and lift[0, 0, -1, 0] == pytest.approx(255)
    con = degrade_colour.tone(ramp, 1.2, 0.0, 0.0, 1.0)
    assert con[0, 0, 128, 0] == pytest.approx(128 + 0.2 * 0.5, abs=0.3)
    assert con[0, 0, 64, 0] == pytest.approx((64 / 255 - 0.5) * 1.2 * 255 + 127.5, abs=0.01)
    bright = degrade_colour.tone(ramp, 1.0, 0.04, 0.0, 1.0)
    assert bright[0, 0, 100, 0] == pytest.approx(100 + 0.04 * 255, abs=0.01)
    gam = degrade_colour.tone(ramp, 1.0, 0.0, 0.0, 2.0)
    assert gam[0, 0, 64, 0] / 255 == pytest.approx((64 / 255) ** 0.5, abs=1e-4)


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("template", BUILTIN_TEMPLATES, ids=[t.name for t in BUILTIN_TEMPLATES])
def test_builtin_templates_run_deterministically_at_the_exact_size(
        clip: tuple[list[np.ndarray], list[np.ndarray]], template: DegradationCfg) -> None:
    """Every built-in template: same seed → same params and bytes; another seed → other
    params; output is 7 LR frames of the exact size; params survive a JSON round trip."""
    gts, lrs = clip
    p1 = draw(template, np.random.default_rng(5), 7, LR)
    p2 = draw(template, np.random.default_rng(5), 7, LR)
    assert p1 == p2 == json.loads(json.dumps(p1))
    assert p1 != draw(template, np.random.default_rng(6), 7, LR)
    a, b = apply(p1, gts, lrs), apply(json.loads(json.dumps(p1)), gts, lrs)
    assert [x.shape for x in a] == [(96, 96, 3)] * 7
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert applied(p1) == any(not np.array_equal(u, v) for u, v in zip(a, lrs, strict=True))


def test_a_template_whose_stages_all_miss_is_the_clean_lr(
        clip: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    """Stages with probability 0 never apply: the output is the clean LR, the same arrays."""
    _, lrs = clip
    stages = (BlurStage(probability=0.0), NoiseStage(probability=0.0),
              ChromaStage(probability=0.0))
    p = draw(DegradationCfg("t", "", stages), np.random.default_rng(0), 7, LR)
    assert not applied(p)
    assert apply(p, None, lrs) is lrs


# --------------------------------------------------------------------------- whole runs

DEG_CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 3
segment_slots = 3
layout = "{layout}"

[extraction]
write_clean_lr = {clean}

[formats.tiny]
width = 96
height = 96
scale = 3

[formats.wide]
width = 384
height = 216
scale = 3

[categories.alpha]
target = 24
formats = {{ tiny = 0.5, wide = 0.5 }}
{alpha_mix}

[categories.beta]
target = 8
formats = {{ wide = 1.0 }}
{beta_mix}

[[videos]]
name = "long h264"
path = "{a}"
categories = ["alpha", "beta"]

[[videos]]
name = "long hevc"
path = "{b}"
categories = ["alpha", "beta"]
"""
ALPHA_MIX = """\
degradations = { realbasicvsr = 1.0, dvd_film_balanced = 1.0, grainy = 1.0, none = 1.0 }
format_degradations = { tiny = { realesrgan = 1.0, none = 0.5 } }"""
BETA_MIX = """degradations = { grainy = 1.0, dvd_film_balanced = 1.0 }

[degradations.grainy]
description = "per-frame grain, then HEVC or MPEG-2"
[[degradations.grainy.stages]]
kind = "noise"
per = "frame"
[[degradations.grainy.stages]]
kind = "codec"
codecs = { hevc = 1.0, mpeg2 = 1.0 }"""


def deg_config(d: Path, videos: tuple[Path, Path], *, layout: str = "stacked",
               clean: bool = True, mixes: tuple[str, str] | None = (ALPHA_MIX, BETA_MIX)
               ) -> Path:
    """A config over the long videos in folder `d` (degradation mixes, or none at all)."""
    d.mkdir(parents=True, exist_ok=True)
    alpha, beta = mixes or ("", "")
    text = DEG_CONFIG.format(layout=layout, clean=str(clean).lower(), alpha_mix=alpha,
                             beta_mix=beta, a=videos[0], b=videos[1])
    (d / "dsgen.toml").write_text(text)
    return d / "dsgen.toml"


def cli_run(cfg_path: Path) -> None:
    proc = _cli(cfg_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def manifest_lines(cfg_path: Path, out: Path) -> list[dict[str, Any]]:
    """`dsgen manifest --config … -o …` as a user runs it; its lines parsed."""
    subprocess.run([sys.executable, "-m", "dsgen.cli", "manifest", "--config", str(cfg_path),
                    "-o", str(out)], check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def degraded_run(tmp_path_factory: pytest.TempPathFactory, long_videos: tuple[Path, Path]
                 ) -> tuple[Path, dict[str, str]]:
    """One uninterrupted `dsgen run` with degradation mixes (codec templates included) and
    write_clean_lr: its config path and dataset (name → sha256)."""
    cfg_path = deg_config(tmp_path_factory.mktemp("degraded"), long_videos)
    cli_run(cfg_path)
    return cfg_path, dataset_files(load_config(cfg_path).output_root)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_identical_degraded_dataset(
        tmp_path: Path, long_videos: tuple[Path, Path],
        degraded_run: tuple[Path, dict[str, str]]) -> None:
    """kill -9 at three random moments, then resume: every file — GT, degraded LR, clean
    LR, dataset.json — is byte-identical to the uninterrupted run's."""
    _, expected = degraded_run
    assert sum("LR_7frames_clean/" in f for f in expected) == sum("LR_7frames/" in f
                                                                  for f in expected) == 32
    cfg_path = deg_config(tmp_path / "killed", long_videos)
    cfg = load_config(cfg_path)
    rng = random.Random(9)
    kills = 0
    for threshold in (0, *sorted(rng.sample(range(3, 29), 2))):
        proc = _cli(cfg_path)
        if threshold == 0:
            time.sleep(rng.uniform(0.5, 1.5))
        wait_for_samples(proc, cfg.state_dir, threshold)
        time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    cli_run(cfg_path)
    assert kills == 3
    assert dataset_files(cfg.output_root) == expected


@pytest.mark.slow
def test_a_manifest_line_reproduces_the_degraded_lr_bytes(
        tmp_path: Path, degraded_run: tuple[Path, dict[str, str]]) -> None:
    """docs/degradations.md's procedure, step for step, for every sample: a line of
    `dsgen manifest`, the GT frames decoded again (`gt_frames`), `reproduce`, dsgen's PNG
    encoder → the bytes of the sample's LR_5frames and LR_7frames files. The clean LR
    stacks reproduce the same bytes for samples whose template starts after the clean LR."""
    cfg_path, _ = degraded_run
    cfg = load_config(cfg_path)
    records = manifest_lines(cfg_path, tmp_path / "manifest.jsonl")
    templates = {r["degradation"]["template"] for r in records}
    assert {"realbasicvsr", "dvd_film_balanced", "grainy", "none", "realesrgan"} <= templates
    st = State(cfg.state_dir, readonly=True)
    try:
        for rec in records:
            lr = reproduce(rec, gt_frames(cfg, st, rec))
            for path, k in zip(rec["files"][1:3], (5, 7), strict=True):
                first = (7 - k) // 2
                png = encode_png(np.concatenate(lr[first:first + k]), cfg.png_compression)
                assert png == (cfg.output_root / path).read_bytes(), (rec["sample"], path)
            stages = rec["degradation"].get("stages", [])
            if not (stages and stages[0]["kind"] == "resize" and stages[0]["applied"]):
                clean = np.asarray(Image.open(cfg.output_root / rec["files"][4]))
                frames = list(clean.reshape(7, -1, *clean.shape[1:]))
                assert np.array_equal(np.concatenate(reproduce(rec, frames)),
                                      np.concatenate(lr))
    finally:
        st.close()


@pytest.mark.slow
def test_clean_lr_equals_the_clean_pipeline_and_gt_is_untouched(
        tmp_path: Path, long_videos: tuple[Path, Path],
        degraded_run: tuple[Path, dict[str, str]]) -> None:
    """A run without degradations writes exactly the degraded run's GT and its *_clean LR
    (degradations never move a crop); a run whose categories say `none` explicitly is that
    clean run byte for byte (dataset.json included); degraded LR differs from the clean LR
    exactly for the samples whose drawn stages applied."""
    cfg_path, degraded = degraded_run
    clean_path = deg_config(tmp_path / "clean", long_videos, clean=False, mixes=None)
    cli_run(clean_path)
    clean = dataset_files(load_config(clean_path).output_root)
    for name, digest in clean.items():
        if "/GT/" in name:
            assert degraded[name] == digest, name
        elif "/LR_" in name:
            d, k = name.split("/LR_", 1)
            stack, rest = k.split("/", 1)
            assert degraded[f"{d}/LR_{stack}_clean/{rest}"] == digest, name
    explicit = deg_config(tmp_path / "none", long_videos, clean=False, mixes=(
        "degradations = { none = 1.0 }", "degradations = [\"none\"]"))
    cli_run(explicit)
    assert dataset_files(load_config(explicit).output_root) == clean
    cfg = load_config(cfg_path)
    changed = 0
    for rec in manifest_lines(cfg_path, tmp_path / "m.jsonl"):
        lr7, clean7 = rec["files"][2], rec["files"][4]
        same = degraded[lr7] == degraded[clean7]
        assert same == (not applied(rec["degradation"])), rec["sample"]
        changed += not same
    assert changed >= 10
    assert cfg.extraction.write_clean_lr


@pytest.mark.slow
def test_basicsr_layout_carries_degraded_and_clean_lr(
        tmp_path: Path, long_videos: tuple[Path, Path]) -> None:
    """basicsr: LR/<clip>/<seq>/im*.png are the degraded frames, LR_clean the bicubic
    downscale of each GT im*.png; from the seven GT files on disk `reproduce` gives the LR
    files; meta_info.txt keeps BasicSR's three columns; dataset.json names the folders."""
    cfg_path = deg_config(tmp_path, long_videos, layout="basicsr")
    cli_run(cfg_path)
    cfg = load_config(cfg_path)
    degraded = 0
    for rec in manifest_lines(cfg_path, tmp_path / "m.jsonl"):
        root = cfg.output_root
        gts = [np.asarray(Image.open(root / f)) for f in rec["files"][:7]]
        lrs = [np.asarray(Image.open(root / f)) for f in rec["files"][7:14]]
        cleans = [np.asarray(Image.open(root / f)) for f in rec["files"][14:21]]
        assert all("/LR_clean/" in f for f in rec["files"][14:21])
        fmt = cfg.format(rec["format"])
        for g, c in zip(gts, cleans, strict=True):
            assert np.array_equal(lr_frame(g, fmt, "bicubic"), c)
        for frame, f in zip(reproduce(rec, gts), rec["files"][7:14], strict=True):
            assert encode_png(frame, cfg.png_compression) == (root / f).read_bytes(), f
        degraded += any(not np.array_equal(a, b) for a, b in zip(lrs, cleans, strict=True))
    assert degraded >= 10
    for meta in cfg.output_root.rglob("meta_info.txt"):
        assert all(len(line.split(" ")) == 3 for line in meta.read_text().splitlines())
    desc = json.loads((cfg.output_root / "alpha" / "dataset.json").read_text())
    assert desc["degradations"]["clean_lr"] == ["LR_clean"]
    assert desc["degradations"]["mix"]["tiny"] == {"realesrgan": 1.0, "none": 0.5}
