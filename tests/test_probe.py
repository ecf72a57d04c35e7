"""dsgen.probe: the index, geometry, colour and picture rectangle of real encoded videos.

Every expectation is checked against the synthetic videos' specs and against a plain full
decode of the same file with PyAV (nothing is mocked).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dsgen.errors import VideoError
from dsgen.model import VideoProbe
from dsgen.probe import BAR_MARGIN, _inner, probe_summary, probe_video, quick_probe
from dsgen.synth import SynthSpec, make_video

VIDEO_FIXTURES = ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic", "letterboxed", "odd_size"]
CLIP = 7  # frames per clip: the min_frames every probe here asks for
BAR_SLACK = 8  # the content edge may sit at most this far inside a bar edge

# H.264 with B-frames in an MPEG program stream: small frames share a PES packet, so most
# packets carry no pts (the layout of many DVD VOBs) and the probe must index by decoding.
PS_SPARSE_PTS = SynthSpec("h264_ps", "h264", 320, 240, 60, cuts=(30,), gop=24, bframes=2,
                          container="mpg", seed=201)
# 4:4:4 with odd (37-row) letterbox bars: bar edges need no chroma alignment.
ODD_BARS = SynthSpec("odd_bars", "h264_444", 320, 241, 24, gop=12, letterbox=(37, 0),
                     seed=203)
# All black (Y=16 everywhere): as dark as video gets, yet there are no bars.
ALL_BLACK = SynthSpec("all_black", "h264", 320, 240, 24, gop=12, flat_ranges=((0, 24),),
                      seed=202)


@pytest.fixture(scope="module")
def extra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for this module's own videos."""
    return tmp_path_factory.mktemp("probe_extra")


@pytest.fixture(scope="module")
def ps_sparse_pts(extra_dir: Path) -> tuple[Path, SynthSpec]:
    """H.264 in MPEG-PS where most packets have no pts."""
    return make_video(extra_dir / "h264_ps.mpg", PS_SPARSE_PTS), PS_SPARSE_PTS


