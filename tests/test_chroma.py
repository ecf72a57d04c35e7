"""dsgen.chroma: reading a stream's chroma siting and stamping it on crop frames.

Streams are real tiny videos encoded with PyAV (libx264/libx265 with an explicit
``chromaloc``, MPEG-1/MPEG-2, VP9, FFV1); the expected sitings come from the codecs'
specifications (H.264/HEVC Annex E chroma_sample_loc_type 0–5, MPEG-1 centre, MPEG-2 left),
not from dsgen. Where swscale puts chroma is measured here with an impulse, independently
of dsgen.chroma.read_siting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.video.reformatter import Interpolation

from dsgen.chroma import SITING_POSITION, codec_siting, has_subsampled_chroma, read_siting, sited

# H.264/HEVC chroma_sample_loc_type (Annex E, Figure E-1) → FFmpeg's AVChromaLocation name.
LOC_TYPE = {0: "left", 1: "center", 2: "topleft", 3: "top", 4: "bottomleft", 5: "bottom"}
ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def planes(frame: av.VideoFrame) -> list[npt.NDArray[Any]]:
    """Writable numpy views of the planes of an 8-bit planar frame."""
    return [np.frombuffer(memoryview(p), np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
            for p in frame.planes]


def encode(path: Path, codec: str, pix_fmt: str, width: int = 64, height: int = 48,
           options: dict[str, str] | None = None) -> Path:
    """Three textured frames in a tiny MKV."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(3):
            f = av.VideoFrame(width, height, pix_fmt)
            for p in planes(f):
                p[...] = rng.integers(40, 200, p.shape)
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def first_frame(path: Path) -> av.VideoFrame:
    """The first decoded frame of a file."""
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


def impulse_position(frame: av.VideoFrame) -> tuple[float, float]:
    """Where swscale puts chroma sample (4, 4) of an 8-bit 4:2:0 frame, in luma samples
    relative to luma (8, 8): the centroid of that sample's upsampled footprint."""
    y, u, v = planes(frame)
    y[...], u[...], v[...] = 128, 128, 128
    u[4, 4] = 228
    up = frame.reformat(format="yuv444p", interpolation=ACCURATE)
    w = planes(up)[1].astype(np.float64) - 128
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return float((w * xs).sum() / w.sum()) - 8, float((w * ys).sum() / w.sum()) - 8


@pytest.mark.parametrize("loc", sorted(LOC_TYPE))
def test_h264_chroma_loc_types_read_as_their_sitings(tmp_path: Path, loc: int) -> None:
    """An H.264 stream with VUI chroma_sample_loc_type N reads as Annex E's siting N."""
    opts = {"x264-params": f"chromaloc={loc}:log-level=error", "preset": "ultrafast"}
    frame = first_frame(encode(tmp_path / "a.mkv", "libx264", "yuv420p", options=opts))
    assert read_siting(frame) == LOC_TYPE[loc]


def test_hevc_top_left_and_untagged(tmp_path: Path) -> None:
    """HEVC 10-bit tagged chroma_loc 2 reads as top-left; without a tag HEVC's default, left."""
    def x265(extra: str) -> dict[str, str]:
        return {"x265-params": f"{extra}log-level=error", "preset": "ultrafast"}

    tagged = encode(tmp_path / "t.mkv", "libx265", "yuv420p10le", options=x265("chromaloc=2:"))
    plain = encode(tmp_path / "p.mkv", "libx265", "yuv420p10le", options=x265(""))
    assert read_siting(first_frame(tagged)) == "topleft"
    assert read_siting(first_frame(plain)) == "left"


@pytest.mark.parametrize(("codec", "pix_fmt", "expect"), [
    ("libx264", "yuv420p", "left"),  # H.264 without a chroma_loc tag: type 0
    ("mpeg2video", "yuv420p", "left"),  # MPEG-2 4:2:0 is left-sited by definition
    ("mpeg1video", "yuv420p", "center"),  # MPEG-1 (like JPEG) is centre-sited
    ("mjpeg", "yuvj420p", "center"),
    ("libvpx-vp9", "yuv420p", "center"),  # no siting in the stream: FFmpeg's default
    ("ffv1", "yuv420p", "center"),
    ("ffv1", "yuv422p", "center"),  # 4:2:2 too: FFmpeg reports nothing, swscale centres
])
def test_codec_defaults_and_untagged_streams(tmp_path: Path, codec: str, pix_fmt: str,
                                             expect: str) -> None:
    """Streams that carry no siting read as their codec's default (what FFmpeg's decoder
    reports), and codecs without one read as centre, swscale's default for unspecified."""
    opts = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else {}
    frame = first_frame(encode(tmp_path / "a.mkv", codec, pix_fmt, options=opts))
    assert read_siting(frame) == expect


def test_444_and_rgb_have_no_siting(tmp_path: Path) -> None:
    """Full-resolution chroma has no siting to read."""
    frame = first_frame(encode(tmp_path / "a.mkv", "libx264", "yuv444p",
                               options={"preset": "ultrafast"}))
    assert read_siting(frame) is None
    assert not has_subsampled_chroma(frame.format)
    assert not has_subsampled_chroma(av.VideoFrame(16, 16, "rgb24").format)
    assert has_subsampled_chroma(av.VideoFrame(16, 16, "nv12").format)
    assert has_subsampled_chroma(av.VideoFrame(16, 16, "yuv422p10le").format)


def test_untagged_frames_are_centre_sited_by_swscale() -> None:
    """What swscale does with a frame that carries no siting (dsgen's crop frames before this
    module): chroma sample k sits at luma 2k + 0.5 in both directions, i.e. centre. This is
    the behaviour dsgen relied on for every source, and what `sited` keeps for centre."""
    frame = av.VideoFrame(16, 16, "yuv420p")
    assert impulse_position(frame) == pytest.approx((0.5, 0.5), abs=0.01)
    assert read_siting(av.VideoFrame(40, 30, "yuv420p")) == "center"


@pytest.mark.parametrize("siting", sorted(SITING_POSITION))
def test_sited_frames_place_chroma_at_the_siting(siting: str) -> None:
    """A stamped frame of any size (one stamp graph serves them all) makes swscale put chroma
    at the H.273 position of its siting; the stamp shares the frame's buffers (no copy)."""
    for w, h in [(16, 16), (32, 20), (16, 16), (22, 34)]:
        frame = av.VideoFrame(w, h, "yuv420p")
        out = sited(frame, siting)  # type: ignore[arg-type]
        assert (out.width, out.height) == (w, h)
        assert out.planes[0].buffer_ptr == frame.planes[0].buffer_ptr or siting == "center"
        assert impulse_position(out) == pytest.approx(SITING_POSITION[siting], abs=0.01)  # type: ignore[index]


def test_sited_works_for_every_planar_depth() -> None:
    """Stamps exist per pixel format: 10-bit 4:2:0 and 4:2:2 frames keep their format and
    read back as the siting they were given."""
    for fmt in ("yuv420p10le", "yuv422p", "yuv420p12le"):
        out = sited(av.VideoFrame(24, 18, fmt), "topleft")
        assert out.format.name == fmt
        got = read_siting(out)
        assert got is not None and SITING_POSITION[got][0] == 0.0
        if fmt != "yuv422p":
            assert got == "topleft"


def test_codec_siting_table() -> None:
    """Without a frame: the specification defaults, centre for codecs that define none."""
    assert codec_siting("h264") == codec_siting("hevc") == codec_siting("mpeg2video") == "left"
    assert codec_siting("mpeg1video") == codec_siting("mjpeg") == "center"
    assert codec_siting("vp9") == "center"
