"""Shared records and vocabulary: what state, status, snapshot, metrics and workers all speak.

This module imports nothing heavy (no PyAV, Pillow or scikit-image), so reading the state
(`dsgen status`, `dsgen monitor`) never loads a decoder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
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
REASONS: Final = (OK, SCENE_CUT, BLACK, FLAT, DECODE_ERROR, LOW_DETAIL, LOW_TEXTURE)

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
    """Everything the planner and workers need to know about one video stream."""

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

    @property
    def n_frames(self) -> int:
        """Frames in the stream."""
        return int(self.frame_pts.shape[0])

    @property
    def duration_s(self) -> float:
        """Runtime in seconds (frame count over the average rate)."""
        return self.n_frames / self.fps if self.fps > 0 else 0.0

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
    def from_state(cls, text: str, blob: bytes) -> VideoProbe:
        """Rebuild a probe stored with `to_json` + `arrays_blob`."""
        d = json.loads(text)
        arrays = np.load(io.BytesIO(blob))
        d["sar"] = Fraction(*d["sar"])
        d["time_base"] = Fraction(*d["time_base"])
        d["colour"] = ColourInfo(**d["colour"])
        d["content"] = tuple(d["content"])
        return cls(frame_pts=arrays["frame_pts"], key_pts=arrays["key_pts"], **d)


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
    frames: int | None = None  # frames in the index, once probed (planning without the index)


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
@dataclass(frozen=True)
class SlotPlan:
    """One sample slot: the positions to try, in order, and what it serves per category."""

    slot_id: int
    phase: int
    round: int
    starts: tuple[int, ...]  # first-frame indices of the windows to try, in trial order
    formats: tuple[tuple[str, str], ...]  # (category, format) pairs this slot must produce
    split: str = TRAIN  # TRAIN or VAL (dsgen.split): every sample of the slot has it


@dataclass(frozen=True)
class Attempt:
    """One position tried for a slot and what the gates said."""

    slot_id: int
    number: int
    start: int
    outcome: str
    scene_diff: float
    detail: str = ""


@dataclass(frozen=True)
class Sample:
    """One durable sample: its files and where it came from."""

    slot_id: int
    category: str
    format: str
    files: tuple[tuple[str, int], ...]  # (path relative to output_root, bytes)
    start: int  # first frame index of the clip
    frame_pts: tuple[int, ...]
    box: tuple[int, int, int, int]  # (x, y, w, h) in source coded pixels
    metrics: dict[str, float]
    # The encoded files, in `files` order, as the worker made them: the parent writes them
    # under their final names and drops them before recording (never stored).
    blobs: tuple[bytes, ...] = ()
    # LR degradation: the template and every drawn parameter (dsgen.degrade.draw), JSON-able.
    degradation: dict[str, Any] = field(default_factory=lambda: {"template": "none"})
    split: str = TRAIN  # the slot's split


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
    frames_decoded: int = 0
    seeks: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # stage → seconds
    clips: int = 0  # windows decoded (attempts that reached the gates or failed decoding)
    worker: str = ""  # host:pid of the worker that ran it
