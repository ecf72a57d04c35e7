"""dsgen.split: the validation split — planning keys, held-out blocks and guard bands, the
config keys — and whole runs on real encoded video checked from the manifest: counts are
exact, and no training frame of a video is closer than the guard band to one of its
validation frames (kill -9 and resume with validation: tests/test_engine.py)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgen.config import Config, VideoCfg, config_from_dict, load_config
from dsgen.engine import Engine
from dsgen.errors import ConfigError
from dsgen.manifest import manifest_records
from dsgen.report import Reporter
from dsgen.split import (
    EVERYWHERE,
    MAX_HOLDOUT,
    TRAIN,
    VAL,
    Holdout,
    Region,
    capacities,
    guard_frames,
    holdout_share,
    key,
    make_holdout,
    parse,
    regions,
    targets,
    video_keys,
)
from dsgen.state import State
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]
FPS = 24.0


def doc(**validation: Any) -> dict[str, Any]:
    """A config document with one category `general` (target 100) and its validation."""
    return {"output_root": "out", "state_dir": "state",
            "formats": {"small": {"width": 96, "height": 96}, "wide": {"width": 192,
                                                                       "height": 108}},
            "categories": {"general": {"target": 100, "formats": {"small": 1, "wide": 1},
                                       "validation": validation},
                           "toon": {"target": 10, "formats": ["small"]}},
            "videos": [{"name": "a", "path": "a.mkv", "categories": ["general", "toon"]},
                       {"name": "b", "path": "b.mkv", "categories": ["general"]}]}


def cfg_of(**validation: Any) -> Config:
    return config_from_dict(doc(**validation), Path("/nonexistent/dsgen.toml"))


# --------------------------------------------------------------------------- config


def test_validation_size_keys_and_formats() -> None:
    """fraction is of the target and rounds up (0.07 × 100 = 7 exactly, any fraction ≥ 1);
    count is exact; the default format is the category's first; keys are per split."""
    assert cfg_of(fraction=0.07).category("general").val_target == 7
    assert cfg_of(fraction=0.001).category("general").val_target == 1
    assert cfg_of(count=12).category("general").val_target == 12
    c = cfg_of().category("general")
    assert c.val_target == 0 and c.val_formats == (("small", 1.0),)
    cfg = cfg_of(fraction=0.1, formats=["wide"])
    assert cfg.category("general").val_formats == (("wide", 1.0),)
    assert targets(cfg) == {"general": 100, "general@val": 10, "toon": 10}
    assert key("general", VAL) == "general@val" and parse("general@val") == ("general", VAL)
    assert parse("general") == ("general", TRAIN)
    assert video_keys(cfg, cfg.videos[0]) == ["general", "general@val", "toon"]


@pytest.mark.parametrize(("validation", "bad_key", "words"), [
    ({"fraction": 0.1, "count": 3}, "categories.general.validation.count", "fraction"),
    ({"fraction": 1.5}, "categories.general.validation.fraction", "out of range"),
    ({"count": -1}, "categories.general.validation.count", "out of range"),
    ({"guard_seconds": -1.0}, "categories.general.validation.guard_seconds", "out of range"),
    ({"count": 2, "videos": ["c"]}, "categories.general.validation.videos[0]", "no video"),
    ({"count": 2, "videos": ["a", "a"]}, "categories.general.validation.videos", "twice"),
    ({"count": 2, "dir": "small"}, "categories.general.validation.dir", "folder of format"),
    ({"count": 2, "dir": "../x"}, "categories.general.validation.dir", "relative path"),
    ({"count": 2, "formats": ["nope"]}, "categories.general.validation.formats.nope",
     "unknown format"),
    ({"cuont": 2}, "categories.general.validation.cuont", "did you mean 'count'"),
])
def test_bad_validation_tables_name_the_key(validation: dict[str, Any], bad_key: str,
                                            words: str) -> None:
    """Each mistake in [categories.<name>.validation] is a ConfigError on that key."""
    with pytest.raises(ConfigError) as info:
        cfg_of(**validation)
    assert info.value.key == bad_key
    assert words in str(info.value)


