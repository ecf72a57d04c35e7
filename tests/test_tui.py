"""The dashboard drawn from real runs: exact numbers from the state, at 80 and 100 columns."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from rich.cells import cell_len
from rich.console import Console

from dsgen.config import Config, load_config
from dsgen.engine import Engine
from dsgen.metrics import Metrics
from dsgen.monitor import HttpReader
from dsgen.report import Reporter
from dsgen.snapshot import (
    CategoryView,
    Checkpoints,
    Disk,
    Event,
    LocalReader,
    LocalSource,
    Performance,
    Snapshot,
    VideoView,
    from_http,
    from_local,
    to_json,
)
from dsgen.state import State
from dsgen.synth import SynthSpec
from dsgen.tui import LiveDashboard, _performance, plain_lines, render

VideoFixture = tuple[Path, SynthSpec]

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 5
segment_slots = 4
status_seconds = 0.5

[formats.tiny]
width = 96
height = 96
scale = 3

[categories.alpha]
target = {alpha}
formats = {{ tiny = 1.0 }}

[categories.beta]
target = {beta}
formats = {{ tiny = 1.0 }}

[[videos]]
name = "cuts"
path = "{cuts}"
categories = ["alpha", "beta"]

[[videos]]
name = "letterboxed"
path = "{letterboxed}"
categories = ["alpha"]

[[videos]]
name = "lost"
path = "{missing}"
categories = ["beta"]
"""
# Beta's target is far beyond what its one short video holds: the run ends short (exit 1)
# with a partial category whose exact count only the state knows.
ALPHA, BETA = 12, 400


def write_config(d: Path, videos: dict[str, Path], alpha: int = ALPHA, beta: int = BETA) -> Path:
    """A config over two real videos and one missing file."""
    d.mkdir(parents=True, exist_ok=True)
    p = d / "dsgen.toml"
    p.write_text(CONFIG.format(alpha=alpha, beta=beta, **{k: str(v) for k, v in videos.items()}))
    return p


