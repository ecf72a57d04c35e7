"""Chroma siting: where a stream's 4:2:0 / 4:2:2 chroma samples sit, and making swscale honour it.

A chroma sample of 4:2:0 covers 2×2 luma samples, but where inside that square it was taken
differs between standards (ITU-T H.273 ChromaSampleLocType, FFmpeg's AVChromaLocation):
H.264, HEVC, MPEG-2 and MPEG-4 Part 2 put it level with the left luma column ("left", the
most common), MPEG-1, JPEG and H.263 in the centre of the square ("center"), UHD Blu-ray
HEVC and BT.2020 masters often at the top-left luma sample ("topleft"). Interpolating with
the wrong siting moves colour by half a luma pixel against luma: at a sharp colour edge
that is a visible fringe of up to ~120 codes in one channel.

How dsgen learns the siting: PyAV 18.1 exposes no ``chroma_location`` attribute, but its
conversions go through ``sws_scale_frame``, which (FFmpeg 8.1, measured) honours the
AVFrame's ``chroma_location``. FFmpeg's decoders fill that field from the bitstream
(H.264/HEVC VUI ``chroma_sample_loc_type``, AV1 ``chroma_sample_position``), from the
container (Matroska ChromaSiting, Y4M ``C420jpeg``/``C420mpeg2``/``C420paldv``) or with
the codec's own default (left for H.264/HEVC/MPEG-2/MPEG-4, centre for MPEG-1/MJPEG).
:func:`read_siting` measures it: it scales a decoded frame to a tiny frame (which copies the
frame's properties), writes one chroma impulse into it and lets swscale upsample it; where
the impulse lands is where FFmpeg places chroma. A stream FFmpeg knows nothing about
("unspecified") reads as centre: swscale's and libavfilter's documented default for
untagged sources, so dsgen's crops equal what ``ffmpeg`` itself renders for such a file.

How crops honour it: crops are copied into new frames, which carry no siting (swscale then
assumes centre). :func:`sited` stamps the siting on such a frame with a pass-through
``setparams`` filter graph (zero-copy, ~6 µs per crop), so the one swscale pass that
converts (and scales) the crop interpolates chroma at the right positions.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any, Final

import av.filter
import numpy as np
from av.error import FFmpegError
from av.video.format import VideoFormat
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation

from dsgen.model import ChromaSiting

# Position of chroma sample (0, 0) in luma samples (x, y), per ITU-T H.273 Figure 9 /
# FFmpeg av_chroma_location_enum_to_pos() for 4:2:0.
SITING_POSITION: Final[dict[ChromaSiting, tuple[float, float]]] = {
    "left": (0.0, 0.5),
    "center": (0.5, 0.5),
    "topleft": (0.0, 0.0),
    "top": (0.5, 0.0),
    "bottomleft": (0.0, 1.0),
    "bottom": (0.5, 1.0),
}
# Untagged streams: what swscale assumes for an unspecified location (see module doc).
UNTAGGED_SITING: Final[ChromaSiting] = "center"
# Codec defaults, used only when no decoded frame is at hand (FFmpeg's decoders apply the
# same rules when the bitstream says nothing): the codec's specification default.
_CODEC_SITING: Final[dict[str, ChromaSiting]] = {
    "h264": "left", "hevc": "left", "vvc": "left", "mpeg2video": "left", "mpeg4": "left",
    "mpeg1video": "center", "mjpeg": "center", "h261": "center", "h263": "center",
}
# Size of the measuring frame: small (a few µs to convert), even, big enough that the
# impulse's interpolation footprint stays clear of the edges.
_PROBE_SIZE: Final = 16
_IMPULSE: Final = 100  # chroma impulse height above neutral (128) in 8-bit codes
# How far a measured centroid may lie from a known siting position (luma samples); the
# bilinear footprints give exact centroids, so anything further off is not a siting.
_POSITION_SLACK: Final = 0.1
_SWS_FLAGS: Final = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def has_subsampled_chroma(fmt: Any) -> bool:
    """Whether a PyAV VideoFormat stores chroma at less than luma resolution (YUV only)."""
    if fmt is None or fmt.is_rgb or len(fmt.components) < 3:
        return False
    return bool(fmt.chroma_width(16) < 16 or fmt.chroma_height(16) < 16)


def codec_siting(codec: str) -> ChromaSiting:
    """The siting a codec's specification implies when its stream says nothing."""
    return _CODEC_SITING.get(codec, UNTAGGED_SITING)


