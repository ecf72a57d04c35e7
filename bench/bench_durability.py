"""What durability costs: fsync per sample file, the state journal, quick_check at start.

Usage: python bench/bench_durability.py [--dir /path/on/the/output/disk] [--slots 200]

1. A slot's three files (a 540×540 GT ~ 600 KB and two LR stacks, random bytes so nothing
   compresses) written as `writer.write_sample` does — temp name + rename — with no fsync
   (what dsgen does), fsync of each file before its rename, and one syncfs(2) per slot.
2. `State.record_slot` of a realistic slot with and without the journal.
3. `PRAGMA quick_check` (run at every start) on a state with N samples and 1.4 MB probes.

Prints ms per slot (or per check); compare ratios within one run (the machine is noisy).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from dsgen.model import Attempt, Sample, SlotResult
from dsgen.state import State

FILE_SIZES = (600_000, 120_000, 170_000)  # GT, LR_5frames, LR_7frames of small_540


DATA = [os.urandom(size) for size in FILE_SIZES]  # incompressible, made once


def write_slot(root: Path, n: int, mode: str, libc: ctypes.CDLL | None) -> None:
    """One slot's files, temp name + rename, with the chosen flush."""
    tmp = root / ".tmp"
    for k, data in enumerate(DATA):
        part = tmp / f"{os.getpid()}-{n}-{k}.png"
        final = root / f"d{k}" / f"patch_x_idx{n:06d}.png"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        if mode == "fsync":
            os.fsync(fd)
        os.close(fd)
        os.replace(part, final)
    if mode == "syncfs" and libc is not None:
        fd = os.open(root, os.O_RDONLY)
        libc.syncfs(fd)
        os.close(fd)


def bench_files(base: Path, slots: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    print("| flush | ms per slot (3 files, 0.9 MB) |\n|---|---|")
    for mode in ("none", "fsync", "syncfs"):
        with tempfile.TemporaryDirectory(dir=base) as d:
            root = Path(d)
            (root / ".tmp").mkdir()
            for k in range(len(FILE_SIZES)):
                (root / f"d{k}").mkdir()
            os.sync()
            t0 = time.perf_counter()
            for n in range(slots):
                write_slot(root, n, mode, libc)
            ms = (time.perf_counter() - t0) / slots * 1000
            os.sync()  # what "none" left dirty must not slow the next mode down
        print(f"| {mode} | {ms:.2f} |")


def slot(n: int) -> SlotResult:
    files = tuple((f"General/Patches/{d}/x/patch_x_idx{n:06d}.png", 300_000)
                  for d in ("GT", "LR_5frames", "LR_7frames"))
    s = Sample(n, "general", "small_540", files, n * 10, tuple(range(n, n + 7)),
               (10, 20, 540, 540), {"detail": 123.4, "std": 33.2})
    return SlotResult(n, [Attempt(n, 0, n * 10, "ok", 3.2, "")], [s], complete=True)


def bench_journal(base: Path, slots: int) -> None:
    print("\n| state | ms per recorded slot |\n|---|---|")
    for journal in (False, True):
        with tempfile.TemporaryDirectory(dir=base) as d:
            st = State(Path(d), journal=journal)
            st.upsert_video("x", "/x.mkv", "ready")
            t0 = time.perf_counter()
            for n in range(slots):
                st.record_slot(1, slot(n))
            ms = (time.perf_counter() - t0) / slots * 1000
            st.close()
        print(f"| {'with journal' if journal else 'without journal'} | {ms:.3f} |")


def bench_check(base: Path) -> None:
    print("\n| samples | videos (1.4 MB probe each) | DB MB | quick_check s |\n|---|---|---|---|")
    for samples, videos in ((10_000, 50), (100_000, 500)):
        with tempfile.TemporaryDirectory(dir=base) as d:
            st = State(Path(d), journal=False)
            blob = os.urandom(1_400_000)
            with st.tx() as db:
                db.executemany("INSERT INTO videos (name, path, status, updated, probe, arrays)"
                               " VALUES (?, ?, 'ready', 0, '{}', ?)",
                               [(f"v{i}", f"/v{i}", blob) for i in range(videos)])
            for n in range(samples):
                st.record_slot(1 + n % videos, slot(n))
            st.close()
            size = (Path(d) / "dsgen.sqlite3").stat().st_size / 1e6
            db2 = sqlite3.connect(Path(d) / "dsgen.sqlite3")
            t0 = time.perf_counter()
            db2.execute("PRAGMA quick_check").fetchall()
            secs = time.perf_counter() - t0
            db2.close()
        print(f"| {samples:,} | {videos} | {size:.0f} | {secs:.2f} |")


def main() -> None:
    """Print the tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=".", help="a folder on the disk to measure")
    ap.add_argument("--slots", type=int, default=200)
    a = ap.parse_args()
    base = Path(a.dir)
    bench_files(base, a.slots)
    bench_journal(base, a.slots * 5)
    bench_check(base)


if __name__ == "__main__":
    main()
