#!/usr/bin/env python3
"""Throughput benchmark: dsgen vs. the decode-only bound vs. the predecessor's method.

For each benchmark video (generated once with ``dsgen.synth`` into the cache dir; generation
is not timed) this script measures, in one process run and for the same clip positions:

(a) **dsgen**: the real pipeline — ``dsgen.engine.Engine`` on a TOML config with one video
    and one category (``small_540``: 540×540 GT, ×3 LR, PNG level 3, stacked layout, 7
    frames, LR_5/LR_7), target = ``--clips-per-minute`` × video minutes, ``--workers``
    processes, fresh output and state dirs. Wall clock from ``Engine.run()`` to its return
    (includes pool start, probe/index scan, state DB commits). Per-stage worker seconds come
    from the ``TaskResult.seconds`` the engine receives (recorded by a thin ``Engine``
    subclass that only observes).
(b) **decode-only bound**: the exact window starts the dsgen run decoded (read from the
    state DB ``attempts`` table), grouped into the same tasks in the same submission order
    and, inside each task, in the same order ``run_task`` tried them; decoded with
    ``dsgen.decode.ClipReader`` (sorted forward walk, NONREF skipping, seek-when-cheaper) in
    a pool of the same size with the same thread setting (cores // workers), one reader kept
    per worker process as ``extract.run_task`` does — and nothing else.
(c) **the predecessor's method**, reproduced: per clip one
    ``nice ffmpeg -threads 1 -ss T -i V -vf <HDR tone-map chain>,scale=1920:1080:flags=lanczos
    -vframes 7 out%d.png`` (chain applied to every source, SDR included), then Pillow: read
    back, size/bytes check, scene check mean|gray(first) − gray(last)| < 45, one random
    540×540 crop, LR = Lanczos ÷3 of each frame's crop, stacked vertically (5 and 7), PNG
    level 3. ``--workers`` clips in parallel (a process pool), at the same positions
    (T = pts of the window's first frame, in seconds from the stream start). Needs Debian's
    ``ffmpeg`` CLI with zscale (``apt-get install -y ffmpeg``). The ffmpeg CLI is used only
    here: dsgen itself never spawns ffmpeg.

Usage::

    python bench/bench_pipeline.py [--quick] [--workdir DIR] [--video 1080p|2160p|all]

Prints a Markdown table at the end and writes ``<workdir>/results-<mode>.json``.
Compare ratios from one run: the machine is noisy, absolute rates drift ±10%.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import heapq
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dsgen.config import Config, load_config
from dsgen.decode import ClipError, ClipReader
from dsgen.engine import Engine
from dsgen.extract import Task
from dsgen.model import TaskResult, VideoProbe
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec, make_video

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / ".cache"

FPS = 24
FRAMES = 7  # frames per clip (dsgen default, the predecessor's fixed value)
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


# ---------------------------------------------------------------------------------------
# Benchmark videos
# ---------------------------------------------------------------------------------------


def video_specs(quick: bool) -> dict[str, SynthSpec]:
    """The two benchmark sources; --quick gives shorter ones (separate cache files)."""
    s1080 = 20 if quick else 60
    s2160 = 10 if quick else 30
    n1, n2 = s1080 * FPS, s2160 * FPS
    # Scene cuts every 6–8 s (not on keyframes): some windows straddle a cut and are retried.
    cuts1 = tuple(c for c in (173, 331, 529, 707, 862, 1049, 1200, 1337) if c < n1)
    cuts2 = tuple(c for c in (97, 211, 398, 577) if c < n2)
    tag = "_quick" if quick else ""
    return {
        "1080p": SynthSpec(f"bench_1080p_h264_sdr{tag}", "h264", 1920, 1080, n1,
                           fps=Fraction(FPS), cuts=cuts1, gop=2 * FPS, bframes=2, seed=201),
        "2160p": SynthSpec(f"bench_2160p_hevc10_hdr10{tag}", "hevc10", 3840, 2160, n2,
                           fps=Fraction(FPS), cuts=cuts2, hdr=True, gop=5 * FPS, bframes=2,
                           seed=202),
    }


def ensure_video(workdir: Path, spec: SynthSpec) -> Path:
    """Generate `spec` once into <workdir>/videos (regenerated only if the spec changed)."""
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
# (a) dsgen
# ---------------------------------------------------------------------------------------

CONFIG_TOML = """\
# dsgen benchmark config (written by bench/bench_pipeline.py)
output_root = "{root}"
state_dir = "{state}"
workers = {workers}
seed = {seed}
png_compression = {png}
layout = "stacked"
segment_slots = {segment}

