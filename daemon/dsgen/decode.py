"""Decoding: windows of consecutive frames, found from the packets and verified against them.

A window is asked for by position (`WindowPlan`: a planned pts, the stretch it must start
in, how far it may move to open at a keyframe). The reader resolves it from the packets it
demuxes — no frame index is needed — as the first frame at or after the position (or the
nearest keyframe), and hands out exactly the `n` packets' frames that follow in display
order: none missing, no hole in the timestamps, no decode error between their keyframe and
the last of them. What a window is depends on the file alone, never on how the reader got
there: a failure on any path but the canonical one (decoding restarted at the window's
keyframe) is retried on the canonical one.
"""

from __future__ import annotations

import bisect
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from dsgen.errors import VideoError
from dsgen.index import GAP_STEPS, gaps, truncated
from dsgen.model import NO_FENCE, VideoProbe
from dsgen.probe import next_pts, nominal_duration

# Re-seeks tried when a seek lands after the wanted position (dts-seeking demuxer, sparse or
# wrong index), each one aimed earlier than the last.
SEEK_FALLBACKS = 3
# Frames before a keyframe that a re-seek aims at. Demuxers without an index (MPEG-TS,
# MPEG-PS) seek by dts, and a keyframe's dts lies before its pts by the reorder delay
# (1–4 frames with B-frames): aiming at the keyframe's own pts lands on the packet after it.
SEEK_LEAD = 8
# Seek target meaning "the start of the file" (below any real timestamp).
BEFORE_START = -(1 << 62)
# Without a container index to say where keyframes lie, read on (demux, no decoding) rather
# than seek when the next position is at most this far ahead.
WALK_SECONDS = 8.0
# With a container index: read on rather than seek while the keyframe before the next
# position is at most this far beyond what was read (the MP4 index gives keyframes' dts,
# a few frames before their pts).
READ_ON_SECONDS = 1.0
# Containers whose index lists keyframes (Matroska cues, the MP4 sample table). MPEG-PS
# lists every packet it passed while seeking as a keyframe, so its index is no guide.
INDEXED_FORMATS = ("matroska", "mov")
# How far before a position a seek goes when the previous one landed after it: demuxers
# that seek by dts land a packet late; after a seek, MPEG-PS/TS parsers may not flag the
# first keyframe they pass, so the one before it must be reached.
SEEK_BACK_SECONDS = (0.5, 3.0, 12.0, 60.0)
# Packets whose steps give a frame's duration (its median step), for telling holes.
STEP_PACKETS = 32
# Buffered in place of a decoded frame that has no pts and none can be given: a window
# must not span it, or the clip would silently skip a frame.
_HOLE = object()


class ClipError(Exception):
    """A window could not be decoded exactly (no room, end of stream, undecodable frames)."""


