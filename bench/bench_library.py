#!/usr/bin/env python3
"""Library-scale benchmark: does the parent's cost stay flat as the library and state grow?

Two sweeps, each point a fresh `dsgen` process (so memory and CPU are the parent's own):

* **videos**: 50 / 500 / 2000 configured videos (hard links of one short real encoded
  video under distinct names), the same work per video (``--per-video`` samples each).
  For each: ``dsgen config check`` time, time from launch to the first durable sample,
  parent peak RSS, parent CPU per sample (the workers' CPU is not the parent's), the time of
  one status snapshot (``dsgen status --json``, and ``snapshot.from_local`` in-process) and
  the state database's size.
* **samples**: a state that already holds 1k / 10k / 100k recorded samples (built directly
  with SQL in the shape a run records, on configured videos that are finished), then a run
  that adds ``--extra`` samples on a few fresh videos: parent CPU per new sample and time to
  the first new sample.

Usage::

    python bench/bench_library.py [--videos 50,500,2000] [--samples 1000,10000,100000]
                                  [--workdir DIR] [--json OUT]

Prints a Markdown table. The machine is noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / ".cache" / "library"
SOURCE_SECONDS = 4  # the shared source video: 4 s at 24 fps = 96 frames, 13 windows
FORMAT = 96  # tiny 96×96 GT patches: the workers' cost per sample stays small
NEW_VIDEOS = 16  # fresh videos that receive the samples sweep's new samples (13 windows each)

# The engine run inside a child process, which reports its own (parent) resources.
RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    from dsgen.config import load_config
    from dsgen.engine import Engine
    from dsgen.report import Reporter
    t0 = time.time()
    code = Engine(load_config(sys.argv[1]), Reporter(quiet=True)).run()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"code": code, "cpu": ru.ru_utime + ru.ru_stime,
                      "maxrss_kb": ru.ru_maxrss, "started": t0, "ended": time.time()}))
""")


def make_source(workdir: Path) -> Path:
    """One short real H.264 video (cached)."""
    from dsgen.synth import SynthSpec, make_video

    path = workdir / "source.mkv"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        make_video(path, SynthSpec("library_source", "h264", 320, 180, 24 * SOURCE_SECONDS,
                                   cuts=(40,), gop=24, seed=5))
    return path


def link_videos(source: Path, folder: Path, n: int) -> list[Path]:
    """`n` hard links of the source under distinct names."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"v{i:05d}.mkv"
        if not p.exists():
            os.link(source, p)
        out.append(p)
    return out


def write_config(run_dir: Path, videos: list[Path], target: int) -> Path:
    """A config with one category over every video."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    lines = [f'output_root = "{run_dir / "out"}"', f'state_dir = "{run_dir / "state"}"',
             "workers = 2", "seed = 1", "segment_slots = 4", "",
             "[metrics]", "enabled = false", "",
             "[formats.tiny]", f"width = {FORMAT}", f"height = {FORMAT}", "",
             "[categories.general]", f"target = {target}", "formats = { tiny = 1.0 }", ""]
    for p in videos:
        lines += ["[[videos]]", f'name = "{p.stem}"', f'path = "{p}"',
                  'categories = ["general"]', ""]
    cfg = run_dir / "dsgen.toml"
    cfg.write_text("\n".join(lines))
    return cfg


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command; its wall time and result."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, r


