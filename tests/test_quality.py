"""dsgen.quality and dsgen.cuts: the clip gates (scene cut anywhere in the window, told from
motion; black or flat frames) and the crop gate (texture and detail).

Cuts are judged on windows decoded from real encoded videos whose cuts are known from their
specs: the texture-pan test videos, and camera-motion videos encoded at realistic quality
(fast pans, shake, a large moving object, water, zoom; cuts to another set and to another
view of the same set). Black, flat and blurred cases use arrays built to be so.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from dsgen.colour import crop_rgb, luma_small
from dsgen.config import ExtractionCfg, QualityCfg, load_config
from dsgen.cuts import CutRule, PairScore, find_cut, judge
from dsgen.errors import ConfigError
from dsgen.model import BLACK, FLAT, LOW_DETAIL, LOW_TEXTURE, OK, REASONS, SCENE_CUT
from dsgen.patches import grey
from dsgen.probe import probe_video
from dsgen.quality import check_clip, check_crop
from dsgen.synth import SynthSpec, make_video

VideoFixture = tuple[Path, SynthSpec]
N = 7
THRESHOLD = ExtractionCfg().scene_cut_threshold  # the ceiling on the compensated difference
OLD_THRESHOLD = 45.0  # the old rule: raw mean |ΔY| of any consecutive pair above 45 is a cut
LUMA_STEP = 4  # what the worker uses (dsgen.extract.LUMA_STEP)
Q = QualityCfg()
MAX_FALSE_REJECTION = 0.05  # the bar for cut-free high-motion clips


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


def old_rule(window: list[np.ndarray]) -> bool:
    """The rule dsgen had before: a consecutive pair with mean |ΔY| above 45 is a cut."""
    return any(float(np.mean(np.abs(np.subtract(a, b, dtype=np.float32)))) > OLD_THRESHOLD
               for a, b in itertools.pairwise(window))


@pytest.mark.parametrize("which", ["h264_cuts", "hevc10_hdr"])
def test_every_window_is_judged_by_its_cuts(request: pytest.FixtureRequest, which: str) -> None:
    """On every 7-frame window of the SDR and the HDR (PQ) video: a window with a known cut
    between any two of its frames is "scene_cut" with a large motion-compensated scene_diff;
    every window inside a scene (a moving texture) is "ok" with scene_diff ~0 (the pan is
    aligned away), no black or flat frame."""
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
            assert v.scene_diff > THRESHOLD
            assert start + v.cut_pair + 1 in spec.cuts
        else:
            assert v.reason == OK, (start, v)
            assert 0.0 <= v.scene_diff < Q.cut_min_diff / 2
            assert v.mean_luma > Q.black_level and v.min_std > Q.flat_frame_std
    assert cut_windows == (N - 1) * len(spec.cuts)


def test_cut_at_any_position_is_caught(sdr: tuple[list[np.ndarray], list[Any], Any],
                                       h264_cuts: VideoFixture) -> None:
    """The cut is found wherever it falls in the window, the first and the last pair (whose
    neighbours are all on one side) included, and the verdict names that pair."""
    lumas = sdr[0]
    cut = h264_cuts[1].cuts[0]
    for pos in range(N - 1):
        start = cut - 1 - pos
        v = check_clip(lumas[start:start + N], THRESHOLD, Q)
        assert v.reason == SCENE_CUT, pos
        assert v.cut_pair == pos
    # A clip of two frames has one pair and no neighbours: the ceiling decides.
    assert check_clip(lumas[cut - 1:cut + 1], THRESHOLD, Q).reason == SCENE_CUT
    assert check_clip(lumas[cut:cut + 2], THRESHOLD, Q).reason == OK


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
    assert check_clip([a, b, a], THRESHOLD, Q).scene_diff == pytest.approx(1.0)


def test_verdict_is_deterministic(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """check_clip is pure: the same lumas (or copies of them) give the same verdict, field for
    field, however often it is called; the input is not modified."""
    window = sdr[0][27:27 + N]
    before = [y.copy() for y in window]
    first = check_clip(window, THRESHOLD, Q)
    for _ in range(3):
        assert check_clip([y.copy() for y in window], THRESHOLD, Q) == first
    assert all(np.array_equal(a, b) for a, b in zip(window, before, strict=True))


def noisy(mean: float, std: float, seed: int, shape: tuple[int, int] = (90, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (mean + std * rng.standard_normal(shape)).astype(np.float32)


def test_black_frames(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """A clip with a frame whose mean luma is below black_level is "black" (a fade to black),
    when no pair is a cut; mean_luma reports the darkest frame. A fade is no cut: it darkens
    every pair alike."""
    real = sdr[0][5:5 + N]
    fade = [np.float32(1.0 - 0.15 * i) * y for i, y in enumerate(real)]  # down to 10% of light
    v = check_clip(fade, THRESHOLD, Q)
    assert v.reason == BLACK, v
    assert v.mean_luma == pytest.approx(float(fade[-1].mean()), rel=0.01)
    assert v.mean_luma < Q.black_level
    all_black = [noisy(3, 2, i) for i in range(N)]
    assert check_clip(all_black, THRESHOLD, Q).reason == BLACK


def test_flat_frames(sdr: tuple[list[np.ndarray], list[Any], Any]) -> None:
    """A clip with a frame whose luma std is below flat_frame_std is "flat" (title card, fade
    to grey): built arrays, and a real in-scene window with one frame replaced by its mean,
    which, being a jump to a flat picture, is a cut first."""
    clip = [noisy(120, 1.5, i) for i in range(N)]
    v = check_clip(clip, THRESHOLD, Q)
    assert v.reason == FLAT and v.min_std < Q.flat_frame_std
    real = [y.copy() for y in sdr[0][5:5 + N]]
    assert check_clip(real, THRESHOLD, Q).reason == OK
    real[-1] = np.full_like(real[-1], float(real[-1].mean()))
    v = check_clip(real, THRESHOLD, Q)
    assert v.reason == SCENE_CUT and v.cut_pair == N - 2 and v.min_std < 1e-3
    ceiling_only = QualityCfg(cut_min_diff=255.0, cut_min_jump=1.0)
    v = check_clip(real, THRESHOLD, ceiling_only)
    assert v.reason == (FLAT if v.scene_diff <= THRESHOLD else SCENE_CUT)


def test_gate_order_and_threshold_edges() -> None:
    """A cut to black is a scene cut first; the ceiling (scene_cut_threshold) is "above":
    exactly at it is no cut; the thresholds come from the QualityCfg given."""
    bright = [noisy(150, 20, i) for i in range(3)]
    dark = [noisy(2, 1, 10 + i) for i in range(4)]
    assert check_clip(bright + dark, THRESHOLD, Q).reason == SCENE_CUT
    a = np.full((16, 16), 60.0, dtype=np.float32)
    # Uniform frames: the compensated difference is exactly the step; only the ceiling acts.
    ceiling_only = QualityCfg(cut_min_diff=255.0, cut_min_jump=1.0, flat_frame_std=0.0)
    assert check_clip([a, a + 20.0], 20.0, ceiling_only).reason == OK
    v = check_clip([a, a + 20.01], 20.0, ceiling_only)
    assert v.reason == SCENE_CUT and v.cut_cue == "ceiling" and v.scene_diff == pytest.approx(20.01)
    assert check_clip([a, a + 30.0], 40.0, ceiling_only).reason == OK
    t = a.copy()
    t[np.arange(16) % 4 < 2] += 20  # pairs of rows: std 10, mean 70, also on Y[::2, ::2]
    assert check_clip([t, t], THRESHOLD, QualityCfg(black_level=71.0)).reason == BLACK
    assert check_clip([t, t], THRESHOLD, QualityCfg(flat_frame_std=10.5)).reason == FLAT
    single = check_clip([t], THRESHOLD, Q)  # no pairs: nothing to cut
    assert single.reason == OK and single.scene_diff == 0.0 and single.cut_pair == -1


def pair(diff: float, gain: float = 0.8, shift: tuple[float, float] = (0.0, 0.0),
         zoom: float = 0.0) -> PairScore:
    return PairScore(diff, gain, shift, zoom)


def test_judge_applies_each_cue() -> None:
    """The rule, cue by cue, on pair scores: a spike is `cut_ratio` times the other pairs'
    level (their second largest diff, so one other cut does not hide it) and at least
    `cut_min_diff`; a pair that does not align (gain ≤ cut_min_gain) with a diff of at least
    `cut_min_diff` is a cut; a camera jump of `cut_min_jump` and `cut_ratio` times each side's
    spread is a cut; frames without structure (gain −1) are never "unaligned"."""
    rule = CutRule(20.0, 3.0, 5.0, 0.2, 0.06)
    res = 1 / 64
    quiet = [pair(1.0) for _ in range(6)]
    assert judge(quiet, rule, res).pair == -1
    spike = [pair(1.0), pair(1.2), pair(6.0), pair(0.8), pair(1.1), pair(0.9)]
    found = judge(spike, rule, res)
    assert (found.pair, found.cue) == (2, "spike") and found.ratio == pytest.approx(6.0 / 1.1)
    two_cuts = [pair(1.0), pair(9.0), pair(1.2), pair(0.8), pair(8.0), pair(1.1)]
    assert judge(two_cuts, rule, res).pair == 1  # the other cut does not mask it
    assert judge([pair(1.0), pair(4.9), pair(1.0)], rule, res).pair == -1  # below min_diff
    assert judge([pair(2.0), pair(5.5), pair(2.0)], rule, res).pair == -1  # ratio 2.75
    unaligned = [pair(4.0), pair(6.0, gain=0.15), pair(4.5), pair(5.0)]
    assert (judge(unaligned, rule, res).pair, judge(unaligned, rule, res).cue) == (1, "unaligned")
    featureless = [pair(4.0, -1.0), pair(6.0, -1.0), pair(4.5, -1.0)]
    assert judge(featureless, rule, res).pair == -1
    pan = [pair(0.1, shift=(0.03, 0.0)) for _ in range(6)]
    jump = [*pan[:3], pair(0.3, shift=(0.12, 0.01)), *pan[4:]]
    found = judge(jump, rule, res)
    assert (found.pair, found.cue) == (3, "jump") and found.jump == pytest.approx(0.0905, 1e-3)
    # The first and the last pair have neighbours on one side only.
    assert judge([pair(0.3, shift=(0.12, 0.0)), *pan[1:]], rule, res).pair == 0
    assert judge([*pan[:-1], pair(0.3, shift=(0.12, 0.0))], rule, res).pair == 5
    # Two shots panning opposite ways, joined without a jump: each side continues itself.
    turn = [pair(0.1, shift=(0.03, 0)) for _ in range(3)] + [pair(0.1, shift=(-0.03, 0))] * 3
    assert judge(turn, rule, res).pair == -1
    zoom = [pair(0.1, zoom=0.0) for _ in range(6)]
    zoom[2] = pair(0.3, zoom=0.3)  # a ×1.3 punch-in: 0.075 of the width at ZOOM_RADIUS
    assert judge(zoom, rule, res).pair == 2
    shaky = [pair(0.1, shift=(0.04 * (-1) ** i, 0.0)) for i in range(6)]
    assert judge(shaky, rule, res).pair == -1  # every pair moves this much: no jump
    assert judge([pair(21.0)], rule, res).cue == "ceiling"
    assert judge([pair(19.0)], rule, res).pair == -1  # alone: only the ceiling can tell


def test_cut_thresholds_are_the_configured_ones(sdr: tuple[list[np.ndarray], list[Any], Any],
                                                h264_cuts: VideoFixture) -> None:
    """Every cut threshold is read from the config: the cut pair's own numbers sit on the
    right side of each threshold, and moving a threshold past them flips the verdict."""
    lumas = sdr[0]
    cut = h264_cuts[1].cuts[0]
    window = lumas[cut - 3:cut + 4]
    v = check_clip(window, THRESHOLD, Q)
    assert v.reason == SCENE_CUT and v.cut_cue == "ceiling"
    assert v.scene_diff > THRESHOLD and v.cut_ratio >= Q.cut_ratio
    lenient = QualityCfg(cut_ratio=v.cut_ratio * 1.01, cut_min_gain=0.0, cut_min_jump=1.0)
    assert check_clip(window, v.scene_diff + 1, lenient).reason == OK
    assert check_clip(window, v.scene_diff + 1, Q).cut_cue in ("spike", "unaligned", "jump")


# --------------------------------------------------------------------------- motion vs cuts

# Camera-motion videos at realistic quality (x264 CRF 23 / x265 CRF 28, a fast preset):
# cuts at frames 16 and 32 of 48, or none. 512×288 keeps them quick to make.
W, H, FRAMES, CUTS = 512, 288, 48, (16, 32)
MOTION_VIDEOS = {
    # A fast pan over a sharp, high-contrast set (luma std ~60), no cut: the old rule's false
    # rejections (consecutive frames differ by more than 45 without any cut).
    "fast_pan": dict(codec="h264", motion="pan", speed=0.08, contrast=1.8, cuts=()),
    # Cuts to another view of the same set (shift, zoom, grade change) during a pan: the
    # old rule's leaks (the frames across the cut differ by less than 45).
    "similar_cuts": dict(codec="hevc10", motion="pan", speed=0.03, similar_cuts=True),
    "similar_zoom": dict(codec="h264", motion="zoom", speed=0.02, similar_cuts=True),
    "shake_cuts": dict(codec="h264", motion="shake", speed=0.02, similar_cuts=True),
    "object": dict(codec="hevc10", motion="object", speed=0.06, contrast=1.6, cuts=()),
    "water": dict(codec="h264", motion="water", speed=0.03, contrast=1.6, cuts=()),
}


def motion_spec(name: str) -> SynthSpec:
    kw: dict[str, Any] = {"cuts": CUTS, **MOTION_VIDEOS[name]}
    codec = kw.pop("codec")
    crf = 23 if codec == "h264" else 28
    return SynthSpec(f"motion_{name}", codec, W, H, FRAMES, crf=crf, preset="veryfast", gop=48,
                     seed=700 + sorted(MOTION_VIDEOS).index(name), **kw)


@pytest.fixture(scope="module")
def motion_lumas(tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, tuple[SynthSpec, list[np.ndarray]]]:
    """Every camera-motion video, encoded once and decoded to the worker's luma previews."""
    directory = tmp_path_factory.mktemp("motion")
    out = {}
    for name in MOTION_VIDEOS:
        spec = motion_spec(name)
        path = make_video(directory / f"{spec.name}.mkv", spec)
        out[name] = (spec, decoded((path, spec))[0])
    return out


