"""Small helpers shared by the tests that run real processes: ports, promtool, the state DB."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_promtool() -> str:
    """promtool from PATH or .ci/bin (made by .ci/install-tools); skip locally, fail in CI."""
    found = shutil.which("promtool") or shutil.which("promtool", path=str(ROOT / ".ci/bin"))
    if found:
        return found
    why = "promtool not found on PATH or in .ci/bin: run .ci/install-tools"
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so the check must run)")
    pytest.skip(why)


def samples_in(state_dir: Path, video: str | None = None) -> int:
    """Durable samples (of one video, or all) read from a running dsgen's state, read-only."""
    try:
        db = sqlite3.connect(f"file:{state_dir / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        if video is None:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        return int(db.execute("SELECT COUNT(*) FROM samples s JOIN videos v ON v.id=s.video_id"
                              " WHERE v.name=?", (video,)).fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def wait_for_samples(proc: subprocess.Popen[str], state_dir: Path, n: int,
                     timeout: float = 120.0) -> None:
    """Poll the state until it holds `n` samples or the process ends; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and samples_in(state_dir) < n:
        assert time.monotonic() < deadline, f"fewer than {n} samples after {timeout} s"
        time.sleep(0.02)


def mount_tmpfs(where: Path, options: str) -> None:
    """Mount a real tmpfs (`-o options`, e.g. "size=64m") at `where` (root only): skip
    locally, fail in CI."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode == 0:
        return
    why = f"cannot mount a tmpfs: {done.stderr.strip() or 'not permitted'} (needs root)"
    if os.environ.get("CI"):
        pytest.fail(why)
    print(f"SKIP: {why}")
    pytest.skip(why)
