"""End-to-end: real videos through the whole engine; the dataset on disk is checked, not mocks."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dsgen.config import Config, load_config
from dsgen.engine import Engine
from dsgen.executor import LocalExecutor
from dsgen.manifest import manifest_records
from dsgen.patches import LR_FILTERS
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec
from dsgen.writer import TMP_DIR
from helpers import mount_tmpfs, samples_in, wait_for_samples

VideoFixture = tuple[Path, SynthSpec]

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = {seed}
layout = "{layout}"
segment_slots = 4

[formats.tiny]
width = 96
height = 96
scale = 3
dir = "Tiny"

[formats.wide]
width = 192
height = 108
scale = 3
dir = "Wide"

[formats.frame]
width = 240
height = 135
scale = 3
dir = "Frame"
mode = "resize"

[categories.alpha]
target = {alpha}
path = "Alpha/Learn"
formats = {{ tiny = 0.6, wide = 0.4 }}
validation = {{ count = {alpha_val}, guard_seconds = 0.2 }}

[categories.beta]
target = {beta}
path = "Beta/Learn"
formats = {{ tiny = 0.5, frame = 0.5 }}
"""


def video_block(name: str, path: Path, cats: str) -> str:
    """One [[videos]] table."""
    return f'\n[[videos]]\nname = "{name}"\npath = "{path}"\ncategories = {cats}\n'


@pytest.fixture(scope="module")
def videos(h264_cuts: VideoFixture, hevc10_hdr: VideoFixture, mpeg2_anamorphic: VideoFixture,
           letterboxed: VideoFixture) -> dict[str, VideoFixture]:
    """The four kinds the issue names: H.264, HEVC 10-bit HDR, anamorphic MPEG-2, letterboxed."""
    return {"h264": h264_cuts, "hevc": hevc10_hdr, "mpeg2": mpeg2_anamorphic,
            "letterbox": letterboxed}


def write_config(directory: Path, videos: dict[str, VideoFixture], *, alpha: int = 20,
                 beta: int = 8, seed: int = 7, layout: str = "stacked", extra: str = "",
                 alpha_val: int = 0) -> Path:
    """A config over the fixture videos in `directory` (alpha gets `alpha_val` validation
    samples from held-out time ranges)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(seed=seed, layout=layout, alpha=alpha, beta=beta, alpha_val=alpha_val)
    cats = {"h264": '{ alpha = 1.0, beta = 1.0 }', "hevc": '["alpha", "beta"]',
            "mpeg2": '["alpha"]', "letterbox": '{ alpha = 1.0, beta = 0.5 }'}
    for key, (path, _) in videos.items():
        text += video_block(key, path, cats[key])
    text += extra
    p = directory / "dsgen.toml"
    p.write_text(text)
    return p


def run_engine(cfg_path: Path) -> tuple[int, Config, str]:
    """Run the engine in-process, capturing its lines."""
    import io

    cfg = load_config(cfg_path)
    buf = io.StringIO()
    code = Engine(cfg, Reporter(out=buf)).run()
    return code, cfg, buf.getvalue()


def dataset_files(root: Path) -> dict[str, str]:
    """Every dataset file (not hidden state) → sha256: the dataset's identity."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory: pytest.TempPathFactory, videos: dict[str, VideoFixture]
                ) -> tuple[int, Config, str]:
    """One complete run, stacked layout, shared by the checks below (validation needs
    longer videos: tests/test_split.py, tests/test_layout.py and the kill tests below)."""
    return run_engine(write_config(tmp_path_factory.mktemp("stacked"), videos))


@pytest.mark.slow
def test_counts_in_state_equal_files_on_disk_equal_targets(stacked_run: tuple[int, Config, str]
                                                           ) -> None:
    """Each category ends at its target exactly; state rows = GT files (flat folders) =
    every file and alias the manifest references."""
    code, cfg, out = stacked_run
    assert code == 0, out
    st = State(cfg.state_dir, readonly=True)
    totals = st.category_totals()
    referenced: set[Path] = set()
    for rec in manifest_records(cfg, st):
        referenced.update(cfg.output_root / f for f in [*rec["files"], *rec["aliases"]])
    st.close()
    assert {k: n for k, (n, _) in totals.items()} == {"alpha": 20, "beta": 8}
    for cat in cfg.categories:
        assert len(list((cfg.output_root / cat.path).glob("*/GT/*.png"))) == cat.target
        assert not (cfg.output_root / cat.path / "Val").exists()
    on_disk = {p for p in cfg.output_root.rglob("*.png")}
    assert on_disk == referenced
    assert not any((cfg.output_root / TMP_DIR).glob("*"))
    status = json.loads(cfg.status_path.read_text())
    assert status["status"] == "finished"
    for cat in cfg.categories:
        assert status["category_stats"][cat.name]["images_created"] == cat.target
    assert status["dsgen"]["validation"] == {}


