"""dsgen.writer: output layouts (stacked and BasicSR), atomic PNG writes that roll back on a
full disk, and deterministic dataset descriptions.

Everything is written to real directories; the full-disk tests use a real, tiny tmpfs (they
need root to mount it and are skipped with the reason otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dsgen.config import Config, config_from_dict
from dsgen.errors import ConfigError
from dsgen.model import TRAIN, VAL
from dsgen.writer import (
    BUCKET_FILES,
    DATASET_JSON,
    LEGACY_SCHEME,
    META_INFO,
    META_INFO_VAL,
    TMP_DIR,
    DiskFull,
    PathScheme,
    alias_paths,
    bucket,
    clear_tmp,
    dataset_description,
    encode_png,
    link_file,
    sample_files,
    sample_name,
    tmp_dir,
    write_descriptions,
    write_meta_info,
    write_png,
    write_sample,
)
from helpers import mount_tmpfs


def make_cfg(root: Path, **top: Any) -> Config:
    extraction = top.pop("extraction", {})
    general_mix = top.pop("general_mix", None)
    doc: dict[str, Any] = {
        "output_root": str(root / "out"), "state_dir": str(root / "state"), **top,
        "extraction": extraction,
        "formats": {
            "small_540": {"width": 540, "height": 540, "dir": "Patches"},
            "medium_169": {"width": 720, "height": 405, "dir": "Patches_Medium169",
                           "mode": "resize"},
        },
        "categories": {
            "general": {"target": 5, "path": "Universal/Mastermodell/Learn",
                        "formats": {"small_540": 0.45, "medium_169": 0.55}},
            "toon": {"target": 3, "formats": ["small_540"]},
        },
    }
    if general_mix is not None:
        doc["categories"]["general"].update(general_mix)
    return config_from_dict(doc, root / "dsgen.toml")


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- layouts


def test_stacked_sample_files_are_flat_by_default(tmp_path: Path) -> None:
    """Stacked layout, default: GT, LR_5frames, LR_7frames directly under
    <root>/<category path>/<format dir> (the trainers glob `GT/*.png` without recursing),
    the same `patch_<slug>_idx<slot>` name in every folder; validation samples of the
    category go to `<category path>/Val/…` in the same form."""
    cfg = make_cfg(tmp_path)
    cat, fmt = cfg.category("general"), cfg.format("small_540")
    learn = tmp_path / "out" / "Universal" / "Mastermodell" / "Learn"
    name = "patch_Avatar_2009_idx000042.png"
    assert sample_files(cfg, cat, fmt, "Avatar_2009", 42) == [
        learn / "Patches" / d / name for d in ("GT", "LR_5frames", "LR_7frames")]
    assert sample_files(cfg, cat, cfg.format("medium_169"), "Avatar_2009", 42, VAL) == [
        learn / "Val" / d / name for d in ("GT", "LR_5frames", "LR_7frames")]
    assert sample_name("v", 1_234_567) == "patch_v_idx1234567"
    three = make_cfg(tmp_path, extraction={"lr_stacks": [3, 5, 7]})
    assert [p.parts[-2] for p in sample_files(three, cat, fmt, "v", 1)] == [
        "GT", "LR_3frames", "LR_5frames", "LR_7frames"]


def test_bucket_folders_are_opt_in(tmp_path: Path) -> None:
    """bucket_size = N puts each video's samples in `<slug>/`, `<slug>-1/`, … of N slots;
    the scheme of datasets written before flat folders is N = 10,000 without aliases."""
    cfg = make_cfg(tmp_path, bucket_size=100)
    fmt = cfg.format("small_540")
    for slot, b in ((0, "v"), (99, "v"), (100, "v-1"), (250, "v-2")):
        files = sample_files(cfg, cfg.category("toon"), fmt, "v", slot)
        assert {p.parent.name for p in files} == {b}
        assert {p.name for p in files} == {f"{sample_name('v', slot)}.png"}
        assert files[0].parents[2] == tmp_path / "out" / "toon" / "Patches"
    assert BUCKET_FILES == 10_000 and PathScheme(10_000, ()) == LEGACY_SCHEME
    for slot, b in ((9_999, "v"), (10_000, "v-1"), (25_000, "v-2")):
        assert bucket("v", slot) == b
        old = sample_files(cfg, cfg.category("toon"), fmt, "v", slot, scheme=LEGACY_SCHEME)
        assert {p.parent.name for p in old} == {b}


def test_lr_aliases_default_config_and_paths(tmp_path: Path) -> None:
    """`LR` names the 5-frame stack by default (what core/dataset.py reads); `{}` writes
    none; an alias sits beside the stack's folder, bucket included; bad aliases are errors
    naming the key."""
    assert make_cfg(tmp_path).lr_aliases == (("LR", 5),)
    assert make_cfg(tmp_path, lr_aliases={}).lr_aliases == ()
    assert make_cfg(tmp_path, extraction={"lr_stacks": [7]}).lr_aliases == ()
    assert make_cfg(tmp_path, layout="basicsr").lr_aliases == ()
    two = PathScheme(0, (("LR", 5), ("LR7", 7)))
    files = ["c/Patches/GT/x.png", "c/Patches/LR_5frames/x.png", "c/Patches/LR_7frames/x.png"]
    assert alias_paths(two, files) == [("c/Patches/LR/x.png", files[1]),
                                       ("c/Patches/LR7/x.png", files[2])]
    assert alias_paths(PathScheme(5, (("LR", 5),)), ["c/Val/LR_5frames/v-1/x.png"]) == [
        ("c/Val/LR/v-1/x.png", "c/Val/LR_5frames/v-1/x.png")]
    for bad, key in (({"GT": 5}, "lr_aliases.GT"), ({"LR": 3}, "lr_aliases.LR"),
                     ({"a/b": 5}, "lr_aliases.a/b"), ({"LR_7frames": 7}, "lr_aliases.LR_7frames")):
        with pytest.raises(ConfigError) as info:
            make_cfg(tmp_path, lr_aliases=bad)
        assert info.value.key == key
    with pytest.raises(ConfigError) as info:
        make_cfg(tmp_path, layout="basicsr", lr_aliases={"LR": 5})
    assert info.value.key == "lr_aliases"
    with pytest.raises(ConfigError) as info:
        make_cfg(tmp_path, layout="basicsr", bucket_size=10)
    assert info.value.key == "bucket_size"


def test_write_sample_hard_links_aliases_and_rolls_back_whole(tmp_path: Path) -> None:
    """An alias is a hard link to the stack's file (same inode, no second copy); when a
    write fails, the files and aliases this sample already made are all removed."""
    cfg = make_cfg(tmp_path)
    data = encode_png(noise(30, 10), 1)
    files = [("c/GT/x.png", data), ("c/LR_5frames/x.png", data)]
    copies = write_sample(cfg, files, [("c/LR/x.png", "c/LR_5frames/x.png")])
    root = cfg.output_root
    assert copies == 0
    assert os.path.samefile(root / "c/LR/x.png", root / "c/LR_5frames/x.png")
    assert (root / "c/LR_5frames/x.png").stat().st_nlink == 2
    with pytest.raises(FileNotFoundError):  # the alias of a file that does not exist
        write_sample(cfg, [("d/GT/y.png", data)], [("d/LR/y.png", "d/LR_5frames/y.png")])
    assert not (root / "d" / "GT" / "y.png").exists() and not (root / "d" / "LR").exists()


# ext2/ext4 allow 32,000/65,000 names per file: one more link is EMLINK.
EXT_LINK_LIMIT = 65_000


def test_link_file_falls_back_to_a_copy_when_the_filesystem_refuses_a_link(
        tmp_path: Path) -> None:
    """When the filesystem refuses another hard link (here a real ext2 image whose file has
    all the names the driver allows: EMLINK), the alias is a copy with the same bytes,
    link_file says so, and nothing is left in the temp folder. Needs root to mount."""
    img = tmp_path / "ext2.img"
    with open(img, "wb") as f:
        f.truncate(32 * 1024 * 1024)
    made = subprocess.run(["mkfs.ext2", "-q", "-F", str(img)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext2 failed: {made.stderr.strip()}")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "ext2", "-o", "loop", str(img), str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = f"cannot mount an ext2 image: {done.stderr.strip()} (needs root)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    try:
        target = mnt / "LR_5frames" / "a.png"
        target.parent.mkdir()
        target.write_bytes(b"stack bytes")
        with pytest.raises(OSError) as full:  # spread over folders: ext2 folders are lists
            for i in range(EXT_LINK_LIMIT + 1):
                d = f"{mnt}/names/{i // 1000}"
                if i % 1000 == 0:
                    os.makedirs(d)
                os.link(target, f"{d}/{i}")
        assert full.value.errno == errno.EMLINK
        assert link_file(target, mnt / "LR" / "a.png", mnt / "tmp") is True
        assert (mnt / "LR" / "a.png").read_bytes() == b"stack bytes"
        assert not os.path.samefile(mnt / "LR" / "a.png", target)
        assert not any((mnt / "tmp").iterdir())
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_basicsr_sample_files(tmp_path: Path) -> None:
    """BasicSR layout: Vimeo-90K septuplets GT/<clip>/<seq>/im1..im7.png then LR/…, the clip
    being the video's slug and the sequence the zero-padded slot id."""
    cfg = make_cfg(tmp_path, layout="basicsr")
    cat, fmt = cfg.category("general"), cfg.format("medium_169")
    files = sample_files(cfg, cat, fmt, "Film_A", 7)
    base = tmp_path / "out" / "Universal" / "Mastermodell" / "Learn" / "Patches_Medium169"
    assert files == [base / kind / "Film_A" / "000007" / f"im{i}.png"
                     for kind in ("GT", "LR") for i in range(1, 8)]
    # Other clip lengths are refused with this layout (test_config: BasicSR reads im1–im7).
    assert len(set(sample_files(cfg, cat, fmt, "Film_A", 12_345))) == 14
    learn = base.parent
    assert sample_files(cfg, cat, fmt, "Film_A", 7, VAL) == [
        learn / "Val" / kind / "Film_A" / "000007" / f"im{i}.png"
        for kind in ("GT", "LR") for i in range(1, 8)]


