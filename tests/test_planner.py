"""dsgen.planner: the per-video note for formats larger than the picture, validation slots
drawn from the validation mix re-weighted among the formats that fit (the training mix's
re-weighting: tests/test_plan.py::test_place_round_formats_only_fitting), and phase 0 in two
steps: the first samples never wait for a large library's headers, and the plan and the
dataset do not depend on when the headers arrive (nor on a kill -9 between the steps)."""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from dsgen.config import Config, config_from_dict, load_config
from dsgen.engine import Engine
from dsgen.executor import LocalExecutor
from dsgen.extract import header_task, probe_task
from dsgen.model import VideoProbe
from dsgen.patches import geometry
from dsgen.plan import fitting_formats, place_round
from dsgen.planner import OPENING, PLAN_META, TWO_STEP_VIDEOS, format_notes, fresh_plan
from dsgen.probe import probe_video
from dsgen.report import Reporter
from dsgen.runstate import RunState
from dsgen.split import VAL, Region
from dsgen.state import State
from dsgen.synth import SynthSpec
from test_engine import dataset_files

VideoFixture = tuple[Path, SynthSpec]


def make_cfg() -> Config:
    """alpha: small 1, medium 2, huge 5 (huge never fits 640×360); beta: huge only."""
    doc: dict[str, Any] = {
        "output_root": "out", "state_dir": "state", "seed": 3,
        "formats": {"small": {"width": 96, "height": 96},
                    "medium": {"width": 240, "height": 135},
                    "huge": {"width": 1920, "height": 1080}},
        "categories": {
            "alpha": {"target": 10, "formats": {"small": 1.0, "medium": 2.0, "huge": 5.0},
                      "validation": {"count": 3, "formats": {"huge": 1.0, "medium": 1.0}}},
            "beta": {"target": 10, "formats": ["huge"]}},
        "videos": [{"name": "a", "path": "a.mkv", "categories": ["alpha", "beta"]}],
    }
    return config_from_dict(doc, Path("/nonexistent/dsgen.toml"))


@pytest.fixture(scope="module")
def probe(h264_cuts: VideoFixture) -> VideoProbe:
    """The real probe of the 640×360 H.264 fixture."""
    return probe_video(h264_cuts[0], 7)


def test_formats_larger_than_the_picture_get_one_note_per_split(probe: VideoProbe) -> None:
    """One line per category split that loses a format: what is skipped and the mix the
    draws now follow; a split with no fitting format gets none here (its own note says its
    share goes to other videos)."""
    cfg = make_cfg()
    notes = format_notes(cfg, geometry(probe, 1080), cfg.videos[0])
    assert notes == [
        "alpha: huge (1920×1080) larger than its 640×360 picture, skipped for this video; "
        "mix re-weighted: small 33%, medium 67%",
        "alpha validation: huge (1920×1080) larger than its 640×360 picture, skipped for "
        "this video; mix re-weighted: medium 100%"]


def test_validation_slots_draw_from_the_validation_mix_that_fits(probe: VideoProbe) -> None:
    """Validation slots ask only for validation formats that fit (here medium of huge +
    medium); training slots keep the training mix re-weighted 1:2."""
    cfg = make_cfg()
    geo = geometry(probe, 1080)
    assert [f.name for f, _ in fitting_formats(cfg, geo, "alpha", VAL)] == ["medium"]
    step = int(probe.frame_pts[1] - probe.frame_pts[0])
    pts = np.arange(24_000, dtype=np.int64) * step
    long = dataclasses.replace(probe, frame_pts=pts, key_pts=pts[::24].copy(),
                               end_pts=int(pts[-1]) + step, header_frames=24_000)
    val = place_round(cfg, long, "a", {"alpha": 300}, [], 0, 0, 0, Region(VAL, (1,)))
    assert {f for s in val for _, f in s.formats} == {"medium"}
    assert {s.split for s in val} == {VAL}
    train = place_round(cfg, long, "a", {"alpha": 900}, [], 0, 0, 0)
    fmts = Counter(f for s in train for _, f in s.formats)
    assert set(fmts) == {"small", "medium"} and 0.25 < fmts["small"] / 900 < 0.42


# ------------------------------------------------------------------ phase 0 in two steps
# A fresh plan opens with the first video of each category at once and splits the rest by
# duration once every header is read. Here header reads are held back by a gate (a real file
# the reads wait for), so the first samples provably come while most headers are unread;
# the dataset is the same bytes as a run whose headers all came at once, also after a kill -9
# between the two steps.

