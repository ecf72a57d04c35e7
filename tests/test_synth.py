"""dsgen.synth: the synthetic videos really have the properties their specs promise.

Everything here is checked on frames DECODED with PyAV from the encoded files, because the
tests of the other modules rely on the decoded content, not on what synth meant to write.
Luma is compared on the 8-bit scale (10-bit code values / 4).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.error
import numpy as np
import numpy.typing as npt
import pytest
from av.sidedata.sidedata import SideData
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from dsgen.synth import (
    BLACK_Y8,
    CONTENT_MIN_Y8,
    HDR_MAX_CLL,
    NEUTRAL_C8,
    Codec,
    Motion,
    SynthSpec,
    demo_specs,
    letterbox_rows,
    make_demo_set,
    make_video,
    render_planes,
)

VIDEO_FIXTURES = ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic", "letterboxed", "odd_size"]

CUT_THRESHOLD = 45.0  # dsgen's scene-cut rule: mean |ΔY| > 45 on the 0–255 scale
CUT_MARGIN = 60.0  # every synthetic cut must clear the rule by a wide margin
IN_SCENE_RANGE = (2.0, 15.0)  # in-scene mean |ΔY|: visibly moving, far below a cut
MIN_CROP_LAPVAR = 100.0  # every 64x64 picture crop stays clearly "detailed"
BAR_TOLERANCE = 2.0  # decoded bar luma within ±2 of 16 (codec noise)
DECODED_CONTENT_MIN = 40.0  # picture never decodes as dark as a bar


@dataclass
class Decoded:
    """What a test needs from one decoded file: luma planes, timestamps and stream tags."""

    luma: list[npt.NDArray[np.uint8] | npt.NDArray[np.uint16]]  # raw 8- or 10-bit code values
    pts: list[int]
    scale: float  # divide raw luma by this to get the 8-bit scale
    pix_fmt: str
    stream: dict[str, Any]
    first_frame: dict[str, Any]
    side_data: dict[SideDataType, bytes] = field(default_factory=dict)

    def y8(self, i: int) -> npt.NDArray[np.float32]:
        """Frame ``i``'s luma on the 8-bit scale as float32."""
        return self.luma[i].astype(np.float32) / self.scale

    def diff(self, i: int) -> float:
        """Mean |ΔY| (8-bit scale) between frame i-1 and frame i."""
        return float(np.abs(self.y8(i) - self.y8(i - 1)).mean())


@functools.cache
def decode(path: Path) -> Decoded:
    """Decode every frame of ``path``'s first video stream once per session."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        luma: list[npt.NDArray[np.uint8] | npt.NDArray[np.uint16]] = []
        pts: list[int] = []
        first: dict[str, Any] = {}
        side: dict[SideDataType, bytes] = {}
        pix_fmt = ""
        for frame in container.decode(stream):
            if not first:
                pix_fmt = frame.format.name
                first = {
                    "color_primaries": frame.color_primaries,
                    "color_trc": frame.color_trc,
                    "colorspace": frame.colorspace,
                    "color_range": frame.color_range,
                }
                # SideDataContainer iterates SideData objects (its stub types it as a Mapping).
                entries = cast("Iterable[SideData]", frame.side_data)
                side = {sd.type: bytes(sd) for sd in entries}
            # to_ndarray() stacks Y, U, V rows for yuv420p(10le); keep only the Y rows.
            # (PyAV's stub also allows float arrays, which these pixel formats never give.)
            luma.append(frame.to_ndarray()[: frame.height].copy())  # type: ignore[arg-type]
            assert frame.pts is not None
            pts.append(frame.pts)
        info = {
            "codec": ctx.name,
            "width": ctx.width,
            "height": ctx.height,
            "profile": ctx.profile,
            "sar": ctx.sample_aspect_ratio,
            "stream_sar": stream.sample_aspect_ratio,
            "dar": ctx.display_aspect_ratio,
            "color_primaries": ctx.color_primaries,
            "color_trc": ctx.color_trc,
            "colorspace": ctx.colorspace,
            "color_range": ctx.color_range,
        }
    scale = 4.0 if pix_fmt.endswith("10le") else 1.0
    return Decoded(luma, pts, scale, pix_fmt, info, first, side)


@pytest.fixture(scope="module", autouse=True)
def _drop_decoded_frames() -> Iterator[None]:
    """Free the decoded-frame cache (~200 MB) once this module's tests are done."""
    yield
    decode.cache_clear()


