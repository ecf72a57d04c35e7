"""dsgen.patches: where a patch lies in the source, how big it is, and how GT and LR are built.

Geometry is checked on real probes of the synthetic fixtures (square-pixel SDR, anamorphic
PAL DVD, letterboxed 720p); patches are cut from real decoded frames.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dsgen.colour import crop_rgb
from dsgen.config import FormatCfg, SourceMode
from dsgen.model import VideoProbe
from dsgen.patches import (
    LR_FILTERS,
    Geometry,
    fits,
    geometry,
    grey,
    gt_patch,
    lr_frame,
    lr_stack,
    pick_box,
    scale_note,
    source_size,
)
from dsgen.probe import probe_video
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]
REF = 1080


def fmt(w: int, h: int, scale: int = 3, mode: SourceMode = "crop") -> FormatCfg:
    return FormatCfg(f"f{w}x{h}{mode}", w, h, scale, "d", mode)


@pytest.fixture(scope="module")
def sdr(h264_cuts: VideoFixture) -> VideoProbe:
    return probe_video(h264_cuts[0], 7)


@pytest.fixture(scope="module")
def anamorphic(mpeg2_anamorphic: VideoFixture) -> VideoProbe:
    return probe_video(mpeg2_anamorphic[0], 7)


@pytest.fixture(scope="module")
def boxed(letterboxed: VideoFixture) -> VideoProbe:
    return probe_video(letterboxed[0], 7)


@pytest.fixture(scope="module")
def odd(odd_size: VideoFixture) -> VideoProbe:
    return probe_video(odd_size[0], 7)


def resized(p: VideoProbe, width: int, height: int) -> VideoProbe:
    """The probe of the same stream as if it were coded at width×height (no bars)."""
    return dataclasses.replace(p, width=width, height=height, content=(0, 0, width, height))


def decode(path: Path, probe: VideoProbe, indices: set[int]) -> dict[int, Any]:
    """Frames by index (position in the probe's pts list), decoded with PyAV."""
    index = {int(p): i for i, p in enumerate(probe.frame_pts)}
    out: dict[int, Any] = {}
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            i = index.get(frame.pts)
            if i in indices:
                out[i] = frame
            if len(out) == len(indices):
                break
    assert set(out) == indices
    return out


# --------------------------------------------------------------------------- geometry


def test_geometry_square_pixel_sdr(sdr: VideoProbe) -> None:
    """1080p → native (sx = sy = 1); 2160p → halved (0.5) to the 1080-line reference; a
    picture below the reference (the 640×360 fixture) is kept at native scale, never upscaled."""
    g1080 = geometry(resized(sdr, 1920, 1080), REF)
    assert (g1080.sx, g1080.sy, g1080.sar) == (1.0, 1.0, 1.0)
    assert (g1080.x0, g1080.y0, g1080.x1, g1080.y1) == (0, 0, 1920, 1080)
    assert scale_note(g1080) == "native scale"
    g2160 = geometry(resized(sdr, 3840, 2160), REF)
    assert (g2160.sx, g2160.sy) == (0.5, 0.5)
    assert "×0.500" in scale_note(g2160)
    native = geometry(sdr, REF)
    assert (native.sx, native.sy) == (1.0, 1.0)
    assert (native.width, native.height) == (640, 360)
    assert geometry(sdr, 180).sy == 0.5  # a lower reference does scale it down


def test_geometry_anamorphic_dvd(anamorphic: VideoProbe) -> None:
    """720×576 with SAR 64/45: pixels are squared by shrinking vertically (576 → 405 lines)
    instead of stretching horizontally: sx = 1, sy = 45/64, sx/sy = SAR, nothing upscaled."""
    assert (anamorphic.width, anamorphic.height) == (720, 576)
    assert anamorphic.sar == Fraction(64, 45)
    g = geometry(anamorphic, REF)
    assert g.sx <= 1 and g.sy <= 1
    assert math.isclose(g.sx / g.sy, 64 / 45)
    assert g.sx == 1.0 and math.isclose(g.sy, 45 / 64)
    assert round(g.height * g.sy) == 405 and round(g.width * g.sx) == 720
    narrow = geometry(dataclasses.replace(anamorphic, sar=Fraction(8, 9)), REF)  # NTSC 4:3
    assert narrow.sy == 1.0 and math.isclose(narrow.sx, 8 / 9)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sar=st.fractions(Fraction(1, 4), Fraction(4)).filter(lambda f: f > 0),
       height=st.integers(16, 4320), ref=st.integers(64, 8640))
