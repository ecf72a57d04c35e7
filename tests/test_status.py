"""The status file as the predecessor's monitor reads it, after a real (short) dsgen run.

The predecessor's `dataset_generator_v2/monitor_generator.py` parses `started_at` and
`last_update` with `datetime.fromisoformat`, subtracts them from the naive `datetime.now()`,
and formats every number of `progress`, `category_stats` and `video_checkpoints`. The tests
below do the same operations on the same fields (written here, not copied), in a time zone
that is not UTC, so both an aware time (TypeError) and a naive UTC time (elapsed off by
hours) fail them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dsgen.config import load_config
from dsgen.state import State
from dsgen.synth import SynthSpec

# +05:30 all year (no DST): a naive UTC time would be off by 5.5 h, an aware one would raise.
ZONE = "Asia/Kolkata"
# The predecessor's monitor hard-codes these three category names.
MONITOR_CATEGORIES = ("general", "space", "toon")
TARGETS = {"general": 4, "space": 2, "toon": 2}

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 1
status_seconds = 0.5

[metrics]
enabled = false

[formats.tiny]
width = 96
height = 96
scale = 3

[categories.general]
target = {general}
formats = {{ tiny = 1.0 }}

[categories.space]
target = {space}
formats = {{ tiny = 1.0 }}

[categories.toon]
target = {toon}
formats = {{ tiny = 1.0 }}

[[videos]]
name = "clip"
path = "{video}"
categories = ["general", "space", "toon"]
"""


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process (and the runs it starts) in ZONE; restored afterwards."""
    monkeypatch.setenv("TZ", ZONE)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def finished_run(tmp_path: Path, h264_cuts: tuple[Path, SynthSpec], local_zone: None
                 ) -> tuple[Path, dict[str, Any], float, float]:
    """A real `dsgen run` to completion: (config, its status file, wall time before, after)."""
    cfg = tmp_path / "dsgen.toml"
    cfg.write_text(CONFIG.format(video=h264_cuts[0], **TARGETS))
    before = time.time()
    r = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config", str(cfg),
                        "--no-tui"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
    after = time.time()
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / ".generator_status.json").read_text())
    return cfg, doc, before, after


def monitor_view(status: dict[str, Any], status_file: str) -> str:
    """The predecessor monitor's screen, computed the way it computes it (rich left out)."""
    started = datetime.fromisoformat(status["started_at"])
    last_update = datetime.fromisoformat(status["last_update"])
    elapsed = datetime.now() - started
    prog = status["progress"]
    total, done, idx = prog["total_videos"], prog["completed_videos"], prog["current_video_index"]
    eta: str = "Calculating..."
    if done > 0:
        eta = str(timedelta(seconds=int(elapsed.total_seconds() / done * (total - done))))
    lines = [
        f"Status: {status['status'].upper()}",
        f"Total Videos: {total}",
        f"Completed: {done} ({done / total * 100 if total > 0 else 0:.1f}%)",
        f"Remaining: {total - done} videos",
        f"Elapsed: {str(elapsed).split('.')[0]}",
        f"ETA: {eta}",
        f"Workers: {status['workers']}",
        f"Last Update: {last_update.strftime('%Y-%m-%d %H:%M:%S')}",
        f"Path: {prog['current_video_path'][-70:] if prog['current_video_path'] else 'N/A'}",
    ]
    checkpoint = status["video_checkpoints"].get(str(idx))
    if checkpoint and checkpoint.get("status") == "in_progress":
        d, t = checkpoint.get("extractions_done", 0), checkpoint.get("extractions_target", 1)
        lines.append(f"Extractions: {d} / {t} ({d / t * 100 if t > 0 else 0:.1f}%)")
        lines.append(f"Last Frame: {checkpoint.get('last_frame_idx', 0)}")
    stats = status["category_stats"]
    for name in MONITOR_CATEGORIES:
        s = stats[name]
        pct = s["images_created"] / s["target"] * 100 if s["target"] > 0 else 0
        bar = "█" * int(pct / 5) + "░" * (20 - int(pct / 5))
        lines.append(f"{name.upper()} {s['videos_processed']} {s['images_created']:,} "
                     f"{s['target']:,} {bar} {pct:.1f}% {s['disk_usage_gb']:.2f}")
    images = sum(s["images_created"] for s in stats.values())
    target = sum(s["target"] for s in stats.values())
    disk = sum(s["disk_usage_gb"] for s in stats.values())
    lines.append(f"TOTAL {images:,} {target:,} "
                 f"{images / target * 100 if target > 0 else 0:.1f}% {disk:.2f}")
    cps = status["video_checkpoints"]
    completed = sum(1 for c in cps.values() if (isinstance(c, str) and c == "completed")
                    or (isinstance(c, dict) and c.get("status") == "completed"))
    running = sum(1 for c in cps.values() if isinstance(c, dict)
                  and c.get("status") == "in_progress")
    lines += [f"Total Checkpoints: {len(cps)}", f"Completed: {completed}",
              f"In Progress: {running}", f"Status File: {status_file[-50:]}"]
    for cat, s in stats.items():  # the monitor's plain-text fallback
        lines.append(f"  {cat}: {s['images_created']}/{s['target']} images, "
                     f"{s['disk_usage_gb']:.2f} GB")
    return "\n".join(lines)