def test_clean_lr_files_follow_the_degraded_ones(tmp_path: Path) -> None:
    """With write_clean_lr the clean LR goes to its own folders after the degraded LR:
    LR_<k>frames_clean (stacked) and LR_clean (basicsr), same names; without it nothing
    changes."""
    base = tmp_path / "out" / "toon" / "Patches"
    stacked = make_cfg(tmp_path, extraction={"write_clean_lr": True})
    files = sample_files(stacked, stacked.category("toon"), stacked.format("small_540"), "v", 3)
    assert [p.relative_to(base).parts[0] for p in files] == [
        "GT", "LR_5frames", "LR_7frames", "LR_5frames_clean", "LR_7frames_clean"]
    assert {p.name for p in files} == {"patch_v_idx000003.png"}
    bsr = make_cfg(tmp_path, layout="basicsr", extraction={"write_clean_lr": True})
    files = sample_files(bsr, bsr.category("toon"), bsr.format("small_540"), "v", 3)
    assert files == [base / kind / "v" / "000003" / f"im{i}.png"
                     for kind in ("GT", "LR", "LR_clean") for i in range(1, 8)]
    plain = make_cfg(tmp_path)
    assert len(sample_files(plain, plain.category("toon"), plain.format("small_540"), "v",
                            3)) == 3