@pytest.fixture(scope="module")
def videos(h264_cuts: VideoFixture, letterboxed: VideoFixture, bad_files: dict[str, Path]
           ) -> dict[str, Path]:
    """Two real videos and a path that does not exist."""
    return {"cuts": h264_cuts[0], "letterboxed": letterboxed[0], "missing": bad_files["missing"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, videos: dict[str, Path]
             ) -> tuple[Config, dict[str, tuple[int, int]]]:
    """A finished run (alpha complete, beta short) and the state's (samples, bytes)."""
    cfg = load_config(write_config(tmp_path_factory.mktemp("tui"), videos))
    assert Engine(cfg, Reporter(quiet=True)).run() == 1
    st = State(cfg.state_dir, readonly=True)
    totals = st.category_totals()
    st.close()
    assert totals["alpha"][0] == ALPHA and 0 < totals["beta"][0] < BETA
    return cfg, totals


def frame(snap: Snapshot, live: bool = False, width: int = 100, height: int | None = None
          ) -> str:
    """The frame as plain text."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(snap, live=live, height=height))
    return console.export_text()


def test_monitor_frame_of_a_real_run_shows_the_state_exactly(
        finished: tuple[Config, dict[str, tuple[int, int]]]) -> None:
    """Every section, and the numbers equal to the state's: images, targets, %, GB, videos."""
    cfg, totals = finished
    snap = from_local(cfg)
    text = frame(snap)
    for title in ("DSGEN MONITOR", "Status: FINISHED", "📊 OVERALL PROGRESS", "🎬 CURRENT VIDEO",
                  "📦 CATEGORY PROGRESS", "💾 DISK USAGE", "⚙ PERFORMANCE",
                  "🔖 CHECKPOINT SUMMARY", "📣 EVENTS", "⌨ CONTROLS",
                  "[q] Quit monitor only"):
        assert title in text, title
    (na, ba), (nb, bb) = totals["alpha"], totals["beta"]
    assert f"│ ALPHA    │    2/2 │ {na:>6,} │ {ALPHA:>6,} │ ██████████ 100.0% │ " \
           f"{ba / 1e9:>7.2f} │" in text
    beta_pct = f"{nb / BETA * 100:.1f}%"
    assert f"│ BETA     │    1/1 │ {nb:>6,} │ {BETA:>6,} │ " in text
    assert f" {beta_pct:>6} │" in text
    total_pct = f"{(na + nb) / (ALPHA + BETA) * 100:.1f}%"
    assert f"│ TOTAL    │        │ {na + nb:>6,} │ {ALPHA + BETA:>6,} │" in text
    assert f"{total_pct:>6} │" in text
    assert f"├─ ALPHA: {ba / 1e6:.1f} MB" in text and f"├─ BETA: {bb / 1e6:.1f} MB" in text
    assert f"├─ Total: {(ba + bb) / 1e6:.1f} MB" in text
    # Three configured videos: two extracted, one missing (failed, with the reason).
    assert "├─ Total Videos: 3" in text and "├─ Completed: 3 (100.0%)" in text
    assert "├─ Failed: 1" in text and "lost: missing — file not found" in text
    assert "Video file not found" in text  # the warning, from the status file's events
    assert f"Status File: {cfg.status_path}" in text
    assert snap.performance.samples_this_run == na + nb
    total, _, free = shutil.disk_usage(cfg.output_root)
    assert snap.disk.total_bytes == total and abs((snap.disk.free_bytes or 0) - free) < 1e8
    assert snap.disk.used_bytes == ba + bb


def test_status_json_and_plain_lines_carry_the_same_numbers(
        finished: tuple[Config, dict[str, tuple[int, int]]]) -> None:
    """`to_json` (schema dsgen.status/1) and the compact lines agree with the state."""
    cfg, totals = finished
    snap = from_local(cfg)
    doc = json.loads(json.dumps(to_json(snap)))
    assert doc["schema"] == "dsgen.status/1" and doc["status"] == "FINISHED"
    assert {c["name"]: (c["images"], c["bytes"]) for c in doc["categories"]} == totals
    assert doc["images"] == sum(n for n, _ in totals.values())
    assert doc["checkpoints"]["failures"] == [
        {"name": "lost", "status": "missing", "reason": "file not found"}]
    lines = plain_lines(snap)
    assert lines[0].startswith("dsgen FINISHED — videos 3/3 done")
    assert f"  ALPHA: {ALPHA} / {ALPHA} (100.0%) {totals['alpha'][1] / 1e6:.1f} MB" in lines
    nb = totals["beta"][0]
    assert f"  BETA: {nb} / {BETA} ({nb / BETA:.1%}) {totals['beta'][1] / 1e6:.1f} MB" in lines
    # Without a config: the output root is found through the state's identity.
    bare = from_local(LocalSource.from_dirs(cfg.state_dir))
    assert [(c.name, c.images, c.target) for c in bare.categories] == [
        (c.name, c.images, c.target) for c in snap.categories]


def _status_copy(cfg: Config, tmp: Path, **changes: object) -> LocalReader:
    """A reader of a copy of the run's status file with some fields changed."""
    doc = json.loads(cfg.status_path.read_text())
    live = doc["dsgen"]
    for key, value in changes.items():
        if key in ("status", "last_update", "started_at"):
            doc[key] = value
            if key != "status":  # dsgen's own block carries the same time as Unix seconds
                live["started" if key == "started_at" else key] = (
                    datetime.fromisoformat(str(value)).timestamp())
        else:
            live[key] = value
    path = tmp / "status.json"
    path.write_text(json.dumps(doc))
    src = replace(LocalSource.from_config(cfg), status_path=path)
    return LocalReader(src)


def _iso(ts: float) -> str:
    from dsgen.status import local_iso_time

    return local_iso_time(ts)


def test_status_rules_finished_paused_idle_and_stopped(
        finished: tuple[Config, dict[str, tuple[int, int]]], tmp_path: Path) -> None:
    """A dead pid or a stale file means STOPPED (a crashed run), whatever the file says."""
    cfg, _ = finished
    now = time.time()
    dead = subprocess.Popen(["true"])
    dead.wait()
    # The engine writes started_at after its process started.
    started = psutil.Process().create_time() + 1
    mine = {"pid": os.getpid(), "started_at": _iso(started), "last_update": _iso(now)}
    cases = [
        ({"status": "finished"}, "FINISHED"),
        ({"status": "interrupted"}, "STOPPED"),
        ({**mine, "status": "running", "state": "running"}, "RUNNING"),
        ({**mine, "status": "running", "state": "paused", "paused_reason": "disk full"},
         "PAUSED"),
        ({**mine, "status": "idle", "state": "idle"}, "IDLE"),
        ({**mine, "status": "running", "state": "running", "pid": dead.pid}, "STOPPED"),
        ({**mine, "status": "running", "state": "running",
          "last_update": _iso(now - 3 * cfg.status_seconds - 11)}, "STOPPED"),
    ]
    for changes, expected in cases:
        reader = _status_copy(cfg, tmp_path, **changes)
        snap = reader.read()
        reader.close()
        assert snap.status == expected, (changes, snap.reason)
    reader = _status_copy(cfg, tmp_path, **cases[5][0])
    assert f"process {dead.pid} is gone" in (reader.read().reason or "")
    reader.close()
    text = frame(_status_copy(cfg, tmp_path, **cases[6][0]).read())
    assert "Status: STOPPED — no status update for" in text


def hand_built(rate: float = 0.943) -> Snapshot:
    """A snapshot like the predecessor's screenshot (116 videos, 3 categories)."""
    cats = (CategoryView("general", 18_456, 80_000, 28_200_000_000, 28, 68),
            CategoryView("space", 8_893, 55_000, 38_800_000_000, 12, 35),
            CategoryView("toon", 2_102, 30_000, 3_100_000_000, 5, 18))
    cur = tuple(VideoView(42 + i, f"Planet Earth 2 - S01E0{4 + i}",
                          f"/mnt/data/video/SerieUHD/Planet Earth 2/S01E0{4 + i} - a very long "
                          "episode title that will not fit.mkv", 612, 1000, 1847, 3000, rate,
                          "running") for i in range(2))
    now = time.time()
    return Snapshot("local", "/mnt/data/training/dataset/.generator_status.json", "RUNNING",
                    None, now, mode="run", pid=1, started_at=now - 117_135,
                    last_update=now - 2, stale_after_seconds=25, total_videos=116,
                    completed_videos=42, current_index=42, workers=12, workers_busy=12,
                    eta_seconds=224_323, categories=cats, current=cur,
                    checkpoints=Checkpoints(116, 42, 2, 72, 0),
                    performance=Performance(8.2, rate, 0.121, 1.4, 900, 168.4, 12,
                                            8_400_000_000, 32_000_000_000, 125e6, 45e6, 13),
                    disk=Disk(70_100_000_000, 45_200_000_000, 500 * 10**9, 350 * 10**9),
                    events=(Event(now, "warning", "⚠️  Low disk space: Available: 45.2 GB; "
                                                  "Estimated needed: 350 GB remaining"),))


@pytest.mark.parametrize("live", [True, False])
def test_80_columns_fit_and_a_short_terminal_keeps_the_essentials(live: bool) -> None:
    """No line wider than 80 cells; at 24 rows the header, table and controls stay."""
    snap = hand_built()
    text = frame(snap, live=live, width=80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "│ GENERAL  │  28/68 │ 18,456 │  80,000 │ ██░░░░░░░░  23.1% │   28.20 │" in text
    assert "│ TOTAL    │        │ 29,451 │ 165,000 │             17.8% │   70.10 │" in text
    assert "└─ Free: 45.20 GB of 500.00 GB (still needed ≈ 350.00 GB)" in text
    assert "Path: …/S01E04 - a very long episode title that will not fit.mkv" in text
    assert ("DSGEN — MULTI-CATEGORY DATASET GENERATOR" if live else "DSGEN MONITOR") in text
    assert ("[p] Pause / resume" in text) == live
    short = frame(snap, live=live, width=80, height=24)
    assert len(short.splitlines()) <= 24
    for must in ("Status: RUNNING", "📦 CATEGORY PROGRESS", "TOTAL", "[q] Quit"):
        assert must in short, must
    wide = frame(snap, live=live, width=120, height=50)
    assert len(wide.splitlines()) <= 50 and "⚙ PERFORMANCE" in wide


def test_validation_shows_apart_and_still_fits_80_columns() -> None:
    """A category with a validation split gets a `└ val` row of its own (images, target,
    progress, size) in the table and a `validation N / M` part in the plain lines; the
    frame still fits 80 columns; the disk total counts both splits."""
    snap = hand_built()
    cats = (replace(snap.categories[0], val_images=512, val_target=800,
                    val_bytes=1_200_000_000), *snap.categories[1:])
    snap = replace(snap, categories=cats)
    text = frame(snap, live=True, width=80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "│  └ val   │        │    512 │     800 │ ██████░░░░  64.0% │    1.20 │" in text
    assert "│ TOTAL    │        │ 29,451 │ 165,000 │             17.8% │   71.30 │" in text
    assert text.count("└ val") == 1
    assert any("GENERAL: 18,456 / 80,000" in line and "validation 512 / 800" in line
               for line in plain_lines(snap))


def test_success_rate_colours_follow_the_thresholds() -> None:
    """≥ 80 % green, 50–80 % yellow, < 50 % red."""
    for rate, colour in ((0.943, "green"), (0.62, "yellow"), (0.31, "red")):
        text = _performance(hand_built(rate))
        start = text.plain.index(f"{rate * 100:.1f}%")
        styles = {str(s.style) for s in text.spans if s.start <= start < s.end}
        assert colour in styles, (rate, styles)


def test_remote_snapshot_from_metrics_uses_deltas_between_scrapes() -> None:
    """/metrics parsed: samples/targets, videos by state, success rate and rate from deltas."""
    m = Metrics(process_metrics=True)
    port = m.start_http(0)
    try:
        m.declare({"alpha": ["tiny"], "beta": ["tiny"]})
        m.set_targets({"alpha": 100, "beta": 40})
        m.set_samples("alpha", 10, 10_000_000)
        m.set_videos({"done": 1, "in_progress": 2, "pending": 3, "failed": 1})
        m.set_workers(2, 4)
        m.set_disk(5 * 10**9, 100 * 10**9)
        m.attempt("ok", 8)
        m.attempt("scene_cut", 2)
        m.run_state("running")
        reader = HttpReader(f"http://127.0.0.1:{port}")
        first = reader.read()
        assert first.status == "RUNNING" and first.performance.success_rate == 0.8
        for _ in range(6):
            m.sample_written("beta", "tiny", 1_000_000)
        m.attempt("ok", 6)
        m.attempt("black", 6)
        time.sleep(0.2)
        once = from_http(f"http://127.0.0.1:{port}/metrics")  # one scrape: lifetime averages
        assert once.performance.success_rate == 14 / 22
        second = reader.read()
        assert [(c.name, c.images, c.target, c.bytes) for c in second.categories] == [
            ("alpha", 10, 100, 10_000_000), ("beta", 6, 40, 6_000_000)]
        assert second.performance.success_rate == 0.5  # 6 ok of 12 since the last scrape
        assert second.performance.patches_per_min and second.performance.patches_per_min > 0
        ck = second.checkpoints
        assert (ck.total, ck.done, ck.in_progress, ck.pending, ck.failed) == (7, 1, 2, 3, 1)
        assert (second.workers, second.workers_busy) == (4, 2)
        assert second.disk.free_bytes == 5 * 10**9
        m.paused(True)
        assert reader.read().status == "PAUSED"
        assert "Status: PAUSED" in frame(reader.read())
    finally:
        m.stop_http()
    gone = HttpReader(f"http://127.0.0.1:{port}").read()
    assert gone.status == "STOPPED" and "unreachable" in (gone.reason or "")


def test_live_dashboard_takes_engine_lines_and_prints_the_summary_after(
        tmp_path: Path, videos: dict[str, Path]) -> None:
    """In-process: frames drawn during the run, warnings in EVENTS, summary printed after."""
    cfg = load_config(write_config(tmp_path, videos, alpha=8, beta=4))
    out = io.StringIO()
    engine = Engine(cfg, Reporter(out=out))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, height=60)
    dash = LiveDashboard(engine.run_state, engine.ui, console, keyboard=False, interval=0.1)
    dash.start()
    threading.Timer(0.3, dash.key, ("p",)).start()
    threading.Timer(0.6, dash.key, ("p",)).start()
    try:
        code = engine.run()
    finally:
        dash.stop()
    assert code == 0
    assert dash.frames > 0 and engine.ui.sink is None
    drawn = screen.getvalue()
    assert "DSGEN — MULTI-CATEGORY DATASET GENERATOR" in drawn and "[p] Pause" in drawn
    texts = [e.text for e in dash.events]
    assert any("Video file not found" in t for t in texts)
    assert any("Paused" in t for t in texts) and any("Resumed" in t for t in texts)
    printed = out.getvalue()
    # Engine lines went to the dashboard, not the terminal; the warning and summary came after.
    assert "🚀 Initializing" not in printed
    assert "⚠️  Video file not found" in printed
    assert "✅ Dataset generation complete!" in printed and "Final Statistics:" in printed
    assert printed.index("Video file not found") < printed.index("Final Statistics:")


@pytest.mark.slow
def test_q_in_the_live_dashboard_stops_like_ctrl_c_and_the_rerun_completes(
        tmp_path: Path, videos: dict[str, Path]) -> None:
    """'q': exit 130 with progress kept; a second run reaches every target exactly."""
    cfg = load_config(write_config(tmp_path, videos, alpha=12, beta=6))
    engine = Engine(cfg, Reporter(out=io.StringIO()))
    dash = LiveDashboard(engine.run_state, engine.ui,
                         Console(file=io.StringIO(), force_terminal=True),
                         keyboard=False, interval=0.1)
    dash.start()

    def press_q_after_the_first_sample() -> None:
        deadline = time.monotonic() + 60
        while engine.run_state.counters.samples == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        dash.key("q")

    threading.Thread(target=press_q_after_the_first_sample, daemon=True).start()
    try:
        code = engine.run()
    finally:
        dash.stop()
    assert code == 130
    assert "Safe to resume later with" in engine.ui.out.getvalue()  # type: ignore[attr-defined]
    assert json.loads(cfg.status_path.read_text())["status"] == "interrupted"
    assert from_local(cfg).status == "STOPPED"
    assert Engine(cfg, Reporter(quiet=True)).run() == 0
    st = State(cfg.state_dir, readonly=True)
    assert {c: n for c, (n, _) in st.category_totals().items()} == {"alpha": 12, "beta": 6}
    st.close()
