"""Micro-benchmark of dsgen.colour: ms per 1024×576 crop, fast path vs whole-frame convert.

Run: python bench/bench_colour.py [--repeat N] [--accuracy]

Frames are synthetic (smooth gradients plus noise) 1080p 8-bit BT.709 and 2160p 10-bit
BT.2020 PQ. "whole" is what a naive pipeline does: frame.to_ndarray(format="rgb24") of
the whole frame, then crop (for HDR that is not even tone-mapped, it is only the cost
floor). Wall time and process CPU time are both printed: CPU matters on a 2-core machine.

Chroma siting: "centre" crops take the conversion dsgen always used (an untagged frame,
which swscale centre-sites); "left" crops are stamped with their siting first (the
H.264/HEVC/MPEG-2 default), so their ratio to "centre" is the cost of honouring it.
"scaled" rows halve the box inside the conversion: an even box in one swscale pass, an odd
box (off the 4:2:0 chroma grid) through the exact convert–cut–scale path.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import av
import numpy as np

from dsgen.chroma import read_siting, sited
from dsgen.colour import crop_rgb, crop_rgb_scaled, luma_small, plane_views
from dsgen.model import ColourInfo

BOX = (448, 252, 1024, 576)  # a 1024×576 crop away from the frame edges
ODD_BOX = (449, 253, 1024, 576)  # the same crop one pixel over: off the chroma grid
HALF = (512, 288)  # the scaled rows' output size


def synthetic_frame(width: int, height: int, fmt: str, seed: int = 0) -> av.VideoFrame:
    """A frame with smooth gradients plus noise in every plane, at the format's bit depth."""
    rng = np.random.default_rng(seed)
    frame = av.VideoFrame(width, height, fmt)
    bits = frame.format.components[0].bits
    scale = float(1 << (bits - 8))
    for k, plane in enumerate(plane_views(frame, writable=True)):
        rows, cols = plane.shape
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        base = 128 + 80 * np.sin(xx / (70 + 20 * k)) * np.cos(yy / (50 + 10 * k))
        noisy = base + rng.normal(0, 6, (rows, cols))
        plane[...] = np.clip(noisy * scale, 16 * scale, 235 * scale).astype(plane.dtype)
    return frame


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) of fn over `repeat` runs after one warm-up."""
    fn()
    walls: list[float] = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1e3)
    cpu = (time.process_time() - cpu0) * 1e3 / repeat
    return statistics.median(walls), cpu


def main() -> None:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--accuracy", action="store_true",
                        help="also print the chroma-siting accuracy table (needs tests/)")
    args = parser.parse_args()
    x, y, w, h = BOX

    cases = [
        ("1080p 8-bit BT.709 SDR", synthetic_frame(1920, 1080, "yuv420p"),
         ColourInfo("bt709", False, 8, "sdr"), "ITU709"),
        ("2160p 10-bit BT.2020 SDR", synthetic_frame(3840, 2160, "yuv420p10le"),
         ColourInfo("bt2020", False, 10, "sdr"), "BT2020"),
        ("2160p 10-bit PQ HDR", synthetic_frame(3840, 2160, "yuv420p10le"),
         ColourInfo("bt2020", False, 10, "pq", 1000.0, peak_source="maxcll"), "BT2020"),
        ("2160p 10-bit HLG HDR", synthetic_frame(3840, 2160, "yuv420p10le"),
         ColourInfo("bt2020", False, 10, "hlg", 1000.0, peak_source="nominal"), "BT2020"),
    ]  # fmt: skip
    print(f"{'case':28s} {'method':38s} {'wall ms':>8s} {'cpu ms':>8s}")
    for name, frame, info, cs in cases:
        left = dataclasses.replace(info, chroma_siting="left")

        def crop(frame: av.VideoFrame = frame, info: ColourInfo = info) -> object:
            return crop_rgb(frame, BOX, info)

        def crop_left(frame: av.VideoFrame = frame, info: ColourInfo = left) -> object:
            return crop_rgb(frame, BOX, info)

        def scaled(frame: av.VideoFrame = frame, info: ColourInfo = left) -> object:
            return crop_rgb_scaled(frame, BOX, info, HALF)

        def scaled_odd(frame: av.VideoFrame = frame, info: ColourInfo = left) -> object:
            return crop_rgb_scaled(frame, ODD_BOX, info, HALF)

        def whole(frame: av.VideoFrame = frame, cs: str = cs) -> object:
            rgb = frame.to_ndarray(format="rgb24", src_colorspace=cs, src_color_range="MPEG",
                                   dst_color_range="JPEG")  # fmt: skip
            return rgb[y : y + h, x : x + w].copy()

        def luma(frame: av.VideoFrame = frame, info: ColourInfo = info) -> object:
            return luma_small(frame, 4, info)

        def siting(frame: av.VideoFrame = frame) -> object:
            return read_siting(frame)

        window = av.VideoFrame(w + 8, h + 8, frame.format.name)  # a crop window's size

        def stamp(window: av.VideoFrame = window) -> object:
            return sited(window, "left")

        rows = [
            ("crop_rgb 1024x576, centre (old path)", crop),
            ("crop_rgb 1024x576, left (stamped)", crop_left),
            ("scaled to 512x288, even box, left", scaled),
            ("scaled to 512x288, odd box, left", scaled_odd),
            ("whole to_ndarray(rgb24) then crop", whole),
            ("luma_small(step=4)", luma),
            ("read_siting (once per video)", siting),
            ("sited(window, left) alone", stamp),
        ]
        for method, fn in rows:
            wall, cpu = measure(fn, args.repeat if fn is not whole else max(5, args.repeat // 3))
            print(f"{name:28s} {method:38s} {wall:8.3f} {cpu:8.3f}")
    siting_ab(max(args.repeat, 100))
    if args.accuracy:
        accuracy()


def siting_ab(repeat: int) -> None:
    """CPU ms of crop_rgb per siting, the sitings interleaved call by call, so machine noise
    hits them alike: the ratio to centre is the cost of honouring the siting."""
    print(f"\n{'case (interleaved A/B, median CPU ms)':40s} {'centre':>8s} {'left':>8s} "
          f"{'topleft':>8s} {'left/centre':>12s}")
    for name, frame, base in (
        ("1080p 8-bit crop_rgb 1024x576", synthetic_frame(1920, 1080, "yuv420p"),
         ColourInfo("bt709", False, 8, "sdr")),
        ("2160p 10-bit crop_rgb 1024x576", synthetic_frame(3840, 2160, "yuv420p10le"),
         ColourInfo("bt2020", False, 10, "sdr")),
    ):
        infos = {s: dataclasses.replace(base, chroma_siting=s)
                 for s in ("center", "left", "topleft")}
        times: dict[str, list[float]] = {s: [] for s in infos}
        for info in infos.values():
            crop_rgb(frame, BOX, info)
        for _ in range(repeat):
            for s, info in infos.items():
                c0 = time.process_time()
                crop_rgb(frame, BOX, info)
                times[s].append((time.process_time() - c0) * 1e3)
        med = {s: statistics.median(v) for s, v in times.items()}
        print(f"{name:40s} {med['center']:8.3f} {med['left']:8.3f} {med['topleft']:8.3f} "
              f"{med['left'] / med['center']:12.3f}")


def accuracy() -> None:
    """Max error and share of pixels off by > 2 codes against the float reference that
    honours the siting, with the siting read as centre (dsgen before) and as read (now), on
    the test suite's real encoded sharp-colour-edge streams (tests/test_colour.py)."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_colour as tc  # the suite's reference maths and streams, not dsgen's

    print(f"\n{'stream':26s} {'siting':10s} {'centre: max':>11s} {'> 2':>6s} "
          f"{'honoured: max':>13s} {'> 2':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for codec, pix_fmt, options, _ in tc.SITED_STREAMS:
            bits = 10 if pix_fmt.endswith("10le") else 8
            w, h = 320, 192
            src = tc.make_frame(pix_fmt, tc.sharp_colour_planes(w, h, bits, (1, 1), seed=23))
            path = tc.encode(Path(tmp) / "s.mkv", codec, pix_fmt, w, h, options=options,
                             frames=[src])
            _, info, frame = tc.probe(path)
            planes = [p.copy() for p in plane_views(frame)]
            ref = tc.ref_sited_rgb(*planes, bits, False, info.matrix, info.chroma_siting)
            old = crop_rgb(frame, (0, 0, w, h), dataclasses.replace(info, chroma_siting="center"))
            new = crop_rgb(frame, (0, 0, w, h), info)
            errs = [np.abs(a - ref) for a in (old, new)]
            shares = [100 * float((e > 2).any(axis=-1).mean()) for e in errs]
            print(f"{codec + ' ' + pix_fmt:26s} {info.chroma_siting:10s} "
                  f"{errs[0].max():11.1f} {shares[0]:5.1f}% {errs[1].max():13.2f} "
                  f"{shares[1]:5.1f}%")


if __name__ == "__main__":
    main()