@pytest.mark.slow
def test_no_sample_spans_a_cut_and_sizes_are_exact(stacked_run: tuple[int, Config, str],
                                                   videos: dict[str, VideoFixture]) -> None:
    """No clip contains a scene cut; GT and LR stack sizes are exactly the format's."""
    _, cfg, _ = stacked_run
    specs = {name: spec for name, (_, spec) in videos.items()}
    st = State(cfg.state_dir, readonly=True)
    n = cfg.extraction.frames_per_clip
    checked = 0
    for rec in manifest_records(cfg, st):
        spec = specs[rec["video"]]
        first = rec["frame_indices"][0]
        assert rec["frame_indices"] == list(range(first, first + n))
        for cut in spec.cuts:
            assert not first < cut <= first + n - 1, (rec["sample"], cut)
        fmt = cfg.format(rec["format"])
        gt, *lrs = (Image.open(cfg.output_root / f) for f in rec["files"])
        assert gt.size == (fmt.width, fmt.height)
        lw, lh = fmt.lr_size
        assert [im.size for im in lrs] == [(lw, lh * k) for k in cfg.extraction.lr_stacks]
        checked += 1
    st.close()
    assert checked == sum(c.target for c in cfg.categories)


@pytest.mark.slow
def test_crops_stay_inside_the_picture_and_keep_the_aspect(
        stacked_run: tuple[int, Config, str], videos: dict[str, VideoFixture]) -> None:
    """Crop boxes never touch letterbox bars; anamorphic crops are squeezed by the SAR."""
    _, cfg, _ = stacked_run
    specs = {name: spec for name, (_, spec) in videos.items()}
    st = State(cfg.state_dir, readonly=True)
    for rec in manifest_records(cfg, st):
        spec = specs[rec["video"]]
        box = rec["crop_box"]
        bar_rows, bar_cols = spec.letterbox
        assert box["y"] >= bar_rows and box["y"] + box["h"] <= spec.height - bar_rows
        assert box["x"] >= bar_cols and box["x"] + box["w"] <= spec.width - bar_cols
        fmt = cfg.format(rec["format"])
        if fmt.mode == "crop":
            display_aspect = box["w"] * float(spec.sar) / box["h"]
            assert display_aspect == pytest.approx(fmt.width / fmt.height, rel=0.02)
            # GT is never upscaled.
            assert box["w"] >= fmt.width - 1 and box["h"] >= fmt.height - 1
        if rec["video"] == "letterbox":
            gt = np.asarray(Image.open(cfg.output_root / rec["files"][0]))
            edge_rows = np.concatenate([gt[:2], gt[-2:]]).astype(np.float32)
            assert edge_rows.mean() > 30, "bar pixels inside a letterboxed crop"
    st.close()


