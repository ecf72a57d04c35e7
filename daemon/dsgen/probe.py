"""Probing: what a video is (frames, keyframes, geometry, colour, letterbox) before planning."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from dsgen.colour import colour_info, luma_small
from dsgen.errors import VideoError
from dsgen.model import ColourInfo, VideoProbe

# Frames sampled across the runtime to find letterbox/pillarbox bars: enough to
# see bright content in every row of a dark film, few enough to cost < 1 s.
BAR_SAMPLES = 9
# A row/column whose brightest sampled mean stays below this (0–255 full range)
# is a bar; real content in 9 frames spread over a film is never that dark.
BAR_LEVEL = 24.0
# Pixels kept clear of a detected bar edge: codecs ring and blur the boundary.
BAR_MARGIN = 4
# Bars larger than this share of a dimension are a dark video, not a letterbox.
BAR_MAX_SHARE = 0.35
# Packets read at the start to see whether timestamps are missing (then the file is
# indexed by decoding): MPEG-PS files that pack frames lack most of them from the start.
PTS_CHECK_PACKETS = 64
# Packets from the start within which a first frame must decode (past a few damaged ones;
# a decoder's reorder delay is at most 16 frames).
FIRST_FRAME_PACKETS = 256


@dataclass(frozen=True)
class QuickProbe:
    """What the container header says (milliseconds to read): enough to plan shares."""

    path: str
    size: int
    mtime_ns: int
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str


def quick_probe(path: Path) -> QuickProbe:
    """Open `path` and read its header; raise VideoError with a clear reason if unusable."""
    spath = str(path)
    size, mtime_ns = _stat(path)
    container = _open(path)
    try:
        stream = _video_stream(container, spath)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            duration = stream.frames / fps if fps > 0 else 0.0
        cc = stream.codec_context
        if fps <= 0:
            raise VideoError(spath, "probe", "the video stream has no frame rate",
                             "remux the file (e.g. to .mkv) so its timing is known")
        return QuickProbe(spath, size, mtime_ns, duration, fps, cc.width, cc.height, cc.name)
    finally:
        container.close()


def _stat(path: Path) -> tuple[int, int]:
    spath = str(path)
    try:
        size, mtime_ns = file_key(path)
    except FileNotFoundError:
        raise VideoError(spath, "open", "file not found",
                         "check the path in the config or whether the drive is mounted") from None
    except OSError as e:
        raise VideoError(spath, "open", f"cannot stat: {e.strerror}", "check permissions") from None
    if size == 0:
        raise VideoError(spath, "open", "the file is empty (0 bytes)",
                         "re-copy the file; an interrupted copy leaves empty files")
    return size, mtime_ns


def _open(path: Path) -> Any:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(str(path), "open", f"not a readable video container ({e})",
                         "check that this is a video file and not damaged") from None


def _video_stream(container: Any, spath: str) -> Any:
    for s in container.streams.video:
        if s.codec_context is not None and not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    raise VideoError(spath, "probe", "no video stream (audio-only or data file)",
                     "remove it from the config or the watched folder")


def file_key(path: Path) -> tuple[int, int]:
    """(size, mtime_ns): with the path, what identifies a video file's version."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def open_probe(path: Path, min_frames: int) -> VideoProbe:
    """What a video is, read in seconds whatever its size: header (rate, runtime), the first
    frame (colour, size), the picture inside bars (keyframes across the runtime) — no frame
    index: `index.scan_chunk` builds it as work proceeds. Files whose packets lack
    timestamps are indexed by decoding at once (their windows need the index)."""
    return _probe(path, min_frames, full=False)


def probe_video(path: Path, min_frames: int) -> VideoProbe:
    """`open_probe` plus the complete frame index from a scan of every packet."""
    return _probe(path, min_frames, full=True)