[extraction]
frames_per_clip = {frames}
lr_stacks = [5, 7]

[formats.small_540]
width = {gt}
height = {gt}
scale = {scale}
dir = "Patches"

[categories.general]
target = {target}
path = "Universal/Mastermodell/Learn"
formats = {{ small_540 = 1.0 }}

[[videos]]
name = "{name}"
path = "{video}"
categories = {{ general = 1.0 }}
"""


class BenchEngine(Engine):
    """The real Engine; only observes the tasks it submits and the results it records."""

    def __init__(self, cfg: Config, reporter: Reporter) -> None:
        super().__init__(cfg, reporter)
        self.submitted: list[Task] = []
        self.results: list[TaskResult] = []
        self.probe_done: float | None = None

    def _make_tasks(self, st: Any, *args: Any) -> None:
        # Older engines passed the ready deque in; newer ones keep it as self.ready.
        ready = args[0] if args else self.ready
        before = len(ready)
        super()._make_tasks(st, *args)
        self.submitted.extend(list(ready)[before:])

    def _handle(self, st: Any, kind: str, payload: Any, result: Any, *args: Any) -> None:
        if kind == "probe" and self.probe_done is None:
            self.probe_done = time.perf_counter()
        elif kind == "task":
            self.results.append(result)
        super()._handle(st, kind, payload, result, *args)


def write_config(run_dir: Path, video: Path, name: str, target: int, workers: int,
                 segment: int) -> Path:
    """A fresh run dir with its TOML config (dataset/ and state/ inside)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    toml = run_dir / "dsgen.toml"
    toml.write_text(CONFIG_TOML.format(
        root=run_dir / "dataset", state=run_dir / "state", workers=workers, seed=SEED,
        png=PNG_LEVEL, frames=FRAMES, gt=GT, scale=SCALE, target=target, name=name,
        video=video, segment=segment))
    return toml


def run_dsgen(run_dir: Path, video: Path, name: str, target: int, workers: int, segment: int
              ) -> dict[str, Any]:
    """One fresh Engine run; returns timings, counts, stage seconds and the decoded plan."""
    cfg = load_config(write_config(run_dir, video, name, target, workers, segment))
    eng = BenchEngine(cfg, Reporter(quiet=True))
    load = wait_quiet(QUIET_WAIT[0])
    c0, t0 = cpu_seconds(), time.perf_counter()
    code = eng.run()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    db = sqlite3.connect(cfg.state_dir / "dsgen.sqlite3")
    attempts = db.execute(
        "SELECT slot_id, number, start, outcome FROM attempts ORDER BY slot_id, number"
    ).fetchall()
    n_samples, n_bytes = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM samples"
                                    ).fetchone()
    db.close()
    st = State(cfg.state_dir, readonly=True)
    probe = st.videos()[0].probe
    st.close()
    assert probe is not None
    stages: dict[str, float] = {}
    for r in eng.results:
        for k, v in r.seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    outcomes: dict[str, int] = {}
    for *_, outcome in attempts:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    startup = (eng.probe_done - t0) if eng.probe_done is not None else 0.0
    return {
        "exit_code": code, "wall": wall, "cpu": cpu, "startup": startup, "other_load": load,
        "clips": len(attempts),
        "patches": int(n_samples), "bytes": int(n_bytes), "outcomes": outcomes,
        "stages": stages, "frames_decoded": sum(r.frames_decoded for r in eng.results),
        "seeks": sum(r.seeks for r in eng.results), "tasks": len(eng.submitted),
        "threads": eng.submitted[0].threads if eng.submitted else 0,
        "_probe": probe, "_attempts": attempts, "_tasks": eng.submitted, "_cfg": cfg,
    }


