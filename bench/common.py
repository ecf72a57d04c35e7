"""Benchmark plumbing shared by the bench modules: logging, CPU clocks, quiet-machine wait."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUIET_WAIT = [60.0]  # seconds to wait for a quiet machine before each phase (--wait-quiet)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped descendants (pool workers, their ffmpeg).

    Unlike wall time this barely moves when other programs share the cores, so ratios of
    CPU seconds per clip are the noise-robust cross-check of the wall-clock ratios.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


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


def wait_quiet(threshold: float = 0.15) -> float:
    """Sample the background load; while above `threshold`, wait (up to --wait-quiet s)."""
    deadline = time.monotonic() + QUIET_WAIT[0]
    load = background_load()
    warned = False
    while load > threshold and time.monotonic() < deadline:
        if not warned:
            log(f"  waiting for other programs to finish (background load {load:.2f} cores) ...")
            warned = True
        time.sleep(4.0)
        load = background_load()
    return load


def fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def git_rev(path: Path) -> str:
    """`git describe` of the checkout holding `path`, or a note that it is none."""
    out = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return out or "not a git checkout"


def machine_info() -> dict[str, str]:
    """CPU, cores, RAM, OS and the versions that matter for the figures."""
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
    lib = av.library_versions["libavcodec"]
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": mem, "os": osname,
            "python": platform.python_version(), "pyav": av.__version__,
            "pyav_ffmpeg": f"libavcodec {'.'.join(map(str, lib))}",
            "pillow": PIL.__version__, "numpy": np.__version__}