@pytest.mark.slow
def test_lr_is_the_documented_downscale_of_the_gt(stacked_run: tuple[int, Config, str]) -> None:
    """The centre frame of every LR stack is exactly Pillow's bicubic resize of the GT file."""
    _, cfg, _ = stacked_run
    st = State(cfg.state_dir, readonly=True)
    filt = LR_FILTERS[cfg.extraction.lr_filter]
    for rec in manifest_records(cfg, st):
        fmt = cfg.format(rec["format"])
        lw, lh = fmt.lr_size
        gt = Image.open(cfg.output_root / rec["files"][0])
        expect = np.asarray(gt.convert("RGB").resize((lw, lh), filt))
        for f, k in zip(rec["files"][1:], cfg.extraction.lr_stacks, strict=True):
            stack = np.asarray(Image.open(cfg.output_root / f))
            centre = stack[(k // 2) * lh:(k // 2 + 1) * lh]
            assert np.array_equal(centre, expect), f
    st.close()


@pytest.mark.slow
def test_basicsr_layout_is_vimeo90k_septuplets(tmp_path: Path,
                                               videos: dict[str, VideoFixture]) -> None:
    """basicsr layout: GT/LR im1..im7 per clip/seq, LR_i = bicubic(GT_i), meta_info lines;
    validation in Val/{GT,LR} with its own meta_info_val.txt."""
    small = {k: videos[k] for k in ("h264", "hevc")}
    # 5 + 2 held out: the 64-frame HEVC clip keeps 22 frames for training beside its block
    # and guard band, two 8-frame window rooms (a window opens up to a frame after its pts)
    code, cfg, out = run_engine(write_config(tmp_path, small, alpha=5, beta=3, layout="basicsr",
                                             alpha_val=2))
    assert code == 0, out
    metas = list(cfg.output_root.rglob("meta_info.txt"))
    lines = [line for m in metas for line in m.read_text().splitlines()]
    assert len(lines) == 8
    val = cfg.output_root / "Alpha" / "Learn" / "Val" / "meta_info_val.txt"
    assert len(val.read_text().splitlines()) == 2
    assert {m.name for m in cfg.output_root.rglob("meta_info*.txt")} == {
        "meta_info.txt", "meta_info_val.txt"}
    for m in [*metas, val]:
        root = m.parent
        for line in m.read_text().splitlines():
            key, n, shape = line.split(" ")
            assert n == "7"
            h, w, c = (int(x) for x in shape.strip("()").split(","))
            fmt = next(f for f in cfg.formats if (f.height, f.width) == (h, w))
            for i in range(1, 8):
                gt = Image.open(root / "GT" / key / f"im{i}.png")
                lr = Image.open(root / "LR" / key / f"im{i}.png")
                assert gt.size == (w, h) and c == 3
                expect = np.asarray(gt.resize(fmt.lr_size, LR_FILTERS["bicubic"]))
                assert np.array_equal(np.asarray(lr), expect)


def _cli(cfg: Path, **kw: Any) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "dsgen.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, **kw)


KILL_CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 3
segment_slots = 3

[formats.tiny]
width = 96
height = 96
scale = 3

[formats.wide]
width = 384
height = 216
scale = 3

[categories.alpha]
target = 50
formats = { tiny = 0.5, wide = 0.5 }
validation = { count = 6, guard_seconds = 0.5 }

[categories.beta]
target = 25
formats = { wide = 1.0 }

[[videos]]
name = "long h264"
path = "%s"
categories = ["alpha", "beta"]

[[videos]]
name = "long hevc"
path = "%s"
categories = ["alpha", "beta"]
"""


KILL_TOTAL = 50 + 25 + 6  # alpha, beta and alpha's validation samples


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two longer videos (20 s H.264 720p with 4 cuts, 10 s HEVC 10-bit HDR) for kill tests."""
    from dsgen.synth import make_video

    d = tmp_path_factory.mktemp("long")
    a = SynthSpec("long_h264", "h264", 1280, 720, 480, cuts=(100, 190, 300, 410), gop=48,
                  seed=201)
    b = SynthSpec("long_hevc", "hevc10", 960, 540, 240, cuts=(120,), hdr=True, gop=48, seed=202)
    return make_video(d / "a.mkv", a), make_video(d / "b.mkv", b)


@pytest.fixture(scope="module")
def clean_long(tmp_path_factory: pytest.TempPathFactory, long_videos: tuple[Path, Path]
               ) -> dict[str, str]:
    """The dataset of one uninterrupted `dsgen run` over the long videos: name → sha256."""
    d = tmp_path_factory.mktemp("clean")
    (d / "dsgen.toml").write_text(KILL_CONFIG % long_videos)
    proc = _cli(d / "dsgen.toml")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    expected = dataset_files(load_config(d / "dsgen.toml").output_root)
    assert sum(1 for f in expected if "/GT/" in f) == KILL_TOTAL
    assert sum(1 for f in expected if "/Val/GT/" in f) == 6
    return expected


@pytest.mark.slow
def test_kill_9_at_five_moments_then_resume_gives_the_identical_dataset(
        tmp_path: Path, long_videos: tuple[Path, Path], clean_long: dict[str, str]) -> None:
    """kill -9 at five random moments + resume = byte-identical dataset to one clean run."""
    expected = clean_long
    total = KILL_TOTAL
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "dsgen.toml").write_text(KILL_CONFIG % long_videos)
    cfg_path = tmp_path / "killed" / "dsgen.toml"
    cfg = load_config(cfg_path)
    rng = random.Random(20261126)
    # One kill during start-up/probing, four at random sample counts while writing.
    thresholds = [0, *sorted(rng.sample(range(2, total - 2), 4))]
    kills = 0
    for threshold in thresholds:
        proc = _cli(cfg_path)
        if threshold == 0:
            time.sleep(rng.uniform(0.3, 1.2))
        wait_for_samples(proc, cfg.state_dir, threshold)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    proc = _cli(cfg_path)
    final_out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, final_out
    assert kills == 5
    assert dataset_files(cfg.output_root) == expected
    assert samples_in(cfg.state_dir) == total


@pytest.mark.slow
def test_sigint_stops_cleanly_and_resume_finishes(tmp_path: Path,
                                                  long_videos: tuple[Path, Path]) -> None:
    """Ctrl+C: the shutdown lines, exit 130, no partial file; a second run completes."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(KILL_CONFIG % long_videos)
    cfg = load_config(cfg_path)
    proc = _cli(cfg_path)
    wait_for_samples(proc, cfg.state_dir, 10)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Received shutdown signal. Saving progress..." in out
    assert "Safe to resume later with: dsgen run --config" in out
    assert not any((cfg.output_root / TMP_DIR).glob("*"))
    st = State(cfg.state_dir, readonly=True)
    on_disk = {p for p in cfg.output_root.rglob("*.png")}
    recorded = {cfg.output_root / f for rec in manifest_records(cfg, st)
                for f in [*rec["files"], *rec["aliases"]]}
    st.close()
    assert on_disk == recorded
    assert 10 <= len({p for p in on_disk if "/GT/" in str(p)}) < KILL_TOTAL
    status = json.loads(cfg.status_path.read_text())
    assert status["status"] == "interrupted"
    proc = _cli(cfg_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "📍 Resuming from video" in out
    assert samples_in(cfg.state_dir) == KILL_TOTAL


@pytest.mark.slow
def test_bad_inputs_are_reported_and_the_run_finishes(tmp_path: Path,
                                                      videos: dict[str, VideoFixture],
                                                      bad_files: dict[str, Path]) -> None:
    """Each bad file gets a clear reason; good videos still fill every target."""
    good = {k: videos[k] for k in ("h264", "hevc")}
    extra = "".join(video_block(f"bad {k}", p, '["alpha"]') for k, p in bad_files.items())
    code, cfg, out = run_engine(write_config(tmp_path, good, alpha=12, beta=4, extra=extra))
    assert code == 0, out
    assert "Video file not found" in out and str(bad_files["missing"]) in out
    expected = {"zero_byte": "empty", "random_bytes": "not a readable video",
                "audio_only": "no video stream", "three_frames": "only 3"}
    for key, words in expected.items():
        assert f"Video: bad {key}" in out, out
        block = out.split(f"Video: bad {key}", 1)[1].split("\n", 2)[1]
        assert words in block, (key, block)
    st = State(cfg.state_dir, readonly=True)
    rows = {v.name: v for v in st.videos()}
    st.close()
    for key in bad_files:
        row = rows[f"bad {key}"]
        if key == "truncated":
            continue  # a truncated file may still give clips from the part that is there
        assert row.status in ("missing", "failed") and row.reason, (key, row)
    totals = load_state_totals(cfg)
    assert totals == {"alpha": 12, "beta": 4}


def load_state_totals(cfg: Config) -> dict[str, int]:
    """Samples per category, from the state."""
    st = State(cfg.state_dir, readonly=True)
    try:
        return {c: n for c, (n, _) in st.category_totals().items()}
    finally:
        st.close()


@pytest.mark.slow
def test_a_category_without_enough_material_ends_short_and_says_so(
        tmp_path: Path, videos: dict[str, VideoFixture]) -> None:
    """Asking more than the videos hold: every usable window is used, exit 1, a clear line."""
    small = {"h264": videos["h264"]}
    code, cfg, out = run_engine(write_config(tmp_path, small, alpha=200, beta=1))
    assert code == 1, out
    assert "ALPHA:" in out and "short" in out
    totals = load_state_totals(cfg)
    assert 0 < totals["alpha"] < 200
    assert totals["beta"] == 1


@pytest.mark.slow
def test_full_disk_pauses_without_corruption_and_resumes_when_space_returns(
        tmp_path: Path, long_videos: tuple[Path, Path]) -> None:
    """Output filesystem full (a real 1.5 MB tmpfs): pause, no partial file, resume on space."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount_tmpfs(mnt, "size=1536k")
    try:
        text = (KILL_CONFIG % long_videos).replace('output_root = "out"',
                                                   f'output_root = "{mnt}/out"')
        text += "\n[disk]\nmin_free_gb = 0.0001\ncheck_seconds = 1.0\n"
        cfg_path = tmp_path / "dsgen.toml"
        cfg_path.write_text(text)
        proc = _cli(cfg_path)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Disk full: extraction paused" in line:
                break
        assert any("Disk full" in line for line in seen), "".join(seen)
        cfg = load_config(cfg_path)
        # While paused: everything on disk is a complete, recorded sample.
        time.sleep(1.0)
        for png in cfg.output_root.rglob("*.png"):
            Image.open(png).load()
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        out, _ = proc.communicate(timeout=300)
        out = "".join(seen) + out
        assert proc.returncode == 0, out
        assert "Disk space is back" in out
        st = State(cfg.state_dir, readonly=True)
        recorded = {cfg.output_root / f for rec in manifest_records(cfg, st)
                for f in [*rec["files"], *rec["aliases"]]}
        st.close()
        on_disk = set(cfg.output_root.rglob("*.png"))
        assert on_disk == recorded
        for png in on_disk:
            Image.open(png).load()
        assert samples_in(cfg.state_dir) == KILL_TOTAL
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _workers_of(pid: int) -> list[int]:
    """PIDs of a dsgen process's pool workers (spawned children running spawn_main)."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(int(child))
    return out


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_the_run_finishes_identically(
        tmp_path: Path, long_videos: tuple[Path, Path], clean_long: dict[str, str]) -> None:
    """SIGKILL one worker mid-run: the pool is rebuilt, its clips redone, same dataset."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(KILL_CONFIG % long_videos)
    cfg = load_config(cfg_path)
    proc = _cli(cfg_path)
    wait_for_samples(proc, cfg.state_dir, 20)
    workers = _workers_of(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "A worker process died" in out
    assert dataset_files(cfg.output_root) == clean_long
    assert samples_in(cfg.state_dir) == KILL_TOTAL


def test_a_header_only_file_is_reported_once_and_the_run_finishes(
        tmp_path: Path, videos: dict[str, VideoFixture]) -> None:
    """The first 4,000 bytes of an MKV (a header, no decodable frame) next to good videos:
    the run ends, the file is reported once with its reason, the targets are met."""
    head = tmp_path / "head.mkv"
    head.write_bytes(videos["h264"][0].read_bytes()[:4000])
    good = {k: videos[k] for k in ("h264", "hevc")}
    extra = video_block("header only", head, '["alpha"]')
    code, cfg, out = run_engine(write_config(tmp_path, good, alpha=10, beta=4, extra=extra))
    assert code == 0, out
    assert out.count("Video: header only") == 1, out
    assert "A worker process died" not in out
    st = State(cfg.state_dir, readonly=True)
    row = next(v for v in st.videos(probes=False) if v.name == "header only")
    st.close()
    assert row.status == "failed" and row.reason
    assert load_state_totals(cfg) == {"alpha": 10, "beta": 4}


def kill_worker(_: Any) -> Any:
    """Stands in for the work of one video: its worker process dies at once."""
    os._exit(9)


class KillingExecutor(LocalExecutor):
    """A real local pool where every task of the video named `bad` kills its worker."""

    def submit(self, fn: Any, arg: Any, lane: str = "cpu") -> int:
        """Swap the work of the bad video for a worker death."""
        if getattr(arg, "name", None) == "bad":
            return super().submit(kill_worker, arg, lane)
        return super().submit(fn, arg, lane)


@pytest.mark.slow
def test_work_that_keeps_killing_its_worker_is_given_up_and_the_rest_goes_on(
        tmp_path: Path, videos: dict[str, VideoFixture]) -> None:
    """Every task of one video kills its worker: each slot is retried alone a bounded number
    of times, then recorded as worker_crash; the other videos still meet the targets."""
    import io

    good = {k: videos[k] for k in ("h264", "hevc")}
    extra = video_block("bad", videos["letterbox"][0], '["alpha"]')
    cfg = load_config(write_config(tmp_path, good, alpha=12, beta=4, extra=extra))
    buf = io.StringIO()
    engine = Engine(cfg, Reporter(out=buf), executor_factory=KillingExecutor)
    code = engine.run()
    out = buf.getvalue()
    st = State(cfg.state_dir, readonly=True)
    bad = next(v for v in st.videos(probes=False) if v.name == "bad")
    crashed = st.outcome_counts(bad.id)
    slots, pending, _, _ = st.slot_stats(bad.id)
    st.close()
    assert "A worker process died" in out
    assert slots and not pending  # every slot of the bad video was settled
    assert crashed == {"worker_crash": slots}
    assert code == 0, out
    totals = load_state_totals(cfg)
    assert totals == {"alpha": 12, "beta": 4}  # the bad video's share moved to the others


def _read_lines(proc: subprocess.Popen[str], into: list[str]) -> Any:
    """Collect a process's output lines in a thread (the test waits on them)."""
    import threading

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            into.append(line)
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def _wait_for_line(lines: list[str], needle: str, proc: subprocess.Popen[str],
                   timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in lines):
        assert proc.poll() is None or any(needle in line for line in lines), "".join(lines)
        assert time.monotonic() < deadline, f"no {needle!r}: " + "".join(lines)
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_on_the_same_state_is_refused_at_once_and_nothing_is_lost(
        tmp_path: Path, long_videos: tuple[Path, Path], clean_long: dict[str, str]) -> None:
    """While one `dsgen run` works, a second on the same state dir exits 2 at once naming the
    first one's PID; status and manifest still work; the first run finishes with the same
    dataset, byte for byte, as an undisturbed run."""
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(KILL_CONFIG % long_videos)
    cfg = load_config(cfg_path)
    first = _cli(cfg_path)
    wait_for_samples(first, cfg.state_dir, 5)
    t0 = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config",
                             str(cfg_path)], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 15
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"in use by another dsgen (PID {first.pid})" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    for cmd in (["status", "--config", str(cfg_path)],
                ["manifest", "--config", str(cfg_path), "-o", str(tmp_path / "m.jsonl")]):
        done = subprocess.run([sys.executable, "-m", "dsgen.cli", *cmd], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (cmd, done.stderr)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert dataset_files(cfg.output_root) == clean_long
    assert samples_in(cfg.state_dir) == KILL_TOTAL


@pytest.mark.slow
def test_a_full_state_disk_pauses_with_a_message_and_the_run_completes_after(
        tmp_path: Path, long_videos: tuple[Path, Path], clean_long: dict[str, str]) -> None:
    """The state dir on a real tmpfs is filled up mid-run: a "State disk full" message, no
    traceback; once the space is back the run resumes by itself and ends with the same
    dataset as an undisturbed run and every sample recorded."""
    state = tmp_path / "state"
    state.mkdir()
    mount_tmpfs(state, "size=16m")
    try:
        cfg_path = tmp_path / "dsgen.toml"
        cfg_path.write_text(KILL_CONFIG % long_videos)
        cfg = load_config(cfg_path)
        proc = _cli(cfg_path)
        lines: list[str] = []
        pump = _read_lines(proc, lines)
        wait_for_samples(proc, cfg.state_dir, 10)
        filler = state / "filler"
        with filler.open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        _wait_for_line(lines, "State disk full: extraction paused", proc)
        time.sleep(2.0)  # paused: it stays so while the disk is full
        assert proc.poll() is None
        filler.unlink()
        proc.wait(timeout=300)
        pump.join(timeout=10)
        out = "".join(lines)
        assert proc.returncode == 0, out
        assert "State disk space is back" in out
        assert "Traceback" not in out
        assert dataset_files(cfg.output_root) == clean_long
        assert samples_in(cfg.state_dir) == KILL_TOTAL
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


@pytest.mark.slow
def test_a_300_character_video_name_gets_safe_file_names_and_later_starts_work(
        tmp_path: Path, videos: dict[str, VideoFixture]) -> None:
    """A 300-character name (too long for a file name) is mapped deterministically to a
    shortened slug with a hash: the run writes every sample, no name exceeds 255 bytes, the
    manifest names the files it wrote, and a later start (after kill -9 mid-run, so the
    rollback meets the long name) finishes the same dataset."""
    from dsgen.config import file_slug

    name = "A very long title " * 17  # 306 characters
    extra = video_block(name, videos["h264"][0], '["alpha", "beta"]')
    cfg_path = write_config(tmp_path / "one", {}, alpha=8, beta=3, extra=extra)
    code, cfg, out = run_engine(cfg_path)
    assert code == 0, out
    once = dataset_files(cfg.output_root)
    slug = file_slug(name)
    assert len(slug) < 235 and slug == file_slug(name)
    assert all(slug in f and len(Path(f).name) <= 255 for f in once if f.endswith(".png"))
    st = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st))
    st.close()
    assert {r["sample"] for r in recs} == {f"patch_{slug}_idx{r['slot']:06d}" for r in recs}
    again = write_config(tmp_path / "two", {}, alpha=8, beta=3, extra=extra)
    proc = _cli(again)
    wait_for_samples(proc, tmp_path / "two" / "state", 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    proc = _cli(again)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert dataset_files(tmp_path / "two" / "out") == once


@pytest.mark.slow
def test_a_rollback_that_cannot_remove_a_file_never_crashes_the_start(
        tmp_path: Path, videos: dict[str, VideoFixture]) -> None:
    """A file of an unrecorded slot that cannot be removed (a folder stands at its path)
    is reported and the start goes on; the redo cannot write there either, and the run
    stops with a clear message (exit 2), never a traceback."""
    good = {"h264": videos["h264"]}
    cfg_path = write_config(tmp_path, good, alpha=6, beta=2)
    code, cfg, out = run_engine(cfg_path)
    assert code == 0, out
    st = State(cfg.state_dir)
    vid, slot_id, files = st.db.execute(
        "SELECT video_id, slot_id, files FROM samples ORDER BY slot_id LIMIT 1").fetchone()
    st.unrecord_slots([(vid, slot_id)])  # as if the run died between write and commit
    st.close()
    gt = cfg.output_root / json.loads(files)[0][0]
    gt.unlink()
    gt.mkdir()
    (gt / "keep").write_text("not dsgen's")
    done = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config",
                           str(cfg_path)], capture_output=True, text=True, timeout=300)
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    assert "Files of unrecorded samples could not be removed" in done.stdout, text
    assert done.returncode == 2, text
    assert "cannot write a sample" in done.stderr, text
    assert (gt / "keep").exists()