# --------------------------------------------------------------------------- write_png


def test_write_png_round_trip_and_clean_tmp(tmp_path: Path) -> None:
    """write_png creates the folders, the final file decodes to the same pixels, its size is
    returned, and the temporary folder holds nothing afterwards."""
    cfg = make_cfg(tmp_path)
    final = sample_files(cfg, cfg.category("toon"), cfg.format("small_540"), "v", 3)[0]
    img = noise(60, 80)
    size = write_png(final, img, 3, tmp_dir(cfg))
    assert size == final.stat().st_size > 0
    assert np.array_equal(np.asarray(Image.open(final)), img)
    assert tmp_dir(cfg) == cfg.output_root / TMP_DIR
    assert list(tmp_dir(cfg).iterdir()) == []
    grey2 = noise(10, 12)[..., 0]
    write_png(final, grey2, 0, tmp_dir(cfg))  # replaces the old file
    assert np.array_equal(np.asarray(Image.open(final)), grey2)
    assert list(tmp_dir(cfg).iterdir()) == []


def test_write_png_final_name_never_holds_a_partial_file(tmp_path: Path) -> None:
    """While one thread rewrites the same final file again and again, a reader that opens it
    at any moment always finds one complete PNG (the old or the new), never a part."""
    final = tmp_path / "out" / "a" / "x.png"
    tmp = tmp_path / "out" / TMP_DIR
    images = [noise(160, 200, seed) for seed in range(4)]
    write_png(final, images[0], 1, tmp)
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                with Image.open(final) as im:
                    arr = np.asarray(im)
            except FileNotFoundError:
                problems.append("final name missing")
                continue
            except Exception as e:  # a truncated or half-written file
                problems.append(f"{type(e).__name__}: {e}")
                continue
            reads += 1
            if not any(np.array_equal(arr, img) for img in images):
                problems.append("pixels of no written image")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            write_png(final, images[i % 4], 1, tmp)
    finally:
        stop.set()
        t.join()
    assert problems == []
    assert reads > 0
    assert list(tmp.iterdir()) == []


