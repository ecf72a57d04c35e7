#!/usr/bin/env python3
"""Per-sample cost of the LR degradations against the clean pipeline.

On real 7-frame clips decoded from a generated 1080p H.264 video (``dsgen.synth``, made once
into the cache dir, not timed), for one patch format (default ``small_540``: GT 540², LR
180²), in one process and one thread:

* **clean sample**: what a worker does per sample without degradations — the 7 GT crops
  (``patches.gt_patch``), 7 bicubic LR frames (``patches.lr_frame``), the LR_5/LR_7 stacks and
  the three PNGs (``writer.encode_png``); and the same with the clip's decode in front;
* **`none` overhead**: ``degrade.degrade_clip`` for a category whose mix is only ``none``
  (what every sample pays when no degradation is configured);
* **each stage alone**, on the clip's clean LR frames (a one-stage template, probability 1);
* **each built-in template**, averaged over draws (stages are probabilistic): ``realesrgan``
  is the full Real-ESRGAN-like second-order template, ``realbasicvsr`` adds the codec stage
  twice.

Each figure is the median over ``--repeat`` passes of the mean over ``--clips`` clips
(templates: a new draw for every clip). Prints a Markdown table with milliseconds per sample
and the ratio to the clean sample (build + encode, no decode).

``--against DIR`` also runs the same clean ``dsgen run`` (a 20 s 720p video, 40 samples,
stacked and basicsr layouts, no degradation configured) with this checkout and with the
``daemon/`` folder DIR of another one (e.g. ``main`` before degradations existed),
interleaved ``--repeat`` times, and prints both datasets' hash and the fastest wall times:
the clean pipeline's bytes and speed with and without the degradation code.

Usage::

    python bench/bench_degrade.py [--clips 8] [--repeat 3] [--format small_540|fullhd_1920]
    git archive main daemon | tar -x -C /tmp/main-src
    python bench/bench_degrade.py --against /tmp/main-src/daemon
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsgen.config import FormatCfg, config_from_dict
from dsgen.decode import ClipReader
from dsgen.degrade import apply, degrade_clip, draw
from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    BlurStage,
    ChromaStage,
    CodecStage,
    ColourStage,
    DegradationCfg,
    JpegStage,
    NoiseStage,
    ResizeStage,
    Stage,
)
from dsgen.patches import gt_patch, lr_frame, lr_stack
from dsgen.probe import probe_video
from dsgen.synth import SynthSpec, make_video
from dsgen.writer import encode_png

HERE = Path(__file__).resolve().parent
# 1080p H.264 with textures, noise and pans (as bench_pipeline's), 10 s, no cuts in the
# windows used here.
SPEC = SynthSpec("degrade_1080p", "h264", 1920, 1080, 240, cuts=(120,), gop=48, seed=301)
FORMATS = {"small_540": FormatCfg("small_540", 540, 540, 3, "Patches"),
           "fullhd_1920": FormatCfg("fullhd_1920", 1920, 1080, 3, "Patches_FullHD")}
PNG_LEVEL = 3

STAGES: list[tuple[str, Stage]] = [
    ("blur iso σ 0.2–1.5, 7–21 px", BlurStage()),
    ("blur Real-ESRGAN kernel mix", BUILTIN_TEMPLATES[4].stages[1]),
    ("blur sinc", BlurStage(kernels=(("sinc", 1.0),))),
    ("resize ×0.5–1.5 (from LR) + back", ResizeStage()),
    ("resize from GT ×0.5–2 + back (leading)", BUILTIN_TEMPLATES[4].stages[0]),
    ("noise Gaussian", NoiseStage(gaussian_probability=1.0)),
    ("noise Poisson", NoiseStage(gaussian_probability=0.0)),
    ("jpeg q 30–95", JpegStage()),
    ("codec h264 medium crf 20–32", CodecStage()),
    ("codec h264 veryfast", CodecStage(preset="veryfast")),
    ("codec hevc medium", CodecStage(codecs=(("hevc", 1.0),))),
    ("codec mpeg2 qscale 3–12", CodecStage(codecs=(("mpeg2", 1.0),))),
    ("codec mpeg4 qscale 3–12", CodecStage(codecs=(("mpeg4", 1.0),))),
    ("chroma (bleed always)", ChromaStage(bleed_probability=1.0)),
    ("colour", ColourStage()),
]


def clips(workdir: Path, n: int, fmt: FormatCfg) -> list[tuple[list[Any], list[np.ndarray],
                                                                  list[np.ndarray]]]:
    """`n` clips: (decoded frames, GT crops, clean LR frames), spread over scene 1."""
    path = workdir / f"{SPEC.name}.mkv"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        make_video(path, SPEC)
    probe = probe_video(path, 7)
    reader = ClipReader(probe)
    out = []
    try:
        for i in range(n):
            frames = reader.clip(4 + i * (110 // n), 7)
            x = (probe.width - fmt.width) // 2 if fmt.width < probe.width else 0
            box = (x - x % 2, 0, fmt.width, fmt.height)
            gts = [gt_patch(f, box, fmt, probe.colour) for f in frames]
            out.append((frames, gts, [lr_frame(g, fmt, "bicubic") for g in gts]))
    finally:
        reader.close()
    return out


def per_sample(fn: Callable[[int], object], n: int, repeat: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per call, median over `repeat` passes of `n` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall.append((time.perf_counter() - t0) / n * 1000)
        cpu.append((time.process_time() - c0) / n * 1000)
    return statistics.median(wall), statistics.median(cpu)


ENGINE_SPEC = SynthSpec("degrade_engine_720p", "h264", 1280, 720, 480,
                        cuts=(100, 190, 300, 410), gop=48, seed=201)
ENGINE_CONFIG = """output_root = "out"
state_dir = "state"
workers = 2
seed = 5
layout = "{layout}"
[formats.tiny]
width = 96
height = 96
[formats.wide]
width = 384
height = 216
[categories.a]
target = 40
formats = {{ tiny = 0.5, wide = 0.5 }}
[[videos]]
name = "v"
path = "{video}"
categories = ["a"]
"""
# Runs one engine in a fresh process (PYTHONPATH picks the dsgen), prints seconds and the
# dataset's hash (every non-hidden file's path and bytes).
ENGINE_SNIPPET = """
import hashlib, io, sys, time
from pathlib import Path
from dsgen.config import load_config
from dsgen.engine import Engine
from dsgen.report import Reporter
if __name__ == "__main__":
    cfg = load_config(sys.argv[1])
    t = time.perf_counter()
    log = io.StringIO()
    code = Engine(cfg, Reporter(out=log)).run()
    dt = time.perf_counter() - t
    if code != 0:
        sys.exit(f"exit {code}: " + log.getvalue()[-2000:])
    h = hashlib.sha256()
    root = cfg.output_root
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(x.startswith(".") for x in rel.parts):
            h.update(str(rel).encode() + b"\\0" + p.read_bytes())
    print(f"{dt:.3f} {h.hexdigest()}")