def lapvar(y: npt.NDArray[np.float32]) -> float:
    """Variance of the 4-neighbour Laplacian (the usual blur/detail measure)."""
    lap = -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
    return float(lap.var())


def video(request: pytest.FixtureRequest, name: str) -> tuple[Path, SynthSpec, Decoded]:
    """Resolve a fixture by name and decode it."""
    path, spec = request.getfixturevalue(name)
    return path, spec, decode(path)


# --------------------------------------------------------------------------- spec


def test_spec_rounds_odd_size_down_to_even() -> None:
    """Odd sizes are rounded down to even (4:2:0), so the spec states the coded size."""
    spec = SynthSpec("odd", "h264", 1277, 717, 10)
    assert (spec.width, spec.height) == (1276, 716)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cuts": (0,)},
        {"cuts": (10,)},
        {"cuts": (5, 3)},
        {"letterbox": (7, 0)},
        {"letterbox": (0, 3)},
        {"hdr": True},
        {"container": "avi"},
        {"flat_ranges": ((4, 12),)},
        {"n_frames": 0},
    ],
)
def test_spec_rejects_impossible_values(kwargs: dict[str, Any]) -> None:
    """Specs that cannot be encoded as described raise ValueError up front."""
    base: dict[str, Any] = {
        "name": "x",
        "codec": "h264",
        "width": 64,
        "height": 64,
        "n_frames": 10,
    }
    with pytest.raises(ValueError):
        SynthSpec(**{**base, **kwargs})


def test_scene_helpers() -> None:
    """scene_of / is_flat / picture_box follow the documented index conventions."""
    spec = SynthSpec("s", "h264", 64, 48, 20, cuts=(5, 12), letterbox=(8, 4), flat_ranges=((2, 4),))
    assert [spec.scene_of(i) for i in (0, 4, 5, 11, 12, 19)] == [0, 0, 1, 1, 2, 2]
    assert [spec.is_flat(i) for i in (1, 2, 3, 4)] == [False, True, True, False]
    assert spec.picture_box == (8, 4, 40, 60)
    assert letterbox_rows(1920, 1080, 2.39) == 144
    assert letterbox_rows(1280, 720, 2.39) == 96


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_per_seed() -> None:
    """Same spec -> identical frames; another seed -> different frames."""
    spec = SynthSpec("d", "h264", 96, 64, 4, cuts=(2,), seed=5)
    a = [tuple(p.copy() for p in planes) for planes in render_planes(spec)]
    b = [tuple(p.copy() for p in planes) for planes in render_planes(spec)]
    c = [p[0].copy() for p in render_planes(SynthSpec("d", "h264", 96, 64, 4, cuts=(2,), seed=6))]
    assert all(
        np.array_equal(x, y)
        for fa, fb in zip(a, b, strict=True)
        for x, y in zip(fa, fb, strict=True)
    )
    assert not np.array_equal(a[0][0], c[0])


def test_rendered_levels_are_exact() -> None:
    """Before encoding: bars and flat frames are exactly Y=16/C=128; content is in [52, 235]."""
    spec = SynthSpec("lv", "h264", 128, 96, 8, cuts=(4,), letterbox=(16, 8), flat_ranges=((2, 3),))
    top, left, bottom, right = spec.picture_box
    for i, (y, u, v) in enumerate(render_planes(spec)):
        if spec.is_flat(i):
            assert (y == BLACK_Y8).all() and (u == NEUTRAL_C8).all() and (v == NEUTRAL_C8).all()
            continue
        bars = np.ones(y.shape, dtype=bool)
        bars[top:bottom, left:right] = False
        assert (y[bars] == BLACK_Y8).all()
        cbars = bars[::2, ::2]
        assert (u[cbars] == NEUTRAL_C8).all() and (v[cbars] == NEUTRAL_C8).all()
        picture = y[top:bottom, left:right]
        assert picture.min() >= CONTENT_MIN_Y8 and picture.max() <= 235