def window_verdicts(spec: SynthSpec, lumas: list[np.ndarray]
                    ) -> tuple[list[bool], list[bool], list[bool], list[bool]]:
    """(new passes across cuts, new rejections without cuts, old ..., old ...) per window."""
    new_leak, new_rej, old_leak, old_rej = [], [], [], []
    for start in range(len(lumas) - N + 1):
        window = lumas[start:start + N]
        cut = check_clip(window, THRESHOLD, Q).reason == SCENE_CUT
        old = old_rule(window)
        if crosses_cut(spec, start):
            new_leak.append(not cut)
            old_leak.append(not old)
        else:
            new_rej.append(cut)
            old_rej.append(old)
    return new_leak, new_rej, old_leak, old_rej


@pytest.mark.parametrize("name", sorted(MOTION_VIDEOS))
def test_cuts_are_told_from_motion(motion_lumas: dict[str, tuple[SynthSpec, list[np.ndarray]]],
                                   name: str) -> None:
    """On real encoded high-motion videos: no window across a known cut passes (similar-shot
    cuts included), and at most 5% of the cut-free windows are rejected as scene cuts."""
    spec, lumas = motion_lumas[name]
    leaks, rejected, _, _ = window_verdicts(spec, lumas)
    assert len(leaks) == (N - 1) * len(spec.cuts)
    assert not any(leaks), [i for i, x in enumerate(leaks) if x]
    assert sum(rejected) <= MAX_FALSE_REJECTION * len(rejected), sum(rejected)


