"""PNG encode cost: dsgen's encoder (Up filter + libdeflate) vs Pillow, same level, same images.

Usage: python bench/bench_png.py [--level 3] [--repeat 20]
Images: a GT patch (540×540) and an LR_7frames stack (180×1260) cut from the synthetic 1080p
demo video, so the content has real texture. Prints ms per image and bytes; compare ratios
within one run (the machine is noisy).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from dsgen.synth import demo_specs, make_video
from dsgen.writer import encode_png


def images() -> dict[str, np.ndarray]:
    """A GT-sized crop and an LR-stack-sized image from a real decoded frame."""
    spec = demo_specs()[0]
    with tempfile.TemporaryDirectory() as d:
        path = make_video(Path(d) / "v.mkv", spec)
        with av.open(str(path)) as c:
            frame = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    gt = np.ascontiguousarray(frame[100:640, 300:840])
    lr = np.asarray(Image.fromarray(gt).resize((180, 180), Image.Resampling.BICUBIC))
    return {"GT 540x540": gt, "LR_7frames 180x1260": np.concatenate([lr] * 7, axis=0)}


def timed(fn: object, repeat: int) -> float:
    """Mean ms of `fn()` over `repeat` calls after one warm-up."""
    assert callable(fn)
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    print(f"| image | Pillow L{a.level} ms | bytes | dsgen L{a.level} ms | bytes | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, img in images().items():
        def pil(img: np.ndarray = img) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=a.level)
            return buf.getvalue()

        def ours(img: np.ndarray = img) -> bytes:
            return encode_png(img, a.level)

        tp, to = timed(pil, a.repeat), timed(ours, a.repeat)
        print(f"| {name} | {tp:.1f} | {len(pil()):,} | {to:.1f} | {len(ours()):,} | "
              f"{tp / to:.2f}× |")


if __name__ == "__main__":
    main()