# --------------------------------------------------------------------------- decoded: timing


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_decoded_frame_count_size_and_pts(request: pytest.FixtureRequest, name: str) -> None:
    """Decoding yields exactly n_frames frames of the spec's size, pts strictly increasing."""
    _, spec, dec = video(request, name)
    assert len(dec.luma) == spec.n_frames
    assert (dec.stream["width"], dec.stream["height"]) == (spec.width, spec.height)
    assert dec.luma[0].shape == (spec.height, spec.width)
    assert all(b > a for a, b in zip(dec.pts, dec.pts[1:], strict=False))
    assert dec.pix_fmt == ("yuv420p10le" if spec.bit_depth == 10 else "yuv420p")


# --------------------------------------------------------------------------- decoded: content


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_cuts_exceed_threshold(request: pytest.FixtureRequest, name: str) -> None:
    """At every cut, mean |ΔY| (8-bit scale, full frame incl. bars) is > 60, far above 45."""
    _, spec, dec = video(request, name)
    assert spec.cuts
    for cut in spec.cuts:
        assert dec.diff(cut) > CUT_MARGIN > CUT_THRESHOLD, f"cut at {cut}: {dec.diff(cut):.1f}"


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_in_scene_frames_move_slowly(request: pytest.FixtureRequest, name: str) -> None:
    """Inside a scene consecutive frames differ, but only by 2–15 mean |ΔY|."""
    _, spec, dec = video(request, name)
    lo, hi = IN_SCENE_RANGE
    for i in range(1, spec.n_frames):
        if i in spec.cuts:
            continue
        assert lo < dec.diff(i) < hi, f"frame {i}: {dec.diff(i):.2f}"


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_every_crop_is_detailed(request: pytest.FixtureRequest, name: str) -> None:
    """Every 64x64 crop of the picture area has Laplacian variance > 100 (0–255 scale)."""
    _, spec, dec = video(request, name)
    top, left, bottom, right = spec.picture_box
    frames = sorted({0, spec.n_frames - 1, *spec.cuts, *(c - 1 for c in spec.cuts)})
    for i in frames:
        y = dec.y8(i)[top:bottom, left:right]
        for r in range(0, y.shape[0] - 63, 64):
            for c in range(0, y.shape[1] - 63, 64):
                value = lapvar(y[r : r + 64, c : c + 64])
                assert value > MIN_CROP_LAPVAR, f"frame {i} crop ({r},{c}): {value:.0f}"


def test_letterbox_bars_decode_as_black(letterboxed: tuple[Path, SynthSpec]) -> None:
    """Bars decode within ±2 of Y=16 in every frame; the picture never gets below Y=40."""
    path, spec = letterboxed
    dec = decode(path)
    top, left, bottom, right = spec.picture_box
    for i in range(spec.n_frames):
        y = dec.y8(i)
        assert np.abs(y[:top] - BLACK_Y8).max() <= BAR_TOLERANCE
        assert np.abs(y[bottom:] - BLACK_Y8).max() <= BAR_TOLERANCE
        assert y[top:bottom, left:right].min() >= DECODED_CONTENT_MIN


@pytest.mark.parametrize(
    ("codec", "container"), [("h264", "mkv"), ("hevc10", "mkv"), ("mpeg2", "mpg")]
)
def test_pillar_and_letter_bars_every_codec(tmp_path: Path, codec: Codec, container: str) -> None:
    """16-aligned bars on all four sides decode within ±2 of black for every codec."""
    spec = SynthSpec(
        f"bars_{codec}",
        codec,
        640,
        368,
        12,
        cuts=(6,),
        letterbox=(48, 64),
        container=container,
        gop=12,
    )
    dec = decode(make_video(tmp_path / f"bars{spec.suffix}", spec))
    top, left, bottom, right = spec.picture_box
    assert len(dec.luma) == spec.n_frames
    for i in range(spec.n_frames):
        y = dec.y8(i)
        bars = np.ones(y.shape, dtype=bool)
        bars[top:bottom, left:right] = False
        assert np.abs(y[bars] - BLACK_Y8).max() <= BAR_TOLERANCE
        assert y[~bars].min() >= DECODED_CONTENT_MIN