"""


def against(workdir: Path, other: Path, repeat: int) -> None:
    """Clean engine runs with this dsgen and with `other`, interleaved: hashes and times."""
    video = (workdir / "videos" / f"{ENGINE_SPEC.name}.mkv").resolve()
    if not video.exists():
        make_video(video, ENGINE_SPEC)
    here = Path(__file__).resolve().parents[1] / "daemon"
    script = workdir / "against_run.py"  # a file: spawned workers re-import the main module
    script.write_text(ENGINE_SNIPPET)
    print("\n| layout | dsgen | dataset sha256 | fastest wall s | all runs |")
    print("|---|---|---|---:|---|")
    for layout in ("stacked", "basicsr"):
        times: dict[str, list[float]] = {"this checkout": [], str(other): []}
        digests: dict[str, set[str]] = {k: set() for k in times}
        for _ in range(repeat):
            for label, src in (("this checkout", here), (str(other), other)):
                d = workdir / "against" / layout
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                (d / "dsgen.toml").write_text(ENGINE_CONFIG.format(layout=layout, video=video))
                env = dict(os.environ, PYTHONPATH=str(src))
                done = subprocess.run([sys.executable, str(script), str(d / "dsgen.toml")],
                                      env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{label}: {done.stderr}")
                out = done.stdout.split()
                times[label].append(float(out[0]))
                digests[label].add(out[1])
        for label in times:
            shown = ", ".join(f"{d[:16]}…" for d in sorted(digests[label]))
            print(f"| {layout} | {label} | {shown} | {min(times[label]):.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in times[label])} |")
        same = len(digests["this checkout"] | digests[str(other)]) == 1
        print(f"| {layout} | | {'identical bytes' if same else 'DIFFERENT bytes'} | | |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--format", choices=sorted(FORMATS), default="small_540")
    ap.add_argument("--workdir", type=Path, default=HERE / ".cache")
    ap.add_argument("--against", type=Path, help="daemon/ folder of another dsgen checkout")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fmt = FORMATS[args.format]
    data = clips(args.workdir / "videos", args.clips, fmt)
    n, rep = len(data), args.repeat
    probe = probe_video(args.workdir / "videos" / f"{SPEC.name}.mkv", 7)

    def build(i: int) -> None:
        frames, _, _ = data[i]
        gts = [gt_patch(f, (0, 0, fmt.width, fmt.height), fmt, probe.colour) for f in frames]
        lrs = [lr_frame(g, fmt, "bicubic") for g in gts]
        for image in (gts[3], lr_stack(lrs, 5), lr_stack(lrs, 7)):
            encode_png(image, PNG_LEVEL)

    reader = ClipReader(probe)

    def decode_build(i: int) -> None:
        reader.clip(4 + i * (110 // n), 7)
        build(i)

    cfg = config_from_dict({"output_root": "/tmp/o", "state_dir": "/tmp/s",
                            "formats": {fmt.name: {"width": fmt.width, "height": fmt.height}},
                            "categories": {"c": {"target": 1, "formats": [fmt.name]}}},
                           Path("/tmp/bench.toml"))

    def none(i: int) -> None:
        _, gts, lrs = data[i]
        degrade_clip(cfg, "video", i, 0, "c", fmt, gts, lrs)

    rows: list[tuple[str, float, float]] = []
    clean_wall, clean_cpu = per_sample(build, n, rep)
    rows.append(("clean sample: 7 GT crops + 7 LR + 3 PNGs", clean_wall, clean_cpu))
    rows.append(("clean sample incl. decoding the clip", *per_sample(decode_build, n, rep)))
    reader.close()
    rows.append(("`none` (no degradation configured)", *per_sample(none, n, rep)))

    def run(template: DegradationCfg) -> Callable[[int], object]:
        params = [draw(template, np.random.default_rng(1000 + i), 7, fmt.lr_size)
                  for i in range(n)]
        return lambda i: apply(params[i], data[i][1], data[i][2])

    for label, stage in STAGES:
        rows.append((f"stage: {label}", *per_sample(run(DegradationCfg("s", "", (
            dataclass_replace_probability(stage),))), n, rep)))
    for t in BUILTIN_TEMPLATES:
        rows.append((f"template: {t.name}", *per_sample(run(t), n, rep)))

    print(f"\nbench_degrade: {n} clips × {rep} passes, format {fmt.name} "
          f"(GT {fmt.width}×{fmt.height}, LR {fmt.lr_size[0]}×{fmt.lr_size[1]}), "
          f"{platform.processor() or platform.machine()}, Python {sys.version.split()[0]}\n")
    print("| per sample | wall ms | CPU ms | × clean sample (wall) | × clean (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall:.3f} | {cpu:.3f} | {wall / clean_wall:.3f} | "
              f"{cpu / clean_cpu:.3f} |")
    if args.against:
        against(args.workdir, args.against.resolve(), args.repeat)
    return 0


def dataclass_replace_probability(stage: Stage) -> Stage:
    """The stage with probability 1 (measure its cost, not its chance)."""
    import dataclasses

    return dataclasses.replace(stage, probability=1.0)


if __name__ == "__main__":
    raise SystemExit(main())