def test_held_out_videos_must_feed_the_category_and_names_keep_the_key_free() -> None:
    """A held-out video that does not feed the category, or a category name with '@', is
    refused with the key and the fix."""
    d = doc(count=2, videos=["a"])
    d["categories"]["toon"]["validation"] = {"count": 1, "videos": ["b"]}
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, Path("/x/dsgen.toml"))
    assert info.value.key == "categories.toon.validation.videos[0]"
    assert "does not feed toon" in str(info.value)
    d = doc()
    d["categories"]["a@val"] = {"target": 1, "formats": ["small"]}
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, Path("/x/dsgen.toml"))
    assert info.value.key == "categories.'a@val'"


def test_held_out_videos_give_only_validation_and_the_others_only_training() -> None:
    """With `videos`, a category's validation keys exist only on those videos, its
    training keys only on the others; no video of it holds out blocks."""
    cfg = cfg_of(count=4, videos=["b"])
    a, b = cfg.videos
    assert video_keys(cfg, a) == ["general", "toon"]
    assert video_keys(cfg, b) == ["general@val"]
    assert holdout_share(cfg, a) == 0 and make_holdout(cfg, a, 10_000, FPS) is None


# --------------------------------------------------------------------------- blocks


def test_holdout_blocks_are_deterministic_evenly_spread_and_sized() -> None:
    """Blocks come from the seed and the name only, are evenly spread (one per period),
    inside the usable runtime, and hold twice the validation share (at most half)."""
    cfg = cfg_of(fraction=0.05, guard_seconds=2.0)
    v = cfg.videos[0]
    n = 2 * 3600 * 24  # a two-hour film
    h = make_holdout(cfg, v, n, FPS)
    assert h is not None and h == make_holdout(cfg, v, n, FPS)
    other = make_holdout(cfg, VideoCfg("another", v.path, v.categories), n, FPS)
    assert other is not None and other.blocks != h.blocks
    assert h.guard == 48
    share = holdout_share(cfg, v)
    assert share == pytest.approx(2 * 5 / 105)
    held = sum(b1 - b0 for b0, b1 in h.blocks)
    assert held == pytest.approx(n * share, rel=0.01)
    period = n / len(h.blocks)
    for i, (b0, b1) in enumerate(h.blocks):
        assert i * period <= b0 < b1 <= (i + 1) * period
    assert Holdout.from_json(h.to_json()) == h
    assert holdout_share(cfg_of(count=1000), v) == MAX_HOLDOUT


@settings(max_examples=80, deadline=None)
@given(n_frames=st.integers(60, 4000), share_count=st.integers(1, 80),
       guard=st.floats(0.0, 3.0), window=st.sampled_from([3, 5, 7]),
       used=st.lists(st.integers(0, 4000), max_size=6))
def test_no_allowed_training_window_comes_near_a_validation_window(
        n_frames: int, share_count: int, guard: float, window: int, used: list[int]) -> None:
    """Whatever the video length, share, guard and clip length: every training window the
    regions allow keeps at least the guard band (≥ 1 frame) from every frame of every
    validation window they allow, and validation windows lie inside the blocks and keep
    the guard from training windows tried before the blocks existed (`used`)."""
    d = doc(count=share_count, guard_seconds=guard)
    d["extraction"] = {"frames_per_clip": window, "lr_stacks": [window]}
    cfg = config_from_dict(d, Path("/x/dsgen.toml"))
    h = make_holdout(cfg, cfg.videos[0], n_frames, FPS)
    assert h is not None
    used_starts = [(u, TRAIN) for u in used if u + window <= n_frames]
    groups = regions(cfg, cfg.videos[0], h, {"general": 1, "general@val": 1}, used_starts)
    masks = {r.split: r.allowed(n_frames, window) for r, _ in groups}
    train = np.flatnonzero(masks[TRAIN])
    if not h.blocks:
        assert VAL not in masks
        return
    val = np.flatnonzero(masks[VAL])
    g = guard_frames(guard, FPS)
    assert h.guard == g
    for v in val:
        assert any(b0 <= v and v + window <= b1 for b0, b1 in h.blocks)
    for s in [*train, *(u for u, _ in used_starts)]:  # window [s, s + window)
        if val.size:
            gap = np.maximum(val - (s + window - 1), s - (val + window - 1))
            assert gap.min() >= g, (s, val[np.argmin(gap)], g)