def test_flat_ranges_decode_as_black(tmp_path: Path) -> None:
    """Frames in flat_ranges decode as uniform black with ~zero Laplacian variance."""
    spec = SynthSpec("flat", "h264", 320, 240, 20, cuts=(10,), flat_ranges=((4, 8),), gop=10)
    dec = decode(make_video(tmp_path / "flat.mkv", spec))
    for i in range(spec.n_frames):
        y = dec.y8(i)
        if spec.is_flat(i):
            assert np.abs(y - BLACK_Y8).max() <= BAR_TOLERANCE
            assert lapvar(y) < 1.0
        else:
            assert y.mean() > DECODED_CONTENT_MIN


# --------------------------------------------------------------------------- decoded: tags


def test_hdr10_colour_tags(hevc10_hdr: tuple[Path, SynthSpec]) -> None:
    """HDR10 file: Main 10, yuv420p10le, PQ / BT.2020 / BT.2020nc / limited on stream and frame."""
    dec = decode(hevc10_hdr[0])
    expected = {
        "color_primaries": ColorPrimaries.BT2020,
        "color_trc": ColorTrc.SMPTE2084,
        "colorspace": Colorspace.BT2020,
        "color_range": ColorRange.MPEG,
    }
    assert dec.stream["codec"] == "hevc"
    assert dec.stream["profile"] == "Main 10"
    assert dec.pix_fmt == "yuv420p10le"
    for key, value in expected.items():
        assert dec.stream[key] == value, key
        assert dec.first_frame[key] == value, key


def test_hdr10_static_metadata(hevc10_hdr: tuple[Path, SynthSpec]) -> None:
    """Mastering display (P3-D65, 1000/0.0001 nit) and MaxCLL/FALL are decoded frame side data."""
    side = decode(hevc10_hdr[0]).side_data
    # AVMasteringDisplayMetadata: 3x2 primaries (R,G,B) + white point + min/max luminance as
    # AVRational num/den pairs (int32), then has_primaries, has_luminance.
    raw = struct.unpack("<22i", side[SideDataType.MASTERING_DISPLAY_METADATA][:88])
    values = [Fraction(raw[k], raw[k + 1]) for k in range(0, 20, 2)]
    assert values[:8] == [
        Fraction(34000, 50000),
        Fraction(16000, 50000),  # R
        Fraction(13250, 50000),
        Fraction(34500, 50000),  # G
        Fraction(7500, 50000),
        Fraction(3000, 50000),  # B
        Fraction(15635, 50000),
        Fraction(16450, 50000),  # white point (D65)
    ]
    assert values[8] == Fraction(1, 10000) and values[9] == 1000  # min / max luminance, cd/m²
    assert raw[20:] == (1, 1)
    # AVContentLightMetadata: MaxCLL, MaxFALL (unsigned).
    assert struct.unpack("<2I", side[SideDataType.CONTENT_LIGHT_LEVEL][:8]) == HDR_MAX_CLL


