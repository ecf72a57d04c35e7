"""Geometry of any size, end to end: odd-sized 4:2:0 and 4:4:4 videos through the Engine.

The videos are real encodes (MPEG-1 keeps odd 4:2:0 sizes such as 720×405; x264 4:4:4 takes
1278×718); the dataset on disk is checked against the specs and against an independent
float conversion of the decoded source frames (tests/test_colour.py's reference).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from dsgen.colour import plane_views
from dsgen.config import PREDECESSOR_FORMATS, Config, FormatCfg, load_config
from dsgen.engine import Engine
from dsgen.manifest import manifest_records
from dsgen.patches import fits, geometry, gt_patch, pick_box
from dsgen.probe import probe_summary, probe_video
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec, make_video, render_planes
from test_colour import ref_sited_rgb

VideoFixture = tuple[Path, SynthSpec]

# The case: 720×405 MPEG-1 (odd height, 4:2:0), exactly the medium_169 GT size.
MPEG1_720 = SynthSpec("mpeg1_720x405", "mpeg1", 720, 405, 72, cuts=(36,), gop=12, seed=301)
# Odd width as well: one column more than medium_169.
MPEG1_721 = SynthSpec("mpeg1_721x405", "mpeg1", 721, 405, 72, cuts=(36,), gop=12, seed=302)
# 4:4:4 at a size that is not a multiple of 8 or 16.
X264_444 = SynthSpec("h264_444_1278x718", "h264_444", 1278, 718, 72, cuts=(36,), gop=24,
                     seed=303)
SPECS = {"m720": MPEG1_720, "m721": MPEG1_721, "x444": X264_444}

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 5

[formats.medium_169]
width = 720
height = 405
scale = 3
dir = "Patches_Medium169"

[formats.frame]
width = 240
height = 135
scale = 3
dir = "Frame"
mode = "resize"

[categories.general]
target = 12
path = "General/Learn"
formats = { medium_169 = 0.5, frame = 0.5 }
"""


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VideoFixture]:
    """The three odd-geometry videos, encoded once for this module."""
    d = tmp_path_factory.mktemp("odd_geometry")
    return {k: (make_video(d / f"{s.name}{s.suffix}", s), s) for k, s in SPECS.items()}


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory, odd_videos: dict[str, VideoFixture]
            ) -> tuple[int, Config, str]:
    """One engine run over the three videos."""
    d = tmp_path_factory.mktemp("odd_run")
    text = CONFIG
    for key, (path, _) in odd_videos.items():
        text += f'\n[[videos]]\nname = "{key}"\npath = "{path}"\ncategories = ["general"]\n'
    (d / "dsgen.toml").write_text(text)
    cfg = load_config(d / "dsgen.toml")
    buf = io.StringIO()
    code = Engine(cfg, Reporter(out=buf)).run()
    return code, cfg, buf.getvalue()


def records(cfg: Config) -> list[dict[str, Any]]:
    """The run's manifest records."""
    st = State(cfg.state_dir, readonly=True)
    try:
        return list(manifest_records(cfg, st))
    finally:
        st.close()


def decoded_frame(path: str, pts: int) -> av.VideoFrame:
    """The decoded frame of `path` with this pts."""
    with av.open(path) as c:
        for frame in c.decode(video=0):
            if frame.pts == pts:
                return frame
    raise AssertionError(f"no frame with pts {pts} in {path}")


@pytest.mark.parametrize("key", sorted(SPECS))
def test_odd_videos_decode_to_their_spec(odd_videos: dict[str, VideoFixture], key: str) -> None:
    """The synthetic odd-size videos are what their specs say: coded at exactly the spec size
    (no rounding), 4:2:0 chroma planes rounded up / 4:4:4 full size, and the decoded luma
    follows the rendered luma (lossy codec: mean error of a few codes)."""
    path, spec = odd_videos[key]
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (spec.width, spec.height)
    y, u, _ = plane_views(frame)
    assert u.shape == spec.chroma_shape
    want = next(iter(render_planes(spec)))[0].astype(np.float64)
    assert np.abs(y.astype(np.float64) - want).mean() < 4.0


@pytest.mark.parametrize("key", sorted(SPECS))
def test_probe_keeps_every_row_and_column(odd_videos: dict[str, VideoFixture], key: str) -> None:
    """Without bars the picture is the whole coded frame, odd height and width included."""
    path, spec = odd_videos[key]
    p = probe_video(path, 7)
    assert p.content == (0, 0, spec.width, spec.height)
    assert "inside bars" not in probe_summary(p)
    assert p.colour.chroma_siting == ("none" if spec.codec == "h264_444" else "center")


@pytest.mark.slow
def test_odd_sized_videos_yield_samples_of_the_exact_format(odd_run: tuple[int, Config, str]
                                                            ) -> None:
    """The run reaches its target; every video gives medium_169 samples; the 720×405 one
    from a box that is the whole picture (0, 0, 720, 405), the 721×405 one from a 720×405
    box inside it; GT files have the format's size."""
    code, cfg, out = odd_run
    assert code == 0, out
    medium = next(f for f in PREDECESSOR_FORMATS if f.name == "medium_169")
    assert (medium.width, medium.height) == (720, 405)
    assert cfg.format("medium_169") == medium  # the predecessor's format, as in the issue
    assert "no general format fits" not in out and "inside bars" not in out
    recs = records(cfg)
    assert len(recs) == 12
    seen: dict[str, set[str]] = {k: set() for k in SPECS}
    for rec in recs:
        seen[rec["video"]].add(rec["format"])
        fmt = cfg.format(rec["format"])
        gt = Image.open(cfg.output_root / rec["files"][0])
        assert gt.size == (fmt.width, fmt.height)
        box = rec["crop_box"]
        if rec["format"] == "medium_169" and rec["video"] == "m720":
            assert box == {"x": 0, "y": 0, "w": 720, "h": 405}
        if rec["format"] == "medium_169" and rec["video"] == "m721":
            assert (box["y"], box["w"], box["h"]) == (0, 720, 405) and box["x"] in (0, 1)
    assert all("medium_169" in formats for formats in seen.values()), seen