@pytest.mark.slow
def test_predecessor_monitor_renders_a_real_status_file(
        finished_run: tuple[Path, dict[str, Any], float, float]) -> None:
    """Its times are naive local ISO strings of the run's real wall clock; the monitor's
    arithmetic and formatting work on every field, and its numbers are the state's."""
    cfg_path, doc, before, after = finished_run
    started = datetime.fromisoformat(doc["started_at"])
    last = datetime.fromisoformat(doc["last_update"])
    assert started.tzinfo is None and last.tzinfo is None
    # Naive local time in this zone: the same instants as the wall clock around the run.
    assert before - 1 <= started.timestamp() <= last.timestamp() <= after + 1
    assert timedelta(0) <= datetime.now() - started <= timedelta(seconds=after - before + 5)

    view = monitor_view(doc, str(cfg_path.parent / "out" / ".generator_status.json"))
    cfg = load_config(cfg_path)
    st = State(cfg.state_dir, readonly=True)
    try:
        totals = st.category_totals()
    finally:
        st.close()
    for name, target in TARGETS.items():
        assert totals[name][0] == target
        assert f"{name.upper()} 1 {target:,} {target:,} {'█' * 20} 100.0%" in view
    assert f"TOTAL {sum(TARGETS.values()):,} {sum(TARGETS.values()):,} 100.0%" in view
    assert "Status: FINISHED" in view and "Completed: 1 (100.0%)" in view
    assert "Total Checkpoints: 1" in view and "\nCompleted: 1\n" in view
    assert isinstance(doc["workers"], int) and doc["status"] == "finished"


@pytest.mark.slow
def test_dsgen_readers_use_exact_times_of_their_own_block(
        finished_run: tuple[Path, dict[str, Any], float, float]) -> None:
    """dsgen's block holds the same instants as Unix seconds; `dsgen status --json` reports
    them, so its own readers never depend on the local clock's offset."""
    cfg_path, doc, before, after = finished_run
    block = doc["dsgen"]
    assert abs(block["started"] - datetime.fromisoformat(doc["started_at"]).timestamp()) < 1e-3
    assert abs(block["last_update"]
               - datetime.fromisoformat(doc["last_update"]).timestamp()) < 1e-3
    r = subprocess.run([sys.executable, "-m", "dsgen.cli", "status", "--config", str(cfg_path),
                        "--json"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TZ="UTC"))  # another zone than the writer's
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["status"] == "FINISHED"
    assert snap["started_at"] == pytest.approx(block["started"])
    assert snap["last_update"] == pytest.approx(block["last_update"])
    assert 0 <= snap["elapsed_seconds"] <= after - before + 1