def test_sdr_h264_is_tagged_bt709(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """SDR H.264 carries BT.709 primaries/transfer/matrix, limited range, square pixels."""
    dec = decode(h264_cuts[0])
    assert dec.stream["color_primaries"] == ColorPrimaries.BT709
    assert dec.stream["color_trc"] == ColorTrc.BT709
    assert dec.stream["colorspace"] == Colorspace.ITU709
    assert dec.stream["color_range"] == ColorRange.MPEG
    assert dec.stream["sar"] == Fraction(1)


def test_mpeg2_anamorphic_sar(mpeg2_anamorphic: tuple[Path, SynthSpec]) -> None:
    """The PAL MPEG-2 reads back SAR 64/45 (DAR 16:9) on codec context and stream, BT.601 tags."""
    path, spec = mpeg2_anamorphic
    dec = decode(path)
    assert dec.stream["codec"] == "mpeg2video"
    assert dec.stream["sar"] == dec.stream["stream_sar"] == spec.sar == Fraction(64, 45)
    assert dec.stream["dar"] == Fraction(16, 9)
    assert dec.stream["color_primaries"] == ColorPrimaries.BT470BG
    assert dec.stream["colorspace"] == Colorspace.ITU601


# --------------------------------------------------------------------------- files


def test_bad_files(bad_files: dict[str, Path]) -> None:
    """Each bad input is broken in exactly the advertised way."""
    assert set(bad_files) == {
        "truncated",
        "zero_byte",
        "random_bytes",
        "audio_only",
        "three_frames",
        "missing",
    }
    assert not bad_files["missing"].exists()
    assert bad_files["zero_byte"].stat().st_size == 0
    for key in ("zero_byte", "random_bytes"):
        with pytest.raises(av.error.InvalidDataError):
            av.open(str(bad_files[key])).close()
    with av.open(str(bad_files["audio_only"])) as c:
        assert not c.streams.video
        assert [s.codec_context.name for s in c.streams.audio] == ["flac"]
    assert len(decode(bad_files["three_frames"]).luma) == 3
    # Truncated: still opens and starts decoding, but loses most of its 48 frames.
    assert 0 < len(decode(bad_files["truncated"]).luma) < 48


def test_make_video_is_atomic(tmp_path: Path) -> None:
    """A failed encode leaves neither the target nor a temp file; a good one leaves only it."""
    bad = SynthSpec("bad", "mpeg2", 64, 64, 4, fps=Fraction(13))  # MPEG-2 has no 13 fps code
    with pytest.raises(av.error.FFmpegError):
        make_video(tmp_path / "bad.mkv", bad)
    assert os.listdir(tmp_path) == []
    good = make_video(tmp_path / "good.mkv", SynthSpec("good", "h264", 64, 64, 4))
    assert os.listdir(tmp_path) == ["good.mkv"] and good.stat().st_size > 0


def test_demo_specs_cover_the_advertised_set() -> None:
    """Demo set: SDR H.264 with cuts, HDR10 HEVC with cuts, ~2.39:1 letterbox, PAL anamorphic."""
    specs = demo_specs()
    assert len({s.name for s in specs}) == len(specs)
    assert any(s.codec == "h264" and len(s.cuts) >= 2 and s.width >= 1280 for s in specs)
    assert any(s.codec == "hevc10" and s.hdr and s.cuts for s in specs)
    boxed = [s for s in specs if s.letterbox[0]]
    assert boxed and Fraction(boxed[0].width, boxed[0].height) == Fraction(16, 9)
    b = boxed[0]
    assert 2.3 < b.width / (b.height - 2 * b.letterbox[0]) < 2.5
    assert any(
        s.codec == "mpeg2" and (s.width, s.height, s.sar) == (720, 576, Fraction(64, 45))
        for s in specs
    )
    assert all(5 <= s.n_frames / s.fps <= 10 for s in specs)


@pytest.mark.slow
def test_demo_set_builds_fast_and_decodes(tmp_path: Path) -> None:
    """Every file of the demo set decodes to n_frames with its cuts (its build time is a
    benchmark matter: `python -m dsgen.synth OUTDIR` times it)."""
    made = make_demo_set(tmp_path)
    for path, spec in made:
        count, prev = 0, None
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                y = frame.to_ndarray()[: frame.height].astype(np.float32)
                y /= 4.0 if spec.bit_depth == 10 else 1.0
                if count in spec.cuts:
                    assert prev is not None and np.abs(y - prev).mean() > CUT_MARGIN
                prev, count = y, count + 1
        assert count == spec.n_frames, path.name


# --------------------------------------------------------------------------- camera renderer


@pytest.mark.parametrize(
    "kwargs",
    [
        {"motion": "pan", "speed": 0.0},
        {"motion": "pan", "speed": 0.3},
        {"similar_cuts": True},
        {"motion": "pan", "contrast": 0.0},
        {"crf": 52},
    ],
)
def test_camera_spec_rejects_impossible_values(kwargs: dict[str, Any]) -> None:
    """Camera-renderer and encoder-quality fields out of range raise ValueError up front."""
    with pytest.raises(ValueError):
        SynthSpec("x", "h264", 64, 64, 10, **kwargs)


@pytest.mark.parametrize("motion", ["pan", "zoom", "shake", "object", "water", "fade"])
def test_camera_renderer_is_deterministic_and_in_range(motion: Motion) -> None:
    """Same camera spec → identical frames, another seed → different ones; the picture stays
    within [17, 235] (never as dark as bars) and chroma within [16, 240]."""
    spec = SynthSpec("m", "h264", 96, 64, 6, cuts=(3,), motion=motion, similar_cuts=True, seed=5)
    a = [tuple(p.copy() for p in planes) for planes in render_planes(spec)]
    b = [tuple(p.copy() for p in planes) for planes in render_planes(spec)]
    other = SynthSpec("m", "h264", 96, 64, 6, cuts=(3,), motion=motion, similar_cuts=True, seed=6)
    c = [p[0].copy() for p in render_planes(other)]
    assert all(np.array_equal(x, y) for fa, fb in zip(a, b, strict=True)
               for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(a[0][0], c[0])
    for y, u, v in a:
        assert y.min() > BLACK_Y8 and y.max() <= 235
        assert u.min() >= 16 and v.max() <= 240


def test_camera_renderer_keeps_bars_black() -> None:
    """With letterbox bars the camera renderer leaves them exact black and keeps the picture
    at or above CONTENT_MIN_Y8, as the texture-pan renderer does."""
    spec = SynthSpec("lb", "h264", 128, 96, 4, motion="fade", letterbox=(16, 0), seed=3)
    top, left, bottom, right = spec.picture_box
    for y, u, _ in render_planes(spec):
        assert (y[:top] == BLACK_Y8).all() and (y[bottom:] == BLACK_Y8).all()
        assert (u[: top // 2] == NEUTRAL_C8).all()
        assert y[top:bottom, left:right].min() >= CONTENT_MIN_Y8


@pytest.mark.parametrize("speed", [0.02, 0.06])
def test_camera_pan_moves_speed_times_width(speed: float) -> None:
    """A pan moves the picture by `speed` × width per frame (sub-pixel, not whole pixels):
    the camera motion dsgen.cuts measures between rendered frames matches it."""
    from dsgen.cuts import score_pairs

    spec = SynthSpec("p", "h264", 512, 288, 5, motion="pan", speed=speed, seed=9)
    lumas = [y.astype(np.float32)[::4, ::4] for y, _, _ in render_planes(spec)]
    for p in score_pairs(lumas):
        assert abs(float(np.hypot(*p.shift)) - speed) <= 1.5 / 64
        assert p.diff < 1.0


def test_encoder_quality_fields(tmp_path: Path) -> None:
    """crf and preset reach the encoder: a higher CRF gives a smaller file of the same
    frames; None keeps the fast test settings (same decoded frames as before the fields)."""
    sizes = {}
    for crf in (18, 40):
        spec = SynthSpec(f"q{crf}", "h264", 128, 96, 6, crf=crf, preset="veryfast", seed=4)
        sizes[crf] = make_video(tmp_path / f"q{crf}.mkv", spec).stat().st_size
    assert sizes[40] < sizes[18]
    spec = SynthSpec("plain", "h264", 128, 96, 6, seed=4)
    again = SynthSpec("plain", "h264", 128, 96, 6, seed=4, crf=None, preset=None)
    one = decode(make_video(tmp_path / "a.mkv", spec)).luma
    two = decode(make_video(tmp_path / "b.mkv", again)).luma
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    q18 = decode(tmp_path / "q18.mkv").luma
    assert not all(np.array_equal(x, y) for x, y in zip(one, q18, strict=True))
