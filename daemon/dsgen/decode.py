"""Decoding: frame-exact clips of consecutive frames, walking forward and seeking when cheaper."""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

import av
import numpy as np

from dsgen.errors import VideoError
from dsgen.probe import VideoProbe

# Re-seeks tried when a seek lands after the wanted frame (sparse or wrong index).
SEEK_FALLBACKS = 3


class ClipError(Exception):
    """A clip could not be decoded exactly (missing frames, corrupt data, end of stream)."""


class ClipReader:
    """Decodes windows of consecutive frames; call `clip` with non-decreasing starts for speed."""

    def __init__(self, probe: VideoProbe, threads: int = 1) -> None:
        self.probe = probe
        self.pts = probe.frame_pts
        self.keys = probe.key_pts.tolist()
        try:
            self.container = av.open(probe.path, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError) as e:
            raise VideoError(probe.path, "decode", f"cannot open: {e}") from None
        self.stream = self.container.streams[probe.stream_index]
        cc = self.stream.codec_context
        cc.thread_type = "AUTO"  # frame threads: 1.2–1.5× over PyAV's default slice threads
        cc.thread_count = max(1, threads)
        self._packets: Any = None
        self._buffer: deque[Any] = deque()  # decoded frames not yet handed out, display order
        self._last_pts: int | None = None  # pts of the newest decoded frame
        self._eof = False
        self._skip = "DEFAULT"
        self.frames_decoded = 0
        self.seeks = 0

    def close(self) -> None:
        """Release the file and decoder."""
        self.container.close()

    def clip(self, start: int, n: int) -> list[Any]:
        """Frames start … start+n-1 (by index in the probe's pts list), exactly, or ClipError."""
        if start < 0 or start + n > self.pts.shape[0]:
            raise ClipError(f"window {start}+{n} outside the video's {self.pts.shape[0]} frames")
        want = [int(p) for p in self.pts[start:start + n]]
        self._position_for(want[0])
        out: list[Any] = []
        for fallback in range(1, SEEK_FALLBACKS + 2):
            out = self._collect(want)
            if out:
                return out
            # The walk passed the window (seek landed late or frames were dropped): go back further.
            self._seek(self._key_before(want[0], back=fallback))
        raise ClipError(f"frames at pts {want[0]}… could not be reached by seeking")

    # -- internals -------------------------------------------------------------------------

    def _key_before(self, pts: int, back: int = 0) -> int:
        i = bisect.bisect_right(self.keys, pts) - 1 - back
        return int(self.keys[max(i, 0)])

    def _position_for(self, first: int) -> None:
        """Seek if the keyframe before `first` lies beyond where decoding stands (or behind us)."""
        key = self._key_before(first)
        if self._packets is None:
            self._seek(key)
            return
        behind = self._last_pts is not None and first <= self._last_pts and not any(
            f.pts == first for f in self._buffer)
        if behind or self._eof or (self._last_pts is not None and key > self._last_pts):
            self._seek(key)

    def _seek(self, key_pts: int) -> None:
        self.container.seek(key_pts, stream=self.stream, backward=True, any_frame=False)
        self._packets = self.container.demux(self.stream)
        self._buffer.clear()
        self._last_pts = None
        self._eof = False
        self.seeks += 1

    def _next_frame(self, first: int) -> Any:
        """The next decoded frame in display order, or None at end of stream."""
        cc = self.stream.codec_context
        while not self._buffer:
            if self._eof:
                return None
            packet = next(self._packets, None)
            if packet is None:
                self._eof = True
                cc.skip_frame = self._skip = "DEFAULT"
                continue
            # Frames shown before the window are never used: let the decoder skip the
            # non-reference ones (2.4–8× faster approach; reference frames still decode).
            skip = packet.pts is not None and packet.pts < first and packet.size > 0
            mode: Any = "NONREF" if skip else "DEFAULT"
            if self._skip != mode:
                cc.skip_frame = self._skip = mode
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a corrupt packet: the exact-pts check rejects what it breaks
            for frame in frames:
                if frame.pts is not None:
                    self.frames_decoded += 1
                    self._last_pts = frame.pts
                    self._buffer.append(frame)
        return self._buffer.popleft()

    def _collect(self, want: list[int]) -> list[Any]:
        """Walk forward to the window and return its frames, [] if the walk overshot it."""
        got: list[Any] = []
        while True:
            frame = self._next_frame(want[0])
            if frame is None:
                break
            p = frame.pts
            if p < want[0]:
                continue
            if not got and p > want[0]:
                self._buffer.appendleft(frame)
                return []
            if p != want[len(got)]:
                self._buffer.appendleft(frame)
                raise ClipError(f"frame with pts {want[len(got)]} missing (decoder gave {p})")
            got.append(frame)
            if len(got) == len(want):
                return got
        if not got:
            raise ClipError("end of stream before the clip (truncated file?)")
        raise ClipError(f"end of stream after {len(got)} of {len(want)} frames (truncated file?)")


def frame_indices(probe: VideoProbe, start: int, n: int) -> list[int]:
    """Frame indices of a window (for provenance)."""
    return list(range(start, start + n))


def window_pts(probe: VideoProbe, start: int, n: int) -> list[int]:
    """pts of a window (for provenance)."""
    return [int(p) for p in np.asarray(probe.frame_pts[start:start + n])]