def test_without_validation_training_may_start_anywhere() -> None:
    """No validation anywhere: no blocks, and the training region is the whole video (the
    planner's draws are those of a dataset without a split)."""
    cfg = cfg_of()
    assert make_holdout(cfg, cfg.videos[0], 1000, FPS) is None
    (region, deficits), = regions(cfg, cfg.videos[0], None, {"general": 3}, [])
    assert region == Region(TRAIN, (), None, False) and deficits == {"general": 3}
    assert EVERYWHERE.allowed(1000, 7) is None and region.allowed(1000, 7) is None


def test_capacities_split_the_runtime_between_the_splits() -> None:
    """The planner's capacity estimate: training loses the blocks and their guard bands,
    validation gets the blocks' windows, a held-out video all of its windows."""
    cfg = cfg_of(count=10, guard_seconds=1.0)
    a = cfg.videos[0]
    frames = 24 * 600
    cap = capacities(cfg, a, frames, FPS, frames / FPS, frames // 7)
    h = make_holdout(cfg, a, frames, FPS)
    assert h is not None
    val_windows = sum((b1 - b0) // 7 for b0, b1 in h.blocks)
    assert cap["general@val"][1] == val_windows
    lost = sum(b1 - b0 for b0, b1 in h.blocks) + 2 * len(h.blocks) * (h.guard - 1)
    assert cap["general"][1] == pytest.approx((frames - lost) / 7, abs=len(h.blocks) + 1)
    assert cap["toon"] == cap["general"]
    held = cfg_of(count=3, videos=["b"])
    assert capacities(held, held.videos[1], frames, FPS, 600.0, 2000) == {
        "general@val": (600.0, 2000)}


# --------------------------------------------------------------------------- runs

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 5
segment_slots = 4

[formats.tiny]
width = 96
height = 96

[formats.wide]
width = 192
height = 108

[categories.alpha]
target = {alpha}
formats = {{ tiny = 0.5, wide = 0.5 }}
{alpha_val}
[categories.beta]
target = 6
formats = {{ tiny = 1.0 }}
{beta_val}
[[videos]]
name = "film"
path = "{film}"
categories = ["alpha", "beta"]

[[videos]]
name = "short"
path = "{short}"
categories = ["alpha", "beta"]
"""


def write(d: Path, film: Path, short: Path, *, alpha: int = 16, alpha_val: str = "",
          beta_val: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "dsgen.toml").write_text(CONFIG.format(alpha=alpha, alpha_val=alpha_val,
                                                beta_val=beta_val, film=film, short=short))
    return d / "dsgen.toml"


def run(cfg_path: Path) -> tuple[int, Config, str, list[dict[str, Any]]]:
    cfg = load_config(cfg_path)
    buf = io.StringIO()
    code = Engine(cfg, Reporter(out=buf)).run()
    st_ = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st_))
    st_.close()
    return code, cfg, buf.getvalue(), recs


def closest(recs: list[dict[str, Any]], video: str) -> float:
    """Seconds between the nearest training and validation frames of one video."""
    frames = {sp: np.asarray([f for r in recs if r["video"] == video and r["split"] == sp
                              for f in r["frame_indices"]]) for sp in (TRAIN, VAL)}
    if not frames[TRAIN].size or not frames[VAL].size:
        return math.inf
    return float(np.abs(frames[TRAIN][:, None] - frames[VAL][None, :]).min()) / FPS


@pytest.mark.slow
def test_validation_from_held_out_ranges_keeps_the_guard_band(
        tmp_path: Path, film_720p: VideoFixture, h264_cuts: VideoFixture) -> None:
    """Two categories with validation from held-out ranges: counts are exact per split, the
    Val folders hold exactly the validation samples, and in every video no training frame
    is within the guard band of a validation frame (read from the manifest)."""
    code, cfg, out, recs = run(write(
        tmp_path, film_720p[0], h264_cuts[0],
        alpha_val="validation = { count = 4, guard_seconds = 0.75 }",
        beta_val="validation = { fraction = 0.3, guard_seconds = 0.75 }"))
    assert code == 0, out
    count = {(c, sp): sum(r["category"] == c and r["split"] == sp for r in recs)
             for c in ("alpha", "beta") for sp in (TRAIN, VAL)}
    assert count == {("alpha", TRAIN): 16, ("alpha", VAL): 4, ("beta", TRAIN): 6,
                     ("beta", VAL): 2}
    for c in cfg.categories:
        val_files = sorted(p.name for p in (cfg.output_root / c.path / "Val" / "GT").iterdir())
        assert val_files == sorted(f"{r['sample']}.png" for r in recs
                                   if r["category"] == c.name and r["split"] == VAL)
    for video in ("film", "short"):
        assert closest(recs, video) >= 0.75
    assert {r["video"] for r in recs if r["split"] == VAL} <= {"film", "short"}
    assert "4 / 4 validation" in out and "2 / 2 validation" in out


@pytest.mark.slow
def test_held_out_videos_give_all_the_validation(tmp_path: Path, film_720p: VideoFixture,
                                                 h264_cuts: VideoFixture) -> None:
    """validation.videos = ["short"]: every alpha sample of `short` is validation, every
    alpha validation sample is from `short`, and the film holds out nothing."""
    code, cfg, out, recs = run(write(tmp_path, film_720p[0], h264_cuts[0],
                                     alpha_val='validation = { count = 3, videos = ["short"] }'))
    assert code == 0, out
    alpha = [r for r in recs if r["category"] == "alpha"]
    assert {r["video"] for r in alpha if r["split"] == VAL} == {"short"}
    assert {r["split"] for r in alpha if r["video"] == "short"} == {VAL}
    assert sum(r["split"] == VAL for r in alpha) == 3
    assert sum(r["split"] == TRAIN for r in alpha) == 16
    st_ = State(cfg.state_dir, readonly=True)
    assert st_.db.execute("SELECT COUNT(*) FROM holdout").fetchone()[0] == 0
    st_.close()


@pytest.mark.slow
def test_validation_added_to_an_existing_dataset_keeps_away_from_its_training(
        tmp_path: Path, film_720p: VideoFixture, h264_cuts: VideoFixture) -> None:
    """A dataset written without validation gets a split later: its training samples stay
    as they were, validation is added on top with the guard band kept from them, and the
    blocks, once stored, do not move when the validation size changes again."""
    code, _, out, before = run(write(tmp_path, film_720p[0], h264_cuts[0]))
    assert code == 0, out
    val = "validation = {{ count = {n}, guard_seconds = 0.5 }}"
    code, cfg, out, recs = run(write(tmp_path, film_720p[0], h264_cuts[0],
                                     alpha_val=val.format(n=3)))
    assert code == 0, out
    assert [r for r in recs if r["split"] == TRAIN] == before
    assert sum(r["split"] == VAL for r in recs) == 3
    for video in ("film", "short"):
        assert closest(recs, video) >= 0.5
    st_ = State(cfg.state_dir, readonly=True)
    blocks = dict(st_.db.execute("SELECT video_id, holdout FROM holdout").fetchall())
    st_.close()
    assert blocks
    code, cfg, out, recs = run(write(tmp_path, film_720p[0], h264_cuts[0],
                                     alpha_val=val.format(n=5)))
    assert code in (0, 1), out  # the blocks may not hold two more; then it says so
    st_ = State(cfg.state_dir, readonly=True)
    assert dict(st_.db.execute("SELECT video_id, holdout FROM holdout").fetchall()) == blocks
    st_.close()
    for video in ("film", "short"):
        assert closest(recs, video) >= 0.5
    assert json.loads(cfg.status_path.read_text())["dsgen"]["validation"]["alpha"][
        "target"] == 5