def test_write_png_other_errors_leave_nothing(tmp_path: Path) -> None:
    """An error that is not a full disk (here: the target folder is a file) is raised as is,
    not as DiskFull, with no temporary file left and nothing under the final name."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocker").write_text("not a folder")
    final = out / "blocker" / "x.png"
    with pytest.raises(OSError) as info:
        write_png(final, noise(8, 8), 3, out / TMP_DIR)
    assert not isinstance(info.value, DiskFull)
    assert list((out / TMP_DIR).iterdir()) == []


@contextlib.contextmanager
def tiny_fs(where: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at `where` (root only); skipped, with the reason, if not allowed."""
    where.mkdir()
    mount_tmpfs(where, options)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_write_png_disk_full_is_rolled_back(tmp_path: Path) -> None:
    """On a real full filesystem (200 kB tmpfs), writing an incompressible image raises
    DiskFull; no file exists under the new final name, an existing final file keeps its old
    bytes, and no temporary file is left."""
    with tiny_fs(tmp_path / "mnt", "size=200k") as mnt:
        tmp = mnt / TMP_DIR
        old = mnt / "GT" / "old.png"
        write_png(old, noise(16, 16), 3, tmp)
        before = old.read_bytes()
        big = noise(200, 400, seed=1)  # 240 kB of noise: no PNG level shrinks it enough
        new = mnt / "GT" / "new.png"
        with pytest.raises(DiskFull):
            write_png(new, big, 3, tmp)
        assert not new.exists()
        with pytest.raises(DiskFull):
            write_png(old, big, 9, tmp)
        assert old.read_bytes() == before
        assert list(tmp.iterdir()) == []
        assert write_png(new, noise(16, 16), 3, tmp) > 0  # space is still usable after


def test_write_png_disk_full_while_making_folders(tmp_path: Path) -> None:
    """With no free inode left, even creating the temporary or the target folder fails with
    ENOSPC: that is DiskFull too (not an unexpected error), with nothing left behind."""
    with tiny_fs(tmp_path / "mnt", "size=1m,nr_inodes=16") as mnt:
        filler = mnt / "filler"
        filler.mkdir()
        for i in range(100):
            try:
                (filler / str(i)).touch()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
        else:
            pytest.fail("the inode limit was never reached")
        with pytest.raises(DiskFull):
            write_png(mnt / "GT" / "a.png", noise(8, 8), 3, mnt / TMP_DIR)
        assert not (mnt / "GT").exists()
        (filler / "0").unlink()  # one inode back: the temp folder, but no file in it
        with pytest.raises(DiskFull):
            write_png(mnt / "GT" / "a.png", noise(8, 8), 3, mnt / TMP_DIR)
        assert not (mnt / "GT" / "a.png").exists()
        assert list((mnt / TMP_DIR).iterdir()) == []