class ClipDamaged(ClipError):
    """The file is damaged where the window lies: `what` (decode, gap, unreadable,
    truncated) between pts `first` and `last`."""

    def __init__(self, what: str, first: int, last: int, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.first = first
        self.last = last


@dataclass(frozen=True)
class WindowPlan:
    """Where a window may start, in pts (stream time-base ticks).

    `target` is the planned position; the window's first frame must lie in [lo, hi] and its
    last below `fence` (where the next slot's stretch begins). With `tol` > 0 the window
    opens at the keyframe nearest `target` within `tol` (the cheapest window to decode) if
    one is there; otherwise, and with `tol` = 0, at the first frame at or after `target`.
    """

    target: int
    lo: int = -NO_FENCE
    hi: int = NO_FENCE
    fence: int = NO_FENCE
    tol: int = 0


@dataclass(frozen=True)
class Window:
    """A resolved window: its frames (display order), their pts, and how it was chosen."""

    frames: list[Any]
    pts: tuple[int, ...]
    origin: str  # "keyframe" (opens at one) or "position" (the first frame at the target)


class ClipReader:
    """Resolves and decodes windows; ask with non-decreasing targets for speed.

    `seeks` counts container seeks and `frames_decoded` every frame the decoder produced
    (frames still inside the decoder when it is flushed are drained and counted).
    `skip_nonref` (on unless timestamps are interpolated) lets the decoder skip the
    non-reference frames shown before a window (and after it, when nothing follows).

    `index`: every frame's pts, for videos whose packets lack timestamps (interpolated by the
    probe's decoding pass, `probe.pts_interpolated`); their windows come from it.
    """

    def __init__(self, probe: VideoProbe, threads: int = 1,
                 index: np.ndarray | None = None) -> None:
        self.probe = probe
        if index is None and probe.pts_interpolated and probe.frame_pts.shape[0]:
            index = probe.frame_pts
        self.index = index
        self._index_keys = probe.key_pts.tolist() if index is not None else []
        self.ticks = max(1, probe.frame_ticks)
        self._threads = max(1, threads)
        self._lead = 0  # frames before a keyframe that seeks aim at (SEEK_LEAD once needed)
        try:
            self._open()
        except (av.error.FFmpegError, OSError) as e:
            raise VideoError(probe.path, "decode", f"cannot open: {e}") from None
        # Interpolated timestamps are only reproducible if every frame is decoded.
        self.skip_nonref = not probe.pts_interpolated
        self.frames_decoded = 0
        self.seeks = 0
        self.readable_end: int | None = None  # the last pts in the file, once EOF was read
        self._reset(None)

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
        self._indexed_format = any(f in self.container.format.name for f in INDEXED_FORMATS)
        self._packets: Any = None

    def _reset(self, sync: int | None) -> None:
        """Forget the decode position (after a seek or a reopen, and at the start)."""
        self._queue: deque[Any] = deque()  # demuxed, not yet fed to the decoder
        self._buffer: deque[Any] = deque()  # decoded, not yet handed out, display order
        self._seen: list[tuple[int, bool]] = []  # (pts, keyframe) demuxed, in decode order
        self._keys: list[int] = []  # keyframe pts demuxed (increasing)
        self._fed_keys: list[int] = []  # keyframes fed since the decoder's last restart
        self._fed: set[int] = set()  # pts fed since the decoder's last restart
        self._errors: list[tuple[int, str]] = []  # (pts, what) of packets that failed
        self._no_pts = 0  # packets without pts demuxed
        self._unreadable: int | None = None  # the demuxer failed after this pts
        self._prev: tuple[int, int | None] | None = None  # (pts, duration) of the last frame
        self._max_pts: int | None = None  # largest pts demuxed
        self._max_dts: int | None = None  # largest dts demuxed (every later pts is above it)
        self._eof = False  # the demuxer reached the end of the file
        self._drained = False  # nothing more is fed until the next seek or restart
        self._floor: int | None = None  # smallest pts still obtainable without a seek
        self._sync = sync  # frames shown before this keyframe are not accepted
        self._skip_below = BEFORE_START  # non-reference frames shown before this are skipped
        self._skip_above: int | None = None  # … and after this (when draining after a window)
        self._restarted = False  # the decoder was (re)started for the current window

    # -- requests -----------------------------------------------------------------------------

    def clip(self, start: int, n: int, then: Iterable[int] | None = None) -> list[Any]:
        """Frames start … start+n-1 by index in `probe.frame_pts` (a complete index), or
        ClipError; `then` as in `window`, as frame indices."""
        pts = self.probe.frame_pts
        if start < 0 or n < 1 or start + n > pts.shape[0]:
            raise ClipError(f"window {start}+{n} outside the video's {pts.shape[0]} frames")
        first = int(pts[start])
        nxt = None if then is None else [int(pts[t]) for t in then if 0 <= t < pts.shape[0]]
        w = self.window(WindowPlan(first), n, then=nxt)
        if list(w.pts) != pts[start:start + n].tolist():
            raise ClipError(f"the window at pts {first} is not frames {start}…{start + n - 1}"
                            " of the index")
        return w.frames

    def window(self, plan: WindowPlan, n: int, taken: Sequence[tuple[int, int]] = (),
               then: Iterable[int] | None = None) -> Window:
        """Resolve `plan` to `n` consecutive frames, decode and verify them.

        `taken`: (first, last) pts of windows this one must not overlap (the slot's earlier
        attempts). `then`: positions that may be asked for next (None: unknown); when none
        is reached by walking on, decoding stops at the window's last packet and the decoder
        is drained (its reorder delay costs no extra frames).
        Raises ClipDamaged where the file is damaged, ClipError otherwise."""
        if self.readable_end is not None and plan.target > self.readable_end:
            raise self._past_end(plan.target)
        nxt = None if then is None else list(then)
        if self.index is not None:
            return self._indexed(plan, n, nxt)
        self._restarted = False
        try:
            return self._window(plan, n, taken, nxt)
        except ClipError as e:
            key = getattr(e, "key", None)
            if self._restarted or key is None:
                raise
        # Not decoded from a restart at its keyframe: do that, and let it decide.
        self._seek(self._seek_target(key))
        self._restarted = False
        return self._window(plan, n, taken, nxt)

    def _window(self, plan: WindowPlan, n: int, taken: Sequence[tuple[int, int]],
                then: list[int] | None) -> Window:
        low = plan.target - plan.tol
        self._arrive(low)
        t = plan.target
        # Everything shown at or before the target is known once a packet shown after it is
        # read: a keyframe follows every frame shown before it, in decode order.
        self._read_while(lambda: self._max_pts is None or self._max_pts <= t)
        span = n * self.ticks

        def free(s: int) -> bool:
            return all(not (a - span < s <= b) for a, b in taken)
        start, origin = None, "keyframe"
        if plan.tol > 0:
            start = self._nearest_key(plan, span, free)
        if start is None:
            origin = "position"
            start = self._first_at(t, free)
            if start is None:
                raise self._past_end(t) if self._eof else ClipError(
                    f"no free window start at or after pts {t}")
            if start > plan.hi + self.ticks:  # the first frame at or after `hi` may start it
                before = max((p for p, _ in self._seen if p < t), default=None)
                after = min(p for p, _ in self._seen if p >= t)  # the next frame, taken or not
                if before is not None and after - before > GAP_STEPS * self._step():
                    raise ClipDamaged("gap", before, after, f"frames are missing between pts "
                                      f"{before} and {after} (the planned position is in the "
                                      "hole)")
                raise ClipError(f"no free window start between pts {t} and {plan.hi}")
        want = self._window_pts(start, n)
        holes = gaps(np.asarray(want, dtype=np.int64), None if n >= 4 else self._step())
        if holes:
            a, b = holes[0]
            raise ClipDamaged("gap", a, b, f"frames are missing between pts {a} and {b}")
        if want[-1] >= plan.fence:
            raise ClipError(f"the window at pts {start} runs into the next slot's stretch")
        return Window(self._decode(start, want, then), tuple(want), origin)

    # -- getting there ---------------------------------------------------------------------

    def _container_keys(self) -> list[int]:
        """Keyframe timestamps from the container's index (Matroska cues after a seek, the MP4
        sample table: dts there, close enough to decide whether to seek)."""
        if not self._indexed_format:
            return []
        entries = self.stream.index_entries
        if entries is None or len(entries) < 2:
            return []
        return sorted({int(e.timestamp) for e in entries if e.is_keyframe})

    def _arrive(self, target: int) -> None:
        """Make the next packets demuxed start at or before the keyframe before `target`:
        read on if that is cheap, else seek (further back each time a seek lands late)."""
        if self._reachable(target):
            return
        first = self._seek_target(target)
        backs = [first] if first == BEFORE_START else [
            first, *(target - round(b / self.probe.time_base) for b in SEEK_BACK_SECONDS),
            BEFORE_START]
        for t in backs:
            self._seek(t)
            self._read_while(lambda: not self._keys and not self._eof and self._floor is None)
            if self._floor is not None:
                return
            if self._keys and self._keys[0] <= target:
                self._floor = self._keys[0]
                return
            if self._eof and not self._seen:
                return  # nothing at all from there on: the caller finds the end of the file
        raise ClipError(f"pts {target} could not be reached by seeking")

    def _reachable(self, target: int) -> bool:
        """Whether frames from `target` on can still be had without seeking, cheaply."""
        if self._packets is None or self._floor is None or target < self._floor:
            return False
        if self._eof:
            return not self._drained or bool(self._queue)
        if self._drained:
            # the decoder can restart at a keyframe not fed yet (read ahead, or still to come)
            fed = self._fed_keys[-1] if self._fed_keys else None
            later = any(k <= target and (fed is None or k > fed) for k in self._keys)
            if not later and self._max_pts is not None and self._max_pts > target:
                return False
        here = self._max_pts if self._max_pts is not None else self._floor
        keys = self._container_keys()
        if keys:
            i = bisect.bisect_right(keys, target) - 1
            # read on unless the keyframe before it lies well beyond what was read
            return i < 0 or float((keys[i] - here) * self.probe.time_base) <= READ_ON_SECONDS
        return float((target - here) * self.probe.time_base) <= WALK_SECONDS

    def _seek_target(self, target: int) -> int:
        """Seek target for a window at `target`: the file start if no keyframe lies before
        it (per the container index), else `target` itself."""
        keys = self._container_keys()
        near = float((target - self.probe.first_pts) * self.probe.time_base) <= (
            READ_ON_SECONDS if keys else WALK_SECONDS)
        if near or (keys and target < keys[min(1, len(keys) - 1)]):
            return BEFORE_START  # the first GOP, or close: reading from the start is cheap
        return target

    def _seek(self, target: int) -> None:
        self._flush_decoder()
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
        # From the file start everything decodes; after any other seek, only frames shown
        # from a keyframe on are sure to be decoded from their references.
        self._reset(BEFORE_START if target == BEFORE_START else None)
        self._floor = BEFORE_START if target == BEFORE_START else None

    # -- demuxing --------------------------------------------------------------------------

    def _read_while(self, more: Callable[[], bool]) -> None:
        """Demux into the queue while `more()` and the file goes on."""
        while more() and self._read():
            pass

    def _read(self) -> bool:
        """Demux one packet into the queue; False at the end of what can be read."""
        if self._eof or self._packets is None:
            return False
        try:
            packet = next(self._packets, None)
        except av.error.FFmpegError:
            packet = None  # unreadable data: the end of what can be read from here
            self._unreadable = self._max_pts if self._max_pts is not None else BEFORE_START
        if packet is None or packet.size == 0:
            if packet is not None:
                self._queue.append(packet)  # the flush packet drains the decoder at the end
            self._eof = True
            if self._unreadable is None and self._max_pts is not None:
                self.readable_end = self._max_pts
            return False
        self._queue.append(packet)
        pts, dts = packet.pts, packet.dts
        if dts is not None and (self._max_dts is None or dts > self._max_dts):
            self._max_dts = dts
        if pts is None:
            self._no_pts += 1
        else:
            key = bool(packet.is_keyframe)
            self._seen.append((pts, key))
            if key and (not self._keys or pts > self._keys[-1]):
                self._keys.append(pts)
            if self._max_pts is None or pts > self._max_pts:
                self._max_pts = pts
            if packet.is_corrupt:
                self._errors.append((pts, "a packet flagged corrupt"))
        return True

    def _settled(self, pts: int) -> bool:
        """Whether every packet shown at or before `pts` has been read: a read packet's dts
        (never above the pts of what follows) exceeds it, or the file ended."""
        return self._eof or (self._max_dts is not None and self._max_dts > pts) or (
            self._max_dts is None and bool(self._keys) and self._keys[-1] > pts)

    # -- resolving -------------------------------------------------------------------------

    def _nearest_key(self, plan: WindowPlan, span: int, free: Callable[[int], bool]
                     ) -> int | None:
        """The keyframe nearest the target within tolerance, stretch and fence whose window
        is free — the nearest free one at or before the target, or a closer later one — or
        None. (Every keyframe from `lo` to the target is known: the reader has read every
        packet from before `lo` past the target.)"""
        t = plan.target
        lo = max(plan.lo, t - plan.tol)
        hi = min(plan.hi, t + plan.tol, plan.fence - span)
        # a retry's nearest keyframe is often its slot's last attempt's: take the next free one
        before = [k for k in self._keys if lo <= k <= min(t, hi) and free(k)]
        best = before[-1] if before else None
        reach = hi if best is None else min(hi, 2 * t - best - 1)  # a later one must be closer
        i = bisect.bisect_right(self._keys, t)
        while True:
            while i < len(self._keys):
                k = self._keys[i]
                if k > reach:
                    return best
                if k >= lo and free(k):
                    return k
                i += 1
            if self._max_pts is not None and self._max_pts > reach:
                return best  # a keyframe follows every frame shown before it
            if not self._read():
                return best

    def _first_at(self, t: int, free: Callable[[int], bool]) -> int | None:
        """The smallest pts ≥ `t` in the file whose window is free (reading on as needed)."""
        while True:
            cand = [p for p, _ in self._seen if p >= t and free(p)]
            if cand and self._settled(min(cand)):
                return min(cand)
            if not self._read():
                return min(cand) if cand else None

    def _window_pts(self, start: int, n: int) -> list[int]:
        """The `n` smallest pts ≥ `start` in the file (reading on until they are certain)."""
        while True:
            want = sorted(p for p, _ in self._seen if p >= start)[:n]
            if len(want) == n and self._settled(want[-1]):
                return want
            if not self._read():
                if len(want) == n:
                    return want
                if self._unreadable is not None:
                    raise _keyed(ClipDamaged("unreadable", self._unreadable, start,
                                             f"unreadable data after pts {self._unreadable}"),
                                 self._key_for(start))
                raise ClipError(f"end of stream after {len(want)} of {n} frames from pts "
                                f"{start}") if want else self._past_end(start)

    def _past_end(self, t: int) -> ClipError:
        """Nothing at or after `t`: the file ends before it (damaged if shorter than its
        header says). The same on every path, so never retried."""
        end = self.readable_end
        if end is None:
            return ClipError(f"end of stream before pts {t}")
        if truncated(self.probe, end + self.ticks):
            return ClipDamaged("truncated", end, self.probe.end_pts,
                               f"the file ends at pts {end}, its header says "
                               f"{self.probe.end_pts}")
        return ClipError(f"end of stream before pts {t} (the last frame is at pts {end})")

    def _step(self) -> float:
        """A frame's duration as the packets read show it (the median step of the last ones;
        the header's rate before there are enough)."""
        recent = sorted(p for p, _ in self._seen[-STEP_PACKETS:])
        if len(recent) < 4:
            return float(self.ticks)
        return float(np.median(np.diff(recent)))

    def _key_for(self, start: int) -> int | None:
        return max((k for k in self._keys if k <= start), default=None)

    # -- decoding --------------------------------------------------------------------------

    def _decode(self, start: int, want: list[int], then: list[int] | None) -> list[Any]:
        """Feed the packets `want` needs (from the last keyframe before it), collect and
        verify its frames."""
        key = self._key_for(start)
        if key is None:
            if self._sync != BEFORE_START:
                raise ClipError(f"no keyframe before pts {start}")
            key = BEFORE_START
        walk_on = then is None or any(self._walkable(want[-1], t) for t in then)
        wanted = set(want)
        got: dict[int, Any] = {}
        try:
            self._start_at(key)
            self._skip_below = start
            self._skip_above = None if walk_on else want[-1]
            while len(got) < len(want):
                frame = self._next_frame(wanted, walk_on)
                if frame is None:
                    break
                if frame is _HOLE:
                    if got:
                        raise ClipError(f"a frame without timestamp follows pts "
                                        f"{max(got)}")
                    continue
                if frame.pts < start:
                    continue
                if frame.pts in wanted:
                    got[frame.pts] = frame
                elif frame.pts < want[-1]:
                    raise ClipDamaged("decode", start, want[-1],
                                      f"the decoder gave a frame at pts {frame.pts}, which no "
                                      "packet has")
                else:
                    self._buffer.appendleft(frame)
                    break
            self._check_chain(key, want)
            missing = [p for p in want if p not in got]
            if missing:
                raise ClipDamaged("decode", start, want[-1],
                                  f"the frame at pts {missing[0]} did not decode")
        except ClipError as e:
            raise _keyed(e, key) from None
        self._floor = want[-1] + 1
        self._prune(key)
        return [got[p] for p in want]

    def _walkable(self, last: int, target: int) -> bool:
        """Whether a window at `target` is decoded by walking on from one ending at `last`
        (no keyframe between: the same GOP); unknown counts as walkable."""
        if target <= last:
            return False
        if float((target - last) * self.probe.time_base) > WALK_SECONDS:
            return False  # far: it will be sought
        # close enough to read on to it anyway: see whether a keyframe lies between
        self._read_while(lambda: (self._max_pts is None or self._max_pts <= target)
                         and not any(last < k <= target for k in self._keys[-4:]))
        return not any(last < k <= target for k in self._keys)

    def _start_at(self, key: int) -> None:
        """Make the decoder's next input the packets from keyframe `key` on: go on if it
        already walked into that GOP, else drop what lies before `key` and restart there."""
        if not self._drained and (key in self._fed_keys or (
                key == BEFORE_START and self._sync == BEFORE_START)):
            return  # frames from a keyframe on decode the same whatever came before it
        if key == BEFORE_START:
            raise ClipError("the file start is no longer buffered")
        while self._queue and not (self._queue[0].is_keyframe and self._queue[0].pts == key):
            self._queue.popleft()
        if not self._queue:
            raise ClipError(f"the keyframe at pts {key} is no longer buffered")
        self._flush_decoder()
        if self._fed:
            self.stream.codec_context.flush_buffers()
        self._buffer.clear()
        self._fed_keys = []
        self._fed = set()
        self._errors = [(p, w) for p, w in self._errors if p >= key]
        self._drained = False
        self._sync = key
        self._prev = None
        self._restarted = True

    def _flush_decoder(self) -> None:
        """Drain what the decoder still holds (decoded already, or being decoded by frame
        threads, which a flush would wait for anyway) and count it."""
        if self._packets is None or self._drained or not self._fed:
            return
        with contextlib.suppress(av.error.FFmpegError, EOFError):
            self.frames_decoded += len(self.stream.codec_context.decode(None))
        self._drained = True

    def _drain(self) -> None:
        """The window's packets are all in: take its last frames out without feeding more."""
        try:
            frames = self.stream.codec_context.decode(None)
        except (av.error.FFmpegError, EOFError):
            frames = []
        self._drained = True
        for frame in frames:
            self.frames_decoded += 1
            self._accept(frame)

    def _next_frame(self, wanted: set[int], walk_on: bool) -> Any:
        """The next decoded frame in display order; None at the end of what is fed."""
        cc = self.stream.codec_context
        while not self._buffer:
            if self._drained or (not self._queue and not self._read() and not self._queue):
                return None
            packet = self._queue.popleft()
            pts = packet.pts
            if packet.is_keyframe and pts is not None:
                if self._sync is None:
                    self._sync = pts
                self._fed_keys.append(pts)
            skip = (self.skip_nonref and pts is not None and packet.size > 0
                    and (pts < self._skip_below
                         or (self._skip_above is not None and pts > self._skip_above)))
            mode: Any = "NONREF" if skip else "DEFAULT"
            if self._skip != mode:
                cc.skip_frame = self._skip = mode
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                frames = []
                if pts is not None:
                    self._errors.append((pts, f"a decode error ({type(e).__name__})"))
            if packet.size == 0:
                self._drained = True  # the end of the file: the flush packet drained it
            for frame in frames:
                self.frames_decoded += 1
                if frame.is_corrupt and frame.pts is not None:
                    self._errors.append((frame.pts, "a frame decoded as corrupt"))
                self._accept(frame)
            if pts is not None:
                self._fed.add(pts)
                if not walk_on and pts in wanted and wanted <= self._fed:
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
        self._buffer.append(frame)

    def _check_chain(self, key: int, want: list[int]) -> None:
        """Damage between the window's keyframe and its last frame: a packet that failed to
        decode or was flagged corrupt, unreadable data, a hole in the timestamps."""
        last = want[-1]
        bad = sorted((p, w) for p, w in self._errors if key <= p <= last)
        if bad:
            raise ClipDamaged("decode", bad[0][0], bad[-1][0], f"{bad[0][1]} at pts {bad[0][0]}")
        chain = np.asarray(sorted(p for p, _ in self._seen if key <= p <= last), dtype=np.int64)
        # a packet without pts makes a step too, but its frame is there (decoded): such steps
        # only count inside the window (where a frame without pts is refused anyway)
        holes = [(a, b) for a, b in gaps(chain) if not (self._no_pts and b <= want[0])]
        if holes:
            a, b = holes[0]
            raise ClipDamaged("gap", a, b, f"frames are missing between pts {a} and {b}")

    def _prune(self, key: int) -> None:
        """Forget packets shown before the last window's keyframe (later windows start after
        it), so a long walk keeps its bookkeeping small."""
        if len(self._seen) > 512:
            self._seen = [(p, k) for p, k in self._seen if p >= key]
            self._errors = [(p, w) for p, w in self._errors if p >= key]
            self._keys = [k for k in self._keys if k >= key]

    # -- index mode (timestamps interpolated) ----------------------------------------------

    def _indexed(self, plan: WindowPlan, n: int, then: list[int] | None) -> Window:
        """Windows of a video whose pts come from its index (the old walk: seek before the
        keyframe of the window, decode every frame forward, compare with the index)."""
        assert self.index is not None
        i = int(np.searchsorted(self.index, plan.target))
        if i + n > self.index.shape[0] or int(self.index[i]) > plan.hi:
            raise ClipError(f"no window at pts {plan.target} in the index")
        want = [int(p) for p in self.index[i:i + n]]
        if want[-1] >= plan.fence:
            raise ClipError(f"the window at pts {want[0]} runs into the next slot's stretch")
        tried: set[int] = set()
        if not self._reachable_indexed(want[0]):
            t = self._index_target(want[0], 0)
            self._seek(t)
            tried.add(t)
        lead, back = self._lead, 0
        while True:
            out = self._collect_indexed(want)
            if out:
                self._floor = want[-1] + 1
                if back:
                    self._lead = lead
                return Window(out, tuple(want), "position")
            self._lead = SEEK_LEAD
            t = self._index_target(want[0], back)
            while t in tried and t != BEFORE_START:
                back += 1
                t = self._index_target(want[0], back)
            if t in tried or len(tried) > SEEK_FALLBACKS:
                self._lead = lead
                why = "end of stream before the clip" if self._eof else "decoding passed it"
                raise ClipError(f"frames at pts {want[0]}… could not be reached by seeking "
                                f"({why})")
            tried.add(t)
            self._seek(t)

    def _index_target(self, first: int, back: int) -> int:
        assert self.index is not None
        i = bisect.bisect_right(self._index_keys, first) - 1 - back
        if i <= 0:
            return BEFORE_START
        key = int(self._index_keys[i])
        if not self._lead:
            return key
        j = int(np.searchsorted(self.index, key)) - self._lead
        return int(self.index[j]) if j > 0 else BEFORE_START

    def _reachable_indexed(self, first: int) -> bool:
        if self._packets is None or self._eof or self._drained:
            return False
        if self._floor is not None and first < self._floor:
            return False
        newest = max((f.pts for f in self._buffer if f is not _HOLE), default=None)
        here = newest if newest is not None else self._max_pts
        if here is not None and first <= here and not any(
                f is not _HOLE and f.pts == first for f in self._buffer):
            return False
        i = bisect.bisect_right(self._index_keys, first) - 1
        return here is None or i < 0 or self._index_keys[i] <= here

    def _collect_indexed(self, want: list[int]) -> list[Any]:
        """Walk to the window; [] if the walk passed it or the stream ended before it."""
        self._skip_below = want[0]
        self._skip_above = None
        got: list[Any] = []
        while True:
            frame = self._next_frame(set(), True)
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
        raise ClipError(f"end of stream after {len(got)} of {len(want)} frames (truncated "
                        "file?)")


def _keyed(e: ClipError, key: int | None) -> ClipError:
    """Tag a failure with the keyframe of the window, so it can be retried from there."""
    e.key = key  # type: ignore[attr-defined]
    return e
