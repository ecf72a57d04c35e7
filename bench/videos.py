#!/usr/bin/env python3
"""Benchmark videos: the small synthetic set and the real-bitrate grain set, generated once.

Two kinds, both cached in ``<workdir>/videos`` and regenerated only when their spec changes:

* **quick** (``dsgen.synth``): low-bitrate 1080p H.264 and 2160p HEVC HDR10, 60 s / 30 s,
  fixed GOP, no scene-cut keyframes. Cheap to make; what ``--quick`` runs on.
* **real** (this module): 2160p HEVC Main10 PQ/BT.2020 HDR10 at ≈ 50 Mbit/s and 1080p H.264
  High at ≈ 25 Mbit/s, with fresh grain in every frame, motion and scene cuts that the
  encoders' scene-cut detection turns into keyframes. A piece of ``piece_seconds`` is
  encoded once (niced, in a subprocess) and the long file is made by remuxing its packets
  ``copies`` times with shifted timestamps: no re-encode, so keyframes and bitrate stay those
  of a real encode while 10 minutes of 4K grain cost the encode of 2.

``python bench/videos.py build NAME WORKDIR`` builds one real video (what the benchmark
runs under ``nice -n 19``); ``python bench/videos.py inspect FILE`` prints what a file is.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from dsgen.synth import HDR_MASTER_DISPLAY, HDR_MAX_CLL, SynthSpec, make_video, render_planes

HERE = Path(__file__).resolve().parent
FPS = 24

# ---------------------------------------------------------------------------------------
# The quick (synthetic, low-bitrate) set
# ---------------------------------------------------------------------------------------


def quick_specs(short: bool = False) -> dict[str, SynthSpec]:
    """The small synthetic sources (dsgen.synth); `short` gives 20 s / 10 s ones."""
    s1080 = 20 if short else 60
    s2160 = 10 if short else 30
    n1, n2 = s1080 * FPS, s2160 * FPS
    # Scene cuts every 6–8 s (not on keyframes): some windows straddle a cut and are retried.
    cuts1 = tuple(c for c in (173, 331, 529, 707, 862, 1049, 1200, 1337) if c < n1)
    cuts2 = tuple(c for c in (97, 211, 398, 577) if c < n2)
    tag = "_short" if short else ""
    return {
        "1080p": SynthSpec(f"bench_1080p_h264_sdr{tag}", "h264", 1920, 1080, n1,
                           fps=Fraction(FPS), cuts=cuts1, gop=2 * FPS, bframes=2, seed=201),
        "2160p": SynthSpec(f"bench_2160p_hevc10_hdr10{tag}", "hevc10", 3840, 2160, n2,
                           fps=Fraction(FPS), cuts=cuts2, hdr=True, gop=5 * FPS, bframes=2,
                           seed=202),
    }


def ensure_quick(workdir: Path, spec: SynthSpec) -> Path:
    """Generate a quick video once into <workdir>/videos (again only if the spec changed)."""
    path = workdir / "videos" / f"{spec.name}{spec.suffix}"
    stamp = path.with_suffix(".spec.txt")
    if path.exists() and stamp.exists() and stamp.read_text() == repr(spec):
        return path
    log(f"generating {path.name} ({spec.width}x{spec.height} {spec.codec}, "
        f"{spec.n_frames / float(spec.fps):.0f} s; not timed) ...")
    t0 = time.perf_counter()
    make_video(path, spec)
    stamp.write_text(repr(spec))
    log(f"  done in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.1f} MB")
    return path


# ---------------------------------------------------------------------------------------
# The real-bitrate set
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealSpec:
    """A real-bitrate benchmark video: an encoded piece, remuxed `copies` times."""

    name: str
    codec: str  # "hevc10" (x265 Main10, HDR10) | "h264" (x264 High, BT.709)
    width: int
    height: int
    piece_seconds: int
    copies: int
    kbps: int  # x265/x264 ABR target
    keyint: int  # maximum GOP, frames
    min_keyint: int  # scene cuts closer than this to the last keyframe get no keyframe
    bframes: int
    grain: float  # std-dev of the per-frame grain, in 8-bit code values
    seed: int
    pan: tuple[int, int] = (2, 1)  # pixels per frame (motion)

    @property
    def piece_frames(self) -> int:
        return self.piece_seconds * FPS

    @property
    def seconds(self) -> int:
        return self.piece_seconds * self.copies

    def piece_cuts(self) -> tuple[int, ...]:
        """Shot boundaries inside the piece: 3–12 s shots, an even number of them, so the
        join between copies (last shot → first) is a cut between a bright and a dark shot."""
        rng = np.random.default_rng(self.seed)
        cuts, t = [], 0
        while True:
            t += int(rng.integers(3 * FPS, 12 * FPS + 1))
            if t > self.piece_frames - 3 * FPS:
                break
            cuts.append(t)
        if cuts and len(cuts) % 2 == 0:  # len(cuts) + 1 shots: make it even
            cuts.pop()
        return tuple(cuts)

    def cuts(self) -> list[int]:
        """Every cut of the long file (frame indices), the joins between copies included."""
        one = self.piece_cuts()
        out: list[int] = []
        for k in range(self.copies):
            if k:
                out.append(k * self.piece_frames)
            out += [k * self.piece_frames + c for c in one]
        return out


def real_specs() -> dict[str, RealSpec]:
    """The real-bitrate sources, 10 min each: a 4K piece of 30 s remuxed 20 times (x265
    encodes 4K grain at ≈ 1 frame/s on 2 idle cores, ≈ 25 CPU min for 30 s), a 1080p piece
    of 120 s remuxed 5 times."""
    return {
        # UHD Blu-ray-like: HEVC Main10 PQ at ≈ 50 Mbit/s; GOP ≤ 5 s with scene-cut keyframes
        # (≥ 1 s apart), open GOP (x265's default: CRA keyframes with RASL leading
        # pictures), SAO on.
        "2160p": RealSpec("real_2160p_hevc10_hdr10_50M", "hevc10", 3840, 2160, 30, 20,
                          kbps=50_000, keyint=5 * FPS, min_keyint=FPS, bframes=3,
                          grain=3.0, seed=356),
        # Blu-ray-like: H.264 High at ≈ 25 Mbit/s, GOP 2 s, 3 B-frames, scene-cut keyframes.
        "1080p": RealSpec("real_1080p_h264_25M", "h264", 1920, 1080, 120, 5,
                          kbps=25_000, keyint=2 * FPS, min_keyint=FPS // 2, bframes=3,
                          grain=3.0, seed=301),
    }


# HDR grading: dsgen.synth's 8-bit picture read as BT.1886-coded SDR (γ 2.4) with diffuse
# white at 203 nits (BT.2408's HDR reference white), then PQ-coded in 10 bits. Keeps the
# picture where real HDR films sit (shots at ≈ 12 and ≈ 120 nits) instead of synth's ×4
# (≈ 1,500 nits bright scenes, flattened by any tone map).
HDR_WHITE_NITS = 203.0
GAMMA = 2.4


def _pq_lut() -> np.ndarray:
    """8-bit limited-range code → 10-bit limited-range PQ code (256 entries)."""
    e = np.clip((np.arange(256, dtype=np.float64) - 16) / 219, 0, 1)
    y = HDR_WHITE_NITS * e ** GAMMA / 10_000.0
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    pq = ((c1 + c2 * y ** m1) / (1 + c3 * y ** m1)) ** m2
    return np.asarray(np.rint(64 + 876 * pq), dtype=np.int16)


class Grain:
    """Fresh grain every frame, cheaply: two pools of random fields, each frame the sum of one
    field from each at random offsets (no two frames share a pattern a motion search could
    find; ≈ 15 ms per 4K plane instead of ≈ 220 ms for new Gaussian noise)."""

    POOL = 12  # fields per pool
    MARGIN = 64  # extra rows/columns per field: the room for random offsets

    def __init__(self, rng: np.random.Generator, h: int, w: int, sigma: float) -> None:
        self.h, self.w, self.rng = h, w, rng
        s = sigma / np.sqrt(2.0)  # two fields add up to sigma
        self.pools = [[np.rint(rng.standard_normal((h + self.MARGIN, w + self.MARGIN),
                                                   dtype=np.float32) * s).astype(np.int16)
                       for _ in range(self.POOL)] for _ in range(2)]

    def next(self) -> np.ndarray:
        out: np.ndarray | None = None
        for pool in self.pools:
            f = pool[int(self.rng.integers(self.POOL))]
            y, x = (int(v) for v in self.rng.integers(0, self.MARGIN, 2))
            part = f[y:y + self.h, x:x + self.w]
            out = part.copy() if out is None else np.add(out, part, out=out)
        assert out is not None
        return out


def render_piece(spec: RealSpec) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The piece's frames as (Y, U, V) at the stream's bit depth, grain added."""
    synth = SynthSpec(spec.name, "hevc10" if spec.codec == "hevc10" else "h264", spec.width,
                      spec.height, spec.piece_frames, fps=Fraction(FPS), cuts=spec.piece_cuts(),
                      seed=spec.seed, pan=spec.pan)
    rng = np.random.default_rng(spec.seed + 1)
    ten = spec.codec == "hevc10"
    scale = 4 if ten else 1  # grain in code values of the stream
    gy = Grain(rng, spec.height, spec.width, spec.grain * scale)
    gc = Grain(rng, spec.height // 2, spec.width // 2, spec.grain * scale / 2)
    lut = _pq_lut() if ten else np.arange(256, dtype=np.int16)
    top = 940 if ten else 235
    ctop = 960 if ten else 240
    low = 64 if ten else 16
    dtype = np.uint16 if ten else np.uint8
    for y8, u8, v8 in render_planes(synth):
        y = np.take(lut, y8)
        y += gy.next()
        u = u8.astype(np.int16)
        v = v8.astype(np.int16)
        if ten:
            u = (u - 128) * 4 + 512
            v = (v - 128) * 4 + 512
        u += gc.next()
        v += gc.next()
        yield (np.clip(y, low, top).astype(dtype), np.clip(u, low, ctop).astype(dtype),
               np.clip(v, low, ctop).astype(dtype))


def _fill(plane: Any, data: np.ndarray) -> None:
    """Copy `data` into a frame plane, honouring its line padding."""
    flat = np.frombuffer(memoryview(plane), dtype=data.dtype)
    rows = flat.reshape(-1, plane.line_size // data.dtype.itemsize)
    rows[: data.shape[0], : data.shape[1]] = data


def _encoder_options(spec: RealSpec) -> tuple[str, dict[str, str]]:
    """(codec, options): ABR at the target rate with a VBV cap, scene-cut detection on."""
    vbv = int(spec.kbps * 1.6)
    if spec.codec == "hevc10":
        params = [
            "log-level=error", f"keyint={spec.keyint}", f"min-keyint={spec.min_keyint}",
            "scenecut=40", f"bframes={spec.bframes}", "sao=1", "open-gop=1",
            f"bitrate={spec.kbps}", f"vbv-maxrate={vbv}", f"vbv-bufsize={vbv}",
            "hdr10=1", "repeat-headers=1", "colorprim=bt2020", "transfer=smpte2084",
            "colormatrix=bt2020nc", "range=limited", f"master-display={HDR_MASTER_DISPLAY}",
            f"max-cll={HDR_MAX_CLL[0]},{HDR_MAX_CLL[1]}",
        ]
        # ultrafast (with SAO back on): the only preset this 2-core box encodes 4K grain with
        # in minutes; the decoder's work is set by the bitrate and the tools, not the preset.
        return "libx265", {"preset": "ultrafast", "x265-params": ":".join(params)}
    params = [
        "log-level=error", f"keyint={spec.keyint}", f"min-keyint={spec.min_keyint}",
        "scenecut=40", f"bframes={spec.bframes}", f"bitrate={spec.kbps}",
        f"vbv-maxrate={vbv}", f"vbv-bufsize={vbv}",
    ]
    # veryfast keeps CABAC and 8x8 transforms: High profile, as on Blu-ray.
    return "libx264", {"preset": "veryfast", "profile": "high",
                       "x264-params": ":".join(params)}


def encode_piece(path: Path, spec: RealSpec) -> None:
    """Encode the piece (atomically: temp file, then rename)."""
    codec, options = _encoder_options(spec)
    ten = spec.codec == "hevc10"
    pix = "yuv420p10le" if ten else "yuv420p"
    tags = ((ColorPrimaries.BT2020, ColorTrc.SMPTE2084, Colorspace.BT2020) if ten else
            (ColorPrimaries.BT709, ColorTrc.BT709, Colorspace.ITU709))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    try:
        with av.open(str(tmp), "w", format="matroska") as out:
            stream: Any = out.add_stream(codec, rate=FPS, options=options)
            cc = stream.codec_context
            cc.width, cc.height, cc.pix_fmt = spec.width, spec.height, pix
            cc.color_primaries, cc.color_trc, cc.colorspace = tags
            cc.color_range = ColorRange.MPEG
            for i, planes in enumerate(render_piece(spec)):
                frame = av.VideoFrame(spec.width, spec.height, pix)
                for plane, data in zip(frame.planes, planes, strict=True):
                    _fill(plane, data)
                frame.pts = i
                frame.time_base = Fraction(1, FPS)
                frame.color_primaries, frame.color_trc, frame.colorspace = tags
                frame.color_range = ColorRange.MPEG
                out.mux(stream.encode(frame))
                if i % (10 * FPS) == 0 and i:
                    fps = i / (time.perf_counter() - t0)
                    log(f"  {spec.name}: {i}/{spec.piece_frames} frames ({fps:.1f} fps, "
                        f"≈ {(spec.piece_frames - i) / fps / 60:.0f} min left)")
            out.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remux_copies(piece: Path, path: Path, copies: int, piece_frames: int) -> None:
    """Concatenate `copies` copies of the piece's packets, timestamps shifted, no re-encode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), "w", format="matroska") as out:
            ost: Any = None
            for k in range(copies):
                with av.open(str(piece)) as src:
                    ist = src.streams.video[0]
                    if ost is None:
                        ost = out.add_stream_from_template(ist)
                    shift = Fraction(piece_frames, FPS) / ist.time_base
                    if shift.denominator != 1:
                        raise ValueError(f"{piece}: {piece_frames} frames are not a whole "
                                         f"number of ticks of {ist.time_base}")
                    off = int(shift) * k
                    packets = [p for p in src.demux(ist) if p.size]  # no end-of-stream marker
                    # Matroska stores no dts: the demuxer leaves it unset for the packets
                    # before the first B-frame's. Give those packets dts one frame apart
                    # before the first known one, so dts rise across the join.
                    known = next((i for i, p in enumerate(packets) if p.dts is not None), 0)
                    step = max(1, round(1 / (FPS * ist.time_base)))
                    for i in range(known):
                        packets[i].dts = int(packets[known].dts) - (known - i) * step
                    for pkt in packets:
                        if pkt.pts is not None:
                            pkt.pts += off
                        if pkt.dts is not None:
                            pkt.dts += off
                        pkt.stream = ost
                        out.mux(pkt)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def real_paths(workdir: Path, spec: RealSpec) -> tuple[Path, Path, Path]:
    """(long file, piece, info json) of a real spec."""
    d = workdir / "videos"
    long = f"{spec.name}_{spec.seconds}s"
    return (d / f"{long}.mkv", d / f"{spec.name}_piece{spec.piece_seconds}s.mkv",
            d / f"{long}.info.json")


def _stamp(spec: RealSpec, part: str) -> str:
    fields = dataclasses.asdict(spec)
    if part == "piece":
        fields.pop("copies")
    return json.dumps(fields, sort_keys=True)


def build_real(workdir: Path, spec: RealSpec) -> dict[str, Any]:
    """Make the piece (if its spec changed), the long file (if needed) and its inspection."""
    path, piece, info_path = real_paths(workdir, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    pstamp = piece.with_suffix(".spec.json")
    if not (piece.exists() and pstamp.exists() and pstamp.read_text() == _stamp(spec, "piece")):
        log(f"encoding {piece.name}: {spec.piece_seconds} s {spec.width}x{spec.height} "
            f"{spec.codec} at {spec.kbps / 1000:g} Mbit/s (not timed) ...")
        t0 = time.perf_counter()
        encode_piece(piece, spec)
        pstamp.write_text(_stamp(spec, "piece"))
        log(f"  encoded in {time.perf_counter() - t0:.0f} s")
        path.unlink(missing_ok=True)
    stamp = path.with_suffix(".spec.json")
    if not (path.exists() and stamp.exists() and stamp.read_text() == _stamp(spec, "long")):
        log(f"remuxing {spec.copies} copies into {path.name} ...")
        remux_copies(piece, path, spec.copies, spec.piece_frames)
        stamp.write_text(_stamp(spec, "long"))
    info = inspect_video(path, spec.cuts())
    info["piece_file"] = piece.name
    info_path.write_text(json.dumps(info, indent=1))
    return info


def ensure_real(workdir: Path, spec: RealSpec) -> tuple[Path, dict[str, Any]]:
    """The long file and its inspection; builds it under `nice -n 19` in a subprocess."""
    path, _piece, info_path = real_paths(workdir, spec)
    stamp = path.with_suffix(".spec.json")
    if not (path.exists() and stamp.exists() and stamp.read_text() == _stamp(spec, "long")
            and info_path.exists()):
        cmd = ["nice", "-n", "19", sys.executable, str(Path(__file__).resolve()), "build",
               spec.name, str(workdir)]
        log(f"building {path.name} (niced subprocess, not timed): {' '.join(cmd)}")
        subprocess.run(cmd, check=True)
    return path, json.loads(info_path.read_text())


# ---------------------------------------------------------------------------------------
# Inspection: what the encoders really produced
# ---------------------------------------------------------------------------------------

# HEVC NAL unit types (H.265 table 7-1) and H.264's IDR slice.
HEVC_RASL = (8, 9)
HEVC_IDR = (19, 20)
HEVC_CRA = 21
H264_IDR = 5


def _nal_types(data: bytes, hevc: bool) -> list[int]:
    """NAL unit types of a length-prefixed (Matroska/MP4) access unit."""
    out, i = [], 0
    while i + 4 < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        if n <= 0:
            break
        b = data[i + 4]
        out.append((b >> 1) & 0x3F if hevc else b & 0x1F)
        i += 4 + n
    return out


def inspect_video(path: Path, cuts: list[int] | None = None) -> dict[str, Any]:
    """Demux-only facts: real bitrate, GOP lengths, keyframe kinds and where the cuts' keys are."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        hevc = s.codec_context.name == "hevc"
        pts, keys, sizes = [], [], []
        kinds = {"idr": 0, "cra": 0, "other": 0}
        rasl = 0
        for pkt in c.demux(s):
            if pkt.size == 0 or pkt.pts is None:
                continue
            pts.append(int(pkt.pts))
            sizes.append(pkt.size)
            types = _nal_types(bytes(pkt), hevc)
            if hevc and any(t in HEVC_RASL for t in types):
                rasl += 1
            if pkt.is_keyframe:
                keys.append(int(pkt.pts))
                if (hevc and any(t in HEVC_IDR for t in types)) or (
                        not hevc and H264_IDR in types):
                    kinds["idr"] += 1
                elif hevc and HEVC_CRA in types:
                    kinds["cra"] += 1
                else:
                    kinds["other"] += 1
        info: dict[str, Any] = {"file": path.name, "codec": s.codec_context.name,
                                "profile": s.codec_context.profile,
                                "pix_fmt": s.codec_context.pix_fmt,
                                "size": f"{s.codec_context.width}x{s.codec_context.height}",
                                "colour": [str(s.codec_context.color_primaries),
                                           str(s.codec_context.color_trc),
                                           str(s.codec_context.colorspace)]}
    pts.sort()
    index = {p: i for i, p in enumerate(pts)}
    key_idx = sorted(index[k] for k in keys)
    frames = len(pts)
    seconds = frames / FPS
    gops = np.diff([*key_idx, frames]) / FPS
    # Bits per second of video (packets in decode order, 24 to a second: close enough).
    per_s = (np.add.reduceat(np.asarray(sizes, dtype=np.int64), np.arange(0, frames, FPS))
             * 8 / 1e6) if frames else np.zeros(1)
    info.update({
        "frames": frames, "seconds": round(seconds, 3), "bytes": path.stat().st_size,
        "mbit_s": round(path.stat().st_size * 8 / seconds / 1e6, 2),
        "mbit_s_peak_1s": round(float(per_s.max()), 1),
        "keyframes": len(key_idx), "keyframe_kinds": kinds, "rasl_pictures": rasl,
        "gop_s": {"min": round(float(gops.min()), 2), "median": round(float(np.median(gops)), 2),
                  "mean": round(float(gops.mean()), 2), "max": round(float(gops.max()), 2)},
        "keyframe_frames_first_60s": [k for k in key_idx if k < 60 * FPS],
        "time_base": str(tb),
    })
    if cuts:
        keyset = set(key_idx)
        on = [c for c in cuts if c in keyset]
        near = [c for c in cuts if c not in keyset and (c - 1 in keyset or c + 1 in keyset)]
        info["cuts"] = len(cuts)
        info["cuts_with_keyframe"] = len(on)
        info["cuts_with_keyframe_off_by_1"] = len(near)
        info["keyframes_on_cuts"] = len(on)
        info["keyframes_not_on_cuts"] = len(key_idx) - len(on)
        info["cuts_first_60s"] = [c for c in cuts if c < 60 * FPS]
        # Where a cut got no keyframe: how far the keyframe before it lies (min-keyint rule).
        miss = [c - key_idx[bisect.bisect_right(key_idx, c) - 1] for c in cuts
                if c not in keyset]
        info["cuts_without_keyframe_frames_since_key"] = miss[:20]
    return info


def describe(info: dict[str, Any]) -> str:
    """One paragraph on what a real video turned out to be."""
    g = info["gop_s"]
    k = info["keyframe_kinds"]
    parts = [f"{info['file']}: {info['codec']} {info.get('profile')} {info['pix_fmt']} "
             f"{info['size']}, {info['seconds']:.0f} s, {info['mbit_s']} Mbit/s "
             f"(peak 1-s {info['mbit_s_peak_1s']}), {info['keyframes']} keyframes "
             f"(IDR {k['idr']}, CRA {k['cra']}, other {k['other']}; RASL pictures "
             f"{info['rasl_pictures']}), GOP {g['min']}–{g['max']} s (median {g['median']})"]
    if "cuts" in info:
        parts.append(f"{info['cuts']} cuts, {info['cuts_with_keyframe']} with a keyframe on "
                     f"the cut ({info['cuts_with_keyframe_off_by_1']} off by one frame), "
                     f"{info['keyframes_not_on_cuts']} keyframes elsewhere (GOP limit)")
        parts.append(f"first 60 s: cuts {info['cuts_first_60s']}, keyframes "
                     f"{info['keyframe_frames_first_60s']}")
    return "; ".join(parts)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "build":
        specs = {s.name: s for s in real_specs().values()}
        info = build_real(Path(argv[2]), specs[argv[1]])
        log(describe(info))
        return 0
    if len(argv) == 2 and argv[0] == "inspect":
        print(json.dumps(inspect_video(Path(argv[1])), indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