def test_clear_tmp(tmp_path: Path) -> None:
    """clear_tmp removes what interrupted writes left in the temporary folder and says how
    many; it is a no-op (0) when there is no such folder or nothing in it."""
    cfg = make_cfg(tmp_path)
    assert clear_tmp(cfg) == 0
    tmp = tmp_dir(cfg)
    tmp.mkdir(parents=True)
    assert clear_tmp(cfg) == 0
    for i in range(3):
        (tmp / f"{os.getpid()}-{i}.png").write_bytes(b"\x89PNG partial")
    assert clear_tmp(cfg) == 3
    assert list(tmp.iterdir()) == []
    assert clear_tmp(cfg) == 0


# --------------------------------------------------------------------------- descriptions


def test_dataset_json_is_deterministic_and_complete(tmp_path: Path) -> None:
    """write_descriptions writes one dataset.json per category root: the same bytes every
    time (and from a config loaded again), no timestamps, and what a trainer needs."""
    cfg = make_cfg(tmp_path)
    write_descriptions(cfg)
    paths = [cfg.output_root / c.path / DATASET_JSON for c in cfg.categories]
    first = [p.read_bytes() for p in paths]
    write_descriptions(cfg)
    write_descriptions(make_cfg(tmp_path))
    assert [p.read_bytes() for p in paths] == first
    desc = json.loads(first[0])
    assert first[0].endswith(b"\n")
    assert desc == dataset_description(cfg, cfg.category("general"))
    text = first[0].decode()
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text)
    assert not any(k in text.lower() for k in ("time", "date", "created", "host", "pid"))
    assert desc["category"] == "general" and desc["target"] == 5
    assert desc["layout"] == "stacked" and desc["frames_per_clip"] == 7
    assert desc["gt_frame"] == 4 and desc["lr_filter"] == "bicubic" and desc["seed"] == 1
    assert desc["formats"] == {
        "small_540": {"dir": "Patches", "gt_size": [540, 540], "lr_size": [180, 180],
                      "scale": 3, "mode": "crop", "weight": 0.45},
        "medium_169": {"dir": "Patches_Medium169", "gt_size": [720, 405],
                       "lr_size": [240, 135], "scale": 3, "mode": "resize", "weight": 0.55},
    }
    assert desc["lr_stacks"] == {
        "LR_5frames": {"frames": 5, "stacking": "vertical", "first_frame": 2},
        "LR_7frames": {"frames": 7, "stacking": "vertical", "first_frame": 1}}
    toon = json.loads(first[1])
    assert list(toon["formats"]) == ["small_540"]
    leftovers = [p for p in cfg.output_root.rglob("*") if p.is_file() and p.name != DATASET_JSON]
    assert leftovers == []
    basicsr = dataset_description(make_cfg(tmp_path, layout="basicsr"), cfg.category("toon"))
    assert basicsr["meta_info"] == f"<format dir>/{META_INFO}"
    assert "lr_stacks" not in basicsr


def test_dataset_json_describes_the_degradations_of_each_format(tmp_path: Path) -> None:
    """A category with degradations says, per format, which templates (weights) its LR
    holds, with their stages, and where the clean LR is; a clean-only category's
    dataset.json has no such key (its bytes are what they were before degradations)."""
    mix = {"degradations": {"realbasicvsr": 1.0, "none": 3.0},
           "format_degradations": {"medium_169": {"toon_sd": 1.0}}}
    cfg = make_cfg(tmp_path, general_mix=mix, extraction={"write_clean_lr": True})
    d = dataset_description(cfg, cfg.category("general"))["degradations"]
    assert isinstance(d, dict)
    assert d["mix"] == {"small_540": {"realbasicvsr": 1.0, "none": 3.0},
                        "medium_169": {"toon_sd": 1.0}}
    assert sorted(d["templates"]) == ["realbasicvsr", "toon_sd"]
    stages = d["templates"]["toon_sd"]["stages"]
    assert [s["kind"] for s in stages] == ["blur", "noise", "jpeg", "chroma", "colour"]
    assert stages[2] == {"kind": "jpeg", "probability": 0.95, "quality": [50, 72]}
    assert "codec" in [s["kind"] for s in d["templates"]["realbasicvsr"]["stages"]]
    assert d["clean_lr"] == ["LR_5frames_clean", "LR_7frames_clean"]
    json.dumps(d)  # JSON-able as written
    toon = dataset_description(cfg, cfg.category("toon"))["degradations"]
    assert isinstance(toon, dict)  # clean only, but its clean LR folders are written too
    assert toon["mix"] == {"small_540": {"none": 1.0}} and toon["templates"] == {}
    clean = make_cfg(tmp_path)
    assert "degradations" not in dataset_description(clean, clean.category("general"))
    bsr = make_cfg(tmp_path, layout="basicsr", general_mix=mix,
                   extraction={"write_clean_lr": True})
    bd = dataset_description(bsr, bsr.category("general"))["degradations"]
    assert isinstance(bd, dict) and bd["clean_lr"] == ["LR_clean"]