def task_sequences(tasks: list[Task], attempts: list[tuple[int, int, int, str]]
                   ) -> list[list[int]]:
    """Per task (submission order), the window starts in the order run_task decoded them.

    Replays run_task's heap: a slot's next position is pushed only if the state recorded it.
    """
    tried = {(slot_id, number): start for slot_id, number, start, _ in attempts}
    out: list[list[int]] = []
    for task in tasks:
        heap = [(s.starts[0], i, 0) for i, s in enumerate(task.slots)
                if (s.slot_id, 0) in tried]
        heapq.heapify(heap)
        seq: list[int] = []
        while heap:
            start, i, number = heapq.heappop(heap)
            slot = task.slots[i]
            assert tried[(slot.slot_id, number)] == start
            seq.append(start)
            if (slot.slot_id, number + 1) in tried:
                heapq.heappush(heap, (slot.starts[number + 1], i, number + 1))
        out.append(seq)
    assert sum(map(len, out)) == len(attempts), "replayed plan differs from the state DB"
    return out


# ---------------------------------------------------------------------------------------
# (b) decode-only bound
# ---------------------------------------------------------------------------------------

_readers: dict[str, ClipReader] = {}  # per worker process, like dsgen.extract._readers


def decode_only_task(probe: VideoProbe, threads: int, starts: list[int]) -> dict[str, Any]:
    """Decode the windows with a kept ClipReader and drop the frames: the bound."""
    reader = _readers.get(probe.path)
    if reader is None:
        reader = _readers[probe.path] = ClipReader(probe, threads)
    t0 = time.perf_counter()
    f0, s0 = reader.frames_decoded, reader.seeks
    ok = errors = 0
    for start in starts:
        try:
            reader.clip(start, FRAMES)
            ok += 1
        except ClipError:
            errors += 1
    return {"clips": ok, "errors": errors, "frames": reader.frames_decoded - f0,
            "seeks": reader.seeks - s0, "seconds": time.perf_counter() - t0}


