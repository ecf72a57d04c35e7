"""The frame index, built as work proceeds: demux-only scans of chunks of the timeline.

A video is indexed in chunks of CHUNK_SECONDS of its header's runtime. Chunk k holds the
packets, in decode order, from the first keyframe shown at or after its boundary up to the
first keyframe at or after the next one (chunk 0 from the file start, the last to the end
of the file), so the chunks tile the packet stream exactly and each is read once. Every
packet's pts, sorted, is the frame index: frame i is the i-th smallest pts. The index is
*complete* when every chunk has been scanned and each chunk ends at the keyframe where the
next begins; until then frames have no index number, only their pts (which is what
identifies them: workers find and verify windows from the packets, never from the index).

Scans see damage that does not need decoding: packets flagged corrupt, unreadable data,
holes in the timestamps (lost packets), and where the file really ends (truncated files).
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np

from dsgen.model import VideoProbe

# Runtime per chunk: ≈ 375 MB of a 50 Mbit/s 4K film (≈ 0.8 s from a cold local disk), so a
# scan is a short piece of work that a stop or a kill loses little of.
CHUNK_SECONDS = 60.0
# A step between consecutive frames longer than this many times the typical step is a hole
# in the stream (packets lost to damage: one lost frame makes a double step); variable-rate
# video (24/30 fps telecine mixes, 1/1000 time bases) stays below 1.3.
GAP_STEPS = 1.75
# Seconds before a chunk's boundary a scan seeks to when a seek landed too late (demuxers
# that seek by dts, or whose index is sparse).
SEEK_BACK_SECONDS = (0.0, 2.0, 10.0, 60.0)
# The video stream may end this long before the header's runtime without being called
# truncated (containers count the longest stream; audio often runs on a little).
TRUNCATION_SLACK_SECONDS = 2.0
TRUNCATION_SLACK_SHARE = 0.01


@dataclass
class ChunkScan:
    """What one chunk's scan found."""

    chunk: int
    pts: np.ndarray  # every packet's pts in the chunk, sorted
    keys: np.ndarray  # keyframe pts, sorted
    start_key: int | None  # the keyframe the chunk starts at (None: chunk 0 / no packets)
    end_key: int | None  # the keyframe where the next chunk starts (None: end of file)
    holes: int = 0  # packets without pts
    damage: list[tuple[str, int, int]] = field(default_factory=list)  # (what, first, last)
    eof: bool = False  # the scan reached the end of the file
    error: str | None = None  # the scan could not be done (the file changed or vanished)

    def blob(self) -> bytes:
        """The arrays, compact, for the state database."""
        buf = io.BytesIO()
        np.savez(buf, pts=self.pts, keys=self.keys)
        return buf.getvalue()

    @staticmethod
    def arrays(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
        """(pts, keys) from `blob`."""
        a = np.load(io.BytesIO(blob))
        return a["pts"], a["keys"]


def chunk_count(probe: VideoProbe) -> int:
    """How many chunks the video's header runtime makes (at least one)."""
    secs = float((probe.end_pts - probe.first_pts) * probe.time_base)
    return max(1, int(np.ceil(secs / CHUNK_SECONDS - 1e-9)))


def boundary(probe: VideoProbe, k: int) -> int:
    """The pts where chunk k's timeline starts."""
    return probe.first_pts + round(Fraction(k) * Fraction(CHUNK_SECONDS) / probe.time_base)


def scan_chunk(probe: VideoProbe, k: int) -> ChunkScan:
    """Demux chunk `k` of the video (no decoding)."""
    last = chunk_count(probe) - 1
    lo = None if k <= 0 else boundary(probe, k)  # k < 0: the whole file in one scan
    hi = None if k >= last or k < 0 else boundary(probe, k + 1)
    try:
        container = av.open(probe.path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as e:
        return ChunkScan(k, _empty(), _empty(), None, None, error=f"cannot open: {e}")
    try:
        stream = container.streams[probe.stream_index]
        stream.codec_context.skip_frame = "ALL"
        for back in SEEK_BACK_SECONDS:
            out = _scan(container, stream, probe, k, lo, hi, back)
            if out is not None:
                return out
        return ChunkScan(k, _empty(), _empty(), None, None,
                         error=f"no seek landed before chunk {k}'s first keyframe")
    finally:
        container.close()


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _scan(container: Any, stream: Any, probe: VideoProbe, k: int, lo: int | None,
          hi: int | None, back: float) -> ChunkScan | None:
    """One try: seek before the chunk, read to its end; None if the seek landed too late."""
    if lo is not None:
        target = lo - round(Fraction(back) / probe.time_base)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return None
    pts: list[int] = []
    keys: list[int] = []
    holes = 0
    damage: list[tuple[str, int, int]] = []
    started = lo is None
    start_key: int | None = None
    first_seen: int | None = None
    end_key: int | None = None
    eof = False
    it = container.demux(stream)
    while True:
        try:
            packet = next(it, None)
        except av.error.FFmpegError as e:
            here = pts[-1] if pts else (lo or probe.first_pts)
            damage.append(("unreadable", here, hi if hi is not None else probe.end_pts))
            if not started:
                return None
            del e
            break
        if packet is None or packet.size == 0:
            eof = True
            break
        p = packet.pts
        key = bool(packet.is_keyframe) and p is not None
        if not started:
            if key and first_seen is None:
                first_seen = p
                if lo is not None and p > lo:
                    return None  # landed after the chunk's first keyframe: seek earlier
            if key and lo is not None and p >= lo:
                started = True
                start_key = p
            else:
                continue
        if key and hi is not None and p >= hi:
            end_key = p
            break
        if p is None:
            holes += 1
            continue
        pts.append(p)
        if key:
            keys.append(p)
        if packet.is_corrupt:
            damage.append(("corrupt", p, p))
    if not started and lo is not None and not eof:
        return None
    arr = np.unique(np.asarray(pts, dtype=np.int64))
    damage.extend(("gap", a, b) for a, b in gaps(arr))
    if eof and arr.shape[0]:
        end = int(arr[-1]) + probe.frame_ticks
        if truncated(probe, end):
            damage.append(("truncated", int(arr[-1]), probe.end_pts))
    return ChunkScan(k, arr, np.unique(np.asarray(keys, dtype=np.int64)), start_key,
                     end_key, holes, damage, eof)


def gaps(pts: np.ndarray, typical_step: float | None = None) -> list[tuple[int, int]]:
    """(before, after) pts of every hole in sorted `pts`: a step over GAP_STEPS typical ones
    (the median step, or `typical_step` — a frame's duration — for a few pts)."""
    if pts.shape[0] < (2 if typical_step else 4):
        return []
    steps = np.diff(pts)
    typical = float(typical_step if typical_step else np.median(steps))
    if typical <= 0:
        return []
    at = np.flatnonzero(steps > GAP_STEPS * typical)
    return [(int(pts[i]), int(pts[i + 1])) for i in at]


def truncated(probe: VideoProbe, end: int) -> bool:
    """Whether a video stream ending at pts `end` is shorter than its header says."""
    header = float((probe.end_pts - probe.first_pts) * probe.time_base)
    slack = max(TRUNCATION_SLACK_SECONDS, TRUNCATION_SLACK_SHARE * header)
    return float((probe.end_pts - end) * probe.time_base) > slack


def assemble(scans: list[ChunkScan]) -> tuple[np.ndarray, np.ndarray] | None:
    """The complete index (frame pts, keyframe pts) from every chunk's scan, or None if they
    do not tile the stream (a chunk's end keyframe is not where the next one starts)."""
    scans = sorted(scans, key=lambda c: c.chunk)
    if not scans or [c.chunk for c in scans] != list(range(len(scans))):
        return None
    for a, b in itertools.pairwise(scans):
        if a.eof:
            break  # the file ended early (truncated): later chunks are empty
        if a.end_key != b.start_key:
            return None
    pts = np.unique(np.concatenate([c.pts for c in scans]))
    keys = np.unique(np.concatenate([c.keys for c in scans]))
    return pts, keys