def test_windows_open_at_keyframes_unless_switched_off(tmp_path: Path,
                                                       film_720p: VideoFixture) -> None:
    """With the default keyframe tolerance, the manifest says where each window came from:
    windows open at a keyframe (origin `keyframe`, moved no further than the tolerance, the
    first frame a keyframe of the video), and the run decodes fewer frames per clip than
    with `keyframe_windows = false`, where every window is at its planned position."""
    runs = {}
    for name, extra in (("on", ""), ("off", "\n[extraction]\nkeyframe_windows = false\n")):
        d = tmp_path / name
        d.mkdir()
        text = CONFIG.format(seed=7, layout="stacked", alpha=3, beta=1, alpha_val=0)
        (d / "dsgen.toml").write_text(text + video_block("film", film_720p[0], '["alpha", '
                                                         '"beta"]') + extra)
        code, cfg, out = run_engine(d / "dsgen.toml")
        assert code == 0, out
        st = State(cfg.state_dir, readonly=True)
        recs = list(manifest_records(cfg, st))
        probe = st.probe(st.videos(probes=False)[0].id)
        st.close()
        assert probe is not None
        per_clip = float(out.split("Frames Decoded: ")[1].split(" per clip")[0].split(", ")[1])
        runs[name] = (recs, set(probe.key_pts.tolist()), per_clip)
    recs, keys, on_per_clip = runs["on"]
    tol = load_config(tmp_path / "on" / "dsgen.toml").extraction.keyframe_tolerance_seconds
    at_key = [r for r in recs if r["window"]["origin"] == "keyframe"]
    assert len(at_key) >= len(recs) // 2, [r["window"] for r in recs]
    for r in at_key:
        assert abs(r["window"]["moved_seconds"]) <= tol + 1e-6
        assert r["window"]["tolerance_seconds"] == pytest.approx(tol)
        if keys:  # the index is complete: the first frame is a keyframe
            assert r["frame_pts"][0] in keys
    off_recs, _, off_per_clip = runs["off"]
    assert {r["window"]["origin"] for r in off_recs} == {"position"}
    assert on_per_clip < off_per_clip