def run_decode_only(probe: VideoProbe, seqs: list[list[int]], workers: int, threads: int
                    ) -> dict[str, Any]:
    """Same tasks, same order, same pool size and threads; wall includes the pool start."""
    ctx = multiprocessing.get_context("spawn")  # the engine's start method
    load = wait_quiet(QUIET_WAIT[0])
    c0, t0 = cpu_seconds(), time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = [pool.submit(decode_only_task, probe, threads, s) for s in seqs if s]
        parts = [f.result() for f in futs]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"wall": wall, "cpu": cpu, "other_load": load,
            "clips": sum(p["clips"] + p["errors"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "frames_decoded": sum(p["frames"] for p in parts),
            "seeks": sum(p["seeks"] for p in parts),
            "busy": sum(p["seconds"] for p in parts)}


# ---------------------------------------------------------------------------------------
# (c) the predecessor's method
# ---------------------------------------------------------------------------------------


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
    load = wait_quiet(QUIET_WAIT[0])
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


# ---------------------------------------------------------------------------------------
# Profile of one dsgen task, in-process
# ---------------------------------------------------------------------------------------


def profile_task(res: dict[str, Any], out_dir: Path, top: int) -> dict[str, Any]:
    """cProfile of extract.run_task over all the run's tasks, in order, in this one process.

    One process does what the pool's workers did (one kept reader, the same task order), so
    the shares are those of a worker; the output goes to a fresh root.
    """
    from dsgen import extract

    cfg: Config = res["_cfg"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cfg2 = dataclasses.replace(cfg, output_root=out_dir)
    tasks = [dataclasses.replace(t, cfg=cfg2) for t in res["_tasks"]]
    for reader in extract._readers.values():
        reader.close()
    extract._readers.clear()
    prof = cProfile.Profile()
    results = []
    t0 = time.perf_counter()
    prof.enable()
    for task in tasks:
        results.append(extract.run_task(task))
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    text = buf.getvalue()
    hot = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        hot.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
    hot.sort(reverse=True)
    stages: dict[str, float] = {}
    for r in results:
        for k, v in r.seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    clips = sum(len(s.attempts) for r in results for s in r.slots)
    return {"wall": wall, "clips": clips, "tasks": len(tasks), "stages": stages,
            "frames_decoded": sum(r.frames_decoded for r in results),
            "seeks": sum(r.seeks for r in results),
            "top_tottime": [{"tottime": round(tt, 3), "cumtime": round(ct, 3), "calls": nc,
                             "function": name} for tt, ct, nc, name in hot[:top]],
            "text": text}


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def background_load(seconds: float = 1.0) -> float:
    """Cores busy machine-wide while this benchmark sleeps (others' work: a noise flag).

    Sampled just before each timed phase; > 0.1 means something else was running.
    (Accounting *during* a phase is not reliable in this VM: /proc/stat and the per-process
    times disagree by ~0.2 cores even for a single busy loop.)
    """
    def busy() -> float:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return 0.0
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    b0, t0 = busy(), time.perf_counter()
    time.sleep(seconds)
    return max(0.0, (busy() - b0) / (time.perf_counter() - t0))


def cpu_seconds() -> float:
    """CPU time of this process and its reaped descendants (pool workers, their ffmpeg).

    Unlike wall time this barely moves when other programs share the cores, so ratios of
    CPU seconds per clip are the noise-robust cross-check of the wall-clock ratios.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Sample the background load; while it is above `threshold`, wait (up to max_wait s)."""
    deadline = time.monotonic() + max_wait
    load = background_load()
    warned = False
    while load > threshold and time.monotonic() < deadline:
        if not warned:
            log(f"  waiting for other programs to finish (background load {load:.2f} cores) ...")
            warned = True
        time.sleep(4.0)
        load = background_load()
    return load


QUIET_WAIT = [120.0]  # seconds to wait for a quiet machine before each phase (--wait-quiet)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rates(wall: float, clips: int, patches: int | None, cpu: float | None = None
          ) -> dict[str, float | None]:
    return {"clips_per_s": clips / wall if wall else 0.0,
            "cpu_s_per_clip": cpu / clips if cpu is not None and clips else None,
            "patches_per_min": (patches * 60.0 / wall) if patches is not None and wall else None,
            "s_per_clip": wall / clips if clips else 0.0}


def fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def machine_info() -> dict[str, str]:
    import av
    import PIL

    cpu = ""
    with contextlib.suppress(OSError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith("Model name")), "")
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    osname = ""
    with contextlib.suppress(OSError):
        osname = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    import dsgen

    src = Path(dsgen.__file__).resolve().parent
    rev = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return {"dsgen": f"{src} ({rev or 'not a git checkout'})",
            "cpu": cpu, "cores": str(os.cpu_count()), "ram": mem, "os": osname,
            "python": platform.python_version(), "pyav": av.__version__,
            "pyav_ffmpeg": ".".join(map(str, av.library_versions["libavcodec"])),
            "pillow": PIL.__version__, "numpy": np.__version__}


