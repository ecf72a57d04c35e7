"""Shared records and vocabulary: what state, status, snapshot, metrics and workers all speak.

This module imports nothing heavy (no PyAV, Pillow or scikit-image), so reading the state
(`dsgen status`, `dsgen monitor`) never loads a decoder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any, Final, Literal

import numpy as np

# --- Clip outcomes: bounded, stable names (metric labels, manifest, state) ------------------
OK: Final = "ok"
SCENE_CUT: Final = "scene_cut"
BLACK: Final = "black"
FLAT: Final = "flat"
DECODE_ERROR: Final = "decode_error"
LOW_DETAIL: Final = "low_detail"
LOW_TEXTURE: Final = "low_texture"
WORKER_CRASH: Final = "worker_crash"  # the attempt's task killed its worker again and again
# The file is damaged where the window lies (a decode error or frames missing between its
# keyframe and its end, unreadable data, past a truncated file's end): never a scene cut.
DAMAGED: Final = "damaged"
REASONS: Final = (OK, SCENE_CUT, BLACK, FLAT, DECODE_ERROR, DAMAGED, LOW_DETAIL, LOW_TEXTURE)

# --- Splits ---------------------------------------------------------------------------------
# Every sample is training or validation data. Planning figures are keyed by a planning key:
# the category for training, `<category>@val` for validation (see dsgen.split).
TRAIN: Final = "train"
VAL: Final = "val"
SPLITS: Final = (TRAIN, VAL)
VAL_SUFFIX: Final = "@val"


def split_key(category: str, split: str = TRAIN) -> str:
    """The planning key of a category's split."""
    return category + VAL_SUFFIX if split == VAL else category


# --- Video states -------------------------------------------------------------------------
# Stored in the state (`videos.status`): what the library knows about the file.
StoredStatus = Literal["new", "ready", "failed", "missing", "changed", "gone", "unavailable"]
USABLE: Final = ("new", "ready")  # may be planned and extracted
RETURNABLE: Final = ("missing", "gone", "unavailable")  # come back when the file/mount does
FAILED: Final = ("failed", "missing", "changed", "gone", "unavailable")  # give nothing more now

# Derived, one vocabulary for status file, snapshot, metrics and dashboard (`video_state`).
VideoState = Literal["pending", "in_progress", "done", "failed", "missing", "changed", "gone",
                     "unavailable"]
VIDEO_STATES: Final = ("pending", "in_progress", "done", "failed", "missing", "changed", "gone",
                       "unavailable")
# The predecessor's checkpoint words (its monitor reads `video_checkpoints.<i>.status`).
PREDECESSOR_STATE: Final[dict[str, str]] = {
    "pending": "pending", "in_progress": "in_progress", "done": "completed",
    "failed": "failed", "missing": "missing", "changed": "changed", "gone": "gone",
    "unavailable": "unavailable"}


def video_state(status: str, slots: int, pending: int, owed: int) -> VideoState:
    """A video's one derived state from its stored status and slot/quota figures.

    `slots`/`pending` are its planned and not-yet-recorded slots, `owed` the samples its
    quotas still expect (0 once it reached them or is exhausted for every category).
    """
    if status in FAILED:
        return status  # type: ignore[return-value]
    if pending or (slots and owed):
        return "in_progress"
    if slots:
        return "done"
    return "pending"


# --- Colour ---------------------------------------------------------------------------------
Matrix = Literal["bt601", "bt709", "bt2020"]
Transfer = Literal["sdr", "pq", "hlg"]
PeakSource = Literal["maxcll", "mastering", "default", "nominal"]
# Where the chroma samples of 4:2:0 / 4:2:2 sit relative to luma (FFmpeg's AVChromaLocation
# names); "none" for sources without subsampled chroma (4:4:4, RGB, grey).
ChromaSiting = Literal["left", "center", "topleft", "top", "bottomleft", "bottom", "none"]
CHROMA_SITINGS: Final = ("left", "center", "topleft", "top", "bottomleft", "bottom", "none")
_SITING_WORDS: Final[dict[str, str]] = {
    "left": "left", "center": "centre", "topleft": "top-left", "top": "top",
    "bottomleft": "bottom-left", "bottom": "bottom"}
