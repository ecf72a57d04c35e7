"""The `dsgen` command as a user runs it: real subprocesses, real files, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dsgen.config import load_config
from dsgen.synth import SynthSpec

ROOT = Path(__file__).resolve().parents[1]


def dsgen(*args: str, cwd: Path | None = None, timeout: float = 300
          ) -> subprocess.CompletedProcess[str]:
    """Run `dsgen ARGS` (the installed module) and capture everything."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "dsgen.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def test_version() -> None:
    """`dsgen --version` names the program."""
    r = dsgen("--version")
    assert r.returncode == 0 and r.stdout.startswith("dsgen ")


def test_config_check_summarises_the_example() -> None:
    """The shipped example validates; the summary lists formats, targets and the videos."""
    r = dsgen("config", "check", str(ROOT / "etc" / "dsgen.toml"))
    assert r.returncode == 0, r.stderr
    assert "small_540" in r.stdout and "GT 720×405 → LR 240×135 (×3)" in r.stdout
    assert "target    80,000" in r.stdout
    assert "videos: 2 configured" in r.stdout
    assert "file not found" in r.stdout  # the example's paths do not exist here
    assert "✓ config is valid" in r.stdout


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ("scene_cut_threshold = 20.0", "scene_cut_treshold = 40", "extraction.scene_cut_treshold",
     "did you mean 'scene_cut_threshold'"),
    ('lr_filter = "bicubic"', 'lr_filter = "nearest"', "extraction.lr_filter",
     "'nearest' is not allowed"),
    ("frames_per_clip = 7", "frames_per_clip = 6", "extraction.frames_per_clip", "odd"),
    ("workers = 0", 'workers = "two"', "workers", "'two' is not an integer"),
    ("small_540 = 0.30,", "small_54 = 0.30,", "categories.space.formats.small_54",
     "did you mean 'small_540'"),
])
def test_config_check_errors_name_file_key_value_and_fix(tmp_path: Path, old: str, new: str,
                                                         key: str, words: str) -> None:
    """A bad key or value: exit code 2 and one message with the file, the key and the fix."""
    base = (ROOT / "etc" / "dsgen.toml").read_text()
    assert old in base
    bad = tmp_path / "bad.toml"
    bad.write_text(base.replace(old, new, 1))
    r = dsgen("config", "check", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {bad}: {key}:"), r.stderr
    assert words in r.stderr
    assert "\n  → " in r.stderr  # the fix
    assert "Traceback" not in r.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing config: exit 2 and a hint, not a traceback."""
    r = dsgen("run", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert "not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("command", "value", "words"), [
    ("run", "-1", "-1 is out of range: use 0 (one per CPU core) to 256"),
    ("daemon", "257", "257 is out of range"),
    ("demo", "-1", "-1 is out of range"),
    ("run", "two", "'two' is not a whole number"),
])
def test_workers_option_has_the_configs_range(tmp_path: Path, command: str, value: str,
                                              words: str) -> None:
    """`--workers` outside 0–256 (the config's range) is exit 2 with the reason, before
    anything is read or written; a value inside the range is taken."""
    args = ["--config", str(tmp_path / "c.toml")] if command != "demo" else [str(tmp_path / "d")]
    r = dsgen(command, *args, "--workers", value)
    assert r.returncode == 2
    assert f"argument --workers: {words}" in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # the demo folder was not even created


def test_config_without_videos_or_watch_folders_is_warned_about(tmp_path: Path) -> None:
    """A config naming no video and no watched folder is valid but warned about, by
    `config check` and at the start of `run` (which then ends short: exit 1)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('output_root = "out"\nstate_dir = "state"\n[metrics]\nenabled = false\n'
                   '[categories.general]\ntarget = 5\nformats = { small_540 = 1.0 }\n')
    r = dsgen("config", "check", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "⚠ no [[videos]] and no [[watch]] folders: there is nothing to extract" in r.stdout
    assert "✓ config is valid" in r.stdout
    r = dsgen("run", "--config", str(cfg), "--workers", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    warning = r.stdout.index("Warning: Nothing to extract")
    assert warning < r.stdout.index("Initializing")
    assert "add [[videos]] tables or [[watch]] folders" in r.stdout
    # With a video the warning is gone.
    cfg.write_text(cfg.read_text() + '[[videos]]\nname = "a"\npath = "a.mkv"\n'
                   'categories = ["general"]\n')
    assert "nothing to extract" not in dsgen("config", "check", str(cfg)).stdout


def test_config_import_writes_loadable_toml_and_notes(tmp_path: Path) -> None:
    """`config import` prints TOML that dsgen loads; notes go to stderr."""
    src = {
        "base_settings": {"max_workers": 4, "output_base_dir": str(tmp_path / "out"),
                          "scene_diff_threshold": 45, "lr_versions": ["5frames", "7frames"],
                          "base_frame_limit": 3000},
        "category_targets": {"general": 100},
        "format_config": {"general": {"medium_169": {"gt_size": [405, 720],
                                                     "lr_size": [135, 240],
                                                     "probability": 1.0}}},
        "videos": [{"name": "A", "path": "/v/a.mkv", "categories": {"general": 1.0}}],
        "surprise": 1,
    }
    js = tmp_path / "generator_config.json"
    js.write_text(json.dumps(src))
    r = dsgen("config", "import", str(js))
    assert r.returncode == 0, r.stderr
    toml = tmp_path / "dsgen.toml"
    toml.write_text(r.stdout)
    cfg = load_config(toml)
    assert cfg.format("medium_169").width == 720 and cfg.format("medium_169").height == 405
    assert "note: " in r.stderr and "surprise" in r.stderr
    assert tomllib.loads(r.stdout)["workers"] == 4


@pytest.mark.slow
def test_run_then_manifest_maps_every_sample_to_frames_and_region(
        tmp_path: Path, h264_cuts: tuple[Path, SynthSpec]) -> None:
    """`dsgen run` completes; `dsgen manifest` gives one documented record per sample."""
    path, _ = h264_cuts
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
output_root = "out"
state_dir = "state"
workers = 1
[formats.p]
width = 120
height = 120
scale = 4
[categories.general]
target = 6
formats = {{ p = 1.0 }}
[[videos]]
name = "clip"
path = "{path}"
categories = ["general"]
""")
    r = dsgen("run", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✅ Dataset generation complete!" in r.stdout
    assert "GENERAL: 6 / 6 images" in r.stdout
    m = dsgen("manifest", "--config", str(cfg))
    assert m.returncode == 0, m.stderr
    recs = [json.loads(line) for line in m.stdout.splitlines()]
    assert len(recs) == 6
    documented = (ROOT / "docs" / "manifest.md").read_text()
    for rec in recs:
        for field in rec:
            assert f"`{field}`" in documented, field
        assert rec["frame_indices"] == list(range(rec["frame_indices"][0],
                                                  rec["frame_indices"][0] + 7))
        assert len(rec["frame_pts"]) == 7
        assert all((tmp_path / "out" / f).is_file() for f in rec["files"])
        assert rec["crop_box"]["w"] == 120 and rec["crop_box"]["h"] == 120


@pytest.mark.slow
def test_demo_produces_a_dataset_and_a_second_run_resumes(tmp_path: Path) -> None:
    """`dsgen demo DIR` as a new user runs it: a real dataset with a validation split in each
    category (Val/GT paired with Val/LR) and degraded LR in one; running again has nothing
    to do."""
    r = dsgen("demo", str(tmp_path / "demo"), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "✅ Dataset generation complete!" in r.stdout
    root = tmp_path / "demo" / "dataset"
    for cat in ("Universal/Mastermodell/Learn", "Space/SpaceModel/Learn", "Toon/ToonModel/Learn"):
        assert (root / cat / "dataset.json").is_file()
        assert list((root / cat).glob("*/GT/*.png"))  # flat: what the trainers glob
        val = sorted(p.name for p in (root / cat / "Val" / "GT").glob("*.png"))
        assert val and val == sorted(p.name for p in (root / cat / "Val" / "LR").glob("*.png"))
    manifest = dsgen("manifest", "--config", str(tmp_path / "demo" / "dsgen.toml"))
    assert '"realbasicvsr"' in manifest.stdout  # the demo shows degraded LR too
    assert "tone-mapped to BT.709 SDR" in r.stdout
    assert "SAR 64:45" in r.stdout and "inside bars" in r.stdout
    again = dsgen("demo", str(tmp_path / "demo"), timeout=600)
    assert again.returncode == 0
    assert "📍 Resuming" in again.stdout