GATE_SECONDS = 300.0  # a gated read gives up waiting after this (the test failed anyway)
LIBRARY = 40  # videos (≥ planner.TWO_STEP_VIDEOS): hard links of one real encode
ALPHA, BETA = 48, 20  # targets

TWO_STEP_CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 11
segment_slots = 3

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
{videos}"""


OPENERS = ("v00.mkv", "v01.mkv")  # the first video of alpha and of beta


def behind_gate(arg: tuple[str, Any, Any]) -> Any:
    """`fn(req)` once the gate file exists (at once for the openers' header reads)."""
    gate, fn, req = arg
    opener = fn is header_task and any(p.endswith(OPENERS) for p in req.paths)
    deadline = time.monotonic() + GATE_SECONDS
    while not opener and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return fn(req)


class Gated(LocalExecutor):
    """A real local pool whose `held` work waits for the gate named in $DSGEN_TEST_GATE."""

    held: ClassVar[Any] = None

    def submit(self, fn: Any, arg: Any, lane: str = "cpu") -> int:
        """Hold the `held` work behind the gate."""
        if fn is type(self).held:
            return super().submit(behind_gate, (os.environ["DSGEN_TEST_GATE"], fn, arg), lane)
        return super().submit(fn, arg, lane)


class GatedHeaders(Gated):
    """Header reads of other videos than the openers wait for the gate."""

    held = header_task


class GatedProbes(Gated):
    """Probes wait for the gate."""

    held = probe_task


def start(engine: Engine) -> tuple[threading.Thread, list[int]]:
    """The engine's run in a thread, and where its exit code goes."""
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(engine.run()))
    runner.start()
    return runner, codes


def library_config(d: Path, film: Path) -> Path:
    """A config over LIBRARY names of `film` (alpha and beta in turn; the first with weight
    3, so its share of alpha is larger than its opening and the rest gives it more)."""
    links = d / "library"
    links.mkdir(parents=True, exist_ok=True)
    blocks = []
    for i in range(LIBRARY):
        p = links / f"v{i:02d}.mkv"
        if not p.exists():
            os.link(film, p)
        cats = '{ alpha = 3.0 }' if i == 0 else f'["{"alpha" if i % 2 == 0 else "beta"}"]'
        blocks.append(f'\n[[videos]]\nname = "v{i:02d}"\npath = "{p}"\ncategories = {cats}\n')
    cfg = d / "dsgen.toml"
    cfg.write_text(TWO_STEP_CONFIG.format(alpha=ALPHA, beta=BETA, videos="".join(blocks)))
    return cfg


def run_gated(cfg_path: str, gate: str) -> None:
    """A child process: run the config with gated header reads (killed by the test)."""
    os.environ["DSGEN_TEST_GATE"] = gate
    Engine(load_config(Path(cfg_path)), Reporter(quiet=True),
           executor_factory=GatedHeaders).run()