def _probe(path: Path, min_frames: int, full: bool) -> VideoProbe:
    spath = str(path)
    size, mtime_ns = _stat(path)
    container = _open(path)
    try:
        if not full:
            full = _packets_lack_pts(container, _video_stream(container, spath))
            container.close()
            container = _open(path)  # from the start again (some demuxers cannot seek there)
        return _probe_open(container, path, size, mtime_ns, min_frames, full)
    except av.error.FFmpegError as e:
        raise VideoError(spath, "probe", f"decoding failed: {e}",
                         "the file is probably damaged; re-copy or remux it") from None
    finally:
        container.close()


def _probe_open(container: Any, path: Path, size: int, mtime_ns: int, min_frames: int,
                full: bool) -> VideoProbe:
    spath = str(path)
    stream = _video_stream(container, spath)
    frame_pts = key_pts = np.zeros(0, dtype=np.int64)
    interpolated = False
    indexed = full
    if indexed:
        frame_pts, key_pts, interpolated = _scan_index(container, stream)
        if frame_pts.shape[0] < min_frames:
            raise VideoError(spath, "probe", f"only {frame_pts.shape[0]} decodable frame(s); "
                             f"a clip needs {min_frames}", "use a longer video")
        if key_pts.shape[0] == 0:
            key_pts = frame_pts[:1].copy()
    first = _first_frame(container, stream)
    if first is None:
        packets = _count_packets(container, stream, PTS_CHECK_PACKETS)
        if packets:
            start = stream.start_time if stream.start_time is not None else 0
            end = _header_end(container, stream, start)
            secs = float((end - start) * stream.time_base) if end is not None else 0.0
            raise VideoError(spath, "damaged", f"no frame decodes: damaged from 0.0 s to "
                             f"{secs:.1f} s ({packets}+ packets read, none decodes)",
                             "re-copy the file from its source; its start (or the data its "
                             "index points at) is probably missing")
        raise VideoError(spath, "probe", "no frame could be decoded",
                         "the file is probably damaged or uses an unsupported codec")
    info = colour_info(stream, first)
    cc = stream.codec_context
    sar = cc.sample_aspect_ratio or stream.sample_aspect_ratio or Fraction(1)
    sar = Fraction(sar) if Fraction(sar) > 0 else Fraction(1)
    tb = Fraction(stream.time_base)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if fps <= 0 and frame_pts.shape[0] > 1:
        span = float((frame_pts[-1] - frame_pts[0]) * tb)
        fps = (frame_pts.shape[0] - 1) / span if span > 0 else 24.0
    if fps <= 0:
        raise VideoError(spath, "probe", "the video stream has no frame rate",
                         "remux the file (e.g. to .mkv) so its timing is known")
    ticks = nominal_duration(stream)
    first_pts = int(frame_pts[0]) if frame_pts.shape[0] else _first_pts(first, stream)
    end_pts = _header_end(container, stream, first_pts)
    if end_pts is None:
        if not frame_pts.shape[0]:
            raise VideoError(spath, "probe", "the header gives no duration",
                             "remux the file (e.g. to .mkv) so its runtime is known")
        end_pts = int(frame_pts[-1]) + ticks
    header_frames = max(0, round(float((end_pts - first_pts) * tb) * fps))
    if not indexed and header_frames < min_frames:
        raise VideoError(spath, "probe", f"only {header_frames} frame(s) per the header; a "
                         f"clip needs {min_frames}", "use a longer video")
    width, height = first.width, first.height
    content = _detect_bars(container, stream, first_pts, end_pts, info, width, height)
    return VideoProbe(path=spath, size=size, mtime_ns=mtime_ns, stream_index=stream.index,
                      codec=cc.name, pix_fmt=first.format.name, width=width, height=height,
                      sar=sar, fps=fps, time_base=tb,
                      frame_pts=frame_pts, key_pts=key_pts, colour=info, content=content,
                      pts_interpolated=interpolated, first_pts=first_pts, end_pts=end_pts,
                      frame_ticks=ticks, header_frames=header_frames,
                      index_complete=bool(frame_pts.shape[0]))