def bench_video(key: str, spec: SynthSpec, args: argparse.Namespace, ffmpeg: str | None
                ) -> dict[str, Any]:
    workdir: Path = args.workdir
    video = ensure_video(workdir, spec)
    minutes = spec.n_frames / float(spec.fps) / 60.0
    target = max(1, round(args.clips_per_minute * minutes))
    workers = args.workers
    # A film has hundreds of tasks, so every worker stays busy. Here the target is tens of
    # slots: with the default 24 slots per task a 25-slot video is one task on one worker.
    # "auto" sizes tasks so each worker gets about two (capped at dsgen's default of 24).
    segment = args.segment_slots or max(1, min(24, math.ceil(target / (2 * workers))))
    log(f"[{key}] dsgen: target {target} samples, {workers} workers, "
        f"segment_slots {segment} ...")
    best_d: dict[str, Any] | None = None
    best_b: dict[str, Any] | None = None
    seqs: list[list[int]] = []
    for rep in range(args.repeat):
        d = run_dsgen(workdir / "runs" / f"{key}-dsgen", video, f"bench {key}", target, workers,
                      segment)
        if d["exit_code"] != 0:
            log(f"  dsgen exit code {d['exit_code']} (short of target?)")
        if not seqs:
            seqs = task_sequences(d["_tasks"], d["_attempts"])
        log(f"  run {rep + 1}: {d['clips']} clips, {d['patches']} patches in {d['wall']:.1f} s "
            f"(start-up + probe {d['startup']:.1f} s; background load {d['other_load']:.2f} cores)")
        b = run_decode_only(d["_probe"], seqs, workers, d["threads"])
        log(f"  decode-only: {b['clips']} clips in {b['wall']:.1f} s "
            f"(background load {b['other_load']:.2f} cores)")
        if best_d is None or d["wall"] < best_d["wall"]:
            best_d = d
        if best_b is None or b["wall"] < best_b["wall"]:
            best_b = b
    assert best_d is not None and best_b is not None
    d, b = best_d, best_b
    probe: VideoProbe = d["_probe"]

    out: dict[str, Any] = {
        "video": key, "file": video.name, "size_mb": round(video.stat().st_size / 1e6, 1),
        "spec": {"codec": spec.codec, "size": f"{spec.width}x{spec.height}",
                 "seconds": spec.n_frames / float(spec.fps), "gop": spec.gop,
                 "hdr": spec.hdr, "cuts": list(spec.cuts)},
        "target": target, "workers": workers, "threads_per_worker": d["threads"],
        "segment_slots": segment,
    }
    out["dsgen"] = {k: v for k, v in d.items() if not k.startswith("_")}
    out["dsgen"].update(rates(d["wall"], d["clips"], d["patches"], d["cpu"]))
    steady = d["wall"] - d["startup"]
    out["dsgen"]["steady"] = rates(steady, d["clips"], d["patches"])
    out["decode_only"] = dict(b, **rates(b["wall"], b["clips"], None, b["cpu"]))

    if args.decode_orders:
        # What-if: the same windows decoded in other orders (the bound only, nothing written).
        flat = sorted(x for seq in seqs for x in seq)
        half = (len(flat) + 1) // 2
        variants = {"as dsgen tried them": seqs,
                    "sorted inside each task": [sorted(x) for x in seqs],
                    "one sorted pass per worker": [flat[:half], flat[half:]]}
        out["decode_orders"] = {}
        for label, v in variants.items():
            o = run_decode_only(probe, v, workers, d["threads"])
            log(f"  decode order '{label}': {o['frames_decoded']} frames, {o['seeks']} seeks, "
                f"{o['wall']:.1f} s wall, {o['cpu']:.1f} s CPU")
            out["decode_orders"][label] = o

    if ffmpeg is not None:
        starts = sorted(s for _, _, s, _ in d["_attempts"])
        limit = args.baseline_clips if args.baseline_clips is not None else (
            0 if key == "1080p" else (6 if args.quick else 16))
        subset = pick_subset(starts, limit)
        t_first = int(probe.frame_pts[0])
        times = [float((int(probe.frame_pts[s]) - t_first) * probe.time_base) for s in subset]
        log(f"[{key}] predecessor: {len(times)} clip(s) via ffmpeg CLI, {workers} in parallel ...")
        p = run_predecessor(video, times, workdir / "runs" / f"{key}-predecessor", workers)
        log(f"  {p['clips']} clips, {p['patches']} patches in {p['wall']:.1f} s "
            f"(ffmpeg {p['ffmpeg_busy'] / max(1, p['clips']):.2f} s/clip busy; "
            f"background load {p['other_load']:.2f} cores)")
        out["predecessor"] = dict(p, subset=len(subset) < len(starts), **rates(
            p["wall"], p["clips"], p["patches"], p["cpu"]))

    if args.profile:
        log(f"[{key}] profiling one task in-process (cProfile) ...")
        prof = profile_task(d, workdir / "runs" / f"{key}-profile", args.profile_top)
        ptxt = workdir / f"profile-{key}{'-quick' if args.quick else ''}.txt"
        ptxt.write_text(prof.pop("text"))
        prof["file"] = str(ptxt)
        out["profile"] = prof
    return out


