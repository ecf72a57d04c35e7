"""dsgen.index: the frame index built chunk by chunk equals a scan of every packet.

"Complete" means: every chunk of the header's runtime was scanned and each chunk ends at the
keyframe where the next one begins, so the chunks hold every packet of the stream exactly
once; the assembled index is then compared with `probe_video`'s single full scan (the frame
list a plain sequential decode gives, see tests/test_probe.py). Real encoded videos, some
long (a real encode remuxed many times over), some damaged.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from dsgen import index
from dsgen.index import ChunkScan, assemble, boundary, chunk_count, gaps, scan_chunk, truncated
from dsgen.model import VideoProbe
from dsgen.probe import open_probe, probe_video
from dsgen.synth import SynthSpec, make_video

N = 7
PIECE = SynthSpec("index_piece", "h264", 320, 180, 240, cuts=(90, 170), gop=48, bframes=2,
                  seed=401)


def remux_repeated(src: Path, dst: Path, times: int) -> Path:
    """`src` remuxed `times` times end to end (not re-encoded), timestamps shifted: a long
    real encode with every packet, keyframe and B-frame of the original."""
    with av.open(str(dst), "w", format="matroska") as out:
        ost = None
        for k in range(times):
            with av.open(str(src)) as i:
                ist = i.streams.video[0]
                ost = ost or out.add_stream_from_template(ist)
                packets = [pk for pk in i.demux(ist) if pk.size]
                step = packets[0].duration or 1
                span = round(len(packets) / (ist.average_rate * ist.time_base))
                # Matroska stores no dts; give the first packets dts before the first known
                # one, so dts rise across the joins
                known = next(j for j, pk in enumerate(packets) if pk.dts is not None)
                for j in range(known):
                    packets[j].dts = int(packets[known].dts) - (known - j) * step
                for pk in packets:
                    pk.pts += k * span
                    pk.dts += k * span
                    pk.stream = ost
                    out.mux(pk)
    return dst


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-minute H.264 video (a real 10 s encode, remuxed 60 times): 14,400 frames."""
    d = tmp_path_factory.mktemp("index")
    piece = make_video(d / "piece.mkv", PIECE)
    return remux_repeated(piece, d / "long.mkv", 60)


def scan_all(p: VideoProbe) -> list[ChunkScan]:
    return [scan_chunk(p, k) for k in range(chunk_count(p))]


def test_chunks_tile_a_long_video_and_equal_the_full_scan(long_video: Path) -> None:
    """A 10-minute video makes 10 chunks of 60 s; each starts at the keyframe where the one
    before ended; together they are exactly probe_video's index (every frame's pts, every
    keyframe), with no damage found."""
    light = open_probe(long_video, N)
    assert not light.index_complete and light.frame_pts.shape[0] == 0
    assert light.header_frames == 14_400
    full = probe_video(long_video, N)
    assert full.n_frames == 14_400
    scans = scan_all(light)
    assert len(scans) == 10
    for a, b in itertools.pairwise(scans):
        assert a.end_key == b.start_key is not None
        assert a.end_key >= boundary(light, b.chunk)
        assert not a.eof and not a.damage and not a.holes
    assert scans[-1].eof and scans[-1].end_key is None
    got = assemble(scans)
    assert got is not None
    assert got[0].tolist() == full.frame_pts.tolist()
    assert got[1].tolist() == full.key_pts.tolist()
    assert sum(c.pts.shape[0] for c in scans) == full.n_frames  # each packet in one chunk


def test_chunks_that_do_not_tile_are_not_a_complete_index(long_video: Path) -> None:
    """A missing chunk, or one whose end keyframe is not where the next begins, gives no
    index (never a silently short one)."""
    light = open_probe(long_video, N)
    scans = scan_all(light)
    assert assemble(scans[:3] + scans[4:]) is None
    broken = dataclasses.replace(scans[2], end_key=scans[2].end_key + 1)
    assert assemble([*scans[:2], broken, *scans[3:]]) is None
    assert assemble([]) is None


@pytest.mark.parametrize("seconds", [0.5, 7.0])
def test_chunk_size_does_not_change_the_index(h264_cuts: tuple[Path, SynthSpec],
                                              monkeypatch: pytest.MonkeyPatch,
                                              seconds: float) -> None:
    """Chunks smaller than a GOP (several chunks start at the same keyframe and are empty)
    or larger than the video give the same complete index."""
    monkeypatch.setattr(index, "CHUNK_SECONDS", seconds)
    path, _ = h264_cuts
    light = open_probe(path, N)
    got = assemble(scan_all(light))
    assert got is not None
    assert got[0].tolist() == probe_video(path, N).frame_pts.tolist()


def test_truncated_file_ends_early_and_says_so(h264_cuts: tuple[Path, SynthSpec],
                                               tmp_path: Path) -> None:
    """A file cut at half its bytes: the last chunk with packets reaches the end of the file
    and reports `truncated` from the last pts to the header's end; later chunks are empty;
    the assembled index holds the frames that are there (a full scan's)."""
    path, _ = h264_cuts
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    light = open_probe(cut, N)
    assert light.header_frames == 96  # the header still says 4 s
    scans = [scan_chunk(dataclasses.replace(light), 0)]
    assert scans[0].eof
    kinds = [d[0] for d in scans[0].damage]
    assert kinds == ["truncated"]
    _, first, last = scans[0].damage[0]
    assert last == light.end_pts and first == int(scans[0].pts[-1])
    assert assemble(scans)[0].tolist() == probe_video(cut, N).frame_pts.tolist()  # type: ignore[index]


def test_gaps_and_truncation_rules() -> None:
    """A step of at least twice the typical one is a hole (a single lost frame makes one);
    variable rates within 1.3× are not; truncation allows the documented slack."""
    pts = np.arange(0, 100 * 42, 42, dtype=np.int64)
    assert gaps(pts) == []
    assert gaps(np.delete(pts, 50)) == [(int(pts[49]), int(pts[51]))]
    vfr = np.cumsum(np.tile([33, 42, 42, 33, 42], 20)).astype(np.int64)
    assert gaps(vfr) == []
    p = open_probe_like(end_pts=600_000)  # 600 s at 1/1000
    assert not truncated(p, 600_000 - 1_900)
    assert truncated(p, 600_000 - 6_100)  # 1 % of 600 s = 6 s of slack


def open_probe_like(end_pts: int) -> VideoProbe:
    """A probe record with only timing (what `truncated` reads)."""
    from fractions import Fraction

    from dsgen.model import ColourInfo

    empty = np.zeros(0, dtype=np.int64)
    return VideoProbe(path="x", size=1, mtime_ns=1, stream_index=0, codec="h264",
                      pix_fmt="yuv420p", width=2, height=2, sar=Fraction(1), fps=24.0,
                      time_base=Fraction(1, 1000), frame_pts=empty, key_pts=empty,
                      colour=ColourInfo("bt709", False, 8, "sdr"), content=(0, 0, 2, 2),
                      first_pts=0, end_pts=end_pts, frame_ticks=42, header_frames=14_400,
                      index_complete=False)