def progress_of(state: Path) -> tuple[int, int]:
    """(durable samples, videos whose header is not read yet)."""
    try:
        db = sqlite3.connect(f"file:{state / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return 0, 0
    try:
        n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        unread = db.execute("SELECT COUNT(*) FROM videos WHERE size IS NULL").fetchone()[0]
        return int(n), int(unread)
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        db.close()


def quotas_of(state: Path) -> dict[tuple[str, str], int]:
    """(video, category) → samples planned (every phase)."""
    db = sqlite3.connect(f"file:{state / 'dsgen.sqlite3'}?mode=ro", uri=True)
    try:
        return {(r[0], r[1]): int(r[2]) for r in db.execute(
            "SELECT v.name, q.category, SUM(q.amount) FROM quotas q JOIN videos v "
            "ON v.id = q.video_id GROUP BY v.name, q.category")}
    finally:
        db.close()


@pytest.fixture(scope="module")
def at_once(tmp_path_factory: pytest.TempPathFactory, h264_cuts: VideoFixture
            ) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
    """The dataset (file → sha256) and plan of a run whose headers are read without a gate."""
    cfg_path = library_config(tmp_path_factory.mktemp("at_once"), h264_cuts[0])
    cfg = load_config(cfg_path)
    out = io.StringIO()
    assert Engine(cfg, Reporter(out=out)).run() == 0, out.getvalue()
    return dataset_files(cfg.output_root), quotas_of(cfg.state_dir)


def wait_for_first_samples(state: Path, alive: Any, what: str) -> None:
    """Until a sample is durable; asserts that meanwhile headers stayed unread."""
    deadline = time.monotonic() + 240
    while progress_of(state)[0] < 1:
        assert alive(), what
        assert time.monotonic() < deadline, "no sample while the headers were held back"
        time.sleep(0.1)
    n, unread = progress_of(state)
    assert n >= 1 and unread == LIBRARY - 2, (n, unread)  # only the two openers are read


@pytest.mark.slow
def test_first_samples_do_not_wait_for_the_librarys_headers(
        tmp_path: Path, h264_cuts: VideoFixture,
        at_once: tuple[dict[str, str], dict[tuple[str, str], int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With every header read of the library held back, samples of the first video of each
    category are durable while the other headers are unread; once the reads may run, the
    run ends with the dataset and plan of a run that had every header at once."""
    cfg = load_config(library_config(tmp_path, h264_cuts[0]))
    gate = tmp_path / "gate"
    monkeypatch.setenv("DSGEN_TEST_GATE", str(gate))
    out = io.StringIO()
    engine = Engine(cfg, Reporter(out=out), executor_factory=GatedHeaders)
    runner, codes = start(engine)
    try:
        wait_for_first_samples(cfg.state_dir, runner.is_alive, out.getvalue())
        assert set(quotas_of(cfg.state_dir)) == {("v00", "alpha"), ("v01", "beta")}
    finally:
        gate.touch()
        runner.join(timeout=600)
    assert codes == [0], out.getvalue()
    files, plan = at_once
    assert quotas_of(cfg.state_dir) == plan
    assert dataset_files(cfg.output_root) == files
    assert sum(1 for f in files if "/GT/" in f) == ALPHA + BETA


def rest_planned(state: Path) -> bool:
    """Whether the state holds the rest of phase 0 (every header read, the step recorded)."""
    try:
        db = sqlite3.connect(f"file:{state / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return False
    try:
        pending = db.execute("SELECT COUNT(*) FROM meta WHERE key='phase0'").fetchone()[0]
        opened = db.execute("SELECT COUNT(*) FROM meta WHERE key='phase0_opening'").fetchone()[0]
        return bool(opened and not pending)
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


@pytest.mark.slow
def test_an_opening_round_is_the_same_when_the_rest_comes_first(
        tmp_path: Path, h264_cuts: VideoFixture,
        at_once: tuple[dict[str, str], dict[tuple[str, str], int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the first videos' probes held back until the rest of phase 0 is recorded, the
    opening videos plan their first round after the rest came: it is still planned from the
    opening alone, and the plan and the dataset are those of the other orders."""
    cfg = load_config(library_config(tmp_path, h264_cuts[0]))
    gate = tmp_path / "gate"
    monkeypatch.setenv("DSGEN_TEST_GATE", str(gate))
    out = io.StringIO()
    engine = Engine(cfg, Reporter(out=out), executor_factory=GatedProbes)
    runner, codes = start(engine)
    try:
        deadline = time.monotonic() + 240
        while not rest_planned(cfg.state_dir):
            assert runner.is_alive(), out.getvalue()
            assert time.monotonic() < deadline, "the rest of phase 0 was not planned"
            time.sleep(0.1)
        assert progress_of(cfg.state_dir) == (0, 0)  # no sample yet, every header read
    finally:
        gate.touch()
        runner.join(timeout=600)
    assert codes == [0], out.getvalue()
    files, plan = at_once
    assert quotas_of(cfg.state_dir) == plan
    assert dataset_files(cfg.output_root) == files


@pytest.mark.slow
def test_kill_9_between_the_two_steps_then_resume_gives_the_identical_dataset(
        tmp_path: Path, h264_cuts: VideoFixture,
        at_once: tuple[dict[str, str], dict[tuple[str, str], int]]) -> None:
    """kill -9 while the opening's samples are durable and the rest of phase 0 is not planned
    (headers held back), then a plain resume: the same plan and the same bytes."""
    cfg_path = library_config(tmp_path, h264_cuts[0])
    cfg = load_config(cfg_path)
    gate = tmp_path / "gate"
    child = multiprocessing.get_context("spawn").Process(
        target=run_gated, args=(str(cfg_path), str(gate)))
    child.start()
    try:
        wait_for_first_samples(cfg.state_dir, child.is_alive, "the gated run ended")
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    finally:
        gate.touch()  # its orphaned workers finish their reads and exit
        if child.is_alive():
            child.kill()
    out = io.StringIO()
    assert Engine(load_config(cfg_path), Reporter(out=out)).run() == 0, out.getvalue()
    files, plan = at_once
    assert quotas_of(cfg.state_dir) == plan
    assert dataset_files(cfg.output_root) == files


KILLER = "v05.mkv"  # its header read kills the worker process that reads it


def killing_headers(req: Any) -> Any:
    """Header reads; a batch holding the killer ($DSGEN_TEST_KILLER, else KILLER) ends its
    worker process (a crashing demuxer)."""
    if any(p.endswith(os.environ.get("DSGEN_TEST_KILLER", KILLER)) for p in req.paths):
        os._exit(3)
    return header_task(req)


class KillingHeaders(LocalExecutor):
    """A real local pool whose header reads of KILLER kill the worker."""

    def submit(self, fn: Any, arg: Any, lane: str = "cpu") -> int:
        """Route header reads through `killing_headers`."""
        return super().submit(killing_headers if fn is header_task else fn, arg, lane)


@pytest.mark.slow
def test_a_header_read_that_kills_its_worker_fails_that_video_alone(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """A file whose header read kills the worker: its batch is read again one file at a
    time; that file alone is failed with why (after MAX_TASK_CRASHES reads of it alone),
    every other header is read, and the targets are met from the other videos."""
    cfg = load_config(library_config(tmp_path, h264_cuts[0]))
    out = io.StringIO()
    code = Engine(cfg, Reporter(out=out), executor_factory=KillingHeaders).run()
    text = out.getvalue()
    assert code == 0, text
    assert "A worker process died" in text
    st = State(cfg.state_dir, readonly=True)
    try:
        rows = {v.name: v for v in st.videos(probes=False)}
        totals = {c: n for c, (n, _) in st.category_totals().items()}
    finally:
        st.close()
    killer = rows["v05"]
    assert killer.status == "failed" and killer.reason is not None
    assert "reading its header" in killer.reason and "3 times" in killer.reason
    assert "v05" in text.split("reading its header", 1)[0].rsplit("⚠", 1)[-1]
    others = [r for n, r in rows.items() if n != "v05"]
    assert len(others) == LIBRARY - 1 and all(r.size is not None for r in others)
    assert totals == {"alpha": ALPHA, "beta": BETA}


@pytest.mark.slow
def test_an_openers_header_read_that_kills_its_worker_fails_it_alone(
        tmp_path: Path, h264_cuts: VideoFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same at the start of the run, where sync waits for the first video's header: the
    read is retried alone, the video is failed with why, and the others fill the targets."""
    monkeypatch.setenv("DSGEN_TEST_KILLER", "v00.mkv")
    cfg = load_config(library_config(tmp_path, h264_cuts[0]))
    out = io.StringIO()
    code = Engine(cfg, Reporter(out=out), executor_factory=KillingHeaders).run()
    assert code == 0, out.getvalue()
    st = State(cfg.state_dir, readonly=True)
    try:
        rows = {v.name: v for v in st.videos(probes=False)}
        totals = {c: n for c, (n, _) in st.category_totals().items()}
    finally:
        st.close()
    assert rows["v00"].status == "failed"
    assert "killed its worker process (3 times)" in (rows["v00"].reason or "")
    assert all(r.size is not None for n, r in rows.items() if n != "v00")
    assert totals == {"alpha": ALPHA, "beta": BETA}


def test_a_small_library_is_planned_in_one_step_and_a_large_one_in_two(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """Below TWO_STEP_VIDEOS configured videos a fresh plan reads every header first and
    splits each target at once; from there on it opens first (fresh states only)."""
    cfg = load_config(library_config(tmp_path, h264_cuts[0]))
    small = dataclasses.replace(cfg, videos=cfg.videos[:TWO_STEP_VIDEOS - 1])
    st = State(tmp_path / "st")
    try:
        run = RunState(small)
        assert fresh_plan(run, st, list(small.videos)) == "one"
        assert fresh_plan(run, st, list(cfg.videos)) == "two"
        st.add_quotas(0, {}, {PLAN_META: OPENING})
        assert fresh_plan(run, st, list(cfg.videos)) is None  # planned already
    finally:
        st.close()