def test_meta_info_lines_sorted_per_format(tmp_path: Path) -> None:
    """write_meta_info writes `<clip>/<seq> 7 (H,W,3)` lines (GT height first), sorted, one
    file per category format folder; a folder without samples gets no file, and an existing
    file is rewritten (emptied) when its samples are gone."""
    cfg = make_cfg(tmp_path, layout="basicsr")
    rows = [("general", "medium_169", "b", 3, TRAIN), ("general", "small_540", "b", 12, TRAIN),
            ("general", "small_540", "a", 500, TRAIN), ("general", "small_540", "b", 2, TRAIN),
            ("toon", "small_540", "a", 1, TRAIN), ("general", "small_540", "a", 7, VAL),
            ("general", "medium_169", "a", 4, VAL)]
    write_meta_info(cfg, rows)
    learn = cfg.output_root / "Universal" / "Mastermodell" / "Learn"
    assert (learn / "Patches" / META_INFO).read_text() == (
        "a/000500 7 (540,540,3)\nb/000002 7 (540,540,3)\nb/000012 7 (540,540,3)\n")
    assert (learn / "Patches_Medium169" / META_INFO).read_text() == "b/000003 7 (405,720,3)\n"
    assert (cfg.output_root / "toon" / "Patches" / META_INFO).read_text() == (
        "a/000001 7 (540,540,3)\n")
    # validation: its own file in its own folder, every format's lines together
    assert (learn / "Val" / META_INFO_VAL).read_text() == (
        "a/000004 7 (405,720,3)\na/000007 7 (540,540,3)\n")
    assert not (cfg.output_root / "toon" / "Val").exists()
    first = (learn / "Patches" / META_INFO).read_bytes()
    write_meta_info(cfg, list(reversed(rows)))
    assert (learn / "Patches" / META_INFO).read_bytes() == first
    write_meta_info(cfg, [("toon", "small_540", "a", 1, TRAIN)])
    assert (learn / "Patches" / META_INFO).read_text() == ""
    assert (learn / "Val" / META_INFO_VAL).read_text() == ""
    assert (cfg.output_root / "toon" / "Patches" / META_INFO).read_text() != ""
    fresh = make_cfg(tmp_path / "other", layout="basicsr")
    write_meta_info(fresh, [("toon", "small_540", "a", 1, TRAIN)])
    assert not (fresh.output_root / "Universal").exists()
    for line in (cfg.output_root / "toon" / "Patches" / META_INFO).read_text().splitlines():
        assert re.fullmatch(r"[0-9A-Za-z_]+/\d{6,} 7 \(\d+,\d+,3\)", line)


def test_encode_png_round_trips_exactly_and_deterministically() -> None:
    """dsgen's PNG encoder: Pillow decodes exactly the input; same bytes every time; any level."""
    import io

    from PIL import Image

    from dsgen.writer import encode_png

    rng = np.random.default_rng(7)
    for shape in [(540, 540, 3), (1260, 180, 3), (1, 1, 3), (7, 5, 3)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        for level in (0, 1, 3, 9):
            data = encode_png(img, level)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
            assert encode_png(img, level) == data
    smooth = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (64, 256, 3))
    assert len(encode_png(np.ascontiguousarray(smooth), 3)) < len(encode_png(smooth, 0)) / 10
