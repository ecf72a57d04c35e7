"""Damage is data: damaged videos are named as damaged, with what and where, and give only
clean samples from the part that is fine.

The damaged files are real encodes damaged the way files get damaged: cut at half their
bytes (an interrupted copy), an MP4 whose first bytes are gone (its sample table still points
at the old offsets), and ~200 KB of random bytes written over the middle (a bad sector range).
Each is reported with its own reason and time; windows touching the damage never become
samples (every sample's frames decode from the damaged file exactly as from the good one);
the rest of the file still gives samples.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from dsgen.config import Config, load_config
from dsgen.engine import Engine
from dsgen.manifest import manifest_records
from dsgen.model import DAMAGED
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.synth import SynthSpec, make_video

GOOD = SynthSpec("damage_src", "h264", 640, 360, 288, cuts=(100, 200), gop=48, bframes=2,
                 seed=501)  # 12 s at 24 fps
GARBAGE_BYTES = 200_000

CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
seed = 9
segment_slots = 4

[formats.tiny]
width = 96
height = 96
scale = 3

[categories.alpha]
target = {target}
formats = {{ tiny = 1.0 }}

[[videos]]
name = "{name}"
path = "{path}"
categories = ["alpha"]
"""


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The good 12 s encode as MKV and MP4, and their damaged copies."""
    d = tmp_path_factory.mktemp("damage")
    out: dict[str, Path] = {}
    for suffix, container in ((".mkv", "mkv"), (".mp4", "mp4")):
        spec = SynthSpec(**{**GOOD.__dict__, "container": container})
        good = make_video(d / f"good{suffix}", spec)
        data = good.read_bytes()
        out[f"good{suffix}"] = good
        half = d / f"half{suffix}"
        half.write_bytes(data[: len(data) // 2])
        out[f"half{suffix}"] = half
        garbage = bytearray(data)
        mid = len(garbage) // 2
        garbage[mid:mid + GARBAGE_BYTES] = np.random.default_rng(7).bytes(GARBAGE_BYTES)
        out[f"garbage{suffix}"] = d / f"garbage{suffix}"
        out[f"garbage{suffix}"].write_bytes(bytes(garbage))
    mp4 = out["good.mp4"].read_bytes()
    mdat = mp4.index(b"mdat") - 4  # ftyp and free atoms before it: cut exactly those
    out["headcut.mp4"] = d / "headcut.mp4"
    out["headcut.mp4"].write_bytes(mp4[mdat:])
    return out


@functools.cache
def decoded(path: str) -> dict[int, str]:
    """pts → digest of every frame a plain sequential decode of `path` gives (errors and
    all: a damaged file decodes to whatever its decoder makes of it)."""
    out: dict[int, str] = {}
    with av.open(path) as c:
        s = c.streams.video[0]
        for packet in c.demux(s):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for f in frames:
                if f.pts is not None:
                    a = f.to_ndarray()
                    out[int(f.pts)] = hashlib.sha1(a.tobytes()).hexdigest()
    return out


def run(tmp_path: Path, name: str, path: Path, target: int) -> tuple[int, Config, str]:
    cfg_path = tmp_path / "dsgen.toml"
    cfg_path.write_text(CONFIG.format(target=target, name=name, path=path))
    cfg = load_config(cfg_path)
    buf = io.StringIO()
    code = Engine(cfg, Reporter(out=buf)).run()
    return code, cfg, buf.getvalue()


def video_damage(cfg: Config, name: str) -> list[dict[str, Any]]:
    st = State(cfg.state_dir, readonly=True)
    try:
        row = next(v for v in st.videos(probes=False) if v.name == name)
        return row.damage or []
    finally:
        st.close()


def assert_samples_are_clean(cfg: Config, damaged: Path, good: Path) -> int:
    """Every sample's 7 frames decode from the damaged file exactly as from the good one."""
    st = State(cfg.state_dir, readonly=True)
    recs = list(manifest_records(cfg, st))
    st.close()
    bad, ref = decoded(str(damaged)), decoded(str(good))
    for rec in recs:
        for p in rec["frame_pts"]:
            assert p in bad and bad[p] == ref[p], (rec["sample"], p)
    return len(recs)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_garbage_in_the_middle_is_damage_not_scene_cuts(tmp_path: Path, suffix: str,
                                                        sources: dict[str, Path]) -> None:
    """200 KB of random bytes over the middle: the video is reported damaged with the time
    range (around the middle of its 12 s), attempts there are `damaged` (never scene cuts),
    and every sample is a clean window from elsewhere; the target is still met."""
    code, cfg, out = run(tmp_path, "garbage", sources[f"garbage{suffix}"], 12)
    assert code == 0, out
    damage = video_damage(cfg, "garbage")
    assert damage, out
    assert all(3.0 < d["first_s"] <= d["last_s"] < 9.5 for d in damage), damage
    assert "damaged" in out.lower() and "garbage" in out
    st = State(cfg.state_dir, readonly=True)
    outcomes = st.outcome_counts()
    st.close()
    assert outcomes.get(DAMAGED, 0) >= 1, outcomes
    assert assert_samples_are_clean(cfg, sources[f"garbage{suffix}"],
                                    sources[f"good{suffix}"]) == 12