DEFAULT_PEAK_NITS: Final = 1000.0  # HDR10 peak when neither MaxCLL nor mastering data exist


@dataclass(frozen=True)
class ColourInfo:
    """How to turn a stream's samples into display RGB (matrix, range, depth, transfer)."""

    matrix: Matrix
    full_range: bool
    bit_depth: int  # 8, 10, 12 (16 for a few exotic formats)
    transfer: Transfer
    peak_nits: float = DEFAULT_PEAK_NITS  # HDR source peak: MaxCLL, else mastering max, else 1000
    matrix_tagged: bool = True  # False when the matrix was guessed for an untagged stream
    peak_source: PeakSource = "default"
    # Probes stored before the siting was read load as "center": what dsgen then did for every
    # source, so a resumed run converts its old videos exactly as before.
    chroma_siting: ChromaSiting = "center"

    @property
    def is_hdr(self) -> bool:
        """True for PQ and HLG sources (the ones that get tone-mapped)."""
        return self.transfer != "sdr"

    def describe(self) -> str:
        """One human line, e.g. for logs and the dataset manifest."""
        matrix = self.matrix if self.matrix_tagged else f"{self.matrix} (untagged, guessed)"
        rng = "full" if self.full_range else "limited"
        head = f"{matrix} {rng} {self.bit_depth}-bit"
        siting = _SITING_WORDS.get(self.chroma_siting)
        tail = f", {siting}-sited chroma" if siting else ""
        if not self.is_hdr:
            return f"{head} SDR (no tone mapping){tail}"
        peak = f"peak {self.peak_nits:g} nits"
        if self.peak_source != "nominal":
            peak += f" from {self.peak_source}"
        return f"{head} {self.transfer.upper()} ({peak}) → tone-mapped to BT.709 SDR{tail}"


