"""Decoding: frame-exact clips of consecutive frames, walking forward and seeking when cheaper."""

from __future__ import annotations

import bisect
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Any

import av
import numpy as np

from dsgen.errors import VideoError
from dsgen.model import VideoProbe
from dsgen.probe import next_pts, nominal_duration

# Re-seeks tried when a seek lands after the wanted frame (dts-seeking demuxer, sparse or
# wrong index), each one aimed earlier than the last.
SEEK_FALLBACKS = 3
# Frames before a keyframe that a seek aims at once a seek has landed after its keyframe.
# Demuxers without an index (MPEG-TS, MPEG-PS) seek by dts, and a keyframe's dts lies before
# its pts by the reorder delay (1–4 frames with B-frames): aiming at the keyframe's own pts
# lands on the packet after it and loses the whole GOP.
SEEK_LEAD = 8
# Seek target meaning "the start of the file" (below any real timestamp).
BEFORE_START = -(1 << 62)
# Buffered in place of a decoded frame that has no pts and none can be given: a window
# must not span it, or the clip would silently skip a frame.
_HOLE = object()


class ClipError(Exception):
    """A clip could not be decoded exactly (missing frames, corrupt data, end of stream)."""


class ClipReader:
    """Decodes windows of consecutive frames; call `clip` with non-decreasing starts for speed.

    `seeks` counts container seeks and `frames_decoded` every frame the decoder produced
    (frames still inside the decoder when it is flushed for a seek are drained and counted).
    `skip_nonref` (default on) lets the decoder skip non-reference frames shown before a
    window; it is off when the probe had to interpolate frame timestamps.
    """

    def __init__(self, probe: VideoProbe, threads: int = 1) -> None:
        self.probe = probe
        self.pts = probe.frame_pts
        self.keys = probe.key_pts.tolist()
        self._threads = max(1, threads)
        try:
            self._open()
        except (av.error.FFmpegError, OSError) as e:
            raise VideoError(probe.path, "decode", f"cannot open: {e}") from None
        # Interpolated timestamps are only reproducible if every frame is decoded.
        self.skip_nonref = not probe.pts_interpolated
        self._packets: Any = None
        self._buffer: deque[Any] = deque()  # decoded frames not yet handed out, display order
        self._last_pts: int | None = None  # pts of the newest frame buffered (decoded, usable)
        self._prev: tuple[int, int | None] | None = None  # (pts, duration) of the last frame out
        self._eof = False
        # The decoder was drained after a window's last packet: nothing more is fed until the
        # next seek (the window's frames came out without decoding the packets after it).
        self._drained = False
        self._lead = 0  # frames before the keyframe that seeks aim at (SEEK_LEAD once needed)
        self._sync: int | None = None  # pts of the first keyframe fed since the last seek
        self.frames_decoded = 0
        self.seeks = 0
        self._stop_after: frozenset[int] | None = None  # the window's pts, when draining after it
        self._stop_last: int | None = None  # its last pts
        self._fed: set[int] = set()  # pts of the packets fed to the decoder since the last seek

    def close(self) -> None:
        """Release the file and decoder."""
        self._flush_decoder()
        self.container.close()

    def _open(self) -> None:
        self.container: Any = av.open(self.probe.path, metadata_errors="ignore")
        self.stream: Any = self.container.streams[self.probe.stream_index]
        cc = self.stream.codec_context
        cc.thread_type = "AUTO"  # frame threads: 1.2–1.5× over PyAV's default slice threads
        cc.thread_count = self._threads
        self._skip = "DEFAULT"
        self._nominal = nominal_duration(self.stream)  # as the probe's decoding pass has it

    def clip(self, start: int, n: int, then: Iterable[int] | None = None) -> list[Any]:
        """Frames start … start+n-1 (by index in the probe's pts list), exactly, or ClipError.

        `then` lists the starts the caller may ask for next (None: unknown). When none of
        them can be reached by walking on from this window, decoding stops at the window's
        last packet and the decoder is drained: the packets after the window are not decoded
        just to push its last frames out of the decoder's reorder delay, and non-reference
        frames shown after it are skipped."""
        if start < 0 or n < 1 or start + n > self.pts.shape[0]:
            raise ClipError(f"window {start}+{n} outside the video's {self.pts.shape[0]} frames")
        want = [int(p) for p in self.pts[start:start + n]]
        nxt = None if then is None else [int(self.pts[t]) for t in then
                                          if 0 <= t < self.pts.shape[0]]
        walk_on = nxt is None or any(self._walkable(want[-1], t) for t in nxt)
        self._stop_after = None if walk_on else frozenset(want)
        self._stop_last = None if walk_on else want[-1]
        tried: set[int] = set()
        target = self._position_for(want[0])
        if target is not None:
            tried.add(target)
        lead, back = self._lead, 0
        while True:
            out = self._collect(want)
            if out:
                if back:
                    self._lead = lead  # an earlier keyframe helped, not the lead: forget it
                return out
            # The walk passed the window or hit the end before it: the seek landed after its
            # keyframe (dts-seeking demuxer) or the index is off. Aim before the keyframe
            # (kept for later seeks if that is what works), then one keyframe further back
            # on every retry.
            self._lead = SEEK_LEAD
            target = self._target(want[0], back)
            while target in tried and target != BEFORE_START:
                back += 1
                target = self._target(want[0], back)
            if target in tried or len(tried) > SEEK_FALLBACKS:
                self._lead = lead
                why = "end of stream before the clip (truncated file?)" if self._eof else \
                    "decoding passed it"
                raise ClipError(f"frames at pts {want[0]}… could not be reached by seeking "
                                f"({why})")
            tried.add(target)
            self._seek(target)

    # -- internals -------------------------------------------------------------------------

    def _walkable(self, last: int, first: int) -> bool:
        """Whether a window starting at pts `first` is reached by walking on from a window
        ending at pts `last` (it lies ahead and its keyframe is not beyond the window)."""
        key = self._key_before(first)
        return first > last and key is not None and key <= last

    def _key_before(self, pts: int) -> int | None:
        i = bisect.bisect_right(self.keys, pts) - 1
        return int(self.keys[i]) if i >= 0 else None

    def _target(self, first: int, back: int) -> int:
        """Seek target for the frame at pts `first`: its keyframe, `back` keyframes earlier,
        minus the lead; the start of the file for the first keyframe."""
        i = bisect.bisect_right(self.keys, first) - 1 - back
        if i <= 0:
            return BEFORE_START  # the first GOP: seeking to the file start costs nothing
        key = int(self.keys[i])
        if not self._lead:
            return key
        j = int(np.searchsorted(self.pts, key)) - self._lead
        return int(self.pts[j]) if j > 0 else BEFORE_START

    def _position_for(self, first: int) -> int | None:
        """Seek if the keyframe before `first` lies beyond where decoding stands (or behind us);
        return the seek target, None if the walk goes on."""
        if self._packets is not None and not self._eof:
            buffered = any(f is not _HOLE and f.pts == first for f in self._buffer)
            behind = self._last_pts is not None and first <= self._last_pts and not buffered
            key = self._key_before(first)
            ahead = self._last_pts is not None and key is not None and key > self._last_pts
            # after a drain only buffered frames can be handed out without a seek
            if not behind and not ahead and (buffered or not self._drained):
                return None
        target = self._target(first, 0)
        self._seek(target)
        return target

    def _seek(self, target: int) -> None:
        self._flush_decoder()
        self._buffer.clear()
        self._last_pts = None
        self._prev = None
        self._eof = True  # until the seek succeeded
        self._drained = False
        self._fed.clear()
        self.seeks += 1
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as e:
            if target != BEFORE_START:
                raise ClipError(f"seek to {target} failed: {e}") from None
            # Some demuxers refuse targets before the first timestamp (Matroska without
            # cues, e.g. a truncated file): open the file again, which starts at its start.
            self.container.close()
            try:
                self._open()
            except (av.error.FFmpegError, OSError) as e2:
                raise ClipError(f"cannot reopen the file: {e2}") from None
        self._packets = self.container.demux(self.stream)
        self._eof = False
        # From the file start everything decodes; after any other seek, only frames shown
        # from the first keyframe fed onward are sure to be decoded from their references.
        self._sync = BEFORE_START if target == BEFORE_START else None

    def _flush_decoder(self) -> None:
        """Drain what the decoder still holds (decoded already, or being decoded by frame
        threads, which a seek's flush would wait for anyway) and count it."""
        if self._packets is None or self._drained or self._eof:
            return
        with contextlib.suppress(av.error.FFmpegError):
            self.frames_decoded += len(self.stream.codec_context.decode(None))
        self._drained = True

    def _drain(self) -> None:
        """The window's packets are all fed: take its last frames out without feeding more."""
        cc = self.stream.codec_context
        try:
            frames = cc.decode(None)
        except av.error.FFmpegError:
            frames = []
        self._drained = True
        for frame in frames:
            self.frames_decoded += 1
            self._accept(frame)

    def _next_frame(self, first: int) -> Any:
        """The next decoded frame in display order, or None at end of stream (or when the
        decoder was drained after the window's last packet)."""
        cc = self.stream.codec_context
        while not self._buffer:
            if self._eof or self._drained:
                return None
            try:
                packet = next(self._packets, None)
            except av.error.FFmpegError:
                packet = None  # unreadable data: treat as the end of what can be decoded
            if packet is None:
                self._eof = True
                cc.skip_frame = self._skip = "DEFAULT"
                continue
            if self._sync is None and packet.is_keyframe and packet.size > 0:
                self._sync = packet.pts if packet.pts is not None else BEFORE_START
            # Frames shown before the window are never used: let the decoder skip the
            # non-reference ones (2.4–8× faster approach; reference frames still decode);
            # so are those shown after it when nothing follows (only references count).
            after = self._stop_last is not None and packet.pts is not None and \
                packet.pts > self._stop_last
            skip = (self.skip_nonref and packet.pts is not None and packet.size > 0
                    and (packet.pts < first or after))
            mode: Any = "NONREF" if skip else "DEFAULT"
            if self._skip != mode:
                cc.skip_frame = self._skip = mode
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                frames = []  # a corrupt packet: the exact-pts check rejects what it breaks
            for frame in frames:
                self.frames_decoded += 1
                self._accept(frame)
            stop = self._stop_after
            if packet.pts is not None:
                self._fed.add(packet.pts)
                if stop is not None and packet.pts in stop and stop <= self._fed:
                    self._drain()  # every packet of the window is in: nothing after it
        return self._buffer.popleft()

    def _accept(self, frame: Any) -> None:
        """Time-stamp a decoded frame (interpolating like the probe did) and buffer it."""
        pts = frame.pts
        if pts is None and self.probe.pts_interpolated and self._prev is not None:
            pts = next_pts(self._prev[0], self._prev[1], self._nominal)
            frame.pts = pts
        if pts is None:
            self._prev = None  # no anchor for the frames that follow
            if self._sync is not None:
                self._buffer.append(_HOLE)
            return
        self._prev = (pts, frame.duration)
        if self._sync is None or pts < self._sync:
            return  # decoded before the first keyframe: its references may be missing
        self._last_pts = pts
        self._buffer.append(frame)

    def _collect(self, want: list[int]) -> list[Any]:
        """Walk forward to the window and return its frames, [] if the walk passed the window
        or the stream ended before it."""
        got: list[Any] = []
        while True:
            frame = self._next_frame(want[0])
            if frame is None:
                break
            if frame is _HOLE:
                if got:
                    raise ClipError(f"a frame without timestamp follows pts {got[-1].pts}")
                continue
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
            return []
        raise ClipError(f"end of stream after {len(got)} of {len(want)} frames (truncated file?)")