@pytest.mark.slow
def test_gt_of_an_odd_picture_is_its_every_row_in_true_colour(odd_run: tuple[int, Config, str]
                                                              ) -> None:
    """A 720×405 GT cut from a 720×405 MPEG-1 frame is that decoded frame, every row and
    column, converted with MPEG-1's centre siting: within 1 code of the float reference of
    the decoded planes (so the last, odd row is real picture, not a repeat or a bar)."""
    _, cfg, _ = odd_run
    checked = 0
    for rec in records(cfg):
        if rec["format"] != "medium_169" or rec["video"] not in ("m720", "m721"):
            continue
        frame = decoded_frame(rec["video_path"], rec["frame_pts"][len(rec["frame_pts"]) // 2])
        y, u, v = (p.copy() for p in plane_views(frame))
        ref = ref_sited_rgb(y, u, v, 8, False, "bt709", "center")  # synth tags BT.709
        box = rec["crop_box"]
        ref = ref[box["y"] : box["y"] + box["h"], box["x"] : box["x"] + box["w"]]
        gt = np.asarray(Image.open(cfg.output_root / rec["files"][0]).convert("RGB"))
        assert np.abs(gt - ref).max() <= 1.0, rec["sample"]
        checked += 1
    assert checked >= 2


@pytest.mark.slow
def test_resize_of_an_odd_picture_scales_exactly_the_picture(odd_run: tuple[int, Config, str]
                                                             ) -> None:
    """Resize samples of the odd pictures scale exactly the centred region (405 rows, odd):
    the GT equals Pillow's Lanczos of the float-reference crop within 4 codes (two Lanczos
    implementations), mean < 0.5, bottom row included."""
    _, cfg, _ = odd_run
    checked = 0
    for rec in records(cfg):
        if rec["format"] != "frame" or rec["video"] == "x444":
            continue
        box = rec["crop_box"]
        assert box["h"] == 405 and box["w"] == 720
        frame = decoded_frame(rec["video_path"], rec["frame_pts"][len(rec["frame_pts"]) // 2])
        y, u, v = (p.copy() for p in plane_views(frame))
        ref = ref_sited_rgb(y, u, v, 8, False, "bt709", "center")
        ref8 = np.clip(np.rint(ref), 0, 255).astype(np.uint8)
        region = ref8[box["y"] : box["y"] + box["h"], box["x"] : box["x"] + box["w"]]
        want = np.asarray(Image.fromarray(region).resize((240, 135), Image.Resampling.LANCZOS))
        gt = np.asarray(Image.open(cfg.output_root / rec["files"][0]).convert("RGB"))
        diff = np.abs(gt.astype(int) - want)
        assert diff.max() <= 4 and diff.mean() < 0.5  # measured: max 2–3, mean 0.15–0.18
        assert np.abs(gt[-1].astype(int) - want[-1]).mean() < 0.75  # measured ≤ 0.37
        checked += 1
    assert checked >= 1


TINY = SynthSpec("mpeg1_tiny", "mpeg1", 35, 19, 24, gop=12, seed=304)


def test_tiny_odd_video_keeps_every_row_and_converts_exactly(tmp_path: Path) -> None:
    """A 35×19 MPEG-1 video (smaller than the 16-sample conversion window in height, odd
    both ways): the picture is all 19 rows; a crop format of 33×18 and a resize format of
    the whole picture are both cut from it, the crop within 1 code of the float reference
    of the decoded frame, the resize within a few codes of Lanczos-scaling that reference."""
    path = make_video(tmp_path / "tiny.mkv", TINY)
    p = probe_video(path, 7)
    assert p.content == (0, 0, 35, 19)
    g = geometry(p, 1080)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    ref = ref_sited_rgb(*(q.copy() for q in plane_views(frame)), 8, False, "bt709", "center")
    crop = FormatCfg("tiny", 33, 18, 3, "d")
    assert fits(g, crop)
    for seed in range(6):
        x, y, w, h = pick_box(g, crop, np.random.default_rng(seed))
        got = gt_patch(frame, (x, y, w, h), crop, p.colour)
        assert np.abs(got - ref[y : y + h, x : x + w]).max() <= 1.0
    whole = FormatCfg("whole", 18, 9, 3, "d", "resize")
    assert fits(g, whole)
    x, y, w, h = pick_box(g, whole, np.random.default_rng(0))
    got = gt_patch(frame, (x, y, w, h), whole, p.colour).astype(int)
    region = np.clip(np.rint(ref[y : y + h, x : x + w]), 0, 255).astype(np.uint8)
    want = np.asarray(Image.fromarray(region).resize((18, 9), Image.Resampling.LANCZOS))
    assert got.shape == (9, 18, 3) and np.abs(got - want).mean() < 2.0
