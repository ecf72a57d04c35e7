"""dsgen.planner: the per-video note for formats larger than the picture, and validation
slots drawn from the validation mix re-weighted among the formats that fit (the training
mix's re-weighting: tests/test_plan.py::test_place_round_formats_only_fitting)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsgen.config import Config, config_from_dict
from dsgen.model import VideoProbe
from dsgen.patches import geometry
from dsgen.plan import fitting_formats, place_round
from dsgen.planner import format_notes
from dsgen.probe import probe_video
from dsgen.split import VAL, Region
from dsgen.synth import SynthSpec

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
    long = dataclasses.replace(probe, frame_pts=pts, key_pts=pts[::24].copy())
    val = place_round(cfg, long, "a", {"alpha": 300}, [], 0, 0, 0, Region(VAL, (1,)))
    assert {f for s in val for _, f in s.formats} == {"medium"}
    assert {s.split for s in val} == {VAL}
    train = place_round(cfg, long, "a", {"alpha": 900}, [], 0, 0, 0)
    fmts = Counter(f for s in train for _, f in s.formats)
    assert set(fmts) == {"small", "medium"} and 0.25 < fmts["small"] / 900 < 0.42
