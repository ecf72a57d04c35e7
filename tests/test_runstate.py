"""The loop's one run-state: helpers hold it, never the engine; one video state everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dsgen.config import load_config
from dsgen.engine import Engine
from dsgen.metrics import Metrics
from dsgen.model import PREDECESSOR_STATE, video_state
from dsgen.report import Reporter
from dsgen.runstate import RATE_WINDOW_SECONDS, Counters, RunState
from dsgen.snapshot import from_local
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
segment_slots = 3

[formats.tiny]
width = 96
height = 96

[categories.alpha]
target = 10
formats = {{ tiny = 1.0 }}

[[videos]]
name = "one"
path = "{one}"
categories = ["alpha"]

[[videos]]
name = "two"
path = "{two}"
categories = ["alpha"]

[[videos]]
name = "gone"
path = "{missing}"
categories = ["alpha"]
"""


def test_helpers_receive_the_run_state_and_never_the_engine(tmp_path: Path,
                                                            h264_cuts: VideoFixture) -> None:
    """No helper object of the loop holds a reference to the Engine (no back-pointer), not
    even through a bound method or a closure it was handed."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(CONFIG.format(one=h264_cuts[0], two=h264_cuts[0],
                                      missing=tmp_path / "nope.mkv"))
    engine = Engine(load_config(cfg_path), Reporter(quiet=True))
    helpers = [engine.progress, engine.disk, engine.state_guard, engine.library,
               engine.dispatch, engine.damage, engine.indexer, engine.results]
    for h in [*helpers, engine.headers]:
        held = list(vars(h).values())
        reached = held + [getattr(v, "__self__", None) for v in held] + [
            c.cell_contents for v in held for c in (getattr(v, "__closure__", None) or ())]
        assert not any(isinstance(v, Engine) for v in reached), type(h).__name__
    for h in helpers:
        assert any(v is engine.run_state for v in vars(h).values()), type(h).__name__
    assert isinstance(engine.run_state, RunState)


def test_one_video_state_in_status_file_snapshot_and_metrics(
        tmp_path: Path, h264_cuts: VideoFixture, hevc10_hdr: VideoFixture) -> None:
    """After a real run, the status file, `dsgen status`' snapshot and the metrics give
    every video the same state, and it is `model.video_state`'s."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(CONFIG.format(one=h264_cuts[0], two=hevc10_hdr[0],
                                      missing=tmp_path / "nope.mkv"))
    cfg = load_config(cfg_path)
    metrics = Metrics(process_metrics=False)
    engine = Engine(cfg, Reporter(quiet=True), metrics=metrics)
    assert engine.run() == 0
    run = engine.run_state
    states = {run.videos[v].name: run.state_of(v) for v in run.videos}
    assert states == {"one": "done", "two": "done", "gone": "missing"}
    for vid, v in run.videos.items():
        c = run.counts.get(vid)
        owed = c.owed_total(["alpha"]) if c else 0
        assert run.state_of(vid) == video_state(v.status, c.slots if c else 0,
                                                c.pending if c else 0, owed)
    doc = json.loads(cfg.status_path.read_text())
    from_file = {ck["name"]: ck["status"] for ck in doc["video_checkpoints"].values()}
    assert from_file == {n: PREDECESSOR_STATE[s] for n, s in states.items()}
    snap = from_local(cfg)
    ck = snap.checkpoints
    assert (ck.done, ck.failed, ck.in_progress, ck.pending) == (2, 1, 0, 0)
    assert [f.name for f in ck.failures] == ["gone"]
    text = metrics.render().decode()
    assert 'dsgen_videos{state="done"} 2.0' in text
    assert 'dsgen_videos{state="missing"} 1.0' in text


def test_status_reads_the_state_without_loading_a_decoder(tmp_path: Path) -> None:
    """`dsgen status` imports neither PyAV nor Pillow nor scikit-image."""
    code = ("import sys\nfrom dsgen.cli import main\n"
            f"main(['status', '--state-dir', {str(tmp_path)!r}])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'PIL', "
            "'skimage'))\nprint('HEAVY', heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_the_trailing_rate_counts_exactly_the_samples_of_its_window() -> None:
    """The running total behind samples/min equals a recount of the events inside the
    trailing window, at every moment, as events arrive and age out."""
    import random

    rng = random.Random(3)
    k = Counters(started=0.0)
    k.work_started = 0.0
    events: list[tuple[float, int]] = []
    now = last = 0.0
    for _ in range(2000):
        now += rng.uniform(0.0, 5.0)
        n = rng.choice((0, 1, 1, 2, 7))
        k.add_samples(n, now)
        events.append((now, n))
        probe = last = max(last, now + rng.uniform(0.0, 30.0))  # time only moves forward
        want = sum(c for t, c in events if probe - t <= RATE_WINDOW_SECONDS)
        span = min(RATE_WINDOW_SECONDS, probe)
        assert abs(k.rate_per_min(probe) - want / span * 60) < 1e-9
    assert k.samples == sum(c for _, c in events)

