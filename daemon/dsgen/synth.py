"""Synthetic test videos with known scene cuts, bars, aspect and HDR tags.

Used by ``dsgen demo`` and by the test-suite. Every video is rendered directly
in limited-range Y'CbCr from per-scene precomputed textures that pan by whole
pixels, so the decoded content has known properties:

* consecutive frames inside a scene differ a little (mean |ΔY| ≈ 5–10 on the
  8-bit scale) and carry fine detail (high Laplacian variance everywhere);
* across a cut the mean |ΔY| is far above 45, because scene brightness
  alternates dark/bright and the texture changes;
* letterbox bars and ``flat_ranges`` frames are exact video black
  (Y=16, or 64 in 10-bit) while picture content is rendered at Y >= 52
  (decodes to >= ~40), so bars are unambiguous.

Specs with ``motion`` set use the camera renderer of `dsgen.synth_motion` instead (sub-pixel
motion, motion blur, cuts between similar shots): the measuring ground of the cut gate.

Frames are filled plane by plane (no RGB/swscale conversion), so levels are exact;
10-bit streams carry the same picture with every code value multiplied by 4.
x264/x265 refuse odd 4:2:0 sizes, so SynthSpec rounds the sizes of the h264, hevc10 and
mpeg2 codecs down to even and says so; "mpeg1" (4:2:0) and "h264_444" (4:4:4) keep any size,
for the odd-geometry tests (their odd-sized 4:2:0 chroma planes are rounded up, as decoders do).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
from av.container import OutputContainer
from av.video.frame import PictureType
from av.video.plane import VideoPlane
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from av.video.stream import VideoStream
from PIL import Image, ImageDraw

__all__ = [
    "SynthSpec",
    "demo_specs",
    "letterbox_rows",
    "make_bad_files",
    "make_demo_set",
    "make_video",
    "render_planes",
]

Codec = Literal["h264", "hevc10", "mpeg2", "mpeg1", "h264_444"]
# Camera renderer motions (dsgen.synth_motion): what moves between frames of a shot.
Motion = Literal["pan", "zoom", "shake", "object", "water", "fade"]
U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
F32 = npt.NDArray[np.float32]

# Limited-range ("video") black and neutral chroma, in 8-bit code values.
BLACK_Y8 = 16
NEUTRAL_C8 = 128
# Content luma stays at or above this (8-bit scale) so it is never mistaken for a bar;
# bars are 16 and codec noise around them stays within a few code values.
CONTENT_MIN_Y8 = 52
# Upper limit of content luma: nominal limited-range white.
CONTENT_MAX_Y8 = 235
# Mean luma of dark and bright scenes (they alternate): the ~106 gap plus the texture change
# gives every cut a decoded mean |ΔY| of ~105 (~76 with 27% of the frame in bars), far above
# the 45 cut threshold. DARK stays ~2.7 sigma above CONTENT_MIN_Y8 so little detail is clipped.
DARK_MEAN_Y8 = 84.0
BRIGHT_MEAN_Y8 = 190.0
# Std-dev of the per-pixel noise layer: gives Laplacian variance in the hundreds on the
# 0–255 scale while a 1-pixel pan changes the frame by only a few code values on average.
FINE_NOISE_SIGMA = 4.0

# Fastest presets (generation speed is the point); crf 18 keeps most of the fine noise layer,
# so decoded 64x64 crops keep Laplacian variance >= ~140.
X264_PRESET = "ultrafast"
X264_CRF = "18"
X265_PRESET = "ultrafast"
X265_CRF = "18"

# Container name in SynthSpec -> FFmpeg muxer name. "vob" is the MPEG-2 program
# stream muxer (plain "mpeg" is MPEG-1 system and warns about MPEG-2 video).
_MUXERS = {"mkv": "matroska", "mp4": "mp4", "mpg": "vob"}
# Codecs whose sizes SynthSpec rounds down to even: x264/x265 refuse odd 4:2:0 sizes; mpeg2
# would take them but its specs have always been rounded, and stay byte-identical.
_EVEN_SIZE_CODECS = ("h264", "hevc10", "mpeg2")
_ENCODERS = {"h264": "libx264", "hevc10": "libx265", "mpeg2": "mpeg2video",
             "mpeg1": "mpeg1video", "h264_444": "libx264"}

# HDR10 static metadata written by x265 as SEI: P3-D65 mastering display, 1000 nit
# peak / 0.0001 nit black (units: 0.00002 for chromaticity, 0.0001 cd/m² for luminance),
# MaxCLL 1000 nit, MaxFALL 400 nit. Tests read these values back.
HDR_MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
HDR_MAX_CLL = (1000, 400)


@dataclass(frozen=True)
class SynthSpec:
    """Everything that determines a synthetic video; frame indices are 0-based."""

    name: str
    codec: Codec
    width: int
    height: int
    n_frames: int
    fps: Fraction = Fraction(24)
    # Frame indices where a new scene starts (frame cuts[i] is the first frame of scene i+1).
    cuts: tuple[int, ...] = ()
    # Sample aspect ratio written to the stream (anamorphic, e.g. 720x576 with 64/45).
    sar: Fraction = Fraction(1)
    # (rows of black at top AND bottom, columns of black at left AND right), coded pixels.
    letterbox: tuple[int, int] = (0, 0)
    # hevc10 only: PQ, BT.2020 primaries & matrix, limited range, HDR10 SEI metadata.
    hdr: bool = False
    # Keyframe interval in frames.
    gop: int = 48
    bframes: int = 2
    # mkv | mp4 | mpg
    container: str = "mkv"
    # [start, end) frame ranges rendered as flat black (Y=16 everywhere). They are coded as
    # forced intra frames (IDR in H.264, I in MPEG-2/HEVC), which restarts x264's GOP count.
    flat_ranges: tuple[tuple[int, int], ...] = ()
    seed: int = 0
    # Whole pixels the texture moves per frame (x, y); sets the in-scene |ΔY|.
    pan: tuple[int, int] = (1, 1)
    # Camera renderer (dsgen.synth_motion) instead of the whole-pixel texture pan above: a
    # camera moving over a textured set with sub-pixel motion, motion blur and sensor noise.
    # None keeps the texture-pan renderer, byte for byte (the demo and the tests rely on it).
    motion: Motion | None = None
    # Motion per frame as a fraction of the picture width (pan and object speed, shake σ,
    # water flow, fade's pan); for zoom, the relative change of scale per frame.
    speed: float = 0.02
    # Camera renderer: a cut moves the camera to another viewpoint of the same set (shift,
    # zoom, slight grade change) instead of to a new set of similar brightness.
    similar_cuts: bool = False
    # Camera renderer: scales the sets' texture amplitudes (1.0: luma std ~35 on 0–255).
    contrast: float = 1.0
    # Encoder quality; None keeps the fast test settings (X264_*/X265_* constants above).
    crf: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        """Round the size to even where the codec needs it and reject impossible specs."""
        # x264/x265 refuse odd 4:2:0 sizes: odd values are rounded DOWN to even so the spec
        # always states the coded size (mpeg1 and h264_444 keep any size).
        if self.codec in _EVEN_SIZE_CODECS:
            object.__setattr__(self, "width", self.width - self.width % 2)
            object.__setattr__(self, "height", self.height - self.height % 2)
        if self.width < 16 or self.height < 16:
            raise ValueError(f"{self.name}: size {self.width}x{self.height} is below 16x16")
        if self.n_frames < 1:
            raise ValueError(f"{self.name}: n_frames must be >= 1")
        if list(self.cuts) != sorted(set(self.cuts)) or any(
            not 0 < c < self.n_frames for c in self.cuts
        ):
            raise ValueError(f"{self.name}: cuts must be increasing and inside (0, n_frames)")
        top, side = self.letterbox
        if top < 0 or side < 0 or ((top % 2 or side % 2) and self.codec != "h264_444"):
            raise ValueError(f"{self.name}: letterbox bars must be even and >= 0 (4:2:0 chroma;"
                             " h264_444 takes odd bars)")
        if 2 * top + 16 > self.height or 2 * side + 16 > self.width:
            raise ValueError(f"{self.name}: letterbox leaves less than 16 pixels of picture")
        if self.hdr and self.codec != "hevc10":
            raise ValueError(f"{self.name}: hdr is only supported with codec hevc10")
        if self.container not in _MUXERS:
            raise ValueError(f"{self.name}: container must be one of {sorted(_MUXERS)}")
        if self.codec in ("mpeg2", "mpeg1") and self.container == "mp4":
            raise ValueError(f"{self.name}: use mkv or mpg for {self.codec}")
        for start, end in self.flat_ranges:
            if not 0 <= start < end <= self.n_frames:
                raise ValueError(f"{self.name}: flat range [{start}, {end}) is out of bounds")
        if not 0 < self.speed <= 0.25:
            raise ValueError(f"{self.name}: speed must be in (0, 0.25] (fraction of the width)")
        if not 0 < self.contrast <= 4:
            raise ValueError(f"{self.name}: contrast must be in (0, 4]")
        if self.motion is not None and self.codec not in _EVEN_SIZE_CODECS:
            raise ValueError(f"{self.name}: the camera renderer writes 4:2:0 (h264, hevc10, mpeg2)")
        if self.similar_cuts and self.motion is None:
            raise ValueError(f"{self.name}: similar_cuts needs the camera renderer (motion)")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise ValueError(f"{self.name}: crf must be in [0, 51]")

    @property
    def scene_starts(self) -> tuple[int, ...]:
        """First frame of every scene, starting with 0."""
        return (0, *self.cuts)

    def scene_of(self, frame: int) -> int:
        """Index of the scene that contains ``frame``."""
        return sum(1 for c in self.cuts if c <= frame)

    def is_flat(self, frame: int) -> bool:
        """True if ``frame`` is rendered as flat black."""
        return any(s <= frame < e for s, e in self.flat_ranges)

    @property
    def picture_box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the non-bar picture area, bottom/right exclusive."""
        top, side = self.letterbox
        return top, side, self.height - top, self.width - side

    @property
    def bit_depth(self) -> int:
        """Luma/chroma bit depth of the coded stream."""
        return 10 if self.codec == "hevc10" else 8

    @property
    def chroma_shape(self) -> tuple[int, int]:
        """(rows, columns) of each chroma plane: full size for 4:4:4, else halved, rounded up."""
        if self.codec == "h264_444":
            return self.height, self.width
        return (self.height + 1) // 2, (self.width + 1) // 2

    @property
    def suffix(self) -> str:
        """File name extension matching the container."""
        return "." + self.container


