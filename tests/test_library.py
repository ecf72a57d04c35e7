"""The library: a video seen twice (configured and in a watched folder) is one video."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dsgen.config import load_config
from dsgen.engine import Engine
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2

[formats.tiny]
width = 96
height = 96

[categories.alpha]
target = 6
formats = {{ tiny = 1.0 }}

[[videos]]
name = "Configured name"
path = "{video}"
categories = ["alpha"]

[[watch]]
path = "{folder}"
categories = ["alpha"]
settle_seconds = 0.0
"""


def test_a_configured_video_inside_a_watched_folder_is_one_video(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """The file is listed under its configured name only, also through a symlinked path;
    the other file of the folder is picked up under its watched name."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(h264_cuts[0], folder / "film.mkv")
    shutil.copy(h264_cuts[0], folder / "other.mkv")
    os.symlink(folder, tmp_path / "link")
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(CONFIG.format(video=tmp_path / "link" / "film.mkv", folder=folder))
    engine = Engine(load_config(cfg_path), Reporter(quiet=True))
    st = State(engine.cfg.state_dir)
    try:
        engine.library.start_watching(st)  # first sight of the files
        engine.library.scan_watched(st)  # stable since (settle_seconds = 0): queued
        names = [v.name for v in engine.library.video_cfgs()]
        assert names == ["Configured name", "other"]
        assert sorted(v.name for v in st.videos(probes=False)) == ["Configured name", "other"]
    finally:
        engine.library.stop_watching()
        st.close()