def test_geometry_never_upscales(sdr: VideoProbe, sar: Fraction, height: int, ref: int) -> None:
    """For any SAR, size and reference height: sx, sy ≤ 1 (never upscaled), sx/sy = SAR
    (square pixels), the normalised height ≤ the reference, and the scale is as large as
    those rules allow (one of them binds)."""
    g = geometry(dataclasses.replace(resized(sdr, 2 * height, height), sar=sar), ref)
    assert 0 < g.sx <= 1 and 0 < g.sy <= 1
    assert math.isclose(g.sx / g.sy, float(sar), rel_tol=1e-9)
    assert height * g.sy <= ref * (1 + 1e-12)
    assert any(math.isclose(v, 1.0) for v in (g.sx, g.sy)) or math.isclose(height * g.sy, ref)


def test_geometry_letterbox_excludes_the_bars(boxed: VideoProbe) -> None:
    """1280×720 with 96-row bars: the picture rectangle lies strictly inside the bars (probe
    keeps a margin), spans the full width, and the scale stays native."""
    g = geometry(boxed, REF)
    assert (g.sx, g.sy) == (1.0, 1.0)
    assert g.x0 == 0 and g.x1 == 1280
    assert 96 <= g.y0 <= 104 and 616 <= g.y1 <= 624
    assert (g.width, g.height) == (g.x1 - g.x0, g.y1 - g.y0)


# --------------------------------------------------------------------------- fits / size


def test_crop_source_size_and_fits(sdr: VideoProbe, anamorphic: VideoProbe,
                                   boxed: VideoProbe) -> None:
    """Crop mode: the source region is the GT size divided by the scale factors; a format
    fits only if that region lies within the picture (so GT is never upscaled)."""
    g = geometry(sdr, REF)
    assert source_size(g, fmt(96, 96)) == (96, 96) and fits(g, fmt(96, 96))
    assert fits(g, fmt(639, 360)) and fits(g, fmt(640, 360, 1))
    assert not fits(g, fmt(642, 360)) and not fits(g, fmt(1920, 1080))
    g4k = geometry(resized(sdr, 3840, 2160), REF)
    assert source_size(g4k, fmt(540, 540)) == (1080, 1080)
    assert source_size(g4k, fmt(1920, 1080)) == (3840, 2160) and fits(g4k, fmt(1920, 1080))
    assert not fits(g4k, fmt(1920, 1083))
    ga = geometry(anamorphic, REF)
    assert source_size(ga, fmt(720, 405)) == (720, 576) and fits(ga, fmt(720, 405))
    assert source_size(ga, fmt(90, 90)) == (90, 128)
    assert not fits(ga, fmt(720, 408)) and not fits(ga, fmt(723, 405))
    gb = geometry(boxed, REF)
    assert fits(gb, fmt(720, 405)) and fits(gb, fmt(1278, 519, 1))
    assert not fits(gb, fmt(540, 540))  # taller than the 2.4:1 picture inside the bars


def test_resize_source_size_and_fits(sdr: VideoProbe, anamorphic: VideoProbe) -> None:
    """Resize mode: the whole picture, centre-cropped to the format's display aspect; it fits
    only when that region has at least the GT's pixels (scaled down, never up)."""
    g = geometry(sdr, REF)
    assert source_size(g, fmt(320, 180, mode="resize")) == (640, 360)
    assert source_size(g, fmt(180, 180, mode="resize")) == (360, 360)
    assert source_size(g, fmt(639, 180, mode="resize")) == (640, 180)
    assert fits(g, fmt(639, 360, mode="resize")) and fits(g, fmt(360, 360, mode="resize"))
    assert source_size(g, fmt(640, 480, mode="resize")) == (480, 360)
    assert not fits(g, fmt(640, 480, mode="resize"))  # only 480 source columns for 640
    assert not fits(g, fmt(1920, 1080, mode="resize"))
    ga = geometry(anamorphic, REF)
    assert source_size(ga, fmt(720, 405, mode="resize")) == (720, 576)  # 16:9 display
    assert fits(ga, fmt(720, 405, mode="resize"))
    assert source_size(ga, fmt(405, 405, mode="resize")) == (405, 576)
    assert not fits(ga, fmt(1023, 576, mode="resize"))  # would stretch 720 columns