# --- Videos ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoProbe:
    """Everything the planner and workers need to know about one video stream.

    The frame index (`frame_pts`, `key_pts`) is complete only when `index_complete`; the
    probe a video gets at its turn (`probe.open_probe`) has none, and workers never need it:
    they find and verify windows from the packets. Positions are pts in `time_base` ticks.
    """

    path: str
    size: int
    mtime_ns: int
    stream_index: int
    codec: str
    pix_fmt: str
    width: int
    height: int
    sar: Fraction
    fps: float
    time_base: Fraction
    frame_pts: np.ndarray  # int64, display order, one per frame: frame index = position
    key_pts: np.ndarray  # int64 pts of keyframes, sorted
    colour: ColourInfo
    content: tuple[int, int, int, int]  # picture rectangle (x0, y0, x1, y1) inside the bars
    # True when some frames carry no timestamp (MPEG-PS packing several frames per PES) and
    # their pts were interpolated while indexing: readers must interpolate the same way.
    pts_interpolated: bool = False
    first_pts: int = 0  # the first frame's pts (display order)
    end_pts: int = 0  # where the header says the stream ends: first_pts + its duration
    frame_ticks: int = 1  # one frame's nominal duration in ticks (from the rate)
    header_frames: int = 0  # frames the header's duration and rate make
    index_complete: bool = True  # frame_pts lists every frame (probes stored before: yes)

    @property
    def n_frames(self) -> int:
        """Frames in the stream: the index's count once complete, the header's until then."""
        return int(self.frame_pts.shape[0]) if self.index_complete else self.header_frames

    @property
    def duration_s(self) -> float:
        """Runtime in seconds (frame count over the average rate)."""
        return self.n_frames / self.fps if self.fps > 0 else 0.0

    def light(self) -> VideoProbe:
        """This probe without its frame index (what tasks and the parent's cache carry)."""
        if not self.frame_pts.shape[0] and not self.key_pts.shape[0]:
            return self
        empty = np.zeros(0, dtype=np.int64)
        return replace(self, frame_pts=empty, key_pts=empty, index_complete=False)

    def with_index(self, frame_pts: np.ndarray, key_pts: np.ndarray) -> VideoProbe:
        """This probe with its complete frame index."""
        return replace(self, frame_pts=frame_pts, key_pts=key_pts, index_complete=True)

    def to_json(self) -> str:
        """Everything but the pts arrays, as JSON (the arrays go to `arrays_blob`)."""
        d: dict[str, Any] = {k: v for k, v in asdict(self).items()
                             if k not in ("frame_pts", "key_pts", "colour")}
        d["sar"] = [self.sar.numerator, self.sar.denominator]
        d["time_base"] = [self.time_base.numerator, self.time_base.denominator]
        d["colour"] = asdict(self.colour)
        d["content"] = list(self.content)
        return json.dumps(d, sort_keys=True)

    def arrays_blob(self) -> bytes:
        """The pts arrays, compact, for the state database."""
        buf = io.BytesIO()
        np.savez(buf, frame_pts=self.frame_pts, key_pts=self.key_pts)
        return buf.getvalue()

    @classmethod
    def from_state(cls, text: str, blob: bytes | None) -> VideoProbe:
        """Rebuild a probe stored with `to_json` (+ `arrays_blob` once the index is there)."""
        d = json.loads(text)
        arrays = np.load(io.BytesIO(blob)) if blob else None
        d["sar"] = Fraction(*d["sar"])
        d["time_base"] = Fraction(*d["time_base"])
        d["colour"] = ColourInfo(**d["colour"])
        d["content"] = tuple(d["content"])
        frame_pts = arrays["frame_pts"] if arrays is not None else np.zeros(0, dtype=np.int64)
        key_pts = arrays["key_pts"] if arrays is not None else np.zeros(0, dtype=np.int64)
        if "first_pts" not in d and frame_pts.shape[0]:  # stored before lazy probing
            tb = Fraction(d["time_base"])
            ticks = max(1, round(1 / (Fraction(d["fps"]) * tb))) if d["fps"] > 0 else 1
            d.update(first_pts=int(frame_pts[0]), end_pts=int(frame_pts[-1]) + ticks,
                     frame_ticks=ticks, header_frames=int(frame_pts.shape[0]))
        return cls(frame_pts=frame_pts, key_pts=key_pts, **d)


@dataclass(frozen=True)
class VideoRow:
    """A video as the state knows it."""

    id: int
    name: str
    path: str
    size: int | None
    mtime_ns: int | None
    status: str
    stage: str | None
    reason: str | None
    duration: float | None
    fps: float | None
    probe: VideoProbe | None
    frames: int | None = None  # frames in the index, once complete
    damage: list[dict[str, Any]] | None = None  # damaged ranges found so far (dsgen.damage)


@dataclass
class VideoCounts:
    """One video's plan and results, kept in step with the state (no full-table queries)."""

    slots: int = 0  # planned slots
    pending: int = 0  # planned and not yet recorded
    next_slot: int = 0  # id of the next slot a round creates
    last_round: int = -1
    # keyed by planning key (`split_key`): the category, or `<category>@val`
    quota: dict[str, int] = field(default_factory=dict)  # key → samples planned
    achieved: dict[str, int] = field(default_factory=dict)  # key → durable samples
    exhausted: dict[str, str] = field(default_factory=dict)  # key → why no more
    tried: int = 0  # clip attempts recorded
    ok: int = 0  # of which passed the gates

    def owed(self, category: str) -> int:
        """Samples still expected for `category` (0 once exhausted)."""
        if category in self.exhausted:
            return 0
        return max(0, self.quota.get(category, 0) - self.achieved.get(category, 0))

    def owed_total(self, categories: Iterable[str]) -> int:
        """Samples still expected over `categories`."""
        return sum(self.owed(c) for c in categories)

    @property
    def samples(self) -> int:
        """Durable samples of every category."""
        return sum(self.achieved.values())

    @property
    def target(self) -> int:
        """Samples planned over every category."""
        return sum(self.quota.values())