def ratios(r: dict[str, Any]) -> dict[str, float | None]:
    d, b, p = r["dsgen"], r["decode_only"], r.get("predecessor")
    return {
        "dsgen_vs_decode": d["clips_per_s"] / b["clips_per_s"],
        "dsgen_steady_vs_decode": d["steady"]["clips_per_s"] / b["clips_per_s"],
        "dsgen_vs_predecessor_clips": (d["clips_per_s"] / p["clips_per_s"]) if p else None,
        "dsgen_vs_predecessor_patches": (d["patches_per_min"] / p["patches_per_min"])
        if p and p["patches_per_min"] else None,
        # Noise-robust cross-checks: CPU seconds per clip (other ÷ dsgen, so > 1 = dsgen ahead).
        "cpu_decode_vs_dsgen": b["cpu_s_per_clip"] / d["cpu_s_per_clip"],
        "cpu_predecessor_vs_dsgen": (p["cpu_s_per_clip"] / d["cpu_s_per_clip"]) if p else None,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| video | method | clips | patches | wall s | clips/s | patches/min | s/clip | "
             "CPU s/clip | dsgen ÷ this (clips/s) | bg load before |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        d = r["dsgen"]
        rows = [("dsgen (engine, end to end)", d),
                ("dsgen, excl. start-up + probe", dict(d["steady"], wall=d["wall"] - d["startup"],
                                                      clips=d["clips"], patches=d["patches"],
                                                      other_load=None, cpu_s_per_clip=None)),
                ("decode-only bound", dict(r["decode_only"], patches=None))]
        if "predecessor" in r:
            p = r["predecessor"]
            label = "predecessor (ffmpeg CLI)" + (f", {p['clips']}-clip subset"
                                                 if p["subset"] else "")
            rows.append((label, p))
        for label, m in rows:
            ratio = d["clips_per_s"] / m["clips_per_s"] if m["clips_per_s"] else None
            lines.append(
                f"| {r['video']} | {label} | {m['clips']} | "
                f"{'–' if m.get('patches') is None else m['patches']} | {m['wall']:.1f} | "
                f"{m['clips_per_s']:.3f} | {fmt(m.get('patches_per_min'), 1)} | "
                f"{m['s_per_clip']:.3f} | {fmt(m.get('cpu_s_per_clip'), 3)} | {fmt(ratio)}× | "
                f"{fmt(m.get('other_load'))} |")
    lines += ["", "| video | dsgen ÷ decode-only | (excl. start-up) | (by CPU s/clip) | "
              "dsgen ÷ predecessor (clips/s) | (patches/min) | (by CPU s/clip) | "
              "targets: ≥ 0.75 / ≥ 10 |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        q = r["ratios"]
        ok_d = q["dsgen_vs_decode"] >= 0.75
        ok_p = q["dsgen_vs_predecessor_clips"] is None or q["dsgen_vs_predecessor_clips"] >= 10
        lines.append(
            f"| {r['video']} | {q['dsgen_vs_decode']:.2f} | {q['dsgen_steady_vs_decode']:.2f} | "
            f"{q['cpu_decode_vs_dsgen']:.2f} | {fmt(q['dsgen_vs_predecessor_clips'], 1)} | "
            f"{fmt(q['dsgen_vs_predecessor_patches'], 1)} | "
            f"{fmt(q['cpu_predecessor_vs_dsgen'], 1)} | "
            f"{'met' if ok_d else 'MISSED'} / {'met' if ok_p else 'MISSED'} |")
    names: list[str] = []
    for r in results:  # the stages the worker reports (TaskResult.seconds), in its order
        names += [k for k in r["dsgen"]["stages"] if k not in names]
    lines += ["", "dsgen worker stage seconds (sum over workers) and decode work:", "",
              "| video | " + " | ".join(names) + " | frames decoded (dsgen / bound) | "
              "seeks (dsgen / bound) |", "|---|" + "---:|" * (len(names) + 2)]
    for r in results:
        d, b = r["dsgen"], r["decode_only"]
        s = d["stages"]
        tot = sum(s.values()) or 1.0
        cells = " | ".join(f"{s.get(k, 0.0):.1f} ({100 * s.get(k, 0.0) / tot:.0f}%)"
                           for k in names)
        lines.append(f"| {r['video']} | {cells} | {d['frames_decoded']} / "
                     f"{b['frames_decoded']} | {d['seeks']} / {b['seeks']} |")
    if any("decode_orders" in r for r in results):
        lines += ["", "Decode-only bound, same windows in other orders (what-if):", "",
                  "| video | order | frames decoded | seeks | wall s | CPU s |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in results:
            for label, o in r.get("decode_orders", {}).items():
                lines.append(f"| {r['video']} | {label} | {o['frames_decoded']} | {o['seeks']} | "
                             f"{o['wall']:.1f} | {o['cpu']:.1f} |")
    for r in results:
        p = r.get("predecessor")
        if p:
            n = max(1, p["clips"])
            lines.append(f"\n{r['video']} predecessor, busy seconds per clip: ffmpeg "
                         f"{p['ffmpeg_busy'] / n:.2f}, Pillow post-processing "
                         f"{p['post_busy'] / n:.2f}; outcomes {p['outcomes']}; "
                         f"dsgen outcomes {r['dsgen']['outcomes']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="short videos (20 s / 10 s) and a small baseline subset")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help="cache for videos and run outputs (default: bench/.cache)")
    ap.add_argument("--video", choices=("1080p", "2160p", "all"), default="all")
    ap.add_argument("--workers", type=int, default=2, help="dsgen workers = parallel clips")
    ap.add_argument("--clips-per-minute", type=float, default=50.0,
                    help="dsgen target per minute of video (default 50)")
    ap.add_argument("--baseline-clips", type=int, default=None,
                    help="max clips for the predecessor baseline (0 = all; default: all at "
                         "1080p, 16 at 2160p, 6 with --quick)")
    ap.add_argument("--segment-slots", type=int, default=0,
                    help="dsgen slots per task (0 = auto: about 2 tasks per worker, max 24)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the ffmpeg-CLI baseline")
    ap.add_argument("--repeat", type=int, default=1,
                    help="repeat dsgen + decode-only N times, keep the fastest of each")
    ap.add_argument("--wait-quiet", type=float, default=120.0,
                    help="before each timed phase wait up to this many seconds for other "
                         "programs' CPU load to drop below 0.15 cores (default 120)")
    ap.add_argument("--decode-orders", action="store_true",
                    help="also time the bound with the same windows in other orders")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile run_task on one task in-process")
    ap.add_argument("--profile-top", type=int, default=25)
    args = ap.parse_args(argv)
    args.workdir = args.workdir.resolve()
    QUIET_WAIT[0] = args.wait_quiet
    args.workdir.mkdir(parents=True, exist_ok=True)

    info = machine_info()
    ffmpeg = None if args.no_baseline else ffmpeg_info()
    if ffmpeg:
        info["ffmpeg_cli"] = ffmpeg
    log("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    specs = video_specs(args.quick)
    keys = ["1080p", "2160p"] if args.video == "all" else [args.video]
    for k in keys:  # generate everything first: generation is never timed
        ensure_video(args.workdir, specs[k])
    results = []
    for k in keys:
        r = bench_video(k, specs[k], args, ffmpeg)
        r["ratios"] = ratios(r)
        results.append(r)
    table = markdown(results)
    blob = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
            "results": results, "table": table}
    out = args.workdir / f"results-{'quick' if args.quick else 'full'}-{args.video}.json"
    out.write_text(json.dumps(blob, indent=2, default=str))
    print()
    print(table)
    if args.profile:
        for r in results:
            p = r["profile"]
            st = p["stages"]
            tot = sum(st.values()) or 1.0
            shares = ", ".join(f"{k} {v:.2f} s ({100 * v / tot:.0f}%)" for k, v in st.items())
            print(f"\nTop functions by own time, cProfile of run_task in-process ({r['video']}, "
                  f"{p['tasks']} tasks, {p['clips']} clips, {p['wall']:.1f} s; stages: {shares}; "
                  f"full listing: {p['file']}):\n")
            print("| own s | cum s | calls | function |\n|---:|---:|---:|---|")
            for h in p["top_tottime"][:15]:
                print(f"| {h['tottime']:.3f} | {h['cumtime']:.3f} | {h['calls']} | "
                      f"`{h['function']}` |")
    print(f"\n(results: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