def remux_ts_without_one_pts(src: Path, dst: Path, packet_no: int) -> Path:
    """Remux `src` (not re-encoded) to MPEG-TS with the pts of one B-frame packet removed."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mpegts") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for k, packet in enumerate(pk for pk in i.demux(video=0) if pk.size):
            if k == packet_no:
                packet.pts = None
            packet.stream = out
            o.mux(packet)
    return dst


def decoded_pts(path: Path) -> tuple[list[int | None], list[int | None]]:
    """(pts of every frame, pts of key frames) from a plain sequential decode."""
    with av.open(str(path)) as c:
        frames = [(f.pts, f.key_frame) for f in c.decode(video=0)]
    return [p for p, _ in frames], [p for p, k in frames if k]


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_index_lists_every_frame_in_display_order(name: str, request: pytest.FixtureRequest
                                                  ) -> None:
    """frame_pts is every frame's pts in display order (one per frame, as a full decode
    outputs them) and key_pts the pts of the key frames; the demux scan sees all pts."""
    path, spec = request.getfixturevalue(name)
    p = probe_video(path, CLIP)
    all_pts, key_pts = decoded_pts(path)
    assert None not in all_pts  # every packet of these files carries a pts: no decode pass
    assert p.n_frames == spec.n_frames == len(all_pts)
    assert p.frame_pts.dtype == np.int64 and p.key_pts.dtype == np.int64
    assert p.frame_pts.tolist() == all_pts
    assert np.all(np.diff(p.frame_pts) > 0)
    assert p.key_pts.tolist() == key_pts
    assert not p.pts_interpolated
    first_keys = np.searchsorted(p.frame_pts, p.key_pts)[:-1].tolist()
    assert first_keys == list(range(0, spec.n_frames, spec.gop))[:len(first_keys)]


def test_missing_packet_pts_are_indexed_by_decoding(ps_sparse_pts: tuple[Path, SynthSpec]
                                                    ) -> None:
    """When packets lack pts (MPEG-PS packing several frames into one PES) the probe decodes
    to index: it still counts every frame and fills the missing pts from the frame
    durations, strictly increasing, so no frame can drop out of a "consecutive" window."""
    path, spec = ps_sparse_pts
    with av.open(str(path)) as c:
        packets = [pk.pts for pk in c.demux(video=0) if pk.size]
    assert packets.count(None) > len(packets) // 4  # the situation under test
    p = probe_video(path, CLIP)
    assert p.pts_interpolated
    assert p.n_frames == spec.n_frames
    step = 1 / (spec.fps * p.time_base)  # one frame in 90 kHz ticks
    assert np.all(np.diff(p.frame_pts) == step)  # constant rate: every frame, evenly spaced
    real = {q for q in packets if q is not None}
    assert real <= set(p.frame_pts.tolist())  # real timestamps kept as they are
    assert np.searchsorted(p.frame_pts, p.key_pts).tolist() == [0, 24, 48]


def test_one_packet_without_pts_is_not_left_out(h264_cuts: tuple[Path, SynthSpec],
                                                extra_dir: Path) -> None:
    """A single packet without pts among 96 still sends the probe to decoding: the index
    counts all 96 frames, with the missing pts filled in exactly (a frame left out of the
    index would be silently skipped inside a "consecutive" window)."""
    path, spec = h264_cuts
    full = probe_video(path, CLIP)
    ts = probe_video(remux_ts_without_one_pts(path, extra_dir / "hole.ts", 39), CLIP)
    assert ts.pts_interpolated and ts.n_frames == spec.n_frames
    offset = ts.frame_pts[0] - full.frame_pts[0] * 90  # ms → 90 kHz, shifted by the muxer
    assert np.abs(ts.frame_pts - (full.frame_pts * 90 + offset)).max() <= 90  # rounding only


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_geometry_rate_and_colour_match_the_spec(name: str, request: pytest.FixtureRequest
                                                 ) -> None:
    """Width, height, SAR, fps, codec, pixel format and colour come out as encoded."""
    path, spec = request.getfixturevalue(name)
    p = probe_video(path, CLIP)
    assert (p.width, p.height) == (spec.width, spec.height)
    assert p.sar == spec.sar
    assert p.fps == pytest.approx(float(spec.fps))
    assert p.duration_s == pytest.approx(spec.n_frames / float(spec.fps))
    assert p.codec == {"h264": "h264", "hevc10": "hevc", "mpeg2": "mpeg2video"}[spec.codec]
    assert p.pix_fmt == ("yuv420p10le" if spec.bit_depth == 10 else "yuv420p")
    assert p.colour.bit_depth == spec.bit_depth
    assert not p.colour.full_range
    assert p.colour.transfer == ("pq" if spec.hdr else "sdr")
    expected_matrix = "bt2020" if spec.hdr else "bt601" if spec.codec == "mpeg2" else "bt709"
    assert p.colour.matrix == expected_matrix
    summary = probe_summary(p)
    assert f"{spec.width}×{spec.height}" in summary and f"{spec.n_frames} frames" in summary
    assert ("SAR 64:45" in summary) == (spec.sar == Fraction(64, 45))


def test_anamorphic_sar_is_64_45(mpeg2_anamorphic: tuple[Path, SynthSpec]) -> None:
    """The PAL anamorphic MPEG-2 program stream reports SAR 64/45 (16:9 from 720×576)."""
    p = probe_video(mpeg2_anamorphic[0], CLIP)
    assert p.sar == Fraction(64, 45)
    assert p.width * p.sar / p.height == Fraction(16, 9)


def test_letterbox_content_excludes_the_bars(letterboxed: tuple[Path, SynthSpec]) -> None:
    """The content rectangle of the 96-row letterbox lies inside the bars, within a few
    pixels of their edges, and spans the full width."""
    path, spec = letterboxed
    p = probe_video(path, CLIP)
    top, left, bottom, right = spec.picture_box
    x0, y0, x1, y1 = p.content
    assert (x0, x1) == (left, right) == (0, spec.width)
    assert top <= y0 <= top + BAR_SLACK
    assert bottom - BAR_SLACK <= y1 <= bottom
    assert "inside bars" in probe_summary(p)


def test_inner_keeps_every_row_and_odd_edges() -> None:
    """The bar margin is the only shrink: a side without a bar keeps its last row or column
    (a 405-row picture stays 405 rows), and odd bar edges are not rounded to even."""
    assert _inner(0, 405, 405) == (0, 405)
    assert _inner(0, 721, 721) == (0, 721)
    assert _inner(37, 368, 405) == (37 + BAR_MARGIN, 368 - BAR_MARGIN)
    assert _inner(0, 371, 405) == (0, 371 - BAR_MARGIN)
    assert _inner(3, 3, 7) == (3 + BAR_MARGIN, min(7, 3 + BAR_MARGIN + 2))


def test_odd_letterbox_edges_stay_odd(extra_dir: Path) -> None:
    """A 4:4:4 video with 37-row bars (odd: no chroma grid to align to) has its picture at
    exactly the bar edges plus the margin: rows 41..(height − 41), odd numbers kept."""
    path = make_video(extra_dir / "odd_bars.mkv", ODD_BARS)
    p = probe_video(path, CLIP)
    assert p.content == (0, 37 + BAR_MARGIN, ODD_BARS.width, ODD_BARS.height - 37 - BAR_MARGIN)
    assert p.colour.chroma_siting == "none"


@pytest.mark.parametrize("name", ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic", "odd_size"])
def test_no_bars_gives_the_full_frame(name: str, request: pytest.FixtureRequest) -> None:
    """A video without bars keeps its whole frame as content (including HDR and odd sizes)."""
    path, spec = request.getfixturevalue(name)
    p = probe_video(path, CLIP)
    assert p.content == (0, 0, spec.width, spec.height)
    assert "inside bars" not in probe_summary(p)


def test_all_black_video_is_not_cropped_to_nothing(extra_dir: Path) -> None:
    """A video that is black in every sampled keyframe has no bars to find: its content is
    the full frame, not an empty or sliver rectangle."""
    path = make_video(extra_dir / "all_black.mkv", ALL_BLACK)
    p = probe_video(path, CLIP)
    assert p.content == (0, 0, ALL_BLACK.width, ALL_BLACK.height)


def test_round_trip_through_state_keeps_everything(hevc10_hdr: tuple[Path, SynthSpec],
                                                   mpeg2_anamorphic: tuple[Path, SynthSpec],
                                                   letterboxed: tuple[Path, SynthSpec],
                                                   ps_sparse_pts: tuple[Path, SynthSpec]
                                                   ) -> None:
    """VideoProbe.from_state(to_json(), arrays_blob()) rebuilds an equal probe: every field
    equal, pts arrays equal element by element and still int64 (HDR colour, a Fraction SAR,
    bars and interpolated pts included); JSON from before pts_interpolated still loads."""
    for path, _ in (hevc10_hdr, mpeg2_anamorphic, letterboxed, ps_sparse_pts):
        p = probe_video(path, CLIP)
        q = VideoProbe.from_state(p.to_json(), p.arrays_blob())
        for f in dataclasses.fields(VideoProbe):
            a, b = getattr(p, f.name), getattr(q, f.name)
            if isinstance(a, np.ndarray):
                assert b.dtype == np.int64 and np.array_equal(a, b), f.name
            else:
                assert a == b and type(a) is type(b), f.name
    old = p.to_json().replace(', "pts_interpolated": true', "")
    assert "pts_interpolated" not in old
    assert not VideoProbe.from_state(old, p.arrays_blob()).pts_interpolated


def test_probes_stored_before_chroma_siting_load_as_centre(h264_cuts: tuple[Path, SynthSpec]
                                                           ) -> None:
    """A new probe records the stream's siting (H.264: left) and round-trips it; a probe
    stored before the field existed loads as centre, the conversion dsgen then applied, so
    a resumed run converts its already-probed videos exactly as before."""
    p = probe_video(h264_cuts[0], CLIP)
    assert p.colour.chroma_siting == "left"
    assert "left-sited chroma" in probe_summary(p)
    assert VideoProbe.from_state(p.to_json(), p.arrays_blob()).colour.chroma_siting == "left"
    old = p.to_json().replace('"chroma_siting": "left", ', "")
    assert "chroma_siting" not in old
    assert VideoProbe.from_state(old, p.arrays_blob()).colour.chroma_siting == "center"


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_quick_probe_agrees_with_full_probe(name: str, request: pytest.FixtureRequest) -> None:
    """quick_probe (header only) reports the same size, rate, codec and runtime."""
    path, _ = request.getfixturevalue(name)
    q, p = quick_probe(path), probe_video(path, CLIP)
    assert (q.width, q.height, q.codec, q.size, q.mtime_ns) == \
        (p.width, p.height, p.codec, p.size, p.mtime_ns)
    assert q.fps == pytest.approx(p.fps)
    assert q.duration_s == pytest.approx(p.duration_s, abs=1.5 / p.fps)


def test_quick_probe_trusts_the_header(bad_files: dict[str, Path]) -> None:
    """quick_probe reads only the header: on a file cut at 40 % it still reports the full
    2 s the header promises, while probe_video indexes only the frames really there."""
    q = quick_probe(bad_files["truncated"])
    assert q.duration_s == pytest.approx(2.0)
    p = probe_video(bad_files["truncated"], CLIP)
    assert CLIP <= p.n_frames < 48


@pytest.mark.parametrize(("key", "stage", "reason"), [
    ("missing", "open", "file not found"),
    ("zero_byte", "open", "empty"),
    ("random_bytes", "open", "not a readable video"),
    ("audio_only", "probe", "no video stream"),
])
def test_unusable_files_raise_video_error(bad_files: dict[str, Path], key: str, stage: str,
                                          reason: str) -> None:
    """Missing, empty, garbage and audio-only files raise VideoError from both probes, with
    the path, the stage, a clear reason and a hint (never another exception)."""
    path = bad_files[key]
    for probe in (quick_probe, lambda p: probe_video(p, CLIP)):
        with pytest.raises(VideoError) as info:
            probe(path)
        err = info.value
        assert err.stage == stage and reason in err.reason, err.reason
        assert err.path == str(path) and err.hint
        assert str(path) in str(err)


def test_too_short_video_names_its_frame_count(bad_files: dict[str, Path]) -> None:
    """A 3-frame video cannot give a 7-frame clip: VideoError says so with the count."""
    with pytest.raises(VideoError) as info:
        probe_video(bad_files["three_frames"], CLIP)
    assert info.value.stage == "probe"
    assert info.value.reason.startswith("only 3 decodable frame(s)")
    assert "7" in info.value.reason and info.value.hint
    assert probe_video(bad_files["three_frames"], 3).n_frames == 3


def test_truncated_file_gives_a_usable_shorter_probe(bad_files: dict[str, Path]) -> None:
    """A truncated file is either probed with fewer frames than it was encoded with (every
    indexed frame really decodes) or refused with VideoError, never another exception."""
    path = bad_files["truncated"]
    try:
        p = probe_video(path, CLIP)
    except VideoError as e:  # pragma: no cover - depends on where the cut falls
        assert e.stage in ("open", "probe") and e.hint
        return
    assert CLIP <= p.n_frames < 48
    all_pts, _ = decoded_pts(path)
    assert p.frame_pts.tolist() == all_pts
    assert p.content == (0, 0, p.width, p.height)
