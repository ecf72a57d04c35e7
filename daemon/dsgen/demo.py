"""`dsgen demo`: synthetic SDR/HDR10/letterboxed/anamorphic videos through the full pipeline."""

from __future__ import annotations

import time
from pathlib import Path

from dsgen.config import load_config
from dsgen.engine import Engine
from dsgen.report import Reporter
from dsgen.synth import demo_specs, make_video

# Targets sized so the demo finishes in about a minute on 2 cores yet exercises
# every category, format mode, the HDR path, letterbox and anamorphic geometry.
DEMO_CONFIG = """\
# dsgen demo configuration (written by `dsgen demo`). Edit and re-run with:
#   dsgen run --config {dir}/dsgen.toml
output_root = "dataset"
state_dir = "state"
workers = {workers}
seed = 1
segment_slots = 8

[extraction]
edge_margin_seconds = 0.0

[formats.small_540]
width = 540
height = 540
scale = 3
dir = "Patches"

[formats.medium_169]
width = 720
height = 405
scale = 3
dir = "Patches_Medium169"

[formats.large_720]
width = 720
height = 720
scale = 3
dir = "Patches_Large"

[formats.full_frame_169]
width = 480
height = 270
scale = 3
dir = "Frames_Resized169"
mode = "resize"

[categories.general]
target = 20
path = "Universal/Mastermodell/Learn"
formats = {{ small_540 = 0.45, medium_169 = 0.35, large_720 = 0.20 }}

# Validation clips from held-out time ranges of each video, written to <path>/Val/…
# (what the trainers read), on top of the target. The demo's videos last 5 s: a guard band
# of 0.5 s (films: the default 5 s) leaves them room for training clips.
[categories.general.validation]
count = 4
guard_seconds = 0.5

[categories.space]
target = 8
path = "Space/SpaceModel/Learn"
formats = {{ small_540 = 0.5, full_frame_169 = 0.5 }}

[categories.space.validation]
count = 2
guard_seconds = 0.5

[categories.toon]
target = 7
path = "Toon/ToonModel/Learn"
formats = {{ small_540 = 0.65, medium_169 = 0.35 }}
# Half of the LR stacks degraded like real footage (blur, noise, a real video codec):
# docs/degradations.md; the manifest records every drawn parameter.
degradations = {{ none = 0.5, realbasicvsr = 0.5 }}

[categories.toon.validation]
count = 2
guard_seconds = 0.5

[[videos]]
name = "SDR H.264 1080p with cuts"
path = "videos/sdr_h264_1080p_cuts.mkv"
categories = {{ general = 1.0, space = 0.5 }}

[[videos]]
name = "HDR10 HEVC 10-bit 1080p"
path = "videos/hdr10_hevc_1080p_cuts.mkv"
categories = {{ general = 1.0, space = 1.0 }}

[[videos]]
name = "Scope 2.39 letterboxed"
path = "videos/scope_239_letterbox_1080p.mkv"
categories = ["general", "toon"]

[[videos]]
name = "PAL anamorphic MPEG-2"
path = "videos/pal_anamorphic_mpeg2.mkv"
categories = ["general", "toon"]
"""


def write_demo_inputs(directory: Path, workers: int, reporter: Reporter) -> Path:
    """Make the demo videos (once) and the demo config; return the config path."""
    videos = directory / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for spec in demo_specs():
        path = videos / f"{spec.name}{spec.suffix}"
        if path.exists():
            continue
        t0 = time.monotonic()
        make_video(path, spec)
        reporter.line(f"✓ Made {path.name} ({spec.codec}, {spec.width}×{spec.height}, "
                      f"{spec.n_frames} frames) in {time.monotonic() - t0:.1f} s")
    cfg_path = directory / "dsgen.toml"
    cfg_path.write_text(DEMO_CONFIG.format(dir=directory, workers=workers), encoding="utf-8")
    return cfg_path


def run_demo(directory: Path, workers: int = 0) -> int:
    """Build the demo inputs in `directory` and run the full pipeline on them."""
    ui = Reporter()
    directory = directory.resolve()
    ui.line(f"dsgen demo in {directory}")
    cfg_path = write_demo_inputs(directory, workers, ui)
    cfg = load_config(cfg_path)
    engine = Engine(cfg, ui)
    engine.install_signals()
    code = engine.run()
    ui.line(f"Dataset: {cfg.output_root}   Config: {cfg_path}")
    ui.line(f"Provenance: dsgen manifest --config {cfg_path}")
    return code
