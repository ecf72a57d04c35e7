"""Session-wide synthetic videos: each is encoded once with real PyAV and shared by all tests.

Every video fixture returns ``(path, spec)``; the spec says where the cuts, bars, flat frames
and colour tags are, so tests compare decoded output against it. All of them together take
about 2 s to build on a 2-core machine.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from dsgen.synth import SynthSpec, make_bad_files, make_video

VideoFixture = tuple[Path, SynthSpec]

# H.264 SDR BT.709, 4 s at 24 fps, two cuts, closed 24-frame GOPs with 2 B-frames.
H264_CUTS = SynthSpec("h264_cuts", "h264", 640, 360, 96, cuts=(30, 61), gop=24, bframes=2, seed=101)
# HEVC Main10 HDR10: PQ, BT.2020, limited range, mastering display + MaxCLL SEI.
HEVC10_HDR = SynthSpec(
    "hevc10_hdr", "hevc10", 640, 360, 64, cuts=(33,), hdr=True, gop=32, bframes=2, seed=102
)
# PAL DVD-style anamorphic 16:9 (SAR 64/45) MPEG-2 in an MPEG program stream (.mpg).
MPEG2_ANAMORPHIC = SynthSpec(
    "mpeg2_anamorphic",
    "mpeg2",
    720,
    576,
    60,
    fps=Fraction(25),
    cuts=(30,),
    sar=Fraction(64, 45),
    gop=12,
    container="mpg",
    seed=103,
)
# 1280x720 with 96-row bars top and bottom (picture 1280x528 = 2.42:1) in MP4.
# 96 is macroblock-aligned, so the bars decode within ±1 of Y=16.
LETTERBOXED = SynthSpec(
    "letterboxed",
    "h264",
    1280,
    720,
    60,
    cuts=(30,),
    letterbox=(96, 0),
    gop=24,
    container="mp4",
    seed=104,
)
# Even but not a multiple of 16 or 8 in either direction (x264 pads to 1280x720 internally).
ODD_SIZE = SynthSpec("odd_size", "h264", 1278, 718, 48, cuts=(24,), gop=24, seed=105)
# 20 s of 720p H.264 with four cuts: room for a validation split beside training
# (held-out blocks and their guard bands need more runtime than the short clips above).
FILM_720P = SynthSpec("film_720p", "h264", 1280, 720, 480, cuts=(100, 190, 300, 410), gop=48,
                      seed=106)


def _build(directory: Path, spec: SynthSpec) -> VideoFixture:
    """Encode ``spec`` into ``directory`` under its own name."""
    return make_video(directory / f"{spec.name}{spec.suffix}", spec), spec


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for all session-scoped synthetic videos."""
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def h264_cuts(synth_dir: Path) -> VideoFixture:
    """H.264 640x360, 96 frames, cuts at 30 and 61, GOP 24, 2 B-frames (.mkv)."""
    return _build(synth_dir, H264_CUTS)


@pytest.fixture(scope="session")
def hevc10_hdr(synth_dir: Path) -> VideoFixture:
    """HEVC Main10 HDR10 (PQ/BT.2020) 640x360, 64 frames, cut at 33 (.mkv)."""
    return _build(synth_dir, HEVC10_HDR)


@pytest.fixture(scope="session")
def mpeg2_anamorphic(synth_dir: Path) -> VideoFixture:
    """MPEG-2 720x576 SAR 64/45 at 25 fps, 60 frames, cut at 30 (.mpg program stream)."""
    return _build(synth_dir, MPEG2_ANAMORPHIC)


@pytest.fixture(scope="session")
def letterboxed(synth_dir: Path) -> VideoFixture:
    """H.264 1280x720 with 96-row black bars top and bottom, 60 frames, cut at 30 (.mp4)."""
    return _build(synth_dir, LETTERBOXED)


@pytest.fixture(scope="session")
def odd_size(synth_dir: Path) -> VideoFixture:
    """H.264 1278x718 (not macroblock-aligned), 48 frames, cut at 24 (.mkv)."""
    return _build(synth_dir, ODD_SIZE)


@pytest.fixture(scope="session")
def film_720p(synth_dir: Path) -> VideoFixture:
    """H.264 1280x720, 480 frames (20 s at 24 fps), cuts at 100, 190, 300, 410 (.mkv)."""
    return _build(synth_dir, FILM_720P)


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Broken inputs: truncated, zero_byte, random_bytes, audio_only, three_frames, missing."""
    return make_bad_files(tmp_path_factory.mktemp("bad"))
