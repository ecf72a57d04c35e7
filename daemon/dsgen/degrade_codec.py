"""Compression operators: JPEG per frame (Pillow) and a real video codec over the whole clip
(PyAV `CodecContext`), both in memory, single-threaded and byte-reproducible."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any, Literal, cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image

from dsgen.degrade_config import CODECS, CRF_CODECS

# The clip is encoded as 25 fps video: bitrate_kbps means kbit per second at that rate
# (kbit per frame = bitrate / 25). Timing never reaches the pixels otherwise.
CODEC_FPS = 25
# Frames are padded (edge replication) to at least this size for a codec, and cropped after
# decoding: libx265 (PyAV 18's FFmpeg) refuses frames under 16×16 and corrupts its heap on
# frames 34–48 px wide (measured at heights 16–84, tests/test_degrade.py); an LR of 32 px
# resized × 1.2 gets there. Other codecs need only even sizes (4:2:0).
MIN_SIDE = {"hevc": 64}
# x265 with its thread pool and frame threads off: one thread, deterministic output.
X265_PARAMS = "pools=none:frame-threads=1:lookahead-slices=0:log-level=error"


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames (0–255) rounded and clipped to 8 bits (what a codec and a PNG take)."""
    return np.asarray(np.clip(np.rint(frames), 0, 255), dtype=np.uint8)


def jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    """Each frame JPEG-encoded at `quality` (libjpeg scale, 4:2:0 chroma) and decoded back."""
    out = []
    for f in to_uint8(frames):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return np.stack(out).astype(np.float32)


def missing_codec(name: str) -> str | None:
    """Why the configured codec `name` cannot be used in this PyAV build, or None."""
    enc, dec = CODECS[name]
    modes: tuple[tuple[str, Literal["r", "w"], str], ...] = (
        (enc, "w", "encoder"), (dec, "r", "decoder"))
    for codec, mode, what in modes:
        try:
            av.Codec(codec, mode)
        except Exception:  # PyAV raises UnknownCodecError (a ValueError) for absent codecs
            return f"this PyAV/FFmpeg build has no {codec} {what} (for {name})"
    return None


def _context(codec: str, mode: Literal["r", "w"]) -> VideoCodecContext:
    return cast(VideoCodecContext, av.CodecContext.create(codec, mode))


def _encoder(name: str, w: int, h: int, p: dict[str, Any]) -> VideoCodecContext:
    cc = _context(CODECS[name][0], "w")
    cc.width, cc.height = w, h
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1, CODEC_FPS)
    cc.framerate = Fraction(CODEC_FPS)
    cc.gop_size = int(p["gop"])
    cc.max_b_frames = int(p["bframes"])
    cc.thread_count = 1  # frame/slice threads change x264/x265 decisions between runs
    cc.colorspace, cc.color_range = Colorspace.ITU709, ColorRange.MPEG
    opts: dict[str, str] = {}
    if "bitrate_kbps" in p:
        cc.bit_rate = int(p["bitrate_kbps"]) * 1000
    elif name in CRF_CODECS:
        opts["crf"] = str(p["crf"])
    else:  # MPEG-2/4: a fixed quantiser is qmin = qmax (PyAV frames carry no qscale)
        opts["qmin"] = opts["qmax"] = str(p["qscale"])
    if name in CRF_CODECS:
        opts["preset"] = str(p["preset"])
    if name == "hevc":
        opts["x265-params"] = X265_PARAMS
    cc.options = opts
    cc.open()
    return cc


def video(frames: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The frames (n, h, w, 3) encoded as one clip with codec `p["codec"]` (drawn rate
    control, preset, GOP, B-frames) and decoded back, so its damage moves like a stream's.

    Odd sizes are padded by edge replication to even (4:2:0), small ones to the codec's
    MIN_SIDE, and cropped back after decoding.
    """
    n, h, w, _ = frames.shape
    name = str(p["codec"])
    side = MIN_SIDE.get(name, 2)
    ph, pw = max(side, h + h % 2), max(side, w + w % 2)
    pix = np.pad(to_uint8(frames), ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    enc = _encoder(name, pix.shape[2], pix.shape[1], p)
    packets = []
    for i, f in enumerate(pix):
        vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
        vf.pts = i
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))
    dec = _context(CODECS[name][1], "r")
    dec.thread_count = 1
    decoded = []
    for packet in [*packets, None]:
        for fr in dec.decode(packet):
            rgb = fr.reformat(format="rgb24", src_colorspace=Colorspace.ITU709,
                              src_color_range=ColorRange.MPEG).to_ndarray()
            decoded.append(rgb[:h, :w])
    if len(decoded) != n:  # a codec that drops or adds frames would misalign the stack
        raise RuntimeError(f"{name}: {n} frames encoded, {len(decoded)} decoded")
    return np.stack(decoded).astype(np.float32)
