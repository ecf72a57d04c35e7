"""dsgen.quality: the clip gates (scene cut anywhere in the window, black or flat frames) and
the crop gate (texture and detail), on windows decoded from the synthetic videos, whose cuts
are known from their specs, and on arrays built to be black, flat or blurred.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from dsgen.colour import crop_rgb, luma_small
from dsgen.config import QualityCfg
from dsgen.model import BLACK, FLAT, LOW_DETAIL, LOW_TEXTURE, OK, REASONS, SCENE_CUT
from dsgen.patches import grey
from dsgen.probe import probe_video
from dsgen.quality import check_clip, check_crop
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]
N = 7
THRESHOLD = 45.0
LUMA_STEP = 4  # what the worker uses (dsgen.extract.LUMA_STEP)
Q = QualityCfg()


def decoded(fixture: VideoFixture) -> tuple[list[np.ndarray], list[Any], Any]:
    """(luma previews, frames, probe) of every frame, in display order, as the worker sees them."""
    path, spec = fixture
    probe = probe_video(path, N)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert [f.pts for f in frames] == probe.frame_pts.tolist()
    assert len(frames) == spec.n_frames
    return [luma_small(f, LUMA_STEP, probe.colour) for f in frames], frames, probe


@pytest.fixture(scope="module")
def sdr(h264_cuts: VideoFixture) -> tuple[list[np.ndarray], list[Any], Any]:
    return decoded(h264_cuts)


@pytest.fixture(scope="module")
def hdr(hevc10_hdr: VideoFixture) -> tuple[list[np.ndarray], list[Any], Any]:
    return decoded(hevc10_hdr)


def crosses_cut(spec: SynthSpec, start: int) -> bool:
    return any(start < c <= start + N - 1 for c in spec.cuts)


@pytest.mark.parametrize("which", ["h264_cuts", "hevc10_hdr"])
def test_every_window_is_judged_by_its_cuts(request: pytest.FixtureRequest, which: str) -> None:
    """On every 7-frame window of the SDR and the HDR (PQ) video: a window with a known cut
    between any two of its frames is "scene_cut" with scene_diff > 45; every window inside a
    scene is "ok" (moving texture: scene_diff well below 45, no black or flat frame)."""
    fixture: VideoFixture = request.getfixturevalue(which)
    spec = fixture[1]
    lumas, _, _ = request.getfixturevalue("sdr" if which == "h264_cuts" else "hdr")
    cut_windows = 0
    for start in range(len(lumas) - N + 1):
        v = check_clip(lumas[start:start + N], THRESHOLD, Q)
        assert v.reason in REASONS
        if crosses_cut(spec, start):
            cut_windows += 1
            assert v.reason == SCENE_CUT, (start, v)
            assert v.scene_diff > THRESHOLD + 15
        else:
            assert v.reason == OK, (start, v)
            assert 0.5 < v.scene_diff < THRESHOLD / 2
            assert v.mean_luma > Q.black_level and v.min_std > Q.flat_frame_std
    assert cut_windows == (N - 1) * len(spec.cuts)


def test_cut_at_any_position_is_caught(sdr: tuple[list[np.ndarray], list[Any], Any],
                                       h264_cuts: VideoFixture) -> None:
    """The cut is found wherever it falls in the window (not only first vs last frame), and
    scene_diff is the worst consecutive pair: the pair across the cut."""
    lumas = sdr[0]
    cut = h264_cuts[1].cuts[0]
    across = float(np.mean(np.abs(lumas[cut] - lumas[cut - 1])))
    for pos in range(1, N):
        start = cut - pos
        v = check_clip(lumas[start:start + N], THRESHOLD, Q)
        assert v.reason == SCENE_CUT
        assert v.scene_diff == pytest.approx(across)


def test_integer_lumas_give_the_same_verdicts(sdr: tuple[list[np.ndarray], list[Any], Any],
                                              h264_cuts: VideoFixture) -> None:
    """uint8 luma planes (no float conversion by the caller) are judged like float ones:
    differences never wrap around (100 − 101 is −1, not 255)."""
    lumas = [np.clip(np.rint(y), 0, 255).astype(np.uint8) for y in sdr[0]]
    for start in range(len(lumas) - N + 1):
        v = check_clip(lumas[start:start + N], THRESHOLD, Q)
        assert v.reason == (SCENE_CUT if crosses_cut(h264_cuts[1], start) else OK), start
    a = np.full((8, 8), 100, dtype=np.uint8)
    b = np.full((8, 8), 101, dtype=np.uint8)
    assert check_clip([a, b, a], THRESHOLD, Q).scene_diff == 1.0


def noisy(mean: float, std: float, seed: int, shape: tuple[int, int] = (90, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (mean + std * rng.standard_normal(shape)).astype(np.float32)


def test_black_frames() -> None:
    """A clip with a frame whose mean luma is below black_level is "black" (a fade), even when
    no pair differs enough to be a cut; mean_luma reports the darkest frame."""
    clip = [noisy(30, 10, i) for i in range(N)]
    assert check_clip(clip, THRESHOLD, Q).reason == OK
    clip[4] = np.full((90, 160), 8.0, dtype=np.float32)
    v = check_clip(clip, THRESHOLD, Q)
    assert v.reason == BLACK and v.mean_luma == pytest.approx(8.0)
    assert v.scene_diff < THRESHOLD
    all_black = [noisy(3, 2, i) for i in range(N)]
    assert check_clip(all_black, THRESHOLD, Q).reason == BLACK


def test_flat_frames(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """A clip with a frame whose luma std is below flat_frame_std is "flat" (title card, fade
    to grey): built arrays, and a real in-scene window with one frame replaced by its mean."""
    clip = [noisy(120, 1.5, i) for i in range(N)]
    v = check_clip(clip, THRESHOLD, Q)
    assert v.reason == FLAT and v.min_std < Q.flat_frame_std
    real = [y.copy() for y in sdr[0][5:5 + N]]
    assert check_clip(real, THRESHOLD, Q).reason == OK
    real[3] = np.full_like(real[3], float(real[3].mean()))
    v = check_clip(real, THRESHOLD, Q)
    assert v.reason == FLAT and v.min_std < 1e-3


def test_gate_order_and_threshold_edges() -> None:
    """A cut to black is a scene cut first; exactly at the threshold is not a cut ("above");
    the thresholds come from the QualityCfg given."""
    bright = [noisy(150, 20, i) for i in range(3)]
    dark = [noisy(2, 1, 10 + i) for i in range(4)]
    assert check_clip(bright + dark, THRESHOLD, Q).reason == SCENE_CUT
    a = np.full((4, 4), 60.0, dtype=np.float32)
    a[::2] += 20  # std 10, mean 70
    b = a + 45.0
    assert check_clip([a, b], THRESHOLD, Q).reason == OK
    assert check_clip([a, b + 0.01], THRESHOLD, Q).reason == SCENE_CUT
    assert check_clip([a, a], THRESHOLD, QualityCfg(black_level=71.0)).reason == BLACK
    assert check_clip([a, a], THRESHOLD, QualityCfg(flat_frame_std=10.5)).reason == FLAT
    single = check_clip([a], THRESHOLD, Q)  # no pairs: nothing to cut
    assert single.reason == OK and single.scene_diff == 0.0


# --------------------------------------------------------------------------- crops


def laplacian_variance(g: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian with mirrored edges (independent reference)."""
    p = np.pad(g.astype(np.float64), 1, mode="symmetric")
    lap = 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return float(lap.var())