def _packets_lack_pts(container: Any, stream: Any) -> bool:
    """Whether packets near the start lack timestamps (MPEG-PS packing several frames into
    one PES, raw streams): such files are indexed by decoding."""
    n = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return True
            n += 1
            if n >= PTS_CHECK_PACKETS:
                break
    except av.error.FFmpegError:
        pass
    return False


def _count_packets(container: Any, stream: Any, limit: int) -> int:
    """Packets with data from the file start (up to `limit`)."""
    n = 0
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            n += packet.size > 0
            if n >= limit:
                break
    except av.error.FFmpegError:
        pass
    return n


def _first_pts(frame: Any, stream: Any) -> int:
    if frame.pts is not None:
        return int(frame.pts)
    return int(stream.start_time) if stream.start_time is not None else 0


def _header_end(container: Any, stream: Any, first_pts: int) -> int | None:
    """Where the header says the video ends (pts): its start plus the stream's (else the
    container's) duration."""
    tb = Fraction(stream.time_base)
    if stream.duration is not None and stream.duration > 0:
        start = stream.start_time if stream.start_time is not None else first_pts
        return int(start + stream.duration)
    if container.duration is not None and container.duration > 0:
        start_us = container.start_time if container.start_time is not None else 0
        return round(Fraction(start_us + container.duration, 1_000_000) / tb)
    if stream.frames:
        rate = stream.average_rate or stream.guessed_rate
        if rate:
            return int(first_pts + round(Fraction(stream.frames) / Fraction(rate) / tb))
    return None