def letterbox_rows(width: int, height: int, aspect: float, align: int = 16) -> int:
    """Bar height (each of top and bottom) that shows ``aspect`` in the frame, rounded to align.

    The default 16 puts the bar edge on a macroblock boundary: measured on this FFmpeg, bars
    then decode within ±1 of black, while 8-aligned bars can show ±5–11 on the edge row.
    """
    active = width / aspect
    bar = (height - active) / 2
    return max(0, round(bar / align) * align)


# --------------------------------------------------------------------------- rendering


@dataclass
class _Scene:
    """One scene's precomputed planes (8-bit code values) and its pan path."""

    y: U8
    u: U8
    v: U8
    start: int
    velocity: tuple[int, int]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> F32:
    """Zero-mean, unit-ish random field with features about ``cell`` pixels wide."""
    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    img = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def _shapes(rng: np.random.Generator, h: int, w: int, count: int) -> F32:
    """Random hard-edged rectangles and ellipses as signed offsets in [-1, 1]."""
    img = Image.new("L", (w, h), 128)
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        rx, ry = int(rng.integers(4, max(5, w // 10))), int(rng.integers(4, max(5, h // 10)))
        shade = int(rng.integers(0, 256))
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        if rng.random() < 0.5:
            draw.rectangle(box, fill=shade)
        else:
            draw.ellipse(box, fill=shade)
    return (np.asarray(img, dtype=np.float32) - 128.0) / 128.0


def _gratings(rng: np.random.Generator, h: int, w: int) -> F32:
    """A few oriented sine gratings with 6–24 pixel periods (edges at many angles)."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    out = np.zeros((h, w), dtype=np.float32)
    for _ in range(3):
        theta = float(rng.uniform(0, math.pi))
        period = float(rng.uniform(6, 24))
        k = 2 * math.pi / period
        phase = float(rng.uniform(0, 2 * math.pi))
        out += np.sin(k * (math.cos(theta) * xx + math.sin(theta) * yy) + phase)
    return out / 3.0


def _make_scene(
    rng: np.random.Generator,
    index: int,
    h: int,
    w: int,
    start: int,
    length: int,
    pan: tuple[int, int],
) -> _Scene:
    """Render one scene's texture, large enough to pan over ``length`` frames."""
    # Alternate the pan direction so each scene also moves differently.
    signs = [(1, 1), (-1, 1), (1, -1), (-1, -1)][index % 4]
    velocity = (pan[0] * signs[0], pan[1] * signs[1])
    th = h + abs(velocity[1]) * (length - 1)
    tw = w + abs(velocity[0]) * (length - 1)
    # Luma: low-frequency shading + shapes + gratings + fine noise, around the scene mean.
    mean = DARK_MEAN_Y8 if index % 2 == 0 else BRIGHT_MEAN_Y8
    luma = (
        mean
        + 10.0 * _smooth_noise(rng, th, tw, 96)
        + 14.0 * _shapes(rng, th, tw, max(8, th * tw // 6000))
        + 10.0 * _gratings(rng, th, tw)
        + 10.0 * _smooth_noise(rng, th, tw, 3)
        + FINE_NOISE_SIGMA * rng.standard_normal((th, tw)).astype(np.float32)
    )
    y = np.clip(np.rint(luma), CONTENT_MIN_Y8, CONTENT_MAX_Y8).astype(np.uint8)
    # Chroma: a scene tint plus smooth variation, at half resolution.
    ch, cw = (th + 1) // 2, (tw + 1) // 2
    tint = rng.uniform(-24, 24, size=2)
    u = NEUTRAL_C8 + tint[0] + 10.0 * _smooth_noise(rng, ch, cw, 40)
    v = NEUTRAL_C8 + tint[1] + 10.0 * _smooth_noise(rng, ch, cw, 40)
    return _Scene(
        y=y,
        u=np.clip(np.rint(u), 16, 240).astype(np.uint8),
        v=np.clip(np.rint(v), 16, 240).astype(np.uint8),
        start=start,
        velocity=velocity,
    )


def _build_scenes(spec: SynthSpec) -> list[_Scene]:
    """Precompute the textures for every scene of ``spec`` (picture area only)."""
    top, left, bottom, right = spec.picture_box
    h, w = bottom - top, right - left
    rng = np.random.default_rng(spec.seed)
    bounds = [*spec.scene_starts, spec.n_frames]
    return [
        _make_scene(rng, i, h, w, bounds[i], bounds[i + 1] - bounds[i], spec.pan)
        for i in range(len(bounds) - 1)
    ]


def _crop(scene: _Scene, t: int, h: int, w: int) -> tuple[U8, U8, U8]:
    """The scene's (y, u, v) views for frame offset ``t`` inside the scene."""
    vx, vy = scene.velocity
    th, tw = scene.y.shape
    # Positive velocity moves the window right/down; negative starts at the far end.
    ox = vx * t if vx >= 0 else (tw - w) + vx * t
    oy = vy * t if vy >= 0 else (th - h) + vy * t
    cx, cy = ox // 2, oy // 2
    ch, cw = (h + 1) // 2, (w + 1) // 2  # h // 2, w // 2 for the even sizes of 4:2:0 codecs
    return (
        scene.y[oy : oy + h, ox : ox + w],
        scene.u[cy : cy + ch, cx : cx + cw],
        scene.v[cy : cy + ch, cx : cx + cw],
    )


def _full_chroma(c: U8, h: int, w: int) -> U8:
    """Half-resolution scene chroma repeated to h×w (the 4:4:4 streams' chroma)."""
    return np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w]


def render_planes(spec: SynthSpec) -> Iterator[tuple[U8, U8, U8]]:
    """Yield every frame's full-size 8-bit (Y, U, V) planes in display order."""
    if spec.motion is not None:
        from dsgen.synth_motion import render_motion  # imports this module's helpers

        yield from render_motion(spec)
        return
    top, left, bottom, right = spec.picture_box
    h, w = bottom - top, right - left
    scenes = _build_scenes(spec)
    y = np.full((spec.height, spec.width), BLACK_Y8, dtype=np.uint8)
    u = np.full(spec.chroma_shape, NEUTRAL_C8, dtype=np.uint8)
    v = u.copy()
    full = spec.chroma_shape == (spec.height, spec.width)
    for i in range(spec.n_frames):
        if spec.is_flat(i):
            y.fill(BLACK_Y8)
            u.fill(NEUTRAL_C8)
            v.fill(NEUTRAL_C8)
        else:
            # Bars are never written, so they stay exact black; flat frames refill them too.
            scene = scenes[spec.scene_of(i)]
            sy, su, sv = _crop(scene, i - scene.start, h, w)
            y[top:bottom, left:right] = sy
            if full:
                u[top:bottom, left:right] = _full_chroma(su, h, w)
                v[top:bottom, left:right] = _full_chroma(sv, h, w)
            else:  # bars are even, so (bottom + 1) // 2 is bottom // 2 unless the size is odd
                u[top // 2 : (bottom + 1) // 2, left // 2 : (right + 1) // 2] = su
                v[top // 2 : (bottom + 1) // 2, left // 2 : (right + 1) // 2] = sv
        yield y, u, v


# --------------------------------------------------------------------------- encoding


def _fill_plane(plane: VideoPlane, data: U8 | U16) -> None:
    """Copy ``data`` into a frame plane in place, honouring the plane's line padding."""
    # A VideoPlane exposes its AVFrame buffer writably, so this avoids from_ndarray's copies.
    itemsize = data.dtype.itemsize
    flat = np.frombuffer(memoryview(plane), dtype=data.dtype)
    rows = flat.reshape(-1, plane.line_size // itemsize)
    rows[: data.shape[0], : data.shape[1]] = data


def _pix_fmt(spec: SynthSpec) -> str:
    """FFmpeg pixel format fed to the encoder (no swscale conversion happens)."""
    if spec.codec == "h264_444":
        return "yuv444p"
    return "yuv420p10le" if spec.bit_depth == 10 else "yuv420p"


def _to_10bit(data: U8) -> U16:
    """8-bit code values to 10-bit ones (x4: exact for black 16->64 and neutral 128->512)."""
    return np.left_shift(data.astype(np.uint16), 2)


def _x265_params(spec: SynthSpec) -> str:
    """x265-params string: quiet, fixed GOP/B-frames, HDR10 signalling when asked."""
    params = [
        "log-level=error",
        f"keyint={spec.gop}",
        f"min-keyint={spec.gop}",
        f"bframes={spec.bframes}",
        "scenecut=0",
    ]
    if spec.hdr:
        params += [
            "hdr10=1",  # emit mastering-display / content-light-level SEI
            "repeat-headers=1",
            "colorprim=bt2020",
            "transfer=smpte2084",
            "colormatrix=bt2020nc",
            "range=limited",
            f"master-display={HDR_MASTER_DISPLAY}",
            f"max-cll={HDR_MAX_CLL[0]},{HDR_MAX_CLL[1]}",
        ]
    else:
        params += ["colorprim=bt709", "transfer=bt709", "colormatrix=bt709", "range=limited"]
    return ":".join(params)


def _colour_tags(spec: SynthSpec) -> tuple[int, int, int]:
    """(primaries, transfer, matrix) FFmpeg enum values the stream is tagged with."""
    if spec.hdr:
        return ColorPrimaries.BT2020, ColorTrc.SMPTE2084, Colorspace.BT2020
    if spec.codec == "mpeg2" and spec.height in (480, 576):
        # Standard-definition: BT.601 (625-line primaries for 576, SMPTE-C for 480).
        prim = ColorPrimaries.BT470BG if spec.height == 576 else ColorPrimaries.SMPTE170M
        return prim, ColorTrc.SMPTE170M, Colorspace.ITU601
    return ColorPrimaries.BT709, ColorTrc.BT709, Colorspace.ITU709


def _add_video_stream(container: OutputContainer, spec: SynthSpec) -> VideoStream:
    """Add and configure the encoder stream for ``spec`` (size, GOP, SAR, colour tags)."""
    codec_name = _ENCODERS[spec.codec]
    options: dict[str, str] = {}
    if spec.codec in ("h264", "h264_444"):
        # ultrafast turns B-frames off; put them back. Fixed GOP, no scenecut keyframes, so
        # keyframe positions are predictable (every gop frames).
        options = {
            "preset": spec.preset or X264_PRESET,
            "crf": X264_CRF if spec.crf is None else str(spec.crf),
            "x264-params": f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:"
            f"bframes={spec.bframes}:log-level=error",
        }
    elif spec.codec == "hevc10":
        options = {
            "preset": spec.preset or X265_PRESET,
            "crf": X265_CRF if spec.crf is None else str(spec.crf),
            "x265-params": _x265_params(spec),
        }
    stream = container.add_stream(codec_name, rate=spec.fps, options=options)
    assert isinstance(stream, VideoStream)
    ctx = stream.codec_context
    ctx.width = spec.width
    ctx.height = spec.height
    ctx.pix_fmt = _pix_fmt(spec)
    ctx.gop_size = spec.gop
    ctx.max_b_frames = spec.bframes
    ctx.sample_aspect_ratio = spec.sar
    prim, trc, matrix = _colour_tags(spec)
    ctx.color_primaries = prim
    ctx.color_trc = trc
    ctx.colorspace = matrix
    ctx.color_range = ColorRange.MPEG
    if spec.codec in ("mpeg2", "mpeg1"):
        # Fixed quantiser 2 (best) so the detail layer survives; MPEG-1/2 have no CRF.
        ctx.qscale = True
        ctx.global_quality = 2 * 118  # FF_QP2LAMBDA = 118
        ctx.qmin, ctx.qmax = 2, 4
    return stream


def make_video(path: Path, spec: SynthSpec) -> Path:
    """Encode ``spec`` to ``path`` atomically (temp file, then rename); return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format=_MUXERS[spec.container]) as container:
            stream = _add_video_stream(container, spec)
            prim, trc, matrix = _colour_tags(spec)
            for i, planes in enumerate(render_planes(spec)):
                frame = av.VideoFrame(spec.width, spec.height, _pix_fmt(spec))
                for plane, data in zip(frame.planes, planes, strict=True):
                    _fill_plane(plane, _to_10bit(data) if spec.bit_depth == 10 else data)
                if spec.is_flat(i):
                    # Force intra: inter/B prediction from the textured neighbours otherwise
                    # leaves ghosts of up to ±16 in a flat frame (seen with x265 ultrafast).
                    frame.pict_type = PictureType.I
                # Encoder time base is 1/fps, so pts counts frames; the muxer rescales.
                frame.pts = i
                frame.time_base = 1 / spec.fps
                frame.color_primaries = prim
                frame.color_trc = trc
                frame.colorspace = matrix
                frame.color_range = ColorRange.MPEG
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- demo / bad files


def demo_specs() -> list[SynthSpec]:
    """The built-in demo set: SDR H.264 with cuts, HDR10 HEVC, 2.39:1 letterbox, PAL anamorphic."""
    return [
        SynthSpec(
            name="sdr_h264_1080p_cuts",
            codec="h264",
            width=1920,
            height=1080,
            n_frames=144,
            cuts=(40, 77, 110),
            gop=48,
            seed=1,
        ),
        SynthSpec(
            name="hdr10_hevc_1080p_cuts",
            codec="hevc10",
            width=1920,
            height=1080,
            n_frames=120,
            cuts=(45, 90),
            hdr=True,
            gop=48,
            seed=2,
        ),
        SynthSpec(
            name="scope_239_letterbox_1080p",
            codec="h264",
            width=1920,
            height=1080,
            n_frames=120,
            cuts=(60,),
            letterbox=(letterbox_rows(1920, 1080, 2.39), 0),
            seed=3,
        ),
        SynthSpec(
            name="pal_anamorphic_mpeg2",
            codec="mpeg2",
            width=720,
            height=576,
            n_frames=125,
            fps=Fraction(25),
            cuts=(50, 100),
            sar=Fraction(64, 45),
            gop=12,
            container="mkv",
            seed=4,
        ),
    ]


def make_demo_set(directory: Path) -> list[tuple[Path, SynthSpec]]:
    """Write every demo video into ``directory``; return (path, spec) pairs."""
    directory = Path(directory)
    return [(make_video(directory / f"{s.name}{s.suffix}", s), s) for s in demo_specs()]


def _make_audio_only(path: Path, seconds: float = 1.0, rate: int = 48000) -> Path:
    """Write a FLAC 440 Hz sine in Matroska with no video stream (atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="matroska") as container:
            stream = container.add_stream("flac", rate=rate)
            stream.codec_context.layout = "mono"
            stream.codec_context.format = "s16"
            chunk = 4096
            n = int(seconds * rate)
            t = np.arange(n, dtype=np.float64) / rate
            pcm = (0.3 * 32767 * np.sin(2 * math.pi * 440.0 * t)).astype(np.int16)
            for start in range(0, n, chunk):
                block = pcm[start : start + chunk].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def make_bad_files(directory: Path) -> dict[str, Path]:
    """Write broken/edge-case inputs; keys: truncated, zero_byte, random_bytes, audio_only,
    three_frames, missing (a path that does not exist)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    full = directory / ".truncated_source.mkv"
    make_video(full, SynthSpec("truncated", "h264", 320, 240, 48, cuts=(24,), gop=12, seed=11))
    data = full.read_bytes()
    out["truncated"] = directory / "truncated.mkv"
    out["truncated"].write_bytes(data[: int(len(data) * 0.4)])  # ~40% of the bytes
    full.unlink()

    out["zero_byte"] = directory / "zero_byte.mkv"
    out["zero_byte"].write_bytes(b"")

    out["random_bytes"] = directory / "random_bytes.mkv"
    out["random_bytes"].write_bytes(np.random.default_rng(12).bytes(64 * 1024))

    out["audio_only"] = _make_audio_only(directory / "audio_only.mkv")

    out["three_frames"] = make_video(
        directory / "three_frames.mkv",
        SynthSpec("three_frames", "h264", 320, 240, 3, gop=12, seed=13),
    )

    out["missing"] = directory / "missing.mkv"
    out["missing"].unlink(missing_ok=True)
    return out


def main() -> None:  # pragma: no cover - manual timing helper
    """Time the demo set: ``python -m dsgen.synth OUTDIR``."""
    import sys

    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "synth_demo")
    for spec in demo_specs():
        t0 = time.perf_counter()
        make_video(directory / f"{spec.name}{spec.suffix}", spec)
        print(f"{spec.name}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
