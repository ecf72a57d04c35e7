#!/usr/bin/env python3
"""Throughput benchmark: dsgen vs. today's dsgen vs. decode-only yardsticks vs. the predecessor.

For each benchmark video and sample density (clips per minute of video), in one run and on
the same clip positions:

1. **dsgen**: the real pipeline, ``Engine(cfg).run()`` on a fresh state (one video, one
   category of ``small_540`` patches, stacked LR_5/LR_7, PNG level 3, ``--workers`` workers),
   in a subprocess (``dsgen_run.py``) that traces every pool call: end-to-end wall and CPU,
   steady state (from the first task on), start-up (pool, probe, first sample), frames
   decoded, seeks, stage seconds.
2. **today's dsgen** (``--baseline-src DIR`` or ``--baseline-rev REV``): the same measurement
   with another checkout's package (``PYTHONPATH=<dir>/daemon``), interleaved with 1, so
   "new ÷ old by CPU time per clip" comes from one run.
3. **decode-only bound of today's strategy**: run 1's windows, in today's order, decoded by
   the frozen copy of today's ``ClipReader`` (``legacy_decode.py``), nothing else.
4. **physical floor**: as many clips, each a seek to the keyframe at or before its window and
   7 frames decoded.
5. **the predecessor's method**: one ffmpeg CLI run per clip + Pillow (``predecessor.py``),
   on an evenly spread subset of run 1's windows where it is slow (the table says so).

Sets: by default the small synthetic videos at 50 clips/min (a few minutes); ``--quick``
shorter ones; ``--real`` the real-bitrate set (2160p HEVC HDR10 ≈ 50 Mbit/s, 1080p H.264
≈ 25 Mbit/s, grain, scene-cut keyframes, 10 min each) at 3, 10 and 50 clips/min.
Prints Markdown tables and writes ``<workdir>/results-<set>-<video>-<densities>.json``.
Compare ratios from one run: the machine is noisy, absolute rates drift ±10–20%.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

import common
import tables
import videos
from common import git_rev, log, machine_info, wait_quiet
from decoders import predecessor_frames, run_bound, run_floor, task_sequences
from legacy_decode import BenchProbe
from predecessor import ffmpeg_info, pick_subset, run_predecessor

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / ".cache"
SEED = 1

CONFIG_TOML = """\
# dsgen benchmark config (written by bench/bench_pipeline.py)
output_root = "{root}"
state_dir = "{state}"
workers = {workers}
seed = {seed}
png_compression = 3
layout = "stacked"
segment_slots = {segment}

[extraction]
frames_per_clip = 7
lr_stacks = [5, 7]

[formats.small_540]
width = 540
height = 540
scale = 3
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


def run_dsgen(run_dir: Path, video: Path, name: str, target: int, workers: int, segment: int,
              pythonpath: str | None, profile: int, reuse: bool = False) -> dict[str, Any]:
    """One fresh Engine run in a subprocess (dsgen from `pythonpath` if given); with `reuse`,
    the result of an earlier run with the same config, if there is one (not run again)."""
    config = CONFIG_TOML.format(root=run_dir / "dataset", state=run_dir / "state",
                                workers=workers, seed=SEED, segment=segment, target=target,
                                name=name, video=video)
    toml = run_dir / "dsgen.toml"
    out = run_dir / "run.json"
    if reuse and out.exists() and toml.exists() and toml.read_text() == config:
        log(f"  reusing {out} (--reuse)")
        d: dict[str, Any] = json.loads(out.read_text())
        d["other_load"] = d.get("measured_load")
        d["reused"] = True
        d["steady_cpu"] = d["steady"]["cpu"]
        d["per_clip"] = tables.per_clip(d)
        return d
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    toml.write_text(config)
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH"))
                                            if p)
    cmd = [sys.executable, str(HERE / "dsgen_run.py"), str(toml), str(out)]
    if profile:
        cmd += ["--profile", str(profile)]
    load = wait_quiet()
    subprocess.run(cmd, env=env, check=True)
    d = json.loads(out.read_text())
    d["other_load"] = load
    d["measured_load"] = load  # kept in run.json for --reuse
    out.write_text(json.dumps(d, default=str))
    d["steady_cpu"] = d["steady"]["cpu"]
    d["per_clip"] = tables.per_clip(d)
    return d