geo_st = st.builds(
    lambda w, h, sar, ref, mx, my: (w, h, sar, ref, mx, my),
    st.integers(64, 8192), st.integers(64, 4320),
    st.sampled_from([Fraction(1), Fraction(64, 45), Fraction(16, 15), Fraction(8, 9),
                     Fraction(4, 3), Fraction(32, 27)]),
    st.sampled_from([1080, 720, 2160]), st.integers(0, 200), st.integers(0, 200))


def make_geo(sdr: VideoProbe, spec: tuple[int, int, Fraction, int, int, int]) -> Geometry:
    w, h, sar, ref, mx, my = spec  # mx, my: pillarbox/letterbox bars (odd too), < 1/4 each
    mx, my = min(mx, w // 4), min(my, h // 4)
    p = dataclasses.replace(sdr, width=w, height=h, sar=sar, content=(mx, my, w - mx, h - my))
    return geometry(p, ref)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=geo_st, w=st.integers(1, 700).map(lambda v: v * 3),
       h=st.integers(1, 400).map(lambda v: v * 3), mode=st.sampled_from(["crop", "resize"]))
def test_fitting_formats_are_never_upscaled(sdr: VideoProbe,
                                            spec: tuple[int, int, Fraction, int, int, int],
                                            w: int, h: int, mode: SourceMode) -> None:
    """Whenever a format fits, its source region lies inside the picture and has at least the
    GT's pixels in each direction (crop: at the normalised scale; resize: at native scale),
    and a resize region has the format's display aspect (to within one source pixel)."""
    g = make_geo(sdr, spec)
    f = fmt(w, h, mode=mode)
    sw, sh = source_size(g, f)
    if not fits(g, f):
        if mode == "crop":
            assert sw > g.width or sh > g.height
        else:
            assert sw < w or sh < h
        return
    assert 0 < sw <= g.width and 0 < sh <= g.height
    assert sw >= w and sh >= h  # GT pixels ≤ source pixels: a downscale (or 1:1)
    if mode == "crop":
        assert sw * g.sx >= w - 0.5 and sh * g.sy >= h - 0.5
    else:
        assert math.isclose(sw * g.sar / sh, w / h, rel_tol=1.5 / min(sw, sh))


# --------------------------------------------------------------------------- pick_box


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**63),
       which=st.sampled_from(["sdr", "anamorphic", "boxed", "odd", "odd_start", "720x405"]),
       size=st.sampled_from([(96, 96), (240, 135), (540, 540), (720, 405), (3, 3), (633, 351)]),
       mode=st.sampled_from(["crop", "resize"]))
def test_pick_box_inside_content(sdr: VideoProbe, anamorphic: VideoProbe, boxed: VideoProbe,
                                 odd: VideoProbe, seed: int, which: str, size: tuple[int, int],
                                 mode: SourceMode) -> None:
    """For any seed, a fitting format's box has the source size, lies inside the probe's
    content rectangle (never in bars), is on even coordinates wherever an even position
    fits (the picture's own odd start otherwise), and in resize mode is centred."""
    p = {"sdr": sdr, "anamorphic": anamorphic, "boxed": boxed, "odd": odd,
         "odd_start": dataclasses.replace(sdr, content=(3, 5, 637, 357)),
         "720x405": resized(sdr, 720, 405)}[which]
    g = geometry(p, REF)
    f = fmt(*size, mode=mode)
    if not fits(g, f):
        return
    x, y, w, h = pick_box(g, f, np.random.default_rng(seed))
    cx0, cy0, cx1, cy1 = p.content
    assert (w, h) == source_size(g, f)
    even_x_fits = cx0 + (cx0 & 1) + w <= cx1
    even_y_fits = cy0 + (cy0 & 1) + h <= cy1
    assert x % 2 == 0 if even_x_fits else x == cx0
    assert y % 2 == 0 if even_y_fits else y == cy0
    assert cx0 <= x and x + w <= cx1 and cy0 <= y and y + h <= cy1
    assert x + w <= p.width and y + h <= p.height
    if mode == "resize":
        assert abs((x - cx0) - (cx1 - x - w)) <= 3 and abs((y - cy0) - (cy1 - y - h)) <= 3


