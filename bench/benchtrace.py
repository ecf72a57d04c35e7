"""Worker-side trace of a dsgen pool call: when it ran, its CPU time and what it reported.

``dsgen_run`` submits ``call(fn, trace_dir, *args)`` in place of ``fn(*args)``; the result is
``fn``'s, unchanged. Each call appends one JSON line to ``<trace_dir>/<pid>.jsonl``. The first
line of a process also says when the process started and the CPU it spent before its first
call (spawn, imports, unpickling: its share of the pool start).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

_started = False


def _process_start() -> float:
    """Wall-clock start of this process, to ≈ 10 ms: its start in clock ticks since boot
    (/proc/self/stat) against the uptime now (/proc/uptime; /proc/stat's btime is whole
    seconds). The call's start if unavailable."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def call(fn: Any, trace_dir: str, *args: Any, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) and trace it."""
    global _started
    t0, c0 = time.time(), time.process_time()
    rec: dict[str, Any] = {"fn": getattr(fn, "__name__", str(fn)), "pid": os.getpid()}
    if not _started:
        _started = True
        rec["proc_start"] = _process_start()
        rec["cpu_before"] = c0
    try:
        res = fn(*args, **kwargs)
    except BaseException as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        rec.update(t0=t0, t1=time.time(), cpu=time.process_time() - c0)
    for name in ("frames_decoded", "seeks", "seconds"):
        if hasattr(res, name):
            rec[name] = getattr(res, name)
    slots = getattr(res, "slots", None)
    if isinstance(slots, list):
        rec["attempts"] = sum(len(getattr(s, "attempts", ())) for s in slots)
        rec["samples"] = sum(len(getattr(s, "samples", ())) for s in slots)
    with open(Path(trace_dir) / f"{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
    return res