def bench_probe(d: dict[str, Any]) -> BenchProbe:
    p = d["probe"]
    return BenchProbe(p["path"], p["stream_index"], Fraction(*p["time_base"]),
                      np.asarray(p["frame_pts"], dtype=np.int64),
                      np.asarray(p["key_pts"], dtype=np.int64), p["pts_interpolated"])


def frame_attempts(d: dict[str, Any], probe: BenchProbe) -> list[list[Any]]:
    """A run's attempts with window starts as frame indices (a state that keeps positions as
    pts: the index of the first frame at or after the start; unresolved ones stay < 0)."""
    if d.get("positions") != "pts":
        return [list(a) for a in d["attempts"]]
    pts = probe.frame_pts
    out = []
    for slot, number, start, outcome in d["attempts"]:
        i = int(np.searchsorted(pts, start)) if start >= 0 else start
        out.append([slot, number, min(i, max(0, pts.shape[0] - 1)), outcome])
    return out


def slim(d: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON without the bulky probe lists."""
    out = {k: v for k, v in d.items() if k not in ("probe", "profile")}
    p = d.get("probe")
    if p:
        out["probe"] = {"frames": len(p["frame_pts"]), "keyframes": len(p["key_pts"])}
    if "profile" in d:
        out["profile"] = {k: v for k, v in d["profile"].items() if k != "text"}
    return out


def bench_one(key: str, video: Path, minutes: float, density: float, args: argparse.Namespace,
              ffmpeg: str | None, baseline: str | None) -> dict[str, Any]:
    """Every method for one (video, density)."""
    target = max(1, round(density * minutes))
    workers = args.workers
    # A film has hundreds of tasks, so every worker stays busy. Here the target can be tens of
    # slots: with the default 24 slots per task a 30-slot video is 2 tasks. "auto" sizes
    # tasks so each worker gets about two (capped at dsgen's default of 24).
    segment = args.segment_slots or max(1, min(24, math.ceil(target / (2 * workers))))
    tag = f"{key}-{density:g}"
    runs = args.workdir / "runs"
    log(f"[{tag}] {minutes:.1f} min of video, target {target} samples, {workers} workers, "
        f"segment_slots {segment}")
    best: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeat):
        order = [("dsgen", None), ("baseline", baseline)] if baseline else [("dsgen", None)]
        if rep % 2:
            order.reverse()  # interleave: neither always runs first
        for label, pp in order:
            d = run_dsgen(runs / f"{tag}-{label}", video, f"bench {key}", target, workers,
                          segment, pp, args.profile if label == "dsgen" else 0, args.reuse)
            pc = d["per_clip"]
            rev = d["dsgen_rev"] if label == "dsgen" else args.baseline_label
            log(f"  {label} ({rev}): {d['clips']} clips, {d['patches']} samples, "
                f"{d['wall']:.1f} s, {pc['cpu_per_clip']:.3f} CPU s/clip, "
                f"{pc['frames_per_clip'] or 0:.1f} frames/clip "
                f"(bg load {common.fmt(d['other_load'])}); exit {d['exit_code']}")
            if label not in best or d["wall"] < best[label]["wall"]:
                best[label] = d
    d = best["dsgen"]
    probe = bench_probe(d)
    d["attempts"], d["positions"] = frame_attempts(d, probe), "frames"
    seqs = task_sequences(d["task_slots"], [tuple(a) for a in d["attempts"]])  # type: ignore[misc]
    out: dict[str, Any] = {"video": key, "density": density, "target": target,
                           "workers": workers, "threads_per_worker": d["threads"],
                           "segment_slots": segment, "file": video.name}
    out["dsgen"] = dict(slim(d), rev=d["dsgen_rev"])
    if "baseline" in best:
        out["baseline"] = dict(slim(best["baseline"]), rev=args.baseline_label)

    b = run_bound(probe, seqs, workers, d["threads"])
    b["per_clip"] = tables.per_clip(b)
    log(f"  bound (today's strategy): {b['frames_decoded']} frames, {b['seeks']} seeks, "
        f"{b['wall']:.1f} s, {b['per_clip']['cpu_per_clip']:.3f} CPU s/clip")
    out["bound"] = b
    f = run_floor(probe, seqs, workers, d["threads"])
    f["per_clip"] = tables.per_clip(f)
    log(f"  floor (keyframe + 7): {f['frames_decoded']} frames, {f['wall']:.1f} s, "
        f"{f['per_clip']['cpu_per_clip']:.3f} CPU s/clip")
    out["floor"] = f

    if ffmpeg is not None:
        starts = sorted(s for _, _, s, _ in d["attempts"])
        subset = pick_subset(starts, args.predecessor_limit[key])
        t_first = int(probe.frame_pts[0])
        times = [float((int(probe.frame_pts[s]) - t_first) * probe.time_base) for s in subset]
        p = run_predecessor(video, times, runs / f"{tag}-predecessor", workers)
        p["frames_decoded"] = sum(predecessor_frames(probe, s) for s in subset)
        p["seeks"] = len(subset)
        p["subset"] = len(subset) < len(starts)
        p["per_clip"] = tables.per_clip(p)
        log(f"  predecessor: {p['clips']} clips, {p['wall']:.1f} s, "
            f"{p['per_clip']['cpu_per_clip']:.3f} CPU s/clip")
        out["predecessor"] = p
    out["ratios"] = tables.ratios(out)
    return out


def prepare_baseline(args: argparse.Namespace) -> str | None:
    """PYTHONPATH entry of today's dsgen (--baseline-src / --baseline-rev), or None."""
    if args.baseline_rev:
        repo = HERE.parent
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", args.baseline_rev],
                             capture_output=True, text=True, check=True).stdout.strip()
        dest = Path(tempfile.mkdtemp(prefix=f"dsgen-baseline-{sha}-"))
        archive = subprocess.run(["git", "-C", str(repo), "archive", sha, "daemon"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        args.baseline_cleanup = dest
        args.baseline_label = f"{args.baseline_rev} = {sha}"
        return str(dest / "daemon")
    if args.baseline_src:
        src = args.baseline_src.resolve()
        pkg = src / "daemon"
        if not (pkg / "dsgen" / "engine.py").exists():
            sys.exit(f"--baseline-src {src}: no daemon/dsgen/engine.py there (give the root "
                     "of a dsgen checkout)")
        args.baseline_label = git_rev(src)
        return str(pkg)
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", action="store_true",
                    help="the real-bitrate set (10 min each; generated once, ≈ 1 h niced)")
    ap.add_argument("--quick", action="store_true",
                    help="short synthetic videos (20 s / 10 s), a small predecessor subset")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help="cache for videos and run outputs (default: bench/.cache)")
    ap.add_argument("--video", choices=("1080p", "2160p", "all"), default="all")
    ap.add_argument("--densities", default=None,
                    help="clips per minute of video, comma-separated (default: 3,10,50 with "
                         "--real, else 50)")
    ap.add_argument("--workers", type=int, default=2, help="dsgen workers = parallel clips")
    ap.add_argument("--segment-slots", type=int, default=0,
                    help="dsgen slots per task (0 = auto: about 2 tasks per worker, max 24)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="checkout of today's dsgen (its daemon/ goes on PYTHONPATH)")
    ap.add_argument("--baseline-rev", default=None,
                    help="git revision of today's dsgen (exported to a temp dir)")
    ap.add_argument("--predecessor-clips", type=int, default=None,
                    help="max clips per (video, density) for the predecessor (0 = all; "
                         "default: --real 12 at 4K and 24 at 1080p; else all at 1080p, 16 "
                         "at 4K; --quick 6 at 4K)")
    ap.add_argument("--no-predecessor", action="store_true", help="skip the ffmpeg-CLI method")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run dsgen (and today's) N times, interleaved; keep the fastest")
    ap.add_argument("--wait-quiet", type=float, default=60.0,
                    help="before each timed phase wait up to this many seconds for other "
                         "programs' load to drop below 0.15 cores (default 60)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse a dsgen run's result from an earlier benchmark run with the "
                         "same config (runs/<video>-<density>-dsgen/run.json) instead of "
                         "running it again: to redo the yardsticks or add a baseline")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also cProfile run_task in-process after each dsgen run: top N")
    args = ap.parse_args(argv)
    if args.baseline_src and args.baseline_rev:
        ap.error("give --baseline-src or --baseline-rev, not both")
    args.workdir = args.workdir.resolve()
    args.densities = [float(x) for x in (args.densities or ("3,10,50" if args.real else "50"))
                      .split(",")]
    lim = args.predecessor_clips
    args.predecessor_limit = ({"1080p": 24 if lim is None else lim,
                               "2160p": 12 if lim is None else lim} if args.real else
                              {"1080p": 0 if lim is None else lim,
                               "2160p": (6 if args.quick else 16) if lim is None else lim})
    args.baseline_label = None
    args.baseline_cleanup = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.QUIET_WAIT[0] = args.wait_quiet
    args.workdir.mkdir(parents=True, exist_ok=True)
    keys = ["2160p", "1080p"] if args.video == "all" else [args.video]
    # Generate everything first: generation is never timed.
    sources: dict[str, tuple[Path, float]] = {}
    video_info: dict[str, Any] = {}
    for k in keys:
        if args.real:
            spec = videos.real_specs()[k]
            path, info = videos.ensure_real(args.workdir, spec)
            log(videos.describe(info))
            video_info[k] = info
            sources[k] = (path, info["seconds"] / 60.0)
        else:
            qs = videos.quick_specs(args.quick)[k]
            path = videos.ensure_quick(args.workdir, qs)
            info = videos.inspect_video(path, list(qs.cuts))
            log(videos.describe(info))
            video_info[k] = info
            sources[k] = (path, qs.n_frames / float(qs.fps) / 60.0)

    info_m = machine_info()
    import dsgen

    src = Path(dsgen.__file__).resolve().parent
    info_m["dsgen"] = f"{src} ({git_rev(src)})"
    ffmpeg = None if args.no_predecessor else ffmpeg_info()
    if ffmpeg:
        info_m["ffmpeg_cli"] = ffmpeg
    baseline = prepare_baseline(args)
    if baseline:
        info_m["baseline"] = f"{baseline} ({args.baseline_label})"
    log("machine: " + ", ".join(f"{k}={v}" for k, v in info_m.items()))
    results: list[dict[str, Any]] = []
    kind = "real" if args.real else ("quick" if args.quick else "synthetic")
    dens = "_".join(f"{x:g}" for x in args.densities)
    out = args.workdir / f"results-{kind}-{args.video}-{dens}.json"
    t0 = time.perf_counter()

    def save(done: bool) -> str:
        """Results so far (JSON + table): a long run that is stopped keeps what it measured."""
        table = tables.markdown(results) if results else ""
        blob = {"machine": info_m, "videos": video_info, "command": sys.argv,
                "args": {k: str(v) for k, v in vars(args).items()}, "complete": done,
                "results": results, "table": table,
                "minutes": (time.perf_counter() - t0) / 60}
        out.write_text(json.dumps(blob, indent=1, default=str))
        out.with_suffix(".md").write_text(tables.machine_table(info_m) + "\n\n" + table + "\n")
        return table

    try:
        for k in keys:
            path, minutes = sources[k]
            for density in args.densities:
                results.append(bench_one(k, path, minutes, density, args, ffmpeg, baseline))
                save(False)
                log(f"  ({(time.perf_counter() - t0) / 60:.1f} min so far; partial results "
                    f"in {out.with_suffix('.md')})")
    finally:
        if args.baseline_cleanup is not None:
            shutil.rmtree(args.baseline_cleanup, ignore_errors=True)
    table = save(True)
    print()
    print(tables.machine_table(info_m))
    print()
    print(table)
    if args.profile:
        for r in results:
            p = r["dsgen"].get("profile")
            if not p:
                continue
            print(f"\nTop functions by own time, cProfile of run_task in-process ({r['video']}, "
                  f"{r['density']:g} clips/min, {p['tasks']} tasks, {p['wall']:.1f} s):\n")
            print("| own s | cum s | calls | function |\n|---:|---:|---:|---|")
            for h in p["top_tottime"][:15]:
                print(f"| {h['tottime']:.3f} | {h['cumtime']:.3f} | {h['calls']} | "
                      f"`{h['function']}` |")
    print(f"\n(results: {out}; {(time.perf_counter() - t0) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