def test_old_rule_failures_are_handled(
        motion_lumas: dict[str, tuple[SynthSpec, list[np.ndarray]]]) -> None:
    """The old fixed-45 rule's two failures, on the same decoded frames: a fast pan over a
    sharp set is rejected as a cut by it in most windows (and passes now), and cuts between
    two views of one set pass it in some windows (and are caught now)."""
    spec, lumas = motion_lumas["fast_pan"]
    _, rejected, _, old_rejected = window_verdicts(spec, lumas)
    assert sum(old_rejected) > 0.3 * len(old_rejected)
    assert sum(rejected) == 0
    spec, lumas = motion_lumas["similar_cuts"]
    leaks, _, old_leaks, _ = window_verdicts(spec, lumas)
    assert any(old_leaks) and not any(leaks)


def test_cut_detector_finds_the_cut_pair(
        motion_lumas: dict[str, tuple[SynthSpec, list[np.ndarray]]]) -> None:
    """find_cut names the pair across the cut, at every position of the window, on a
    similar-shot cut during a pan and a zoom."""
    rule = CutRule(THRESHOLD, Q.cut_ratio, Q.cut_min_diff, Q.cut_min_gain, Q.cut_min_jump)
    for name in ("similar_cuts", "similar_zoom"):
        spec, lumas = motion_lumas[name]
        for cut in spec.cuts:
            for pos in range(N - 1):
                found = find_cut(lumas[cut - 1 - pos:cut - pos + N - 1], rule)
                assert found.pair == pos, (name, cut, pos, found.cue)