def test_crop_with_texture_passes(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """Noise and real decoded picture crops pass; `detail` is the Laplacian variance and
    `std` the grey standard deviation, both on the 0–255 scale."""
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 40, (96, 96)).clip(0, 255).astype(np.float32)
    v = check_crop(noise, Q)
    assert v.reason == OK
    assert v.std == pytest.approx(float(noise.std()), rel=1e-5)
    assert v.detail == pytest.approx(laplacian_variance(noise), rel=1e-4)
    _, frames, probe = sdr
    for i, box in ((10, (0, 0, 96, 96)), (50, (200, 100, 240, 135)), (80, (544, 264, 96, 96))):
        g = grey(crop_rgb(frames[i], box, probe.colour))
        v = check_crop(g, Q)
        assert v.reason == OK, (i, box, v)
        assert v.detail == pytest.approx(laplacian_variance(g), rel=1e-4)


def test_flat_crop_is_low_texture() -> None:
    """A patch whose grey std is below crop_min_std is "low_texture" (sky, wall, black)."""
    flat = np.full((96, 96), 128.0, dtype=np.float32)
    assert check_crop(flat, Q).reason == LOW_TEXTURE
    grain = (128 + np.random.default_rng(1).normal(0, 2, (96, 96))).astype(np.float32)
    v = check_crop(grain, Q)
    assert v.reason == LOW_TEXTURE and v.std < Q.crop_min_std


def test_blurred_crop_is_low_detail(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """A patch with contrast but no fine detail is "low_detail": a smooth gradient, and a real
    crop that passes sharp but fails once blurred (out-of-focus)."""
    yy, xx = np.mgrid[0:135, 0:240].astype(np.float32)
    smooth = 128 + 50 * np.sin(xx / 40) * np.cos(yy / 30)
    v = check_crop(smooth, Q)
    assert v.reason == LOW_DETAIL and v.std >= Q.crop_min_std and v.detail < Q.crop_min_detail
    _, frames, probe = sdr
    rgb = crop_rgb(frames[40], (100, 60, 240, 240), probe.colour)
    assert check_crop(grey(rgb), Q).reason == OK
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(4)))
    v = check_crop(grey(blurred), Q)
    assert v.reason == LOW_DETAIL, v
    assert v.std >= Q.crop_min_std


def test_crop_gate_accepts_integer_greys(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """A uint8 grey patch is measured on the same 0–255 scale as a float one (no silent
    rescaling to 0–1 that would make every patch "low_detail")."""
    _, frames, probe = sdr
    g = grey(crop_rgb(frames[20], (64, 64, 96, 96), probe.colour))
    as_int = np.rint(g).astype(np.uint8)
    a, b = check_crop(as_int, Q), check_crop(as_int.astype(np.float32), Q)
    assert a == b and a.reason == OK
