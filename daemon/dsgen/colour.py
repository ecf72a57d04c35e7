"""Colour handling for crop regions: YUV/RGB samples → 8-bit RGB, plus a cheap luma preview.

dsgen never converts whole UHD frames to RGB. For every patch it crops the *source planes*
zero-copy (numpy views honouring ``line_size``), copies just the crop (plus a small chroma
margin) into a tiny frame, and lets swscale convert that. RGB formats are read directly.

SDR sources are decoded with their own matrix and range and are **never** tone-mapped
(a BT.2020-primaries SDR source keeps its primaries: no gamut mapping either). 8-bit SDR
goes through swscale's planar ``gbrp``; deeper SDR through ``gbrp16le`` and a rounding LUT.

HDR sources (PQ / HLG) become BT.709 SDR: swscale gives 16-bit R'G'B' (BT.2020 matrix),
then :mod:`dsgen.tonemap` maps the crop's light (BT.2390) and gamut to BT.709 SDR.

swscale facts this module is built on (FFmpeg 8.1 in PyAV 18.1, measured; see tests):

* Default-flag (``BILINEAR``) YUV→rgb24 is off by up to ±2.5 codes with a −0.8 mean bias
  on flat colours; with ``ACCURATE_RND`` the planar ``gbrp`` output is exact (±0.51) and
  twice as fast as accurate packed rgb24, so 8-bit SDR goes to ``gbrp`` + numpy interleave.
* 16-bit output (``gbrp16le``) is linear but does not map nominal white to 65535
  (limited range: 65283; full range N-bit: code << (16 − N)). Black and white are measured
  once per input layout with a 16×16 probe and folded into the lookup tables.
* ``rgb48le`` combined with ``FULL_CHR_H_INT`` returns garbage, so it is never used.
* Chroma upsampling reads beyond a crop edge and swscale shortens its filters for tiny
  sources, so windows are padded by 2 chroma samples, made at least 16×16 and whole chroma
  samples in size, then cut: any box equals the same box cut from a whole-frame conversion
  (bit-identical for even-sized frames; tested).
* ``sws_scale_frame`` interpolates chroma at the frame's ``chroma_location`` and treats an
  untagged frame as centre-sited. Crop windows are new, untagged frames, so
  :func:`dsgen.chroma.sited` stamps the stream's siting (``ColourInfo.chroma_siting``) on
  them; with it, crops are within rounding (≤ 0.52 code) of a float reference that
  upsamples chroma linearly at the H.273 position, for every siting (tested on real H.264
  chromaloc 0–5, HEVC, MPEG-1 and MPEG-2 streams).
* One pass cannot start a subsampled frame half a chroma sample in, so a scaled crop whose
  box is off the chroma grid (odd x, y, width or height in 4:2:0) is converted at full size
  to 16-bit R'G'B', cut exactly and then scaled: the scaled region is always exactly the box.
* swscale's own PQ→BT.709 conversion (``dst_color_trc``) hard-clips at 100 nits, so it is
  not used for tone mapping.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
from av.sidedata.sidedata import SideData
from av.sidedata.sidedata import Type as SideDataType
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter
from av.video.stream import VideoStream
from PIL import Image

from dsgen.chroma import codec_siting, has_subsampled_chroma, read_siting, sited
from dsgen.model import (
    DEFAULT_PEAK_NITS,
    ChromaSiting,
    ColourInfo,
    Matrix,
    PeakSource,
    Transfer,
)
from dsgen.tonemap import HLG_NOMINAL_PEAK_NITS, hdr_to_sdr, sdr_lut

U8Array = npt.NDArray[np.uint8]
F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]
Box = tuple[int, int, int, int]

# --- FFmpeg enum values (libavutil/pixfmt.h) as exposed by PyAV's integer tag attributes ----
_SPC_UNSPECIFIED: Final = 2  # AVCOL_SPC_UNSPECIFIED
_SPC_TO_MATRIX: Final[dict[int, Matrix]] = {
    1: "bt709",  # AVCOL_SPC_BT709
    4: "bt601",  # AVCOL_SPC_FCC: Kr 0.30 / Kb 0.11, nearest supported is BT.601
    5: "bt601",  # AVCOL_SPC_BT470BG
    6: "bt601",  # AVCOL_SPC_SMPTE170M
    7: "bt709",  # AVCOL_SPC_SMPTE240M: Kr 0.212 / Kb 0.087, nearest supported is BT.709
    9: "bt2020",  # AVCOL_SPC_BT2020_NCL
    10: "bt2020",  # AVCOL_SPC_BT2020_CL: decoded as NCL (constant luminance is ~never used)
}
_RANGE_JPEG: Final = 2  # AVCOL_RANGE_JPEG (full range)
_TRC_PQ: Final = 16  # AVCOL_TRC_SMPTE2084
_TRC_HLG: Final = 18  # AVCOL_TRC_ARIB_STD_B67
_TRC_UNSPECIFIED: Final = 2  # AVCOL_TRC_UNSPECIFIED
_PRI_BT709: Final = 1  # AVCOL_PRI_BT709
_PRI_BT470BG: Final = 5  # AVCOL_PRI_BT470BG (625-line SD)
_PRI_SMPTE170M: Final = 6  # AVCOL_PRI_SMPTE170M (525-line SD)
_PRI_BT2020: Final = 9  # AVCOL_PRI_BT2020
_UNTAGGED_HD_HEIGHT: Final = 720  # untagged video this tall or taller is assumed BT.709 (HD)

_SWS_COLORSPACE: Final[dict[Matrix, Colorspace]] = {
    "bt601": Colorspace.ITU601,
    "bt709": Colorspace.ITU709,
    "bt2020": Colorspace.BT2020,
}
# ACCURATE_RND selects swscale's exact generic path (default flags use a ±2.5-code SIMD path).
_SWS_FLAGS: Final = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
# One swscale thread: crops are small, dsgen parallelises across frames/processes and the
# 2-core machine is already busy decoding; extra threads cost more CPU time than they save.
_SWS_THREADS: Final = 1
# Downscaling a crop to GT size inside the conversion: Lanczos, as the predecessor's
# `scale=…:flags=lanczos`, with accurate rounding.
_SWS_SCALE_FLAGS: Final = Interpolation.LANCZOS | Interpolation.ACCURATE_RND
# Chroma samples kept beyond each crop edge so swscale's chroma interpolation sees the same
# neighbours as in a whole-frame conversion (1 is not always enough, 2 is; measured).
_CHROMA_MARGIN: Final = 2
# swscale shortens its filters for tiny sources (a 6×6 window converts differently from the
# same pixels inside a big frame), so converted windows are at least this many luma samples.
_MIN_WINDOW: Final = 16

# =========================================================================================
# Pixel-format layouts
# =========================================================================================


@dataclass(frozen=True)
class _YuvLayout:
    """How a YUV pixel format stores its samples, and the planar format its crops use."""

    name: str
    planar: str  # planar yuv format the crop frame is built in
    sx: int  # log2 horizontal chroma subsampling
    sy: int  # log2 vertical chroma subsampling
    bits: int  # significant bits per sample
    itemsize: int  # bytes per stored sample
    semi: bool = False  # chroma interleaved in one plane (nv12, p010, …)
    swap_uv: bool = False  # nv21: V before U
    shift: int = 0  # samples stored MSB-aligned (p010: 6)
    full_range: bool = False  # yuvj*: always full range

    @property
    def dtype(self) -> np.dtype[Any]:
        """numpy dtype of one stored sample."""
        return np.dtype(np.uint8) if self.itemsize == 1 else np.dtype("<u2")


@dataclass(frozen=True)
class _RgbLayout:
    """How an RGB pixel format stores R, G, B (packed offsets or planar plane indices)."""

    name: str
    bits: int
    itemsize: int
    planar: bool
    index: tuple[int, int, int]  # packed: channel offsets of R,G,B; planar: plane of R,G,B
    channels: int = 1  # packed: samples per pixel

    @property
    def dtype(self) -> np.dtype[Any]:
        """numpy dtype of one stored sample."""
        return np.dtype(np.uint8) if self.itemsize == 1 else np.dtype("<u2")


def _build_yuv_layouts() -> dict[str, _YuvLayout]:
    """Every YUV format the fast path reads directly."""
    out: dict[str, _YuvLayout] = {}
    for sub, sx, sy in (("420", 1, 1), ("422", 1, 0), ("444", 0, 0), ("440", 0, 1)):
        for bits in (8, 10, 12, 16):
            if sub == "440" and bits not in (8, 10, 12):
                continue
            name = f"yuv{sub}p" if bits == 8 else f"yuv{sub}p{bits}le"
            out[name] = _YuvLayout(name, name, sx, sy, bits, 1 if bits == 8 else 2)
        j = f"yuvj{sub}p"
        out[j] = _YuvLayout(j, j, sx, sy, 8, 1, full_range=True)
    semi = (
        ("nv12", "yuv420p", 1, 1, 8, 0),
        ("nv21", "yuv420p", 1, 1, 8, 0),
        ("nv16", "yuv422p", 1, 0, 8, 0),
        ("nv24", "yuv444p", 0, 0, 8, 0),
        ("p010le", "yuv420p10le", 1, 1, 10, 6),
        ("p012le", "yuv420p12le", 1, 1, 12, 4),
        ("p016le", "yuv420p16le", 1, 1, 16, 0),
        ("p210le", "yuv422p10le", 1, 0, 10, 6),
        ("p410le", "yuv444p10le", 0, 0, 10, 6),
    )
    for name, planar, sx, sy, bits, shift in semi:
        out[name] = _YuvLayout(
            name, planar, sx, sy, bits, 1 if bits == 8 else 2, True, name == "nv21", shift
        )
    return out


def _build_rgb_layouts() -> dict[str, _RgbLayout]:
    """Every RGB format read directly from its planes (no swscale at all)."""
    out: dict[str, _RgbLayout] = {}
    packed8 = {
        "rgb24": ((0, 1, 2), 3),
        "bgr24": ((2, 1, 0), 3),
        "rgba": ((0, 1, 2), 4),
        "bgra": ((2, 1, 0), 4),
        "argb": ((1, 2, 3), 4),
        "abgr": ((3, 2, 1), 4),
        "rgb0": ((0, 1, 2), 4),
        "bgr0": ((2, 1, 0), 4),
        "0rgb": ((1, 2, 3), 4),
        "0bgr": ((3, 2, 1), 4),
    }
    for name, (idx, ch) in packed8.items():
        out[name] = _RgbLayout(name, 8, 1, False, idx, ch)
    for name, idx, ch in (
        ("rgb48le", (0, 1, 2), 3),
        ("bgr48le", (2, 1, 0), 3),
        ("rgba64le", (0, 1, 2), 4),
        ("bgra64le", (2, 1, 0), 4),
    ):
        out[name] = _RgbLayout(name, 16, 2, False, idx, ch)
    # gbrp stores G, B, R in planes 0, 1, 2.
    out["gbrp"] = _RgbLayout("gbrp", 8, 1, True, (2, 0, 1))
    out["gbrap"] = _RgbLayout("gbrap", 8, 1, True, (2, 0, 1))
    for bits in (10, 12, 14, 16):
        for base in ("gbrp", "gbrap"):
            if base == "gbrap" and bits == 14:
                continue
            name = f"{base}{bits}le"
            out[name] = _RgbLayout(name, bits, 2, True, (2, 0, 1))
    return out


_YUV_LAYOUTS: Final = _build_yuv_layouts()
_RGB_LAYOUTS: Final = _build_rgb_layouts()
FAST_YUV_FORMATS: Final = frozenset(_YUV_LAYOUTS)  # formats cropped without a whole-frame pass
FAST_RGB_FORMATS: Final = frozenset(_RGB_LAYOUTS)


# =========================================================================================
# colour_info
# =========================================================================================


def _tag(frame: VideoFrame | None, ctx: Any, name: str, unspecified: tuple[int, ...]) -> int:
    """A colour tag from the frame if set there, else from the codec context."""
    if frame is not None:
        value = int(getattr(frame, name))
        if value not in unspecified:
            return value
    return int(getattr(ctx, name))


def hdr_metadata(frame: VideoFrame) -> tuple[float | None, float | None]:
    """(MaxCLL, mastering-display max luminance) in cd/m² from a frame's side data, if any.

    PyAV 18 exposes both only as raw side-data buffers: CONTENT_LIGHT_LEVEL is
    AVContentLightMetadata {unsigned MaxCLL, MaxFALL}; MASTERING_DISPLAY_METADATA is
    AVMasteringDisplayMetadata {AVRational primaries[3][2], white_point[2], min_luminance,
    max_luminance; int has_primaries, has_luminance} = 22 native ints.
    """
    max_cll: float | None = None
    mastering: float | None = None
    # PyAV's stub types Frame.side_data as a TypedDict; at run time it iterates SideData.
    for sd in cast(Iterable[SideData], frame.side_data):
        kind = sd.type
        if kind == SideDataType.CONTENT_LIGHT_LEVEL:
            raw = bytes(sd)
            if len(raw) >= 8:
                cll = struct.unpack_from("=I", raw)[0]
                max_cll = float(cll) if cll > 0 else None
        elif kind == SideDataType.MASTERING_DISPLAY_METADATA:
            raw = bytes(sd)
            if len(raw) >= 88:
                ints = struct.unpack_from("=22i", raw)
                num, den, has_luminance = ints[18], ints[19], ints[21]
                if has_luminance and den > 0 and num > 0:
                    mastering = num / den
    return max_cll, mastering


def colour_info(stream: VideoStream, frame: VideoFrame | None = None) -> ColourInfo:
    """Read matrix, range, bit depth, transfer and HDR peak from a stream (and a decoded frame).

    Frame tags win over codec-context tags (decoders set them from the bitstream VUI).
    Untagged matrix, in order: BT.2020 if the primaries are BT.2020 or the transfer is HDR;
    BT.709 / BT.601 if the primaries say so; else BT.709 for height ≥ 720, BT.601 below
    (mpv's convention). Untagged range is limited, except yuvj* and RGB formats.
    Untagged transfer is SDR, except BT.2020 primaries with HDR10 static metadata → PQ.
    HDR peak: MaxCLL, else mastering max luminance, else 1000 nits; HLG uses its nominal
    1000 nits. Chroma siting (4:2:0 / 4:2:2 only): measured on the frame (see dsgen.chroma),
    else the codec's default. Pass the first decoded frame: only frames carry the HDR side
    data and the siting FFmpeg settled on.
    """
    ctx = stream.codec_context
    fmt = frame.format if frame is not None else ctx.format
    pix_fmt = fmt.name if fmt is not None else (ctx.pix_fmt or "yuv420p")
    bits = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
    is_rgb = bool(fmt.is_rgb) if fmt is not None else False
    height = frame.height if frame is not None else ctx.height

    spc = _tag(frame, ctx, "colorspace", (_SPC_UNSPECIFIED, 3))
    rng = _tag(frame, ctx, "color_range", (0,))
    trc = _tag(frame, ctx, "color_trc", (0, _TRC_UNSPECIFIED, 3))
    pri = _tag(frame, ctx, "color_primaries", (0, 2, 3))

    max_cll, mastering = hdr_metadata(frame) if frame is not None else (None, None)
    transfer: Transfer = "sdr"
    if trc == _TRC_PQ:
        transfer = "pq"
    elif trc == _TRC_HLG:
        transfer = "hlg"
    elif trc == _TRC_UNSPECIFIED and pri == _PRI_BT2020 and (max_cll or mastering):
        transfer = "pq"

    matrix_tagged = spc in _SPC_TO_MATRIX
    matrix: Matrix
    if matrix_tagged:
        matrix = _SPC_TO_MATRIX[spc]
    elif pri == _PRI_BT2020 or transfer != "sdr":
        matrix = "bt2020"
    elif pri == _PRI_BT709:
        matrix = "bt709"
    elif pri in (_PRI_BT470BG, _PRI_SMPTE170M):
        matrix = "bt601"
    else:
        matrix = "bt709" if height >= _UNTAGGED_HD_HEIGHT else "bt601"

    full_range = rng == _RANGE_JPEG or pix_fmt.startswith("yuvj") or is_rgb

    peak = DEFAULT_PEAK_NITS
    peak_source: PeakSource = "default"
    if transfer == "hlg":
        peak, peak_source = HLG_NOMINAL_PEAK_NITS, "nominal"
    elif max_cll:
        peak, peak_source = max_cll, "maxcll"
    elif mastering:
        peak, peak_source = mastering, "mastering"
    siting: ChromaSiting = "none"
    if has_subsampled_chroma(fmt):
        measured = read_siting(frame) if frame is not None else None
        siting = measured or codec_siting(str(ctx.name))
    return ColourInfo(
        matrix=matrix,
        full_range=full_range,
        bit_depth=bits,
        transfer=transfer,
        peak_nits=float(peak),
        matrix_tagged=matrix_tagged or is_rgb,
        peak_source=peak_source,
        chroma_siting=siting,
    )


# =========================================================================================
# Plane views
# =========================================================================================


def _plane_array(
    plane: VideoPlane,
    dtype: np.dtype[Any],
    height: int,
    width: int,
    channels: int = 1,
    writable: bool = False,
) -> npt.NDArray[Any]:
    """Zero-copy (height, width[, channels]) view of one plane, honouring line_size padding."""
    line = plane.line_size
    item = dtype.itemsize
    shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
    inner: tuple[int, ...] = (item,) if channels == 1 else (channels * item, item)
    # PyAV exposes a bottom-up plane (negative line_size) from its lowest address.
    offset = 0 if line >= 0 else (height - 1) * -line
    arr = np.ndarray(
        shape, dtype=dtype, buffer=memoryview(plane), offset=offset, strides=(line, *inner)
    )
    if not writable:
        arr.flags.writeable = False
    return arr


def plane_views(frame: VideoFrame, writable: bool = False) -> tuple[npt.NDArray[Any], ...]:
    """Zero-copy views (Y, U, V) of a YUV frame: uint8 or uint16, shape (rows, samples).

    Semi-planar formats (nv12, p010, …) give strided U and V views into the interleaved
    plane. Values are the stored samples (p010 keeps its 6 zero LSBs). Views are read-only
    unless ``writable`` (decoded frames may share buffers: never write to those).
    """
    layout = _YUV_LAYOUTS.get(frame.format.name)
    if layout is None:
        raise ValueError(f"plane_views: unsupported pixel format {frame.format.name!r}")
    planes = frame.planes
    y = _plane_array(planes[0], layout.dtype, planes[0].height, planes[0].width, 1, writable)
    if not layout.semi:
        u, v = (_plane_array(p, layout.dtype, p.height, p.width, 1, writable) for p in planes[1:3])
        return y, u, v
    uv = _plane_array(planes[1], layout.dtype, planes[1].height, planes[1].width, 2, writable)
    u, v = uv[..., 0], uv[..., 1]
    return (y, v, u) if layout.swap_uv else (y, u, v)


def _rgb_views(frame: VideoFrame, layout: _RgbLayout) -> tuple[npt.NDArray[Any], ...]:
    """Zero-copy (R, G, B) views of an RGB frame."""
    planes = frame.planes
    h, w = frame.height, frame.width
    if layout.planar:
        return tuple(_plane_array(planes[i], layout.dtype, h, w) for i in layout.index)
    packed = _plane_array(planes[0], layout.dtype, h, w, layout.channels)
    return tuple(packed[..., i] for i in layout.index)


# =========================================================================================
# swscale helpers
# =========================================================================================

_local = threading.local()


def _reformatter(role: str = "convert") -> VideoReformatter:
    """A per-thread reusable swscale context per role (saves ~0.3 ms of set-up per crop;
    the exact scaled path's R'G'B' rescale has its own, so the two passes of one crop do
    not re-initialise each other's context)."""
    refs: dict[str, VideoReformatter] | None = getattr(_local, "reformatters", None)
    if refs is None:
        refs = _local.reformatters = {}
    ref = refs.get(role)
    if ref is None:
        ref = refs[role] = VideoReformatter()
    return ref


def _sws_rgb(frame: VideoFrame, fmt: str, matrix: Matrix, full_range: bool,
             size: tuple[int, int] | None = None) -> VideoFrame:
    """Convert a (small) YUV frame to planar RGB with an explicit matrix and range (and scale
    it to `size` with Lanczos in the same pass)."""
    cs = _SWS_COLORSPACE[matrix]
    width, height = size if size is not None else (None, None)
    return _reformatter().reformat(
        frame,
        width=width,
        height=height,
        format=fmt,
        src_colorspace=cs,
        dst_colorspace=cs,
        src_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG,
        dst_color_range=ColorRange.JPEG,
        interpolation=_SWS_FLAGS if size is None else _SWS_SCALE_FLAGS,
        threads=_SWS_THREADS,
    )


def _nominal_levels(bits: int, full_range: bool) -> tuple[int, int, int]:
    """(black, white, neutral chroma) sample values of a YUV format."""
    if full_range:
        return 0, (1 << bits) - 1, 1 << (bits - 1)
    return 16 << (bits - 8), 235 << (bits - 8), 128 << (bits - 8)


@functools.lru_cache(maxsize=64)
def _gbrp16_levels(planar_fmt: str, full_range: bool) -> tuple[float, float]:
    """The gbrp16le codes swscale produces for nominal black and white (measured once)."""
    layout = _YUV_LAYOUTS[planar_fmt]
    black, white, neutral = _nominal_levels(layout.bits, full_range)
    levels = []
    for luma in (black, white):
        probe = VideoFrame(16, 16, planar_fmt)
        for view, value in zip(
            plane_views(probe, writable=True), (luma, neutral, neutral), strict=True
        ):
            view[...] = value
        out = _sws_rgb(probe, "gbrp16le", "bt709", full_range)
        levels.append(float(_plane_array(out.planes[0], np.dtype("<u2"), 16, 16)[8, 8]))
    return levels[0], levels[1]


# =========================================================================================
# Lookup tables
# =========================================================================================


@functools.lru_cache(maxsize=8)
def _luma_lut(bits: int, shift: int, itemsize: int, full_range: bool) -> F32Array:
    """Stored luma sample → 8-bit full-range-equivalent float (clipped to [0, 255])."""
    codes = np.arange(1 << (8 * itemsize), dtype=np.float64) / float(1 << shift)
    black, white, _ = _nominal_levels(bits, full_range)
    lut = np.clip((codes - black) * (255.0 / (white - black)), 0.0, 255.0).astype(np.float32)
    lut.flags.writeable = False
    return lut


# =========================================================================================
# Cropping
# =========================================================================================


def _check_box(box: Box, width: int, height: int) -> Box:
    """Validate an (x, y, w, h) box against the frame size."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop box {box} is empty or outside the {width}x{height} frame")
    return x, y, w, h


def _crop_window(box: Box, width: int, height: int, sx: int, sy: int) -> Box:
    """Region (x0, y0, x1, y1) to convert: box aligned outward to chroma plus a margin."""
    x, y, w, h = box
    ax, ay = (1 << sx) - 1, (1 << sy) - 1
    mx = _CHROMA_MARGIN << sx if sx else 0
    my = _CHROMA_MARGIN << sy if sy else 0
    x0, x1 = _grow(max(0, (x & ~ax) - mx), min(width, ((x + w + ax) & ~ax) + mx), width, ax)
    y0, y1 = _grow(max(0, (y & ~ay) - my), min(height, ((y + h + ay) & ~ay) + my), height, ay)
    return x0, y0, x1, y1


def _grow(lo: int, hi: int, size: int, align_mask: int) -> tuple[int, int]:
    """Widen [lo, hi) to at least _MIN_WINDOW samples inside [0, size), keeping alignment."""
    missing = _MIN_WINDOW - (hi - lo)
    if missing <= 0:
        return lo, hi
    lo = max(0, (lo - missing) & ~align_mask)
    return lo, min(size, max(hi, lo + _MIN_WINDOW))


def _copy_planes(frame: VideoFrame, layout: _YuvLayout, window: Box) -> VideoFrame:
    """A new planar frame holding the window of the source planes (shifted to LSBs).

    The frame is sized up to whole chroma samples (the last luma row/column is repeated), so
    swscale always sees an exact 2:1 chroma ratio, even at the edge of an odd-sized frame.
    """
    x0, y0, x1, y1 = window
    w, h = x1 - x0, y1 - y0
    ax, ay = (1 << layout.sx) - 1, (1 << layout.sy) - 1
    out = VideoFrame((w + ax) & ~ax, (h + ay) & ~ay, layout.planar)
    src = plane_views(frame)
    dst = plane_views(out, writable=True)
    cx0, cy0 = x0 >> layout.sx, y0 >> layout.sy
    for k, (s, d) in enumerate(zip(src, dst, strict=True)):
        r0, c0, rows, cols = (y0, x0, h, w) if k == 0 else (cy0, cx0, *d.shape)
        region = s[r0 : r0 + rows, c0 : c0 + cols]
        target = d[:rows, :cols]
        if layout.shift:
            np.right_shift(region, layout.shift, out=target)
        else:
            target[...] = region
        if k == 0 and cols < d.shape[1]:
            d[:rows, cols:] = d[:rows, cols - 1 : cols]
        if k == 0 and rows < d.shape[0]:
            d[rows:, :] = d[rows - 1 : rows, :]
    return out


def _interleave(r: npt.NDArray[Any], g: npt.NDArray[Any], b: npt.NDArray[Any]) -> U8Array:
    """Three uint8 planes → (H, W, 3) RGB."""
    out = np.empty((*r.shape, 3), dtype=np.uint8)
    out[..., 0] = r
    out[..., 1] = g
    out[..., 2] = b
    return out


def _lut_interleave(lut: U8Array, planes: tuple[npt.NDArray[Any], ...]) -> U8Array:
    """Three uint16 planes through an 8-bit LUT → (H, W, 3) RGB."""
    out = np.empty((*planes[0].shape, 3), dtype=np.uint8)
    for i, p in enumerate(planes):
        np.take(lut, p, out=out[..., i])
    return out


def _fallback_frame(frame: VideoFrame, info: ColourInfo) -> VideoFrame:
    """Whole-frame swscale pass to a format the fast paths read (exotic formats only)."""
    fmt = frame.format
    bits = max((c.bits for c in fmt.components), default=8)
    depth = 8 if bits <= 8 else 10 if bits <= 10 else 12 if bits <= 12 else 16
    if fmt.is_rgb:
        target = "gbrp" if depth == 8 else f"gbrp{depth}le"
        return frame.reformat(format=target, interpolation=_SWS_FLAGS, threads=_SWS_THREADS)
    luma_w = 16
    chroma_w = fmt.chroma_width(luma_w) if len(fmt.components) >= 3 else luma_w
    chroma_h = fmt.chroma_height(luma_w) if len(fmt.components) >= 3 else luma_w
    sub = {(8, 8): "420", (8, 16): "422", (16, 16): "444", (16, 8): "440"}.get(
        (chroma_w, chroma_h), "444"
    )
    target = f"yuv{sub}p" if depth == 8 else f"yuv{sub}p{depth}le"
    if sub == "440" and depth == 16:
        target = "yuv444p16le"
    cs = _SWS_COLORSPACE[info.matrix]
    rng = ColorRange.JPEG if info.full_range else ColorRange.MPEG
    return frame.reformat(
        format=target,
        src_colorspace=cs,
        dst_colorspace=cs,
        src_color_range=rng,
        dst_color_range=rng,
        interpolation=_SWS_FLAGS,
        threads=_SWS_THREADS,
    )


def crop_rgb(frame: VideoFrame, box: Box, info: ColourInfo) -> U8Array:
    """The (x, y, w, h) region of a frame as uint8 (h, w, 3) full-range RGB.

    SDR: decoded with the source matrix and range, never tone-mapped. HDR: BT.709 SDR via
    BT.2390 tone mapping (see module doc). Chroma is interpolated at the stream's siting
    (``info.chroma_siting``). Any box is accepted; for subsampled chroma the converted
    window is aligned outward to whole chroma samples and padded by 2 of them, so the result
    equals converting the whole frame (same flags, same siting) and cutting exactly this box,
    odd positions and sizes and odd-sized frames included.
    """
    x, y, w, h = _check_box(box, frame.width, frame.height)
    name = frame.format.name
    rgb_layout = _RGB_LAYOUTS.get(name)
    if rgb_layout is not None:
        views = tuple(v[y : y + h, x : x + w] for v in _rgb_views(frame, rgb_layout))
        return _planes_to_rgb(views, 0.0, float((1 << rgb_layout.bits) - 1), info)
    layout = _YUV_LAYOUTS.get(name)
    if layout is None:
        return crop_rgb(_fallback_frame(frame, info), (x, y, w, h), info)

    full = info.full_range or layout.full_range
    window = _crop_window((x, y, w, h), frame.width, frame.height, layout.sx, layout.sy)
    small = _sited_copy(frame, layout, window, info)
    rows = slice(y - window[1], y - window[1] + h)
    cols = slice(x - window[0], x - window[0] + w)
    if layout.bits == 8 and not info.is_hdr:
        # 8-bit gbrp with ACCURATE_RND is exact; gbrp planes are G, B, R.
        rgb = _sws_rgb(small, "gbrp", info.matrix, full)
        g, b, r = (_plane_array(p, np.dtype(np.uint8), rgb.height, rgb.width) for p in rgb.planes)
        return _interleave(r[rows, cols], g[rows, cols], b[rows, cols])
    g, b, r = _gbrp16_planes(_sws_rgb(small, "gbrp16le", info.matrix, full))
    black, white = _gbrp16_levels(layout.planar, full)
    return _planes_to_rgb((r[rows, cols], g[rows, cols], b[rows, cols]), black, white, info)


def crop_rgb_scaled(frame: VideoFrame, box: Box, info: ColourInfo, size: tuple[int, int]
                    ) -> U8Array:
    """The box scaled down to `size` (w, h) as uint8 RGB, scaling inside the swscale pass.

    For a 4K source every GT crop is halved: converting and tone-mapping only the small
    result instead of the full crop saves ~30 ms per 1080² crop. Exactly the box is scaled
    (Lanczos). A box on whole chroma samples (even x, y, width, height for 4:2:0) is scaled
    and converted in one pass; any other box is converted at full size to 16-bit R'G'B'
    (as crop_rgb does, so chroma keeps its siting at odd positions), cut, then scaled.
    """
    x, y, w, h = _check_box(box, frame.width, frame.height)
    layout = _YUV_LAYOUTS.get(frame.format.name)
    if (w, h) == size or layout is None or layout.semi or layout.shift:
        full_crop = crop_rgb(frame, (x, y, w, h), info)
        if full_crop.shape[1::-1] == size:
            return full_crop
        return np.asarray(Image.fromarray(full_crop).resize(size, Image.Resampling.LANCZOS))
    ax, ay = (1 << layout.sx) - 1, (1 << layout.sy) - 1
    full = info.full_range or layout.full_range
    black, white = _gbrp16_levels(layout.planar, full)
    if (x | w) & ax or (y | h) & ay:
        return _planes_to_rgb(_scaled_exact(frame, layout, (x, y, w, h), info, size),
                              black, white, info)
    small = _sited_copy(frame, layout, (x, y, x + w, y + h), info)
    if layout.bits == 8 and not info.is_hdr:
        rgb8 = _sws_rgb(small, "gbrp", info.matrix, full, size)
        g, b, r = (_plane_array(p, np.dtype(np.uint8), rgb8.height, rgb8.width)
                   for p in rgb8.planes)
        return _interleave(r, g, b)
    g, b, r = _gbrp16_planes(_sws_rgb(small, "gbrp16le", info.matrix, full, size))
    return _planes_to_rgb((r, g, b), black, white, info)


def _sited_copy(frame: VideoFrame, layout: _YuvLayout, window: Box, info: ColourInfo
                ) -> VideoFrame:
    """The window's planes in a new frame that tells swscale the source's chroma siting."""
    small = _copy_planes(frame, layout, window)
    return sited(small, info.chroma_siting) if layout.sx or layout.sy else small


def _gbrp16_planes(rgb16: VideoFrame, writable: bool = False) -> tuple[npt.NDArray[Any], ...]:
    """(G, B, R) uint16 views of a gbrp16le frame."""
    return tuple(_plane_array(p, np.dtype("<u2"), rgb16.height, rgb16.width, writable=writable)
                 for p in rgb16.planes)


def _scaled_exact(frame: VideoFrame, layout: _YuvLayout, box: Box, info: ColourInfo,
                  size: tuple[int, int]) -> tuple[npt.NDArray[Any], ...]:
    """(R, G, B) 16-bit planes of exactly `box` scaled to `size`, for boxes off the chroma grid.

    One swscale pass cannot start a subsampled frame half a chroma sample in (siting is only
    expressible per whole sample), so the aligned window is converted at full size with its
    siting, the box is cut from the R'G'B' planes and those are scaled (Lanczos, gbrp16le →
    gbrp16le: no colour maths in the second pass).
    """
    x, y, w, h = box
    window = _crop_window(box, frame.width, frame.height, layout.sx, layout.sy)
    full = info.full_range or layout.full_range
    planes = _gbrp16_planes(_sws_rgb(_sited_copy(frame, layout, window, info), "gbrp16le",
                                     info.matrix, full))
    cut = VideoFrame(w, h, "gbrp16le")
    for src, dst in zip(planes, _gbrp16_planes(cut, writable=True), strict=True):
        dst[...] = src[y - window[1] : y - window[1] + h, x - window[0] : x - window[0] + w]
    scaled = _reformatter("rescale").reformat(cut, width=size[0], height=size[1],
                                              interpolation=_SWS_SCALE_FLAGS,
                                              threads=_SWS_THREADS)
    g, b, r = _gbrp16_planes(scaled)
    return r, g, b


def _planes_to_rgb(
    planes: tuple[npt.NDArray[Any], ...], black: float, white: float, info: ColourInfo
) -> U8Array:
    """R', G', B' code planes (black/white codes given) → uint8 (h, w, 3) display RGB."""
    if not info.is_hdr:
        if planes[0].dtype == np.uint8 and black == 0.0 and white == 255.0:
            return _interleave(*planes)
        return _lut_interleave(sdr_lut(black, white), planes)
    return hdr_to_sdr(planes, black, white, info)


# =========================================================================================
# Luma preview
# =========================================================================================


def luma_small(frame: VideoFrame, step: int, info: ColourInfo) -> F32Array:
    """Y'[::step, ::step] as float32 on the 8-bit full-range scale 0–255 (no RGB conversion).

    For scene-cut metrics (mean |a − b|) and flat/black detection. Limited range maps
    16·2^(n−8) → 0 and 235·2^(n−8) → 255 (clipped); full range maps 2^n − 1 → 255.
    HDR sources are returned in their own (PQ/HLG) code space, which is perceptual enough
    for these metrics. RGB formats use BT.709 luma weights on the R'G'B' samples.
    """
    if step < 1:
        raise ValueError(f"luma_small: step must be >= 1, got {step}")
    name = frame.format.name
    layout = _YUV_LAYOUTS.get(name)
    if layout is not None:
        full = info.full_range or layout.full_range
        lut = _luma_lut(layout.bits, layout.shift, layout.itemsize, full)
        return np.take(lut, plane_views(frame)[0][::step, ::step])
    rgb_layout = _RGB_LAYOUTS.get(name)
    if rgb_layout is None:
        return luma_small(_fallback_frame(frame, info), step, info)
    r, g, b = (v[::step, ::step] for v in _rgb_views(frame, rgb_layout))
    scale = 255.0 / ((1 << rgb_layout.bits) - 1)
    y = 0.2126 * scale * r.astype(np.float32)
    y += np.float32(0.7152 * scale) * g
    y += np.float32(0.0722 * scale) * b
    return y.astype(np.float32, copy=False)


__all__ = [
    "FAST_RGB_FORMATS",
    "FAST_YUV_FORMATS",
    "colour_info",
    "crop_rgb",
    "crop_rgb_scaled",
    "hdr_metadata",
    "luma_small",
    "plane_views",
]
