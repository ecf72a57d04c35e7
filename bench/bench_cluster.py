#!/usr/bin/env python3
"""Cluster benchmark: the local pool vs a Dask cluster of 1 and 2 workers on this machine.

One real encoded video, one dataset config, three runs with the same seed: ``executor =
"local"`` (2 processes), then ``executor = "dask"`` against a fresh ``dask scheduler`` with 1
and with 2 one-thread ``dask worker`` processes. Each run is timed from launch to exit; the
datasets are hashed and must be identical. Prints a Markdown table with throughput ratios.

Usage::

    python bench/bench_cluster.py [--workdir DIR] [--seconds 40] [--target 120]

Needs ``pip install 'dsgen[dask]'``. The machine is noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / ".cache" / "cluster"
DASK = str(Path(sys.executable).parent / "dask")


def make_video(workdir: Path, seconds: int) -> Path:
    """A 720p H.264 video with cuts (cached)."""
    from dsgen.synth import SynthSpec
    from dsgen.synth import make_video as encode

    path = workdir / f"source-{seconds}s.mkv"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        n = 24 * seconds
        encode(path, SynthSpec("cluster_source", "h264", 1280, 720, n,
                               cuts=tuple(range(100, n, 170)), gop=48, seed=9))
    return path


def write_config(run_dir: Path, video: Path, target: int, scheduler: str | None) -> Path:
    """A config for one run (executor local, or dask at `scheduler`)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    head = [f'output_root = "{run_dir / "out"}"', f'state_dir = "{run_dir / "state"}"',
            "workers = 2", "seed = 11", "segment_slots = 6"]
    if scheduler:
        head.append('executor = "dask"')
    text = "\n".join(head) + f"""

[metrics]
enabled = false

[categories.general]
target = {target}
formats = {{ small_540 = 0.5, medium_169 = 0.5 }}

[[videos]]
name = "source"
path = "{video}"
categories = ["general"]
"""
    if scheduler:
        text += f'\n[dask]\nscheduler = "{scheduler}"\n'
    cfg = run_dir / "dsgen.toml"
    cfg.write_text(text)
    return cfg


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dataset_hash(root: Path) -> str:
    """One sha256 over every dataset file's name and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def run(cfg: Path) -> float:
    """`dsgen run`; its wall time."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config", str(cfg),
                        "--no-tui"], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(r.stdout[-3000:] + r.stderr[-3000:])
    return time.perf_counter() - t0


def cluster_run(workdir: Path, video: Path, target: int, workers: int) -> tuple[float, str]:
    """A fresh scheduler + `workers` one-thread workers; the run's time and dataset hash."""
    import distributed

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for i in range(workers):
            procs.append(subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--name", f"w{i + 1}",
                 "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(workers, timeout=120)
        client.close()
        cfg = write_config(workdir / f"dask-{workers}", video, target, address)
        wall = run(cfg)
        return wall, dataset_hash(cfg.parent / "out")
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


def main() -> None:
    """Three runs, one table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--target", type=int, default=120)
    args = ap.parse_args()
    video = make_video(args.workdir, args.seconds)
    cfg = write_config(args.workdir / "local", video, args.target, None)
    rows = [("local pool, 2 processes", run(cfg), dataset_hash(cfg.parent / "out"))]
    for n in (1, 2):
        wall, digest = cluster_run(args.workdir, video, args.target, n)
        rows.append((f"Dask, {n} worker{'s' if n > 1 else ''} × 1 thread", wall, digest))
    base = rows[0][1]
    print(f"Machine: {os.cpu_count()} cores; {args.target} samples from a {args.seconds} s "
          "720p H.264 video\n")
    print("| executor | wall s | samples/s | ÷ local | dataset |")
    print("|---|---:|---:|---:|---|")
    for name, wall, digest in rows:
        same = "identical" if digest == rows[0][2] else "DIFFERENT"
        print(f"| {name} | {wall:.1f} | {args.target / wall:.2f} | {base / wall:.2f} | {same} |")


if __name__ == "__main__":
    main()
