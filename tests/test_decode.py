"""dsgen.decode: ClipReader returns exactly the wanted frames, pixel for pixel.

The reference for every clip is a plain sequential decode of the whole file with PyAV: the
i-th frame it outputs is frame i. A clip must hand out the frames whose pts are
frame_pts[start:start+n], in order, with the same decoded samples, however the reader got
there (forward walk, seek, re-seek after landing late, skipping non-reference frames on the
approach, frame threads). Nothing is mocked: the videos are really encoded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from dsgen.decode import ClipError, ClipReader, Window, WindowPlan
from dsgen.model import NO_FENCE, VideoProbe
from dsgen.probe import open_probe, probe_video
from dsgen.synth import SynthSpec, make_video

N = 7  # frames per clip
VIDEO_FIXTURES = ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic", "letterboxed", "odd_size"]
# H.264 with B-frames in an MPEG program stream where most packets carry no pts.
PS_SPARSE_PTS = SynthSpec("h264_ps_dec", "h264", 320, 240, 60, cuts=(30,), gop=24, bframes=2,
                          container="mpg", seed=301)


# ------------------------------------------------------------------------------ helpers


def digest(frame: Any) -> str:
    """Identity of a decoded frame's samples (all planes, as to_ndarray gives them)."""
    a = frame.to_ndarray()
    return hashlib.sha1(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


@functools.cache
def reference(path: str) -> tuple[str, ...]:
    """Digests of every frame of a plain full sequential decode, in output order."""
    with av.open(path) as c:
        return tuple(digest(f) for f in c.decode(video=0))


@functools.cache
def probe_of(path: str) -> VideoProbe:
    """The probe of a video (cached: probes are deterministic)."""
    return probe_video(Path(path), N)


def assert_exact(reader: ClipReader, start: int, n: int = N) -> None:
    """The clip at `start` has the index's pts and the reference decode's samples."""
    p = reader.probe
    frames = reader.clip(start, n)
    assert [f.pts for f in frames] == p.frame_pts[start:start + n].tolist(), start
    got = [digest(f) for f in frames]
    assert got == list(reference(p.path)[start:start + n]), f"pixels differ at start {start}"


def walk(reader: ClipReader, starts: Iterable[int]) -> None:
    """Request every window in the given order and check each one."""
    for s in starts:
        assert_exact(reader, s)


@pytest.fixture(params=VIDEO_FIXTURES)
def video(request: pytest.FixtureRequest) -> tuple[VideoProbe, SynthSpec]:
    """Each synthetic video with its probe; the reference decode must match the index."""
    path, spec = request.getfixturevalue(request.param)
    p = probe_of(str(path))
    assert len(reference(str(path))) == p.n_frames == spec.n_frames
    return p, spec


@pytest.fixture(scope="module")
def ps_sparse(tmp_path_factory: pytest.TempPathFactory) -> VideoProbe:
    """Probe of an MPEG-PS H.264 file whose pts the probe had to interpolate."""
    path = make_video(tmp_path_factory.mktemp("decode_ps") / "h264_ps.mpg", PS_SPARSE_PTS)
    return probe_of(str(path))


@pytest.fixture(scope="module")
def h264_ts(h264_cuts: tuple[Path, SynthSpec], tmp_path_factory: pytest.TempPathFactory
            ) -> VideoProbe:
    """The H.264 fixture remuxed (not re-encoded) to MPEG-TS: no index, seeks go by dts."""
    src, _ = h264_cuts
    dst = tmp_path_factory.mktemp("decode_ts") / "h264_cuts.ts"
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mpegts") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(video=0):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            packet.stream = out
            o.mux(packet)
    return probe_of(str(dst))


@pytest.fixture(scope="module")
def ts_one_missing_pts(h264_cuts: tuple[Path, SynthSpec],
                       tmp_path_factory: pytest.TempPathFactory) -> VideoProbe:
    """The H.264 fixture remuxed to MPEG-TS with the pts of packet 39 (frame 38) removed."""
    src, _ = h264_cuts
    dst = tmp_path_factory.mktemp("decode_hole") / "hole.ts"
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mpegts") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for k, packet in enumerate(pk for pk in i.demux(video=0) if pk.size):
            if k == 39:
                packet.pts = None
            packet.stream = out
            o.mux(packet)
    return probe_of(str(dst))


# ------------------------------------------------------------------------------ exactness


@pytest.mark.parametrize("threads", [1, 2])
def test_sorted_random_walk_is_exact(video: tuple[VideoProbe, SynthSpec], threads: int) -> None:
    """Sorted random starts (the engine's forward walk, repeats and overlaps included) give
    the exact frames and samples of a full decode, with slice and with frame threads."""
    p, _ = video
    rng = random.Random(p.n_frames * 31 + threads)
    starts = sorted(rng.randrange(0, p.n_frames - N + 1) for _ in range(8))
    reader = ClipReader(p, threads)
    assert reader.stream.codec_context.thread_type.name == "AUTO"
    assert reader.stream.codec_context.thread_count == threads
    walk(reader, [*starts, p.n_frames - N])
    reader.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_far_apart_backward_and_overlapping_requests_are_exact(
        video: tuple[VideoProbe, SynthSpec], threads: int) -> None:
    """Starts that force seeks (far apart, backward, overlapping the previous window, the
    very end, the very start) still give the exact frames and samples."""
    p, _ = video
    last = p.n_frames - N
    starts = [last, 0, last // 2, last // 2 - 3, last // 2 + 4, 1, last - 1, last, 2, 2]
    reader = ClipReader(p, threads)
    walk(reader, starts)
    assert reader.seeks >= 6  # at least every backward step seeked
    reader.close()


def test_every_window_from_a_fresh_reader_is_exact(video: tuple[VideoProbe, SynthSpec]) -> None:
    """A start every 4 frames (every keyframe, positions all over each GOP, the first and
    the last GOP) works as the first request of a reader, i.e. straight after a seek."""
    p, _ = video
    for s in range(0, p.n_frames - N + 1, 4):
        reader = ClipReader(p, 2)
        assert_exact(reader, s)
        reader.close()


def test_adjacent_windows_walk_the_whole_video_with_one_seek(
        video: tuple[VideoProbe, SynthSpec]) -> None:
    """Back-to-back windows over the whole video are decoded in one forward pass: a single
    seek (to the start), and no frame decoded twice."""
    p, _ = video
    reader = ClipReader(p, 2)
    starts = list(range(0, p.n_frames - N + 1, N))
    walk(reader, starts)
    assert reader.seeks == 1
    assert reader.frames_decoded <= starts[-1] + N + 4  # frames handed out + decoder lookahead
    reader.close()


def test_dts_seeking_container_lands_on_the_right_gop(h264_ts: VideoProbe) -> None:
    """MPEG-TS has no index and seeks by dts, which lies before a keyframe's pts: seeking
    to a keyframe's pts lands one packet after it. The reader must still give every window
    exactly (first and last GOP included), reach a window a few seconds ahead by reading on
    (no seek, nothing decoded before its keyframe: the same frames as a fresh reader), and
    go back with at most two seeks (the second one further back)."""
    p = h264_ts
    fresh_cost = {}
    for s in (0, 23, 24, 40, 72, 75, p.n_frames - N):
        reader = ClipReader(p, 2)
        assert_exact_then(reader, s, ())
        reader.close()
        fresh_cost[s] = reader.frames_decoded
    reader = ClipReader(p, 2)
    assert_exact_then(reader, 50, [75])
    seeks, decoded = reader.seeks, reader.frames_decoded
    assert_exact_then(reader, 75, ())  # keyframe 72 is ahead: read on to it, restart there
    assert reader.seeks == seeks
    assert reader.frames_decoded - decoded <= fresh_cost[75]
    for s in (30, 3):  # backward jumps
        seeks = reader.seeks
        assert_exact(reader, s)
        assert 1 <= reader.seeks - seeks <= 2
    seeks = reader.seeks
    assert_exact(reader, 60)  # forward again, 2.4 s ahead: read on
    assert reader.seeks == seeks
    reader.close()


def test_interpolated_pts_clips_are_exact(ps_sparse: VideoProbe) -> None:
    """For a file whose pts the probe interpolated, clips (fresh, walked, backward) still
    give frame i = the i-th frame of a full decode, and no frame is skipped on approach."""
    p = ps_sparse
    assert p.pts_interpolated and p.n_frames == PS_SPARSE_PTS.n_frames
    reader = ClipReader(p, 2)
    assert not reader.skip_nonref
    walk(reader, [5, 12, 30, 53, 40, 0, 24, 47])
    for s in (23, 36, 53):
        fresh = ClipReader(p, 1)
        assert_exact(fresh, s)
        fresh.close()
    reader.close()


def test_frame_without_pts_is_never_skipped_inside_a_window(ts_one_missing_pts: VideoProbe
                                                            ) -> None:
    """Frame 38 has no pts in the file. Windows across it are exact (its pts is interpolated
    as in the probe), and if an index ever lacks such a frame, a window across it raises
    ClipError instead of returning 7 frames that are not consecutive."""
    p = ts_one_missing_pts
    assert p.n_frames == 96 and p.pts_interpolated
    reader = ClipReader(p, 2)
    walk(reader, [30, 34, 38, 20, 32])
    reader.close()
    # An index built as if packets without pts did not exist (frame 38 left out):
    short = dataclasses.replace(p, frame_pts=p.frame_pts[p.frame_pts != p.frame_pts[38]],
                                pts_interpolated=False)
    reader = ClipReader(short, 2)
    for s in (32, 35, 37):  # windows that would hide the gap
        with pytest.raises(ClipError, match=r"without timestamp|missing"):
            reader.clip(s, N)
    for s in (24, 31, 38):  # windows on either side of it are still exact
        frames = reader.clip(s, N)
        ref = reference(p.path)
        offset = 0 if s + N <= 38 else 1
        assert [digest(f) for f in frames] == list(ref[s + offset:s + offset + N])
    reader.close()


# ------------------------------------------------------------------------------ cost


def test_forward_walk_reads_on_and_never_decodes_before_a_windows_keyframe(
        h264_cuts: tuple[Path, SynthSpec]) -> None:
    """Walking forward, windows in the same GOP or a GOP close ahead cost no seek: the
    reader reads on and, for a window in a later GOP, restarts the decoder at its keyframe,
    so no window costs more frames than it does from a fresh reader (nothing decoded before
    its keyframe, no GOP decoded twice)."""
    p = probe_of(str(h264_cuts[0]))  # GOP 24: keyframes at 0, 24, 48, 72
    steps = [1, 9, 16, 23, 40, 50, 57, 64, 80]
    fresh = {}
    for s in steps:
        reader = ClipReader(p, 2)
        assert_exact_then(reader, s, ())
        reader.close()
        fresh[s] = reader.frames_decoded
    reader = ClipReader(p, 2)
    for i, s in enumerate(steps):
        before = reader.frames_decoded
        assert_exact_then(reader, s, steps[i + 1:i + 2])
        if i == 0 or steps[i - 1] // 24 != s // 24:  # a window opening a GOP for the walk
            assert reader.frames_decoded - before <= fresh[s], s
    reader.close()
    assert reader.seeks == 1  # 4 s of video: everything within reading distance


def test_walk_versus_seek_per_clip(video: tuple[VideoProbe, SynthSpec]) -> None:
    """On the same sorted windows, the forward walk needs fewer seeks and decodes no more
    frames than seeking afresh for every clip, and returns the same frames."""
    p, spec = video
    starts = list(range(2, p.n_frames - N + 1, max(N, spec.gop // 3)))
    walker = ClipReader(p, 2)
    walk(walker, starts)
    seeks = frames = 0
    for s in starts:
        fresh = ClipReader(p, 2)
        assert_exact(fresh, s)
        seeks, frames = seeks + fresh.seeks, frames + fresh.frames_decoded
        fresh.close()
    assert walker.seeks < seeks
    assert walker.frames_decoded <= frames
    walker.close()


@pytest.mark.parametrize("name", ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic"])
@pytest.mark.parametrize("threads", [1, 2])
def test_nonref_skipping_decodes_fewer_frames_and_never_one_in_the_window(
        name: str, threads: int, request: pytest.FixtureRequest) -> None:
    """skip_frame=NONREF on the approach to a window makes the decoder output fewer frames
    than DEFAULT for windows late in a GOP, and never drops a frame inside the window:
    the frames are identical to the full decode, with slice and frame threads."""
    path, spec = request.getfixturevalue(name)
    p = probe_of(str(path))
    starts = [k + spec.gop - N - 1 for k in range(0, p.n_frames - spec.gop + 1, spec.gop)]
    decoded = {}
    for skip in (True, False):
        total = 0
        for s in starts:
            reader = ClipReader(p, threads)
            reader.skip_nonref = skip
            assert_exact(reader, s)
            total += reader.frames_decoded
            reader.close()
        decoded[skip] = total
    assert decoded[True] < decoded[False]


# ------------------------------------------------------------------------------ errors


def test_out_of_range_windows_raise_clip_error(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """Windows that do not fit in the index raise ClipError, and the reader stays usable."""
    p = probe_of(str(h264_cuts[0]))
    reader = ClipReader(p, 1)
    for start, n in ((-1, N), (p.n_frames - N + 1, N), (p.n_frames, N), (0, 0),
                     (0, p.n_frames + 1)):
        with pytest.raises(ClipError):
            reader.clip(start, n)
    assert_exact(reader, p.n_frames - N)
    reader.close()


def test_truncated_fixture_windows(bad_files: dict[str, Path]) -> None:
    """The truncated fixture: every window inside its shorter index is exact, every later
    window raises ClipError."""
    p = probe_of(str(bad_files["truncated"]))
    assert len(reference(p.path)) == p.n_frames
    reader = ClipReader(p, 2)
    walk(reader, range(p.n_frames - N + 1))
    for s in range(p.n_frames - N + 1, 48 - N + 1):
        with pytest.raises(ClipError):
            reader.clip(s, N)
    reader.close()


@pytest.mark.parametrize("name", ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic"])
def test_file_truncated_after_probing_raises_clip_error(
        name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """If the file lost its end after probing, windows past the cut raise ClipError (never
    another exception, never wrong frames) and windows before it stay exact."""
    path, _ = request.getfixturevalue(name)
    full = probe_of(str(path))
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    p = dataclasses.replace(full, path=str(cut))
    ok = failed = 0
    for order in (1, -1):
        reader = ClipReader(p, 2)
        for s in list(range(0, p.n_frames - N + 1, 9))[::order]:
            try:
                frames = reader.clip(s, N)
            except ClipError:
                failed += 1
                continue
            ok += 1
            assert [f.pts for f in frames] == p.frame_pts[s:s + N].tolist()
            assert [digest(f) for f in frames] == list(reference(str(path))[s:s + N])
        reader.close()
    assert ok and failed


def test_a_failed_window_does_not_make_later_seeks_costlier(
        h264_cuts: tuple[Path, SynthSpec], tmp_path: Path) -> None:
    """Re-seeking earlier to rescue a window past a file's damaged end must not stick: a
    later window right after a keyframe still costs what it costs a fresh reader."""
    path, _ = h264_cuts
    full = probe_of(str(path))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    p = dataclasses.replace(full, path=str(cut))
    fresh = ClipReader(p, 1)
    assert [f.pts for f in fresh.clip(25, N)] == p.frame_pts[25:25 + N].tolist()
    cost = fresh.frames_decoded
    fresh.close()
    reader = ClipReader(p, 1)
    with pytest.raises(ClipError):
        reader.clip(p.n_frames - N, N)
    before = reader.frames_decoded
    assert [f.pts for f in reader.clip(25, N)] == p.frame_pts[25:25 + N].tolist()
    assert reader.frames_decoded - before == cost
    reader.close()


# ------------------------------------------------------------------------------ the minimum


def packets_needed(path: str, first: int, last: int) -> int:
    """Packets a window [first, last] (pts) needs from the keyframe before it: every packet in
    decode order from that keyframe up to the window's last packet (the window's frames and
    the references decoded before them); an upper bound of what must be decoded."""
    with av.open(path) as c:
        order = [(pk.pts, pk.is_keyframe) for pk in c.demux(video=0) if pk.size]
    key = max(i for i, (p, k) in enumerate(order) if k and p is not None and p <= first)
    end = max(i for i, (p, _) in enumerate(order) if p is not None and first <= p <= last)
    return end - key + 1


@pytest.mark.parametrize("name", ["h264_cuts", "hevc10_hdr", "mpeg2_anamorphic"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_lone_window_decodes_only_what_it_needs(name: str, threads: int,
                                                  request: pytest.FixtureRequest) -> None:
    """With nothing to walk on to (`then=()`), a window costs at most the packets from its
    keyframe to its own last packet (the decoder is drained instead of being fed the packets
    after the window), exactly 7 frames when it opens at a keyframe of a closed GOP, and the
    frames are still exact. Every frame the decoder produced is counted, even those still
    inside it when the reader is closed."""
    path, spec = request.getfixturevalue(name)
    p = probe_of(str(path))
    keys = np.searchsorted(p.frame_pts, p.key_pts).tolist()
    starts = sorted({*keys, *(k + 1 for k in keys), *(k + spec.gop // 2 for k in keys)})
    for s in (s for s in starts if s + N <= p.n_frames):
        reader = ClipReader(p, threads)
        assert_exact_then(reader, s, ())
        reader.close()
        need = packets_needed(p.path, int(p.frame_pts[s]), int(p.frame_pts[s + N - 1]))
        assert N <= reader.frames_decoded <= need, (s, reader.frames_decoded, need)
        if s in keys and name == "h264_cuts":
            assert reader.frames_decoded == N, s


def assert_exact_then(reader: ClipReader, start: int, then: Iterable[int] | None) -> None:
    """`assert_exact` with a `then` hint."""
    frames = reader.clip(start, N, then)
    assert [f.pts for f in frames] == reader.probe.frame_pts[start:start + N].tolist(), start
    assert [digest(f) for f in frames] == list(reference(reader.probe.path)[start:start + N])


@pytest.mark.parametrize("threads", [1, 2])
def test_draining_costs_fewer_frames_than_walking_on(h264_cuts: tuple[Path, SynthSpec],
                                                     threads: int) -> None:
    """Lone windows (the next one in another GOP) decode fewer frames when the reader knows
    nothing follows than when it keeps feeding the decoder; a window that can be walked to
    still costs no seek after a hint that it follows."""
    p = probe_of(str(h264_cuts[0]))
    starts = [2, 26, 50, 74]  # one per GOP, each needing a seek
    cost = {}
    for hinted in (True, False):
        reader = ClipReader(p, threads)
        for i, s in enumerate(starts):
            assert_exact_then(reader, s, starts[i + 1:i + 2] if hinted else None)
        reader.close()
        cost[hinted] = reader.frames_decoded
        assert reader.seeks <= len(starts)
    assert cost[True] < cost[False]
    reader = ClipReader(p, threads)
    assert_exact_then(reader, 26, [36])
    assert_exact_then(reader, 36, ())
    assert reader.seeks == 1
    reader.close()


def test_every_frame_is_decoded_once_and_counted(video: tuple[VideoProbe, SynthSpec]) -> None:
    """Back-to-back windows ending at the video's last frame, each told what follows: one
    seek, and the decoder produces every frame exactly once — frames_decoded equals the
    frame count with nothing skipped, and is no larger with non-reference skipping on."""
    p, _ = video
    starts = list(range(p.n_frames % N, p.n_frames - N + 1, N))
    for skip in (False, True):
        reader = ClipReader(p, 2)
        reader.skip_nonref = skip and reader.skip_nonref
        for i, s in enumerate(starts):
            assert_exact_then(reader, s, starts[i + 1:i + 2])
        reader.close()
        assert reader.seeks == 1
        if skip:
            assert reader.frames_decoded <= p.n_frames
        else:
            assert reader.frames_decoded == p.n_frames


# ------------------------------------------------------------------------------ from packets


@functools.cache
def light_of(path: str) -> VideoProbe:
    """The probe a video gets at its turn: no frame index."""
    p = open_probe(Path(path), N)
    assert not p.index_complete and p.frame_pts.shape[0] == 0
    return p


def assert_window(reader: ClipReader, plan: WindowPlan, start: int,
                  taken: Iterable[tuple[int, int]] = ()) -> Window:
    """`plan` resolves to the frames start … start+6 of the full decode, pixel for pixel."""
    full = probe_of(reader.probe.path)
    w = reader.window(plan, N, list(taken))
    assert list(w.pts) == full.frame_pts[start:start + N].tolist(), (plan, start)
    assert [f.pts for f in w.frames] == list(w.pts)
    assert [digest(f) for f in w.frames] == list(reference(full.path)[start:start + N])
    return w


@pytest.mark.parametrize("threads", [1, 2])
def test_windows_resolve_from_packets_without_an_index(video: tuple[VideoProbe, SynthSpec],
                                                       threads: int) -> None:
    """Without any frame index, a position resolves to the first frame at or after it and
    the 6 that follow in display order — exactly the full decode's frames — whether asked
    fresh, walking forward, or jumping back; a position between two frames takes the later."""
    full, _ = video
    if full.pts_interpolated:
        pytest.skip("interpolated timestamps need the index")
    light = light_of(full.path)
    rng = random.Random(full.n_frames * 7 + threads)
    starts = sorted(rng.randrange(0, full.n_frames - N + 1) for _ in range(8))
    order = [*starts, 0, full.n_frames - N, *starts[::-1][:3]]
    reader = ClipReader(light, threads)
    for s in order:
        pts = int(full.frame_pts[s])
        target = pts if s == 0 else pts - 1  # just after the frame before: still frame s
        w = assert_window(reader, WindowPlan(target), s)
        assert w.origin == "position"
    reader.close()
    for s in starts[:3]:
        fresh = ClipReader(light, threads)
        assert_window(fresh, WindowPlan(int(full.frame_pts[s])), s)
        fresh.close()


def test_bounds_taken_windows_and_fences(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """A window never overlaps a `taken` one (it starts after it), never starts past `hi`,
    and never runs into its fence: those raise ClipError instead."""
    full = probe_of(str(h264_cuts[0]))
    light = light_of(full.path)
    pts = full.frame_pts.tolist()
    reader = ClipReader(light, 1)
    # frames 40–46 are taken: a window planned at 43 starts at 47
    assert_window(reader, WindowPlan(pts[43]), 47, taken=[(pts[40], pts[46])])
    # … and one planned at 36 would overlap them: it starts at 47 too
    assert_window(reader, WindowPlan(pts[36]), 47, taken=[(pts[40], pts[46])])
    with pytest.raises(ClipError, match="no free window"):
        reader.window(WindowPlan(pts[43], hi=pts[45]), N, [(pts[40], pts[46])])
    with pytest.raises(ClipError, match="next slot"):
        reader.window(WindowPlan(pts[60], fence=pts[65]), N)
    assert_window(reader, WindowPlan(pts[60], fence=pts[67]), 60)
    reader.close()


def test_the_same_plan_gives_the_same_window_on_every_path(
        hevc10_hdr: tuple[Path, SynthSpec]) -> None:
    """A window depends on the file alone: the same plans asked of readers that got there
    differently (fresh, after other windows, after jumping back) give identical frames."""
    full = probe_of(str(hevc10_hdr[0]))
    light = light_of(full.path)
    plans = [WindowPlan(int(full.frame_pts[s]) - 3) for s in (5, 20, 33, 40, 50)]
    fresh = []
    for plan in plans:
        r = ClipReader(light, 2)
        w = r.window(plan, N)
        fresh.append((w.pts, [digest(f) for f in w.frames]))
        r.close()
    rng = random.Random(3)
    for _ in range(3):
        order = list(range(len(plans)))
        rng.shuffle(order)
        r = ClipReader(light, 2)
        for i in order:
            w = r.window(plans[i], N)
            assert (w.pts, [digest(f) for f in w.frames]) == fresh[i]
        r.close()


def test_keyframe_windows_open_at_the_nearest_keyframe_and_decode_seven_frames(
        video: tuple[VideoProbe, SynthSpec]) -> None:
    """With a tolerance, a position resolves to the keyframe nearest it within the tolerance
    and the window's bounds (origin `keyframe`), exactly the full decode's frames from there;
    a fresh reader then decodes only the window (7 frames, a frame or two of reorder drain at
    most), while the same position without tolerance decodes more (the reference frames of
    the GOP up to it). With the
    nearest keyframe out of reach (tolerance below the distance) it stays at its position."""
    full, _ = video
    if full.pts_interpolated:
        pytest.skip("interpolated timestamps need the index")
    light = light_of(full.path)
    pts = full.frame_pts.tolist()
    keys = sorted(int(k) for k in full.key_pts)
    ticks = max(1, round(1 / (full.fps * full.time_base)))
    cases = []
    for k in keys:
        i = pts.index(k)
        if i + N + 6 <= len(pts) and i >= 1:
            cases.append(i)
    if not cases:
        pytest.skip("no keyframe with room for a window after it")
    for i in cases[:3]:
        j = i + 5  # a position five frames after the keyframe
        target = pts[j]
        tol = 6 * ticks
        r = ClipReader(light, 1)
        w = assert_window(r, WindowPlan(target, tol=tol), i)
        assert w.origin == "keyframe"
        assert r.frames_decoded <= N + 2, r.frames_decoded
        cheap = r.frames_decoded
        r.close()
        r = ClipReader(light, 1)
        w = assert_window(r, WindowPlan(target), j)
        assert w.origin == "position" and r.frames_decoded > cheap
        r.close()
        r = ClipReader(light, 1)  # the keyframe is 5 frames away: a 2-frame tolerance stays
        w = assert_window(r, WindowPlan(target, tol=2 * ticks), j)
        assert w.origin == "position"
        r.close()


def test_a_keyframe_window_never_leaves_its_bounds(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """The keyframe a window may move to lies inside the plan's [lo, hi]: a keyframe just
    before `lo` is not taken (the planned position is), one inside is."""
    full = probe_of(str(h264_cuts[0]))
    light = light_of(full.path)
    pts = full.frame_pts.tolist()
    k = next(i for i, p in enumerate(pts) if p in set(full.key_pts.tolist()) and i >= 10)
    tol = 20 * (pts[1] - pts[0])
    target = pts[k + 3]
    r = ClipReader(light, 1)
    # lo after the keyframe: not reachable, the position is used
    w = assert_window(r, WindowPlan(target, pts[k + 1], pts[k + 10], NO_FENCE, tol), k + 3)
    assert w.origin == "position"
    r.close()
    r = ClipReader(light, 1)
    # the keyframe inside the bounds, its window below the fence: taken
    w = assert_window(r, WindowPlan(target, pts[k - 2], pts[k + 10], pts[k + 20], tol), k)
    assert w.origin == "keyframe"
    r.close()


def test_a_retry_whose_nearest_keyframe_is_taken_opens_at_the_next_free_one(
        h264_cuts: tuple[Path, SynthSpec]) -> None:
    """A slot's retry lies near its earlier attempt: when the last keyframe before its
    position already opened that attempt's window, the retry opens at the free keyframe
    before it (within the tolerance and bounds), with exactly the frames from there — not
    at its position, which would decode the GOP up to it."""
    full = probe_of(str(h264_cuts[0]))
    light = light_of(full.path)
    pts = full.frame_pts.tolist()
    keys = [i for i, p in enumerate(pts) if p in set(full.key_pts.tolist())]
    pair = next(((a, b) for a, b in itertools.pairwise(keys)
                 if b - a >= N + 1 and b + N + 3 <= len(pts)), None)
    if pair is None:
        pytest.skip("no two keyframes a window apart")
    k1, k2 = pair
    target = pts[k2 + 2]
    tol = target - pts[k1] + 1
    # hi just past the target: no keyframe after it is in reach
    plan = WindowPlan(target, -NO_FENCE, pts[k2 + 3], NO_FENCE, tol)
    r = ClipReader(light, 1)
    w = r.window(plan, N, taken=[(pts[k2], pts[k2 + N - 1])])
    assert (w.origin, list(w.pts)) == ("keyframe", pts[k1:k1 + N])
    r.close()
    r = ClipReader(light, 1)  # nothing taken: the nearest keyframe, k2
    assert r.window(plan, N).pts[0] == pts[k2]
    r.close()
