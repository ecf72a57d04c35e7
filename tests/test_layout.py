"""The dataset as the trainers read it: a real run in the default layout, read by loaders that
do exactly what the predecessor's trainers and BasicSR's Vimeo-90K datasets do (numpy +
Pillow instead of torch + OpenCV); LR aliases; and `dsgen migrate` of a dataset written in
the old per-video bucket folders.

The loaders follow icebear74/ice_ki `vsr_plus_plus/data/unified_dataset.py` (flat glob of
`<category>/<format dir>/GT/*.png`, pairing by name in `LR_5frames`/`LR_7frames`, the stack
split by height), `vsr_plus_plus/core/dataset.py` (`<root>/Patches/GT` + `Patches/LR`, and
`Val/GT` + `Val/LR`, 540×540 GT and 900×180 LR checked), `vsr_plus_plus/data/
validation_dataset.py` (`<category>/Val/GT/*.png`) and XPixelGroup/BasicSR
`basicsr/data/vimeo90k_dataset.py` / `video_test_dataset.py` (meta_info keys `clip/seq`,
GT `im4.png`, LQ `im1..im7.png`).
"""

from __future__ import annotations

import glob
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsgen.config import Config, load_config
from dsgen.engine import Engine
from dsgen.manifest import manifest_records
from dsgen.migrate import META_MIGRATING, META_PATHS, migrate
from dsgen.patches import LR_FILTERS
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.statelock import StateLock
from dsgen.synth import SynthSpec, make_video
from dsgen.writer import PathScheme

VideoFixture = tuple[Path, SynthSpec]

# The predecessor trainers' format → folder map (unified_dataset.py `format_dir_map`).
FORMAT_DIRS = {"small_540": "Patches", "medium_169": "Patches_Medium169"}

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 11
segment_slots = 4
{top}
[formats.small_540]
width = 540
height = 540
dir = "Patches"

[formats.medium_169]
width = 720
height = 405
dir = "Patches_Medium169"

