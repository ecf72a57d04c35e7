"""Lazy probing: a film's first samples never wait for a scan of the whole file.

A video's probe at its turn reads the header, the first frame and a few keyframes; its frame
index (every frame's pts) is scanned chunk by chunk in the io lane as work proceeds. Here the
index scans of a long real encoded video are held back by a gate (a real file the scan waits
for), so the first samples provably come while its index is not complete; then the gate opens
and the run ends with the complete index — every chunk scanned and tiled, equal to a scan of
every packet (`probe_video`) — and every sample's frames found in it, consecutive.
Tasks carry no frame index: their size does not grow with the film.
"""

from __future__ import annotations

import io
import pickle
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dsgen.config import load_config
from dsgen.engine import Engine
from dsgen.executor import LocalExecutor
from dsgen.extract import index_task, run_task
from dsgen.manifest import manifest_records
from dsgen.probe import probe_video
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec, make_video
from test_index import PIECE, remux_repeated

GATE_SECONDS = 300.0  # a gated scan gives up waiting after this (the test failed anyway)

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 5
segment_slots = 3

[formats.tiny]
width = 96
height = 96
scale = 3

[categories.alpha]
target = 12
formats = {{ tiny = 1.0 }}

[categories.beta]
target = 4
formats = {{ tiny = 1.0 }}

[[videos]]
name = "long film"
path = "{long}"
categories = ["alpha"]

[[videos]]
name = "short clip"
path = "{short}"
categories = ["beta"]
"""


def gated_index(arg: tuple[str, Any]) -> Any:
    """An index scan that starts only once the gate file exists."""
    gate, req = arg
    deadline = time.monotonic() + GATE_SECONDS
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return index_task(req)


class GatedExecutor(LocalExecutor):
    """A real local pool whose index scans wait for a gate; records each task's size."""

    gate: ClassVar[str] = ""
    task_bytes: ClassVar[dict[str, list[int]]] = {}

    def submit(self, fn: Any, arg: Any, lane: str = "cpu") -> int:
        """Hold index scans behind the gate; measure tasks as the pool pickles them."""
        if fn is index_task:
            return super().submit(gated_index, (self.gate, arg), lane)
        if fn is run_task:
            self.task_bytes.setdefault(arg.name, []).append(len(pickle.dumps(arg)))
        return super().submit(fn, arg, lane)


@pytest.fixture(scope="module")
def long_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-minute H.264 film: a real 10 s encode with cuts, remuxed 120 times (28,800
    frames, 20 chunks of index)."""
    d = tmp_path_factory.mktemp("lazy")
    piece = make_video(d / "piece.mkv", PIECE)
    return remux_repeated(piece, d / "film.mkv", 120)


def samples_and_index(state: Path) -> tuple[int, bool, int]:
    """(samples, whether the long film's index is stored complete, chunks stored)."""
    try:
        db = sqlite3.connect(f"file:{state / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return 0, False, 0  # not created yet
    try:
        n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        row = db.execute("SELECT arrays IS NOT NULL FROM videos WHERE name='long film'"
                         ).fetchone()
        chunks = db.execute("SELECT COUNT(*) FROM index_chunks").fetchone()[0]
        return int(n), bool(row and row[0]), int(chunks)
    except sqlite3.OperationalError:
        return 0, False, 0  # not created yet
    finally:
        db.close()


def test_first_samples_come_before_the_index_is_complete(
        tmp_path: Path, long_film: Path, h264_cuts: tuple[Path, SynthSpec]) -> None:
    """With every index scan held back, samples of the long film are written and durable
    while its index has not a single chunk; once the scans may run, the run finishes with the
    complete index (equal to a full packet scan), frame numbers for every sample, and tasks
    that weigh the same for a 28,800-frame film as for a 96-frame clip."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(CONFIG.format(long=long_film, short=h264_cuts[0]))
    cfg = load_config(cfg_path)
    gate = tmp_path / "gate"

    class Gated(GatedExecutor):
        pass
    Gated.gate = str(gate)
    Gated.task_bytes = {}
    out = io.StringIO()
    engine = Engine(cfg, Reporter(out=out), executor_factory=Gated)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(engine.run()))
    runner.start()
    try:
        deadline = time.monotonic() + 240
        while samples_and_index(cfg.state_dir)[0] < 6:
            assert runner.is_alive(), out.getvalue()
            assert time.monotonic() < deadline, "no samples while the index was held back"
            time.sleep(0.2)
        n, complete, chunks = samples_and_index(cfg.state_dir)
        assert n >= 6 and not complete and chunks == 0
        st = State(cfg.state_dir, readonly=True)
        films = [r for r in manifest_records(cfg, st) if r["video"] == "long film"]
        st.close()
        assert films, "the long film gave no sample before its index"
        assert all(r["frame_indices"] is None and not r["index_complete"] for r in films)
    finally:
        gate.touch()
        runner.join(timeout=600)
    assert codes == [0], out.getvalue()
    n, complete, _ = samples_and_index(cfg.state_dir)
    assert n == 16 and complete
    st = State(cfg.state_dir, readonly=True)
    try:
        film = next(v for v in st.videos() if v.name == "long film")
        full = probe_video(long_film, 7)
        assert film.probe is not None and film.probe.index_complete
        assert film.probe.frame_pts.tolist() == full.frame_pts.tolist()
        assert film.probe.key_pts.tolist() == full.key_pts.tolist()
        for rec in manifest_records(cfg, st):
            first = rec["frame_indices"][0]
            assert rec["frame_indices"] == list(range(first, first + 7))
            if rec["video"] == "long film":
                assert full.frame_pts[first:first + 7].tolist() == rec["frame_pts"]
    finally:
        st.close()
    sizes = Gated.task_bytes
    assert set(sizes) == {"long film", "short clip"}
    assert max(max(v) for v in sizes.values()) < 40_000
    assert max(sizes["long film"]) < 2 * max(sizes["short clip"])
    # the parent keeps no frame index of any video
    assert all(not p.frame_pts.shape[0] for p, _ in engine.dispatch._probes.values())