def read_siting(frame: VideoFrame) -> ChromaSiting | None:
    """Where FFmpeg sites this decoded frame's chroma (None: not measurable, e.g. 4:4:4).

    The frame is scaled (POINT) to a 16×16 yuv420p frame, which copies its properties
    (chroma_location among them); one chroma sample of that copy is raised, swscale
    upsamples it to 4:4:4, and the centroid of the result is the sample's position.
    """
    if not has_subsampled_chroma(frame.format):
        return None
    size = _PROBE_SIZE if (frame.width, frame.height) != (_PROBE_SIZE,) * 2 else 2 * _PROBE_SIZE
    try:
        carrier = frame.reformat(width=size, height=size, format="yuv420p",
                                 interpolation=Interpolation.POINT, threads=1)
        planes = [_plane(carrier, k) for k in range(3)]
        for p in planes:
            p[...] = 128
        k = size // 4  # chroma sample (k, k) sits near luma (2k, 2k): the middle
        planes[1][k, k] = 128 + _IMPULSE
        up = carrier.reformat(format="yuv444p", interpolation=_SWS_FLAGS, threads=1)
        weights = _plane(up, 1).astype(np.float64) - 128.0
    except (FFmpegError, ValueError):
        return None
    total = weights.sum()
    if total <= 0:
        return None
    ys, xs = np.mgrid[0:size, 0:size]
    dx = float((weights * xs).sum() / total) - 2 * k
    dy = float((weights * ys).sum() / total) - 2 * k
    for siting, (px, py) in SITING_POSITION.items():
        if abs(dx - px) <= _POSITION_SLACK and abs(dy - py) <= _POSITION_SLACK:
            return siting
    return None


def _plane(frame: VideoFrame, index: int) -> np.ndarray:
    """Writable uint8 view of one plane of an 8-bit frame this module allocated."""
    p = frame.planes[index]
    return np.frombuffer(memoryview(p), np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]


_local = threading.local()


class _Stamp:
    """A pass-through buffer → setparams → buffersink graph for one pixel format and siting."""

    def __init__(self, pix_fmt: str, siting: ChromaSiting) -> None:
        self.graph = av.filter.Graph()
        self.src = self.graph.add_buffer(width=_PROBE_SIZE, height=_PROBE_SIZE,
                                         format=VideoFormat(pix_fmt), time_base=Fraction(1, 1))
        tag = self.graph.add("setparams", f"chroma_location={siting}")
        self.sink = self.graph.add("buffersink")
        self.src.link_to(tag)
        tag.link_to(self.sink)
        self.graph.configure()
        self.pts = 0

    def __call__(self, frame: VideoFrame) -> VideoFrame:
        # Frames of any size pass: buffersrc only warns (below dsgen's log level) when the
        # size differs from the configured one, and setparams/buffersink do not care.
        self.pts += 1
        frame.pts = self.pts
        self.src.push(frame)
        out = self.sink.pull()
        assert isinstance(out, VideoFrame)
        return out


def sited(frame: VideoFrame, siting: ChromaSiting) -> VideoFrame:
    """`frame` (same buffers, no copy) tagged with `siting` for swscale.

    Centre and "none" return the frame as it is: an untagged frame is centre-sited to
    swscale (measured; the default of FFmpeg 8.1's sws_scale_frame), so those crops take
    exactly the conversion dsgen always used.
    """
    if siting in ("center", "none"):
        return frame
    stamps: dict[tuple[str, str], _Stamp] | None = getattr(_local, "stamps", None)
    if stamps is None:
        stamps = _local.stamps = {}
    key = (frame.format.name, siting)
    stamp = stamps.get(key)
    if stamp is None:
        stamp = stamps[key] = _Stamp(frame.format.name, siting)
    return stamp(frame)


__all__ = [
    "SITING_POSITION",
    "UNTAGGED_SITING",
    "codec_siting",
    "has_subsampled_chroma",
    "read_siting",
    "sited",
]