def test_exact_fits_are_used_at_any_offset(sdr: VideoProbe) -> None:
    """A format exactly the size of the picture is picked as the whole picture, whatever its
    size and start: 720×405 frames give (0, 0, 720, 405) (medium_169's GT size), an odd
    picture starting at (3, 5) gives a box starting there."""
    g = geometry(resized(sdr, 720, 405), REF)
    medium = fmt(720, 405)
    assert fits(g, medium)
    assert pick_box(g, medium, np.random.default_rng(1)) == (0, 0, 720, 405)
    assert pick_box(g, fmt(720, 405, mode="resize"), np.random.default_rng(1)) == (0, 0, 720, 405)
    wide = geometry(resized(sdr, 721, 405), REF)
    assert pick_box(wide, medium, np.random.default_rng(2)) == (0, 0, 720, 405)
    boxed_odd = geometry(dataclasses.replace(sdr, content=(3, 5, 636, 355)), REF)
    assert pick_box(boxed_odd, fmt(633, 350, 1), np.random.default_rng(3)) == (3, 5, 633, 350)


def test_pick_box_keeps_the_even_grid_for_even_pictures(boxed: VideoProbe) -> None:
    """For pictures starting on even coordinates the boxes are those of the old even-only
    rule, draw for draw (so datasets of such sources are unchanged)."""
    g = geometry(boxed, REF)
    f = fmt(240, 135)
    for seed in range(50):
        rng, old = np.random.default_rng(seed), np.random.default_rng(seed)
        w, h = source_size(g, f)
        x = g.x0 + 2 * int(old.integers(0, (g.width - w) // 2 + 1))
        y = g.y0 + 2 * int(old.integers(0, (g.height - h) // 2 + 1))
        assert pick_box(g, f, rng) == (x, y, w, h)


def test_pick_box_covers_the_picture(boxed: VideoProbe) -> None:
    """Crop boxes are spread over the whole picture: over many seeds they reach both the
    left/right and the top/bottom limits, and the same generator state gives the same box."""
    g = geometry(boxed, REF)
    f = fmt(240, 135)
    boxes = [pick_box(g, f, np.random.default_rng(s)) for s in range(400)]
    xs, ys = [b[0] for b in boxes], [b[1] for b in boxes]
    assert min(xs) <= g.x0 + 20 and max(xs) >= g.x1 - 240 - 20
    assert min(ys) <= g.y0 + 20 and max(ys) >= g.y1 - 135 - 20
    assert boxes[7] == pick_box(g, f, np.random.default_rng(7))


# --------------------------------------------------------------------------- building


@pytest.fixture(scope="module")
def anamorphic_frames(mpeg2_anamorphic: VideoFixture, anamorphic: VideoProbe) -> dict[int, Any]:
    return decode(mpeg2_anamorphic[0], anamorphic, set(range(7)))


@pytest.fixture(scope="module")
def sdr_frames(h264_cuts: VideoFixture, sdr: VideoProbe) -> dict[int, Any]:
    return decode(h264_cuts[0], sdr, set(range(10, 17)))


def test_gt_patch_exact_size(sdr: VideoProbe, sdr_frames: dict[int, Any],
                             anamorphic: VideoProbe, anamorphic_frames: dict[int, Any]) -> None:
    """gt_patch is exactly the format's GT size (uint8 RGB): 1:1 crops are crop_rgb itself,
    scaled crops are the crop downscaled with Lanczos (inside swscale): within a grey level or
    two of Pillow's Lanczos resize of the full-size crop."""
    frame = sdr_frames[13]
    g = geometry(sdr, REF)
    f = fmt(96, 96)
    box = pick_box(g, f, np.random.default_rng(1))
    gt = gt_patch(frame, box, f, sdr.colour)
    assert gt.shape == (96, 96, 3) and gt.dtype == np.uint8
    assert np.array_equal(gt, crop_rgb(frame, box, sdr.colour))
    ga = geometry(anamorphic, REF)
    for f in (fmt(90, 90), fmt(240, 135), fmt(720, 405), fmt(360, 201, mode="resize")):
        box = pick_box(ga, f, np.random.default_rng(2))
        gt = gt_patch(anamorphic_frames[3], box, f, anamorphic.colour)
        assert gt.shape == (f.height, f.width, 3) and gt.dtype == np.uint8
        src = crop_rgb(anamorphic_frames[3], box, anamorphic.colour)
        want = np.asarray(Image.fromarray(src).resize((f.width, f.height),
                                                      Image.Resampling.LANCZOS))
        diff = np.abs(gt.astype(np.int16) - want.astype(np.int16))
        assert diff.mean() < 2.0, diff.mean()


@pytest.mark.parametrize(("name", "pil"), [("area", Image.Resampling.BOX),
                                           ("bicubic", Image.Resampling.BICUBIC),
                                           ("lanczos", Image.Resampling.LANCZOS)])
def test_lr_frame_is_pillows_resize(sdr: VideoProbe, sdr_frames: dict[int, Any], name: str,
                                    pil: Image.Resampling) -> None:
    """lr_frame equals, byte for byte, Pillow's resize of the GT to GT/scale with the
    documented filter (area = BOX, bicubic = BICUBIC, lanczos = LANCZOS)."""
    assert LR_FILTERS[name] == pil
    g = geometry(sdr, REF)
    for f in (fmt(96, 96), fmt(240, 136, 4), fmt(240, 135)):
        gt = gt_patch(sdr_frames[12], pick_box(g, f, np.random.default_rng(3)), f, sdr.colour)
        lr = lr_frame(gt, f, name)  # type: ignore[arg-type]
        want = np.asarray(Image.fromarray(gt).resize((f.width // f.scale,
                                                      f.height // f.scale), pil))
        assert lr.shape == (f.height // f.scale, f.width // f.scale, 3)
        assert lr.dtype == np.uint8
        assert lr.tobytes() == want.tobytes()
    if name == "area":  # box averaging is exact for integer factors
        flat = np.full((9, 9, 3), 77, dtype=np.uint8)
        flat[:3, :3] = 5
        out = lr_frame(flat, fmt(9, 9), "area")
        assert out[0, 0].tolist() == [5, 5, 5] and out[1, 1].tolist() == [77, 77, 77]


def test_lr_stack_takes_the_centred_frames_in_order() -> None:
    """lr_stack(lrs, k) stacks the centred k of the n frames vertically, in time order:
    ((k·lr_h) × lr_w × 3); LR_5frames = frames 2–6 and LR_7frames = 1–7 of 7."""
    lh, lw = 4, 6
    lrs = [np.full((lh, lw, 3), i, dtype=np.uint8) for i in range(1, 8)]
    for k, first in ((7, 1), (5, 2), (3, 3), (1, 4)):
        stack = lr_stack(lrs, k)
        assert stack.shape == (k * lh, lw, 3) and stack.dtype == np.uint8
        blocks = [int(stack[j * lh:(j + 1) * lh].max()) for j in range(k)]
        assert blocks == list(range(first, first + k))
        assert all((stack[j * lh:(j + 1) * lh] == first + j).all() for j in range(k))
    nine = [np.full((2, 2, 3), i, dtype=np.uint8) for i in range(9)]
    assert [int(b) for b in lr_stack(nine, 5)[::2, 0, 0]] == [2, 3, 4, 5, 6]


def test_grey_is_bt709_luma() -> None:
    """grey() is BT.709 luma (0.2126 R + 0.7152 G + 0.0722 B) as float32 on 0–255."""
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]],
                   dtype=np.uint8)
    y = grey(rgb)
    assert y.dtype == np.float32 and y.shape == (1, 5)
    assert np.allclose(y[0], [0.2126 * 255, 0.7152 * 255, 0.0722 * 255, 255, 0], atol=1e-3)


def test_letterbox_crops_never_include_bars(letterboxed: VideoFixture,
                                            boxed: VideoProbe) -> None:
    """On the letterboxed fixture (Y=16 bars, content decoded well above black), every crop
    from pick_box — any seed, any fitting format, both scenes — has no near-black row or
    column, in particular none at its top and bottom edges: the box lies inside the bars."""
    path, spec = letterboxed
    frames = decode(path, boxed, {5, 45})
    g = geometry(boxed, REF)
    top, _, bottom, _ = spec.picture_box
    assert g.y0 >= top and g.y1 <= bottom
    formats = [fmt(96, 96), fmt(240, 135), fmt(720, 405), fmt(1278, 519, 1),
               fmt(640, 258, 2, mode="resize")]
    for i, frame in frames.items():
        full = grey(crop_rgb(frame, (0, 0, 1280, 720), boxed.colour))
        assert full[:top - 2].mean() < 3 and full[bottom + 2:].mean() < 3  # the bars are black
        for f in formats:
            assert fits(g, f), f
            for seed in range(12 if f.mode == "crop" else 1):
                box = pick_box(g, f, np.random.default_rng(seed))
                y = grey(crop_rgb(frame, box, boxed.colour))
                rows, cols = y.mean(axis=1), y.mean(axis=0)
                assert rows.min() > 20 and cols.min() > 20, (i, f, box, rows.min())
                assert rows[0] > 20 and rows[-1] > 20