# --- Plans and results ----------------------------------------------------------------------
# No pts reaches this: the open end of a stretch or fence.
NO_FENCE: Final = 1 << 62


@dataclass(frozen=True)
class SlotPlan:
    """One sample slot: the positions to try, in order, and what it serves per category.

    Positions are pts (stream time-base ticks). The window tried for position i starts in
    [lo, hi] of `bounds[i]` and ends below its fence (where the next slot's stretch or an
    earlier window begins), so slots never share a frame; with `tol` > 0 it may move that
    many ticks from its position to open at a keyframe. No bounds: exactly at the position
    (slots planned before positions were pts)."""

    slot_id: int
    phase: int
    round: int
    starts: tuple[int, ...]  # planned positions (pts) of the windows to try, in trial order
    formats: tuple[tuple[str, str], ...]  # (category, format) pairs this slot must produce
    split: str = TRAIN  # TRAIN or VAL (dsgen.split): every sample of the slot has it
    bounds: tuple[tuple[int, int, int], ...] = ()  # (lo, hi, fence) per position
    tol: int = 0

    def limits(self, i: int) -> tuple[int, int, int]:
        """(lo, hi, fence) of position i."""
        if i < len(self.bounds):
            return self.bounds[i]
        return self.starts[i], self.starts[i], NO_FENCE


@dataclass(frozen=True)
class Attempt:
    """One position tried for a slot and what the gates said."""

    slot_id: int
    number: int
    start: int  # the window's first pts (its planned position if it was not resolved)
    outcome: str
    scene_diff: float
    detail: str = ""
    end: int | None = None  # the window's last pts, once resolved
    target: int | None = None  # the planned position
    origin: str = ""  # how the window was chosen: "keyframe", "position" ("": unresolved)


@dataclass(frozen=True)
class Sample:
    """One durable sample: its files and where it came from."""

    slot_id: int
    category: str
    format: str
    files: tuple[tuple[str, int], ...]  # (path relative to output_root, bytes)
    start: int  # first frame's pts
    frame_pts: tuple[int, ...]
    box: tuple[int, int, int, int]  # (x, y, w, h) in source coded pixels
    metrics: dict[str, float]
    # The encoded files, in `files` order, as the worker made them: the parent writes them
    # under their final names and drops them before recording (never stored).
    blobs: tuple[bytes, ...] = ()
    # LR degradation: the template and every drawn parameter (dsgen.degrade.draw), JSON-able.
    degradation: dict[str, Any] = field(default_factory=lambda: {"template": "none"})
    split: str = TRAIN  # the slot's split
    # Where the window came from: planned position, how it was chosen, the tolerance.
    window: dict[str, Any] = field(default_factory=dict)


@dataclass
class SlotResult:
    """Everything one slot produced; `complete` slots are recorded, others are redone."""

    slot_id: int
    attempts: list[Attempt] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # category → last reason
    complete: bool = False


@dataclass
class TaskResult:
    """What a task returns to the parent, which alone records it."""

    video_id: int
    slots: list[SlotResult]
    error: str | None = None  # the video could not be opened at all
    stopped: bool = False
    frames_decoded: int = 0  # every frame the decoder produced, for windows or to reach them
    seeks: int = 0
    clip_frames: list[int] = field(default_factory=list)  # frames decoded for each clip, in order
    # damage the windows found: (what, first pts, last pts, detail)
    damage: list[tuple[str, int, int, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage → seconds
    clips: int = 0  # windows decoded (attempts that reached the gates or failed decoding)
    worker: str = ""  # host:pid of the worker that ran it
