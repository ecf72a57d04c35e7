"""The predecessor's per-clip method, reproduced: one ffmpeg CLI run per clip, then Pillow.

Per clip: ``nice ffmpeg -threads 1 -ss T -i V -vf <HDR tone-map chain>,scale=1920:1080:
flags=lanczos -vframes 7 out%d.png`` (the chain runs on every source, SDR included, as the
predecessor did), then Pillow reads the PNGs back, checks each frame (> 10 kB, 1920×1080),
the scene (mean |gray(first) − gray(last)| < 45), cuts one random 540×540 crop, makes LR
frames by Lanczos ÷3, stacks LR_5 and LR_7 and writes GT + both stacks at PNG level 3.
``workers`` clips in parallel. Needs Debian's ``ffmpeg`` CLI with zscale
(``apt-get install -y ffmpeg``); dsgen itself never spawns ffmpeg.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import cpu_seconds, log, wait_quiet

FRAMES = 7  # the predecessor's fixed clip length (and dsgen's default)
GT = 540  # small_540
SCALE = 3
PNG_LEVEL = 3  # dsgen default and the predecessor's
SCENE_THRESHOLD = 45.0
MIN_FRAME_BYTES = 10_000  # predecessor's min_file_size
SEED = 1

# The predecessor's HDR → SDR chain, applied to every source (SDR included), then a Lanczos
# scale of the whole frame to 1920×1080.
TONEMAP_CHAIN = ("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
                 "tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p")
PREDECESSOR_VF = f"{TONEMAP_CHAIN},scale=1920:1080:flags=lanczos"


def predecessor_clip(video: str, t: float, out_root: str, idx: int) -> dict[str, Any]:
    """One extraction the way the predecessor did it: ffmpeg CLI, whole frames, Pillow."""
    rng = np.random.default_rng([SEED, idx])
    tmp = Path(out_root) / "tmp" / f"clip{idx:05d}"
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = ["nice", "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-threads", "1", "-ss", f"{t:.6f}", "-i", video, "-vf", PREDECESSOR_VF,
           "-vframes", str(FRAMES), str(tmp / "out%d.png")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    t1 = time.perf_counter()
    res: dict[str, Any] = {"idx": idx, "t": t, "ffmpeg_s": t1 - t0, "outcome": "ok",
                           "patches": 0}
    paths = [tmp / f"out{i}.png" for i in range(1, FRAMES + 1)]
    if proc.returncode != 0 or not all(p.exists() for p in paths):
        res["outcome"] = f"ffmpeg_failed: {proc.stderr.strip()[-200:]}"
    elif any(p.stat().st_size < MIN_FRAME_BYTES for p in paths):
        res["outcome"] = "small_frame"
    else:
        frames = [Image.open(p).convert("RGB") for p in paths]
        if any(f.size != (1920, 1080) for f in frames):
            res["outcome"] = "wrong_size"
        else:
            first = np.asarray(frames[0].convert("L"), dtype=np.float32)
            last = np.asarray(frames[-1].convert("L"), dtype=np.float32)
            diff = float(np.mean(np.abs(first - last)))
            res["scene_diff"] = diff
            if diff >= SCENE_THRESHOLD:
                res["outcome"] = "scene_cut"
            else:
                # One category: a random crop, GT = centre frame, LR = Lanczos ÷3 per frame.
                x = int(rng.integers(0, 1920 - GT + 1))
                y = int(rng.integers(0, 1080 - GT + 1))
                crops = [f.crop((x, y, x + GT, y + GT)) for f in frames]
                lr = [np.asarray(c.resize((GT // SCALE, GT // SCALE),
                                          Image.Resampling.LANCZOS)) for c in crops]
                name = f"patch_bench_idx{idx}.png"
                outs = {"GT": crops[FRAMES // 2],
                        "LR_5frames": Image.fromarray(np.concatenate(lr[1:6], axis=0)),
                        "LR_7frames": Image.fromarray(np.concatenate(lr, axis=0))}
                for sub, img in outs.items():
                    d = Path(out_root) / "Patches" / sub
                    d.mkdir(parents=True, exist_ok=True)
                    img.save(d / name, compress_level=PNG_LEVEL)
                res["patches"] = 1
    shutil.rmtree(tmp, ignore_errors=True)
    res["post_s"] = time.perf_counter() - t1
    return res


def run_predecessor(video: Path, times: list[float], out_root: Path, workers: int
                    ) -> dict[str, Any]:
    """`workers` extractions in parallel, as the predecessor's max_workers pool did."""
    if out_root.exists():
        shutil.rmtree(out_root)
    out_root.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    load = wait_quiet()
    c0, t0 = cpu_seconds(), time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = [pool.submit(predecessor_clip, str(video), t, str(out_root), i)
                for i, t in enumerate(times)]
        parts = [f.result() for f in futs]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    outcomes: dict[str, int] = {}
    for p in parts:
        key = p["outcome"].split(":")[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    bad = [p["outcome"] for p in parts if p["outcome"].startswith("ffmpeg_failed")]
    if bad:
        log(f"  predecessor: {len(bad)} ffmpeg failure(s), first: {bad[0]}")
    return {"wall": wall, "cpu": cpu, "other_load": load, "clips": len(parts),
            "patches": sum(p["patches"] for p in parts),
            "outcomes": outcomes, "ffmpeg_busy": sum(p["ffmpeg_s"] for p in parts),
            "post_busy": sum(p["post_s"] for p in parts)}


def ffmpeg_info() -> str:
    """The ffmpeg CLI version line; exits with advice when it or zscale is missing."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        sys.exit("ffmpeg CLI not found: the predecessor baseline needs it "
                 "(apt-get install -y ffmpeg), or pass --no-baseline")
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True,
                             text=True, check=False).stdout
    if " zscale " not in filters:
        sys.exit("this ffmpeg has no zscale filter (Debian's ffmpeg has it), or pass "
                 "--no-baseline")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0]


def pick_subset(starts: list[int], limit: int) -> list[int]:
    """At most `limit` positions spread evenly over the sorted list (all if limit <= 0)."""
    if limit <= 0 or len(starts) <= limit:
        return starts
    idx = np.linspace(0, len(starts) - 1, limit).round().astype(int)
    return [starts[i] for i in sorted(set(idx.tolist()))]