def test_truncated_file_is_used_for_what_is_readable(tmp_path: Path,
                                                     sources: dict[str, Path]) -> None:
    """An MKV cut at half its bytes: a warning with both times (the header's 12 s, the ≈ 6 s
    that are there), the video still gives samples — all from the readable part, all clean —
    and its damage record says `truncated` from the readable end to 12 s."""
    code, cfg, out = run(tmp_path, "half", sources["half.mkv"], 8)
    assert code == 0, out
    assert "Video truncated" in out
    block = out[out.index("Video truncated"):].split("\n\n")[0]
    assert "12.0 s" in block and "5." in block, block  # the header's time and the real one
    damage = video_damage(cfg, "half")
    cut = [d for d in damage if d["what"] == "truncated"]
    assert cut and 4.0 < cut[0]["first_s"] < 7.0 and cut[0]["last_s"] == pytest.approx(12.0)
    assert assert_samples_are_clean(cfg, sources["half.mkv"], sources["good.mkv"]) == 8
    st = State(cfg.state_dir, readonly=True)
    for rec in manifest_records(cfg, st):
        assert rec["start_seconds"] < cut[0]["first_s"]
    st.close()


def test_head_cut_mp4_is_reported_damaged_with_its_time(tmp_path: Path,
                                                        sources: dict[str, Path]) -> None:
    """An MP4 whose first bytes (ftyp, free) are gone still opens — its sample table is
    intact — but every sample offset now points 40 bytes off: no frame decodes. It is
    reported as damaged over its whole runtime (0–12 s), gives no sample, and the run ends."""
    code, cfg, out = run(tmp_path, "headcut", sources["headcut.mp4"], 4)
    assert code == 1, out  # the category is short: the only video gives nothing
    assert "Video: headcut" in out and "damaged" in out.lower()
    damage = video_damage(cfg, "headcut")
    assert damage and damage[0]["first_s"] == pytest.approx(0.0, abs=0.1)
    assert damage[0]["last_s"] == pytest.approx(12.0, abs=0.1)
    st = State(cfg.state_dir, readonly=True)
    row = next(v for v in st.videos(probes=False) if v.name == "headcut")
    assert row.status == "failed" and row.stage == DAMAGED and "0.0" in (row.reason or "")
    assert st.category_totals() == {}
    st.close()


def test_damaged_videos_are_listed_in_status_and_metrics(tmp_path: Path,
                                                         sources: dict[str, Path]) -> None:
    """The status file and `dsgen status --json` list the damaged video with its damage."""
    code, cfg, out = run(tmp_path, "garbage", sources["garbage.mkv"], 10)
    assert code == 0, out
    status = json.loads(cfg.status_path.read_text())
    listed = status["dsgen"]["damaged_videos"]
    assert [v["name"] for v in listed] == ["garbage"] and listed[0]["damage"]
    from dsgen.snapshot import from_local, to_json
    from dsgen.tui import plain_lines

    snap = from_local(cfg)
    assert [d.name for d in snap.checkpoints.damaged] == ["garbage"]
    assert to_json(snap)["checkpoints"]["damaged"][0]["name"] == "garbage"
    assert any(line.startswith("  damaged: garbage: ") for line in plain_lines(snap))
