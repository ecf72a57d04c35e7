#!/usr/bin/env python3
"""Time to the first durable sample of a fresh run over one video, for this checkout and
optionally an older one (``--baseline-rev``, checked out in a temporary git worktree).

Each measurement is a fresh ``dsgen run`` process (PyAV and the worker pool start in it);
the time is from its launch to the first sample row in the state, then the run is stopped.

Usage::

    python bench/bench_first_sample.py --video FILE [--target 40] [--baseline-rev REV]

Prints a Markdown table. The machine is noisy: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FORMAT = 255  # one GT format that fits every picture (a multiple of the default ×3 scale)
POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 1800.0

CONFIG = """\
output_root = "{d}/out"
state_dir = "{d}/state"
workers = 2
seed = 1

[metrics]
enabled = false

[formats.f]
width = {f}
height = {f}

[categories.general]
target = {target}
formats = {{ f = 1.0 }}

[[videos]]
name = "film"
path = "{video}"
categories = ["general"]
"""


def first_sample_seconds(daemon_dir: Path, video: Path, target: int) -> float:
    """Seconds from launching `dsgen run` (from `daemon_dir`) to its first durable sample."""
    with tempfile.TemporaryDirectory(prefix="dsgen-first-") as tmp:
        d = Path(tmp)
        (d / "dsgen.toml").write_text(CONFIG.format(d=d, f=FORMAT, target=target, video=video))
        env = dict(os.environ, PYTHONPATH=str(daemon_dir))
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "run", "--config",
                                 str(d / "dsgen.toml")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while time.monotonic() - t0 < TIMEOUT_SECONDS:
                if proc.poll() is not None:
                    raise SystemExit(f"dsgen ended ({proc.returncode}) before a sample")
                db_path = d / "state" / "dsgen.sqlite3"
                if db_path.exists():
                    try:
                        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                        n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
                        db.close()
                        if n:
                            return time.monotonic() - t0
                    except sqlite3.Error:
                        pass  # not created yet
                time.sleep(POLL_SECONDS)
            raise SystemExit("no sample within the time limit")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    """Measure this checkout (and the baseline) and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--target", type=int, default=40)
    ap.add_argument("--baseline-rev")
    args = ap.parse_args()
    rows = []
    worktree = None
    try:
        if args.baseline_rev:
            worktree = Path(tempfile.mkdtemp(prefix="dsgen-base-"))
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f",
                            str(worktree), args.baseline_rev], check=True,
                           capture_output=True)
            rows.append((args.baseline_rev, first_sample_seconds(
                worktree / "daemon", args.video.resolve(), args.target)))
        rows.append(("this checkout", first_sample_seconds(
            ROOT / "daemon", args.video.resolve(), args.target)))
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True)
            shutil.rmtree(worktree, ignore_errors=True)
    print(f"video: {args.video.name}, target {args.target}, one {FORMAT}×{FORMAT} format\n")
    print("| dsgen | first sample s |\n|---|---:|")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} |")


if __name__ == "__main__":
    main()