def run_engine(cfg: Path) -> dict[str, Any]:
    """One `Engine.run()` in a fresh process; its parent CPU, peak RSS and timestamps."""
    launched = time.time()
    r = subprocess.run([sys.executable, "-c", RUNNER, str(cfg)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"run failed: {r.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    out["launched"] = launched
    return out


def state_figures(state_dir: Path, since: float) -> dict[str, Any]:
    """Samples, first sample time after `since`, database size."""
    db = sqlite3.connect(f"file:{state_dir / 'dsgen.sqlite3'}?mode=ro", uri=True)
    n, first = db.execute("SELECT COUNT(*), MIN(created) FROM samples WHERE created >= ?",
                          (since,)).fetchone()
    total = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    db.close()
    size = sum(p.stat().st_size for p in state_dir.glob("dsgen.sqlite3*"))
    return {"new_samples": int(n), "samples": int(total), "first": first, "db_bytes": size}


def snapshot_seconds(cfg: Path, repeat: int = 5) -> tuple[float, float]:
    """(`dsgen status --json` wall, in-process `from_local` mean) on the finished state."""
    wall, r = timed([sys.executable, "-m", "dsgen.cli", "status", "--json", "--config",
                     str(cfg)])
    if r.returncode != 0:
        raise SystemExit(f"status failed: {r.stderr[-2000:]}")
    from dsgen.config import load_config
    from dsgen.snapshot import LocalReader, LocalSource

    reader = LocalReader(LocalSource.from_config(load_config(cfg)))
    try:
        reader.read()  # first read opens the connection and primes the CPU sampler
        t0 = time.perf_counter()
        for _ in range(repeat):
            reader.read()
        inproc = (time.perf_counter() - t0) / repeat
    finally:
        reader.close()
    return wall, inproc


def video_point(workdir: Path, source: Path, n: int, per_video: int) -> dict[str, Any]:
    """One point of the video sweep."""
    videos = link_videos(source, workdir / "videos", n)
    cfg = write_config(workdir / f"run-{n}", videos, per_video * n)
    check, r = timed([sys.executable, "-m", "dsgen.cli", "config", "check", str(cfg)])
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    res = run_engine(cfg)
    st = state_figures(workdir / f"run-{n}" / "state", 0.0)
    status_wall, snap = snapshot_seconds(cfg)
    return {"videos": n, "config_check_s": check,
            "first_sample_s": (st["first"] or res["ended"]) - res["launched"],
            "parent_rss_mb": res["maxrss_kb"] / 1024, "parent_cpu_s": res["cpu"],
            "samples": st["samples"],
            "parent_cpu_ms_per_sample": 1000 * res["cpu"] / max(1, st["samples"]),
            "status_s": status_wall, "snapshot_ms": 1000 * snap,
            "db_mb": st["db_bytes"] / 1e6, "wall_s": res["ended"] - res["started"]}


def build_big_state(base_cfg: Path, state_dir: Path, n_samples: int, per_video: int) -> None:
    """Fill a state with `n_samples` recorded samples on finished videos, through the
    state's own API as a run records them (video rows with a real probe, quotas, slots,
    attempts, samples), so the bench follows the schema wherever it goes."""
    from dsgen.config import load_config
    from dsgen.migrate import META_PATHS, identity
    from dsgen.model import OK, Attempt, Sample, SlotPlan, SlotResult
    from dsgen.probe import probe_video
    from dsgen.state import State
    from dsgen.writer import PathScheme

    cfg = load_config(base_cfg)
    st = State(state_dir)
    st.set_meta("identity", identity(cfg))
    st.set_meta(META_PATHS, PathScheme.of(cfg).to_json())  # as the first run stores it
    filler = [v for v in cfg.videos if v.name.startswith("f")]
    probe = probe_video(filler[0].path, cfg.extraction.frames_per_clip)
    quotas: dict[int, int] = {}
    left = n_samples
    for i, v in enumerate(filler):
        k = min(per_video, left)
        left -= k
        info = v.path.stat()
        vid = st.upsert_video(v.name, str(v.path), "ready", size=info.st_size,
                              mtime_ns=info.st_mtime_ns, duration=float(SOURCE_SECONDS),
                              fps=24.0)
        st.set_probe(vid, probe)
        quotas[vid] = k
        st.add_slots(vid, [SlotPlan(s, 0, 0, (s,), (("general", "tiny"),)) for s in range(k)])
        for s in range(k):
            st.record_slot(vid, SlotResult(
                s, attempts=[Attempt(s, 0, s, OK, 1.0)],
                samples=[Sample(s, "general", "tiny", ((f"f/{i}/{s}.png", 10_000),), s,
                                tuple(range(7)), (0, 0, 96, 96), {})],
                complete=True))
        if left <= 0:
            break
    st.add_quotas(0, {"general": quotas})
    st.close()


def sample_point(workdir: Path, source: Path, n_samples: int, extra: int) -> dict[str, Any]:
    """One point of the samples sweep: `n_samples` already recorded, `extra` more to make."""
    per_video = 100
    fillers = max(1, n_samples // per_video)
    folder = workdir / "videos"
    link_videos(source, folder, fillers + NEW_VIDEOS)
    paths = [folder / f"v{i:05d}.mkv" for i in range(fillers + NEW_VIDEOS)]
    run_dir = workdir / f"state-{n_samples}"
    cfg = write_config(run_dir, [], n_samples + extra)
    text = cfg.read_text()
    for i, p in enumerate(paths[:fillers]):
        text += f'[[videos]]\nname = "f{i:05d}"\npath = "{p}"\ncategories = ["general"]\n\n'
    for i, p in enumerate(paths[fillers:]):
        text += f'[[videos]]\nname = "new{i}"\npath = "{p}"\ncategories = ["general"]\n\n'
    cfg.write_text(text)
    build_big_state(cfg, run_dir / "state", n_samples, per_video)
    res = run_engine(cfg)
    st = state_figures(run_dir / "state", res["started"])
    return {"recorded": n_samples, "new_samples": st["new_samples"],
            "first_new_sample_s": (st["first"] or res["ended"]) - res["launched"],
            "parent_cpu_s": res["cpu"], "parent_rss_mb": res["maxrss_kb"] / 1024,
            "parent_cpu_ms_per_new_sample": 1000 * res["cpu"] / max(1, st["new_samples"]),
            "db_mb": st["db_bytes"] / 1e6}


def machine() -> str:
    """CPU, cores, memory and versions, for the results table."""
    import av
    import psutil

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, PyAV {av.__version__}")


def table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    """A Markdown table of `rows` with (key, header, format) columns."""
    head = "| " + " | ".join(h for _, h, _ in cols) + " |"
    rule = "|" + "|".join("---:" for _ in cols) + "|"
    body = ["| " + " | ".join(format(r[k], f) for k, _, f in cols) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def main() -> None:
    """Run both sweeps and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", default="50,500,2000")
    ap.add_argument("--samples", default="1000,10000,100000")
    ap.add_argument("--per-video", type=int, default=2)
    ap.add_argument("--extra", type=int, default=120)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    source = make_source(args.workdir)
    print(f"Machine: {machine()}\n", flush=True)
    vids: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []

    def save() -> None:  # after every point: a long sweep stopped midway keeps its figures
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "videos": vids,
                                             "samples": samples}, indent=2))

    for n in (int(n) for n in args.videos.split(",") if n):
        vids.append(video_point(args.workdir, source, n, args.per_video))
        save()
    if vids:
        print(table(vids, [
            ("videos", "videos", "d"), ("config_check_s", "config check s", ".2f"),
            ("first_sample_s", "first sample s", ".1f"),
            ("parent_rss_mb", "parent RSS MB", ".0f"),
            ("parent_cpu_ms_per_sample", "parent CPU ms/sample", ".1f"),
            ("samples", "samples", "d"), ("status_s", "status s", ".2f"),
            ("snapshot_ms", "snapshot ms", ".1f"), ("db_mb", "state MB", ".1f"),
            ("wall_s", "run s", ".0f")]))
        print(flush=True)
    for n in (int(n) for n in args.samples.split(",") if n):
        samples.append(sample_point(args.workdir, source, n, args.extra))
        save()
    if samples:
        print(table(samples, [
            ("recorded", "samples recorded", "d"), ("new_samples", "new samples", "d"),
            ("first_new_sample_s", "first new sample s", ".1f"),
            ("parent_cpu_ms_per_new_sample", "parent CPU ms/new sample", ".1f"),
            ("parent_rss_mb", "parent RSS MB", ".0f"), ("db_mb", "state MB", ".1f")]))

if __name__ == "__main__":
    main()