def nominal_duration(stream: Any) -> int:
    """One frame's duration in the stream's time-base ticks, from its rate (at least 1)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0 or not stream.time_base:
        return 1
    return max(1, round(1 / (Fraction(rate) * Fraction(stream.time_base))))


def next_pts(prev_pts: int, prev_duration: int | None, nominal: int) -> int:
    """The pts of a frame that has none: the previous frame's pts plus its duration.

    The probe's decoding pass and ClipReader both use this on the same decoded frames, so
    an interpolated pts names the same frame in the index and in a clip."""
    return prev_pts + (prev_duration if prev_duration and prev_duration > 0 else nominal)


def _scan_index(container: Any, stream: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """All frame pts (display order) and keyframe pts, from a demux-only pass (no decoding);
    the flag says whether some pts had to be interpolated."""
    pts: list[int] = []
    keys: list[int] = []
    missing = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream flush packet
        if packet.pts is None:
            missing += 1
            continue
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    if missing:
        # Packets without pts (raw elementary streams, MPEG-PS packing several small frames
        # into one PES): a frame left out of the index would silently make a "consecutive"
        # window skip it, so decode once and index every frame the decoder outputs.
        return _scan_by_decoding(container, stream)
    return (np.unique(np.asarray(pts, dtype=np.int64)),
            np.unique(np.asarray(keys, dtype=np.int64)), False)


def _scan_by_decoding(container: Any, stream: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    container.seek(0, stream=stream, backward=True, any_frame=False)
    stream.thread_type = "AUTO"
    nominal = nominal_duration(stream)
    pts: list[int] = []
    keys: list[int] = []
    prev: tuple[int, int | None] | None = None
    interpolated = False
    for frame in container.decode(stream):
        p = frame.pts
        if p is None and prev is not None:
            p = next_pts(prev[0], prev[1], nominal)
            interpolated = True
        if p is None:
            prev = None  # before the first timestamp: nothing to count from (ClipReader agrees)
            continue
        prev = (p, frame.duration)
        pts.append(p)
        if frame.key_frame:
            keys.append(p)
    return (np.unique(np.asarray(pts, dtype=np.int64)),
            np.unique(np.asarray(keys, dtype=np.int64)), interpolated)


def _first_frame(container: Any, stream: Any) -> Any:
    """The first frame that decodes, within FIRST_FRAME_PACKETS packets of the start (a
    packet that fails to decode is passed over: damage at the start is not the whole file)."""
    container.seek(0, stream=stream, backward=True, any_frame=False)
    tried = 0
    try:
        for packet in container.demux(stream):
            tried += 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                frames = []
            if frames:
                return frames[0]
            if tried >= FIRST_FRAME_PACKETS:
                return None
    except av.error.FFmpegError:
        return None
    return None


def _detect_bars(container: Any, stream: Any, first_pts: int, end_pts: int,
                 info: ColourInfo, width: int, height: int) -> tuple[int, int, int, int]:
    """The picture rectangle inside black bars, from the keyframes at or before BAR_SAMPLES
    positions spread over the runtime (only keyframes are decoded). Stops early once bright
    content reaches every edge: more frames can only shrink the bars, so the result is the
    same as with every sample."""
    row_max = np.zeros(height, dtype=np.float32)
    col_max = np.zeros(width, dtype=np.float32)
    cc = stream.codec_context
    cc.skip_frame = "NONKEY"  # after a backward seek the first frame out is the keyframe
    seen = 0
    try:
        for i in range(BAR_SAMPLES):
            target = first_pts + (end_pts - first_pts) * (2 * i + 1) // (2 * BAR_SAMPLES)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
                frame = next(iter(container.decode(stream)), None)
            except av.error.FFmpegError:
                frame = None
            if frame is None or frame.width != width or frame.height != height:
                continue
            y = luma_small(frame, 1, info)
            np.maximum(row_max, y.mean(axis=1), out=row_max)
            np.maximum(col_max, y.mean(axis=0), out=col_max)
            seen += 1
            if not any((_bar_extent(row_max), _bar_extent(row_max[::-1]),
                        _bar_extent(col_max), _bar_extent(col_max[::-1]))):
                break
    finally:
        cc.skip_frame = "DEFAULT"
    if seen == 0:
        return 0, 0, width, height
    top, bottom = _bar_extent(row_max), _bar_extent(row_max[::-1])
    left, right = _bar_extent(col_max), _bar_extent(col_max[::-1])
    y0, y1 = _inner(top, height - bottom, height)
    x0, x1 = _inner(left, width - right, width)
    return x0, y0, x1, y1


def _bar_extent(profile: np.ndarray) -> int:
    """How many leading entries of `profile` are bar (dark in every sampled frame)."""
    bright = np.nonzero(profile >= BAR_LEVEL)[0]
    extent = int(bright[0]) if bright.size else profile.shape[0]
    return extent if extent <= BAR_MAX_SHARE * profile.shape[0] else 0


def _inner(lo: int, hi: int, full: int) -> tuple[int, int]:
    """Shrink [lo, hi) away from detected bars by a margin; a side without a bar keeps every
    row/column (no chroma alignment: crops convert at any position, odd ones included)."""
    if lo > 0:
        lo += BAR_MARGIN
    if hi < full:
        hi -= BAR_MARGIN
    return lo, min(full, max(hi, lo + 2))


def probe_summary(p: VideoProbe) -> str:
    """One line a person can read: size, rate, frames, colour, bars."""
    x0, y0, x1, y1 = p.content
    bars = "" if (x0, y0, x1, y1) == (0, 0, p.width, p.height) else \
        f", picture {x1 - x0}×{y1 - y0} at ({x0},{y0}) inside bars"
    sar = "" if p.sar == 1 else f", SAR {p.sar.numerator}:{p.sar.denominator}"
    about = "" if p.index_complete else "≈"
    return (f"{p.codec} {p.width}×{p.height}{sar} {p.fps:.3f} fps, {about}{p.n_frames} frames "
            f"({p.duration_s / 60:.1f} min), {p.colour.describe()}{bars}")