def test_bad_cut_thresholds_name_file_key_and_fix(tmp_path: Path) -> None:
    """A cut threshold out of range is a ConfigError naming the file, the key, the value and
    a fix; valid values are read into extraction.quality."""
    base = ('output_root = "out"\nstate_dir = "state"\n'
            '[categories.c]\ntarget = 1\nformats = { small_540 = 1.0 }\n')
    good = tmp_path / "good.toml"
    good.write_text(base + "[extraction.quality]\ncut_ratio = 4.0\ncut_min_jump = 0.1\n")
    q = load_config(good).extraction.quality
    assert (q.cut_ratio, q.cut_min_jump, q.cut_min_diff) == (4.0, 0.1, Q.cut_min_diff)
    for key, value in (("cut_ratio", "1.0"), ("cut_min_diff", "-1"), ("cut_min_gain", "1.5"),
                       ("cut_min_jump", "nan"), ("cut_ratio", '"3"')):
        bad = tmp_path / f"bad_{key}.toml"
        bad.write_text(base + f"[extraction.quality]\n{key} = {value}\n")
        with pytest.raises(ConfigError) as err:
            load_config(bad)
        text = str(err.value)
        assert str(bad) in text and f"extraction.quality.{key}" in text, text
        assert err.value.hint, text


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


def test_the_clip_gates_see_a_luma_no_wider_than_1080ps_above_1080p() -> None:
    """Up to 1080p the gates read Y[::4, ::4]; wider pictures a coarser step, so the cut
    gate's luma is at most 480 px wide (4K: Y[::8, ::8]) and its cost per clip stays flat."""
    from dsgen.extract import LUMA_MAX_WIDTH, luma_step

    for w in (320, 640, 1280, 1440, 1920):
        assert luma_step(w) == LUMA_STEP
    for w in (1921, 2560, 3840, 4096, 7680):
        step = luma_step(w)
        assert step > LUMA_STEP and -(-w // step) <= LUMA_MAX_WIDTH < -(-w // (step - 1))
