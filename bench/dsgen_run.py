#!/usr/bin/env python3
"""One dsgen measurement in its own process, for whichever dsgen is first on PYTHONPATH.

``python bench/dsgen_run.py CONFIG OUT.json [--profile N]``: a real ``Engine(cfg).run()``
on a fresh state and output, timed from ``run()`` to its return; then the state DB's
attempts and samples, the probe the run used, and a trace of every pool call (when, how much
CPU, what ``run_task`` reported) go to OUT.json. The benchmark runs this once with the
checkout under test and once with ``--baseline-src``'s (``PYTHONPATH=<dir>/daemon``), so both
are measured the same way in the same benchmark run.

Only public behaviour is relied on, so an older or newer dsgen works: ``load_config``,
``Engine(cfg, reporter).run()``, a pool made with ``concurrent.futures.ProcessPoolExecutor``
(its ``submit`` is wrapped to trace calls in the workers: ``benchtrace.call``), the state DB's
``attempts`` and ``samples`` tables.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import process as cf_process
from pathlib import Path
from typing import Any

import benchtrace

POOLS: list[float] = []  # wall-clock creation time of every process pool
SUBMITTED: list[tuple[float, str, tuple[Any, ...]]] = []  # (time, function, args)
TRACE_DIR = [""]

_orig_init = cf_process.ProcessPoolExecutor.__init__
_orig_submit = cf_process.ProcessPoolExecutor.submit


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    POOLS.append(time.time())
    _orig_init(self, *args, **kwargs)


def _submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    SUBMITTED.append((time.time(), getattr(fn, "__name__", ""), args))
    return _orig_submit(self, benchtrace.call, fn, TRACE_DIR[0], *args, **kwargs)


def _install() -> None:
    cf_process.ProcessPoolExecutor.__init__ = _init  # type: ignore[method-assign]
    cf_process.ProcessPoolExecutor.submit = _submit  # type: ignore[method-assign]


def _probe_json(cfg: Any) -> dict[str, Any]:
    """The probe the run recorded (state DB), or a fresh one: what the yardsticks decode by."""
    probe = None
    try:
        from dsgen.state import State

        st = State(cfg.state_dir, readonly=True)
        probe = st.videos()[0].probe
        st.close()
    except Exception as e:  # another dsgen version: fall back to probing again (not timed)
        print(f"dsgen_run: probe from the state failed ({e}); probing again", file=sys.stderr)
    if probe is None:
        from dsgen.probe import probe_video

        probe = probe_video(Path(cfg.videos[0].path), cfg.extraction.frames_per_clip)
    tb = probe.time_base
    return {"path": str(probe.path), "stream_index": int(probe.stream_index),
            "time_base": [tb.numerator, tb.denominator],
            "frame_pts": [int(x) for x in probe.frame_pts],
            "key_pts": [int(x) for x in probe.key_pts],
            "pts_interpolated": bool(getattr(probe, "pts_interpolated", False))}


def _first_file_mtime(root: Path) -> float | None:
    best = None
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".png"):
                m = os.stat(os.path.join(dirpath, name)).st_mtime
                best = m if best is None or m < best else best
    return best


def _profile(cfg: Any, tasks: list[Any], top: int) -> dict[str, Any]:
    """cProfile of run_task over the run's tasks, in order, in this one process (fresh root)."""
    from dsgen import extract

    out_dir = Path(tempfile.mkdtemp(prefix="dsgen-profile-"))
    try:
        cfg2 = dataclasses.replace(cfg, output_root=out_dir)
        tasks = [dataclasses.replace(t, cfg=cfg2) for t in tasks]
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        results = [extract.run_task(t) for t in tasks]
        prof.disable()
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    hot = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        hot.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
    hot.sort(reverse=True)
    stages: dict[str, float] = {}
    for r in results:
        for k, v in r.seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    return {"wall": wall, "tasks": len(tasks), "stages": stages, "text": buf.getvalue(),
            "top_tottime": [{"tottime": round(tt, 3), "cumtime": round(ct, 3), "calls": nc,
                             "function": name} for tt, ct, nc, name in hot[:top]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--profile", type=int, default=0, help="also profile: top N functions")
    args = ap.parse_args(argv)

    import dsgen
    from dsgen.config import load_config
    from dsgen.engine import Engine
    from dsgen.report import Reporter

    trace = Path(tempfile.mkdtemp(prefix="dsgen-trace-"))
    TRACE_DIR[0] = str(trace)
    _install()
    cfg = load_config(args.config)
    try:
        reporter = Reporter(quiet=True)
    except TypeError:
        reporter = Reporter()
    eng = Engine(cfg, reporter)
    t0 = time.time()
    c0 = os.times()
    code = eng.run()
    t1 = time.time()
    c1 = os.times()

    db = sqlite3.connect(cfg.state_dir / "dsgen.sqlite3")
    attempts = db.execute("SELECT slot_id, number, start, outcome FROM attempts "
                          "ORDER BY slot_id, number").fetchall()
    n_samples, n_bytes = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM samples").fetchone()
    # window starts are pts in a state that says so (lazy probing), frame indices before
    positions = db.execute("SELECT value FROM meta WHERE key='positions'").fetchone()
    db.close()
    calls = []
    for f in sorted(trace.glob("*.jsonl")):
        calls += [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()]
    shutil.rmtree(trace, ignore_errors=True)
    tasks = [a[0] for _, name, a in SUBMITTED if name == "run_task" and a]
    outcomes: dict[str, int] = {}
    for *_, outcome in attempts:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 4)

    work = [c for c in calls if c["fn"] == "run_task"]
    probes = [c for c in calls if c["fn"] == "probe_task"]
    stages: dict[str, float] = {}
    for c in work:
        for k, v in (c.get("seconds") or {}).items():
            stages[k] = stages.get(k, 0.0) + float(v)
    first_task = min((c["t0"] for c in work), default=None)
    src = Path(dsgen.__file__).resolve().parent
    from common import git_rev

    out: dict[str, Any] = {
        "dsgen": str(src), "dsgen_rev": git_rev(src), "exit_code": code,
        "wall": t1 - t0,
        "cpu": (c1.user + c1.system + c1.children_user + c1.children_system)
        - (c0.user + c0.system + c0.children_user + c0.children_system),
        "cpu_parent": (c1.user + c1.system) - (c0.user + c0.system),
        "clips": len(attempts), "patches": int(n_samples), "bytes": int(n_bytes),
        "outcomes": outcomes, "stages": stages,
        "frames_decoded": sum(int(c.get("frames_decoded", 0)) for c in work),
        "seeks": sum(int(c.get("seeks", 0)) for c in work),
        "tasks": len(work), "threads": getattr(tasks[0], "threads", 1) if tasks else 1,
        "startup": {
            "pool_created": rel(POOLS[0]) if POOLS else None,
            "workers_started": sorted(r for r in (rel(c.get("proc_start")) for c in calls
                                                  if "proc_start" in c) if r is not None),
            "first_worker_call": rel(min((c["t0"] for c in calls), default=None)),
            "worker_start_cpu": sum(float(c.get("cpu_before", 0.0)) for c in calls),
            "probe_wall": sum(c["t1"] - c["t0"] for c in probes) if probes else None,
            "probe_cpu": sum(c["cpu"] for c in probes) if probes else None,
            "first_task_start": rel(first_task),
            "first_task_done": rel(min((c["t1"] for c in work), default=None)),
            "first_sample_written": rel(_first_file_mtime(cfg.output_root)),
        },
        "steady": {"wall": (t1 - first_task) if first_task is not None else None,
                   "cpu": sum(c["cpu"] for c in work)},
        "attempts": attempts,
        "positions": positions[0] if positions else "frames",
        "task_slots": [[int(s.slot_id) for s in t.slots] for t in tasks],
        "probe": _probe_json(cfg),
    }
    if args.profile:
        out["profile"] = _profile(cfg, tasks, args.profile)
    args.out.write_text(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
