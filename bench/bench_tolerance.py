#!/usr/bin/env python3
"""How far may a window move to open at a keyframe? Frames decoded per clip by tolerance.

``python bench/bench_tolerance.py VIDEO [--clips-per-minute 3] [--tolerances 0,0.5,1,2,3,5]``

For each tolerance (seconds; 0 = windows exactly at their random positions): one round of
slots planned by dsgen's own planner (`plan.place_round`, seed 1) at the given density over
the video's header runtime, then every slot's first window resolved and decoded in position
order by one `ClipReader` (as one worker walks a task), each told what comes next. Prints,
per tolerance: clips, windows opening at a keyframe, mean and largest move, frames decoded
per clip, seeks, and decode CPU seconds per clip. Not timed work: the probe and the plan.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "daemon"))

from dsgen.config import config_from_dict  # noqa: E402
from dsgen.decode import ClipError, ClipReader, WindowPlan  # noqa: E402
from dsgen.plan import place_round  # noqa: E402
from dsgen.probe import open_probe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--clips-per-minute", type=float, default=3.0)
    ap.add_argument("--tolerances", default="0,0.5,1,2,3,5")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    probe = open_probe(args.video, 7)
    minutes = float((probe.end_pts - probe.first_pts) * probe.time_base) / 60
    clips = max(1, round(minutes * args.clips_per_minute))
    cfg = config_from_dict({
        "output_root": "/tmp/x", "state_dir": "/tmp/x",
        "formats": {"f": {"width": 96, "height": 96}},
        "categories": {"c": {"target": clips, "formats": ["f"]}}}, Path("/tmp/x.toml"))
    print(f"# {args.video.name}: {minutes:.1f} min, {clips} clips "
          f"({args.clips_per_minute:g}/min), {args.threads} decoder thread(s)\n")
    print("| tolerance s | clips | at a keyframe | mean move s | max move s | frames/clip "
          "| seeks | decode CPU s/clip |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tol_s in (float(t) for t in args.tolerances.split(",")):
        tol = round(Fraction(tol_s) / probe.time_base)
        slots = place_round(cfg, probe, "bench", {"c": clips}, [], 0, 0, 0, tol=tol)
        reader = ClipReader(probe, args.threads)
        keyed = moved = done = 0
        worst = 0.0
        c0 = time.process_time()
        for i, s in enumerate(slots):
            lo, hi, fence = s.limits(0)
            then = [slots[i + 1].starts[0]] if i + 1 < len(slots) else []
            try:
                w = reader.window(WindowPlan(s.starts[0], lo, hi, fence, s.tol), 7, (), then)
            except ClipError:
                continue
            done += 1
            keyed += w.origin == "keyframe"
            m = abs(float((w.pts[0] - s.starts[0]) * probe.time_base))
            moved += m
            worst = max(worst, m)
        reader.close()
        cpu = time.process_time() - c0
        n = max(1, done)
        print(f"| {tol_s:g} | {done} | {keyed} ({keyed / n:.0%}) | {moved / n:.2f} | "
              f"{worst:.2f} | {reader.frames_decoded / n:.1f} | {reader.seeks} | "
              f"{cpu / n:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