[categories.general]
target = {general}
path = "Universal/Mastermodell/Learn"
formats = {{ small_540 = 0.6, medium_169 = 0.4 }}
{general_val}
[categories.toon]
target = {toon}
path = "Toon/ToonModel/Learn"
formats = {{ small_540 = 1.0 }}
{toon_val}
[[videos]]
name = "film"
path = "{film}"
categories = ["general", "toon"]
"""

VAL = """validation = {{ count = {n}, guard_seconds = 0.5 }}"""


def write_config(d: Path, film: Path, *, top: str = "", general: int = 14, toon: int = 6,
                 general_val: int = 4, toon_val: int = 2, extra: str = "") -> Path:
    """A config over the 720p film (and `extra` tables) in `d`."""
    d.mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(top=top, general=general, toon=toon, film=film,
                         general_val=VAL.format(n=general_val) if general_val else "",
                         toon_val=VAL.format(n=toon_val) if toon_val else "")
    (d / "dsgen.toml").write_text(text + extra)
    return d / "dsgen.toml"


def run(cfg_path: Path) -> tuple[int, Config, str]:
    """The engine in-process; exit code, config and its lines."""
    cfg = load_config(cfg_path)
    buf = io.StringIO()
    code = Engine(cfg, Reporter(out=buf)).run()
    return code, cfg, buf.getvalue()


def rgb(path: str | Path) -> np.ndarray:
    """An image as the trainers hold it: H×W×3 uint8 RGB."""
    return np.asarray(Image.open(path).convert("RGB"))


def unified_pairs(base: Path, lr_version: str) -> list[dict[str, str]]:
    """MultiFormatMultiCategoryDataset._scan_datasets: per format, a flat glob of GT/*.png
    and the file of the same name in LR_<version>."""
    pairs = []
    for fmt, d in FORMAT_DIRS.items():
        gt_dir, lr_dir = base / d / "GT", base / d / f"LR_{lr_version}"
        if not gt_dir.is_dir() or not lr_dir.is_dir():
            continue
        for gt in sorted(glob.glob(os.path.join(gt_dir, "*.png"))):
            lr = os.path.join(lr_dir, os.path.basename(gt))
            if os.path.exists(lr):
                pairs.append({"gt": gt, "lr": lr, "format": fmt})
    return pairs


def split_stack(stack: np.ndarray, num_frames: int) -> list[np.ndarray]:
    """The stacked LR file into its frames, as the trainers split it (by height)."""
    h = stack.shape[0] // num_frames
    return [stack[i * h:(i + 1) * h] for i in range(num_frames)]


def vsr_dataset(root: Path, mode: str) -> list[tuple[Path, Path]]:
    """core/dataset.py VSRDataset(root, mode): listdir(mode/GT) *.png paired with mode/LR;
    it checks GT (540, 540, 3) and the 5-frame LR (900, 180, 3) — here for every file."""
    gt_dir, lr_dir = root / mode / "GT", root / mode / "LR"
    files = sorted(f for f in os.listdir(gt_dir) if f.endswith(".png"))
    if not files:
        raise ValueError(f"No PNG files found in {gt_dir}")
    out = []
    for f in files:
        gt, lr = rgb(gt_dir / f), rgb(lr_dir / f)
        assert gt.shape == (540, 540, 3), (f, gt.shape)
        assert lr.shape == (900, 180, 3), (f, lr.shape)
        out.append((gt_dir / f, lr_dir / f))
    return out


def assert_centre_is_downscale(gt_path: str | Path, lr_frames: list[np.ndarray]) -> None:
    """The centre LR frame is Pillow's bicubic resize of the GT file (the LR filter)."""
    gt = Image.open(gt_path).convert("RGB")
    lh, lw = lr_frames[0].shape[:2]
    expect = np.asarray(gt.resize((lw, lh), LR_FILTERS["bicubic"]))
    assert np.array_equal(lr_frames[len(lr_frames) // 2], expect), gt_path


# 10 s of 720p with 96-row bars: a ~520-line picture, too small for 540×540 patches.
LETTERBOXED_LONG = SynthSpec("letterboxed_long", "h264", 1280, 720, 240, cuts=(80, 170),
                             letterbox=(96, 0), gop=48, container="mp4", seed=301)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, film_720p: VideoFixture
            ) -> tuple[int, Config, str]:
    """One run in the default layout: two categories with validation, a 720p film, and a
    letterboxed video whose picture cannot give small_540 (its mix re-weights)."""
    d = tmp_path_factory.mktemp("layout")
    letterboxed = make_video(d / "letterboxed.mp4", LETTERBOXED_LONG)
    extra = (f'\n[[videos]]\nname = "letterbox"\npath = "{letterboxed}"\n'
             'categories = ["general"]\n')
    return run(write_config(d, film_720p[0], general=20, extra=extra))


@pytest.mark.slow
def test_the_predecessors_loaders_read_every_sample(dataset: tuple[int, Config, str]) -> None:
    """unified_dataset.py (5 and 7 frames), core/dataset.py (Patches and Val) and
    validation_dataset.py find every sample dsgen wrote — no more, no less; every GT pairs
    with its LR stacks, shapes are exact, and the centre LR frame is the GT's downscale."""
    code, cfg, out = dataset
    assert code == 0, out
    st = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st))
    st.close()
    for cat in cfg.categories:
        base = cfg.output_root / cat.path
        mine = [r for r in recs if r["category"] == cat.name]
        train = {(r["format"], r["sample"]) for r in mine if r["split"] == "train"}
        val = {r["sample"] for r in mine if r["split"] == "val"}
        assert len(train) == cat.target and len(val) == cat.val_target
        for version, k in (("5frames", 5), ("7frames", 7)):
            pairs = unified_pairs(base, version)
            assert {(p["format"], Path(p["gt"]).stem) for p in pairs} == train
            for p in pairs:
                f = cfg.format(p["format"])
                gt, frames = rgb(p["gt"]), split_stack(rgb(p["lr"]), k)
                assert gt.shape == (f.height, f.width, 3)
                assert all(fr.shape == (f.height // 3, f.width // 3, 3) for fr in frames)
                assert_centre_is_downscale(p["gt"], frames)
        patches = vsr_dataset(base, "Patches")  # train.py: VSRDataset(root, 'Patches')
        assert {gt.stem for gt, _ in patches} == {s for f, s in train if f == "small_540"}
        for gt, lr in patches:
            assert_centre_is_downscale(gt, split_stack(rgb(lr), 5))
        vals = vsr_dataset(base, "Val")  # train.py: VSRDataset(root, 'Val')
        assert {gt.stem for gt, _ in vals} == val
        for gt, lr in vals:
            assert_centre_is_downscale(gt, split_stack(rgb(lr), 5))
            for k in (5, 7):  # the real neighbouring frames, as unified loaders read them
                frames = split_stack(rgb(base / "Val" / f"LR_{k}frames" / gt.name), k)
                assert_centre_is_downscale(gt, frames)
        # validation_dataset.py: sorted(glob(<category>/Val/GT/*.png)), non-empty
        assert {Path(p).stem for p in glob.glob(os.path.join(base, "Val", "GT", "*.png"))} == val


@pytest.mark.slow
def test_lr_aliases_are_hard_links_counted_once(dataset: tuple[int, Config, str]) -> None:
    """Every `LR/<name>` is the same file as `LR_5frames/<name>` (one inode, two names);
    the state's bytes count each sample's files once, aliases not again; the manifest lists
    the aliases apart from the files."""
    _, cfg, _ = dataset
    st = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st))
    db_bytes = sum(b for _, b in st.category_totals().values())
    st.close()
    files_bytes = 0
    for r in recs:
        ((alias, target),) = r["aliases"].items()
        assert alias.split("/")[-2] == "LR" and target.split("/")[-2] == "LR_5frames"
        assert os.path.samefile(cfg.output_root / alias, cfg.output_root / target)
        assert alias not in r["files"]
        files_bytes += sum((cfg.output_root / f).stat().st_size for f in r["files"])
    assert db_bytes == files_bytes
    links = [p for p in cfg.output_root.rglob("LR/*.png")]
    assert len(links) == len(recs) and all(p.stat().st_nlink == 2 for p in links)
    status = json.loads(cfg.status_path.read_text())
    assert sum(c["disk_usage_gb"] for c in status["category_stats"].values()) <= (
        round(db_bytes / 1e9, 3) + 0.001)


@pytest.mark.slow
def test_a_format_larger_than_the_picture_is_noted_once_and_the_mix_re_weighted(
        dataset: tuple[int, Config, str]) -> None:
    """The letterboxed video (1280×520 picture) cannot give 540×540: its training mix is
    re-weighted to medium_169 and its validation (small_540 only) goes to the film — each
    said once for that video, in the run's lines and in the status file."""
    _, cfg, out = dataset
    notes = [line for line in out.splitlines() if line.startswith("→ letterbox: ")]
    assert notes == [
        "→ letterbox: general: small_540 (540×540) larger than its 1280×520 picture, skipped "
        "for this video; mix re-weighted: medium_169 100%",
        "→ letterbox: no general validation format fits its 1280×520 picture; its share goes "
        "to other videos"], out
    assert not any(line.startswith("→ film:") for line in out.splitlines())
    status = json.loads(cfg.status_path.read_text())
    assert status["dsgen"]["video_notes"] == {
        "letterbox": [n.removeprefix("→ letterbox: ") for n in notes]}
    st = State(cfg.state_dir, readonly=True)
    recs = [r for r in manifest_records(cfg, st) if r["video"] == "letterbox"]
    st.close()
    assert recs and {(r["format"], r["split"]) for r in recs} == {("medium_169", "train")}


# --------------------------------------------------------------------------- basicsr


def vimeo_train(gt_root: Path, lq_root: Path, meta: Path, num_frame: int = 7
                ) -> list[tuple[Path, list[Path]]]:
    """Vimeo90KDataset: keys from meta_info (first word), `clip, seq = key.split('/')`, GT
    im4.png, LQ im{i + (9 - num_frame) // 2}.png."""
    keys = [line.split(" ")[0] for line in meta.read_text().splitlines()]
    neighbours = [i + (9 - num_frame) // 2 for i in range(num_frame)]
    out = []
    for key in keys:
        clip, seq = key.split("/")
        out.append((gt_root / clip / seq / "im4.png",
                    [lq_root / clip / seq / f"im{n}.png" for n in neighbours]))
    return out


@pytest.mark.slow
def test_basicsr_vimeo_loaders_read_train_and_validation(tmp_path: Path,
                                                         film_720p: VideoFixture) -> None:
    """layout = "basicsr": Vimeo90KDataset reads every training septuplet from each format's
    meta_info.txt; VideoTestVimeo90KDataset reads the validation ones from Val/ with
    meta_info_val.txt; LQ frame i is the bicubic downscale of GT frame i."""
    code, cfg, out = run(write_config(tmp_path, film_720p[0], top='layout = "basicsr"',
                                      general=6, toon=3, general_val=2, toon_val=1))
    assert code == 0, out
    for cat in cfg.categories:
        base = cfg.output_root / cat.path
        groups = [(base / d / "GT", base / d / "LR", base / d / "meta_info.txt")
                  for d in FORMAT_DIRS.values() if (base / d).is_dir()]
        train = [s for g in groups for s in vimeo_train(*g)]
        val = vimeo_train(base / "Val" / "GT", base / "Val" / "LR",
                          base / "Val" / "meta_info_val.txt")
        assert (len(train), len(val)) == (cat.target, cat.val_target)
        for gt4, lqs in train + val:
            for i, lq in enumerate(lqs, 1):
                gt = Image.open(gt4.with_name(f"im{i}.png"))
                expect = np.asarray(gt.resize((gt.width // 3, gt.height // 3),
                                              LR_FILTERS["bicubic"]))
                assert np.array_equal(np.asarray(Image.open(lq)), expect)
        assert not {k for k, _ in val} & {k for k, _ in train}


# --------------------------------------------------------------------------- migration


def make_old(cfg: Config) -> None:
    """Turn a state into what dsgen wrote before flat folders: schema 1, no split (and no
    degradation) columns, no holdout table, no recorded path scheme (its files are in
    per-video buckets)."""
    db = sqlite3.connect(cfg.state_dir / "dsgen.sqlite3", isolation_level=None)
    try:
        db.execute("ALTER TABLE slots DROP COLUMN split")
        db.execute("ALTER TABLE samples DROP COLUMN split")
        db.execute("ALTER TABLE samples DROP COLUMN degradation")
        db.execute("DROP TABLE holdout")
        db.execute("DELETE FROM meta WHERE key=?", (META_PATHS,))
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    finally:
        db.close()


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every dataset file (not hidden) → (bytes, link count)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_nlink)
            for p in sorted(root.rglob("*")) if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)}


@pytest.fixture(scope="module")
def flat_reference(tmp_path_factory: pytest.TempPathFactory, film_720p: VideoFixture
                   ) -> dict[str, tuple[bytes, int]]:
    """The dataset a fresh run writes in the default (flat, LR alias) layout, training only."""
    code, cfg, out = run(write_config(tmp_path_factory.mktemp("fresh"), film_720p[0],
                                      general_val=0, toon_val=0))
    assert code == 0, out
    return tree(cfg.output_root)


def old_dataset(d: Path, film: Path) -> Config:
    """A real dataset in the old form: written with per-video buckets of 10,000 and no
    aliases, its state turned back to schema 1."""
    top = "bucket_size = 10000\nlr_aliases = {}\n"
    code, cfg, out = run(write_config(d, film, top=top, general_val=0, toon_val=0))
    assert code == 0, out
    make_old(cfg)
    assert all(p.parent.name == "film" for p in cfg.output_root.rglob("*.png"))
    return cfg


@pytest.mark.slow
def test_an_old_bucketed_dataset_keeps_resuming_and_is_refused_in_another_layout(
        tmp_path: Path, film_720p: VideoFixture) -> None:
    """An old state in the default config: exit 2 naming `dsgen migrate`, nothing touched.
    With the old names configured it resumes: a raised target is met, new samples in the
    same bucket folders, the state migrated in place (split column, all training)."""
    cfg = old_dataset(tmp_path / "old", film_720p[0])
    before = tree(cfg.output_root)
    default = write_config(tmp_path / "old", film_720p[0], general_val=0, toon_val=0)
    proc = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config", str(default),
                           "--no-tui"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "dsgen migrate --config" in proc.stderr and "a folder per video" in proc.stderr
    assert tree(cfg.output_root) == before
    top = "bucket_size = 10000\nlr_aliases = {}\n"
    code, cfg, out = run(write_config(tmp_path / "old", film_720p[0], top=top, general=18,
                                      general_val=0, toon_val=0))
    assert code == 0, out
    st = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st))
    st.close()
    assert sum(r["category"] == "general" for r in recs) == 18
    assert {r["split"] for r in recs} == {"train"}
    assert all(p.parent.name == "film" for p in cfg.output_root.rglob("*.png"))
    assert set(before) <= set(tree(cfg.output_root))


@pytest.mark.slow
def test_migrate_moves_an_old_dataset_to_the_flat_layout_losing_nothing(
        tmp_path: Path, film_720p: VideoFixture,
        flat_reference: dict[str, tuple[bytes, int]]) -> None:
    """`dsgen migrate` (killed -9 at random moments, then run again) turns an old bucketed
    dataset into exactly what a fresh flat run writes: same files, same bytes, aliases as
    hard links, no bucket folder left; the manifest points at the files; `dsgen run`
    refuses while a migration is unfinished; a second migrate has nothing to do and
    `dsgen run` then resumes (nothing left to do); a migrate while another process holds the
    state dir is refused naming it."""
    cfg = old_dataset(tmp_path / "d", film_720p[0])
    cfg_path = write_config(tmp_path / "d", film_720p[0], general_val=0, toon_val=0)
    gts = sorted(p.read_bytes() for p in cfg.output_root.rglob("GT/*/*.png"))
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "migrate", "--config",
                                 str(cfg_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    st = State(cfg.state_dir)  # as a kill mid-migration leaves it: `dsgen run` waits for it
    st.set_meta(META_MIGRATING, PathScheme.of(load_config(cfg_path)).to_json())
    st.close()
    refused = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--config",
                              str(cfg_path), "--no-tui"], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "was interrupted" in refused.stderr, refused.stderr
    lock = StateLock.acquire(cfg.state_dir)  # a run holds the state: moving files must wait
    try:
        busy = subprocess.run([sys.executable, "-m", "dsgen.cli", "migrate", "--config",
                               str(cfg_path)], capture_output=True, text=True, timeout=120)
    finally:
        lock.release()
    assert busy.returncode == 2 and f"PID {os.getpid()}" in busy.stderr, busy.stderr
    done = subprocess.run([sys.executable, "-m", "dsgen.cli", "migrate", "--config",
                           str(cfg_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    cfg = load_config(cfg_path)
    assert tree(cfg.output_root) == flat_reference
    assert sorted(p.read_bytes() for p in cfg.output_root.rglob("GT/*.png")) == gts
    assert not [d for d in cfg.output_root.rglob("*") if d.is_dir() and d.name == "film"]
    st = State(cfg.state_dir, readonly=True)
    listed = {f for r in manifest_records(cfg, st) for f in [*r["files"], *r["aliases"]]}
    st.close()
    assert listed == {f for f in flat_reference if f.endswith(".png")}
    again = migrate(cfg)
    assert (again.moved, again.aliases_made, again.missing) == (0, 0, [])
    code, _, out = run(cfg_path)
    assert code == 0, out
    assert tree(cfg.output_root) == flat_reference
