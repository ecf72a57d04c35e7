"""Config fuzzing: no input gives a traceback or a hang.

Hundreds of random mutations of a valid config (keys deleted, values of the wrong type,
extreme numbers, unicode, NUL bytes, very long names and paths, special files) go through
`dsgen config check` in-process, a few through the real CLI and through `dsgen run`. Each
must end with exit 0 (the mutation is still a valid config) or exit 2 with a message that
names the config file and the key — never an exception escaping `main`, never a hang.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsgen.cli import main
from dsgen.synth import SynthSpec
from test_config import to_toml

VideoFixture = tuple[Path, SynthSpec]

# Mutations run in-process (each is one `dsgen config check`); override to explore more.
MUTATIONS = int(os.environ.get("DSGEN_FUZZ_MUTATIONS", "600"))
SEED = int(os.environ.get("DSGEN_FUZZ_SEED", "20261201"))
# A mutation that takes longer than this is a hang (a check takes milliseconds).
HANG_SECONDS = 10.0


class Hang(Exception):
    """The per-mutation timer fired."""


def base_doc(video: Path, special: dict[str, Path]) -> dict[str, Any]:
    """A valid config touching every section, with one real video and one missing."""
    return {
        "output_root": "out",
        "state_dir": "state",
        "workers": 2,
        "seed": 7,
        "png_compression": 3,
        "layout": "stacked",
        "segment_slots": 4,
        "status_file": ".generator_status.json",
        "status_seconds": 5.0,
        "extraction": {"frames_per_clip": 7, "lr_stacks": [5, 7], "scene_cut_threshold": 45.0,
                       "reference_height": 1080, "max_attempts": 10,
                       "retry_skip_seconds": 1.0, "low_success_warning": 0.8,
                       "lr_filter": "bicubic", "edge_margin_seconds": 0.0,
                       "quality": {"black_level": 12.0, "flat_frame_std": 4.0,
                                   "crop_min_std": 7.0, "crop_min_detail": 80.0,
                                   "crop_retries": 5}},
        "disk": {"min_free_gb": 1.0, "check_seconds": 30.0},
        "formats": {
            "small_540": {"width": 540, "height": 540, "scale": 3, "dir": "Patches"},
            "big": {"width": 1920, "height": 1080, "mode": "resize"},
        },
        "categories": {
            "general": {"target": 10, "path": "General/Learn",
                        "formats": {"small_540": 0.7, "big": 0.3}},
            "toon": {"target": 5, "formats": ["small_540"]},
        },
        "videos": [
            {"name": "Film A", "path": str(video), "categories": {"general": 2.0, "toon": 1}},
            {"name": "Film B", "path": "videos/missing.mkv", "categories": ["general"]},
        ],
        "watch": [{"path": str(special["dir"]), "categories": ["toon"], "recursive": True,
                   "extensions": [".mkv", "mp4"], "poll": False, "poll_seconds": 10.0,
                   "settle_seconds": 15.0, "prefix": "in/"}],
        "metrics": {"enabled": True, "address": "127.0.0.1", "port": 9478},
        "daemon": {"rescan_seconds": 60.0, "idle_seconds": 2.0, "reload_on_change": True},
    }


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in a document (tables, lists and their items)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for k in path[:-1]:
        node = node[k]
    return node


def hostile_values(rng: random.Random, special: dict[str, Path]) -> list[Any]:
    """Values no config should hold, and some it may."""
    long_name = "x" * rng.choice([255, 256, 300, 5000])
    return [
        None, True, False, 0, -1, 1, 2**31, 2**63 - 1, -(2**63), 10**30, 0.0, -0.0, 1e-300,
        1e308, -1e308, float("inf"), float("-inf"), float("nan"), "", " ", "\x00", "a\x00b",
        "ü", "名前", "🎬🎞️", "\u202e\u0301", "a..b", "..", ".", "/", "~", "~nosuchuser/x",
        "../../etc", "a/../../b", long_name, "/".join(["d" * 200] * 30), "a/" * 2100,
        str(special["file"]), str(special["dir"]), str(special["fifo"]), "/dev/null",
        "/dev/zero", "/proc/self/mem", [], [1], ["x"], [[]], {}, {"a": 1}, {"": ""},
        {"general": 0}, {"general": -1.0}, {"nosuch": 1.0}, ["general", "general"],
        "::1", "0.0.0.0", "a" * 64 + ".com", "-bad-.host", "exa mple",
    ]


def mutate(doc: dict[str, Any], rng: random.Random, special: dict[str, Path]) -> str:
    """Apply 1–3 random mutations in place; return what was done (for failure messages)."""
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = rng.choice(paths)
        parent = _parent(doc, path)
        kind = rng.choice(("delete", "value", "value", "value", "rename", "add", "dup"))
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "value":
            parent[path[-1]] = rng.choice(hostile_values(rng, special))
        elif kind == "rename" and isinstance(parent, dict):
            new = rng.choice(["", "\x00", "ü", "x" * 300, "name", "path", "target", "a.b",
                              path[-1] + "s", "formats", "categories"])
            parent[new] = parent.pop(path[-1])
        elif kind == "add" and isinstance(parent, dict):
            parent[rng.choice(["bogus", "name", "source", "\x00", "x" * 300])] = rng.choice(
                hostile_values(rng, special))
        elif kind == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        done.append(f"{kind} {'.'.join(map(str, path))}")
    return "; ".join(done)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than `seconds`."""
    def fire(_signum: int, _frame: Any) -> None:
        raise Hang
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_in_process(path: Path) -> tuple[int, str, str]:
    """`dsgen config check path` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["config", "check", str(path)])
    return code, out.getvalue(), err.getvalue()


def good_outcome(code: int, out: str, err: str, path: Path) -> str | None:
    """None when the outcome is one of the allowed ones, else what is wrong."""
    if code == 0:
        return None if "config is valid" in out else f"exit 0 without 'config is valid': {out}"
    if code != 2:
        return f"exit {code}: {err}"
    head = f"error: {path}: "
    if not err.startswith(head):
        return f"the message does not start with the file name: {err!r}"
    key = err[len(head):].split(": ", 1)[0]
    if not key.strip():
        return f"the message names no key: {err!r}"
    if "\n  → " not in err:
        return f"the message gives no fix: {err!r}"
    return None


@pytest.fixture
def special(tmp_path: Path) -> dict[str, Path]:
    """Things a path may point at: a plain file, a folder, a FIFO (opening it blocks)."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_dir").mkdir()
    os.mkfifo(tmp_path / "a_fifo")
    return {"file": tmp_path / "a_file", "dir": tmp_path / "a_dir", "fifo": tmp_path / "a_fifo"}


def test_random_config_mutations_never_crash_or_hang(
        tmp_path: Path, h264_cuts: VideoFixture, special: dict[str, Path]) -> None:
    """≥ 500 random mutations through `dsgen config check`: each exits 0 (still valid) or 2
    with `file: key: problem → fix`; no exception escapes and none runs past HANG_SECONDS."""
    rng = random.Random(SEED)
    tracebacks: list[str] = []
    hangs: list[str] = []
    bad: list[str] = []
    outcomes = {0: 0, 2: 0}
    for i in range(MUTATIONS):
        doc = base_doc(h264_cuts[0], special)
        what = mutate(doc, rng, special)
        try:
            text = to_toml(doc)
        except (TypeError, ValueError):  # e.g. None has no TOML form: try another
            continue
        path = tmp_path / f"m{i}.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            with deadline(HANG_SECONDS):
                code, out, err = check_in_process(path)
        except Hang:
            hangs.append(what)
            continue
        except BaseException as e:  # an escaped exception is the traceback a user would see
            tracebacks.append(f"{what}: {type(e).__name__}: {e}")
            continue
        problem = good_outcome(code, out, err, path)
        if problem:
            bad.append(f"{what}: {problem}")
        else:
            outcomes[code] += 1
        path.unlink()
    assert not tracebacks, "\n".join(tracebacks)
    assert not hangs, "\n".join(hangs)
    assert not bad, "\n".join(bad)
    assert sum(outcomes.values()) >= 500
    assert outcomes[0] > 0 and outcomes[2] > 0  # both kinds really occur


KNOWN_BAD = [
    # (what, key to set, value, key the error must name)
    ("metrics address with an empty label", ("metrics", "address"), "a..b", "metrics.address"),
    ("state_dir is an existing file", ("state_dir",), "@file", "state_dir"),
    ("output_root is an existing file", ("output_root",), "@file", "output_root"),
    ("category path with a NUL byte", ("categories", "toon", "path"), "To\x00on",
     "categories.toon.path"),
    ("category path too long for the filesystem", ("categories", "toon", "path"), "t" * 300,
     "categories.toon.path"),
    ("format folder too long", ("formats", "big", "dir"), "B" * 256, "formats.big.dir"),
    ("video path with a NUL byte", ("videos", 1, "path"), "a\x00b.mkv", "videos[1].path"),
    ("state_dir with a NUL byte", ("state_dir",), "st\x00ate", "state_dir"),
    ("category path is the temporary folder", ("categories", "toon", "path"), ".dsgen-tmp",
     "categories.toon.path"),
]


@pytest.mark.parametrize(("what", "keys", "value", "key"), KNOWN_BAD,
                         ids=[k[0] for k in KNOWN_BAD])
def test_inputs_that_once_crashed_run_are_refused_by_config_check_and_run(
        tmp_path: Path, h264_cuts: VideoFixture, special: dict[str, Path], what: str,
        keys: tuple[Any, ...], value: str, key: str) -> None:
    """Values that passed `config check` and then gave a traceback in `dsgen run` are refused
    by both (real CLI processes): exit 2, the message names the file and the key."""
    doc = base_doc(h264_cuts[0], special)
    del doc["watch"]
    doc["metrics"]["port"] = 0
    _parent(doc, keys)[keys[-1]] = str(special["file"]) if value == "@file" else value
    path = tmp_path / "dsgen.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    for cmd in (["config", "check", str(path)], ["run", "--no-tui", "--config", str(path)]):
        done = subprocess.run([sys.executable, "-m", "dsgen.cli", *cmd], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert "Traceback" not in done.stderr + done.stdout, (what, cmd, done.stderr)
        assert done.returncode == 2, (what, cmd, done.stdout, done.stderr)
        assert done.stderr.startswith(f"error: {path}: {key}: "), (what, cmd, done.stderr)


def test_a_few_mutations_through_the_real_cli(tmp_path: Path, h264_cuts: VideoFixture,
                                              special: dict[str, Path]) -> None:
    """The in-process check is what the console script does: a few random mutations in real
    `dsgen config check` processes end the same way (no traceback, exit 0 or 2)."""
    rng = random.Random(SEED + 1)
    for i in range(6):
        doc = base_doc(h264_cuts[0], special)
        what = mutate(doc, rng, special)
        try:
            text = to_toml(doc)
        except (TypeError, ValueError):
            continue
        path = tmp_path / f"c{i}.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        done = subprocess.run([sys.executable, "-m", "dsgen.cli", "config", "check", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, (what, done.stderr)
        assert good_outcome(done.returncode, done.stdout, done.stderr, path) is None, (
            what, done.returncode, done.stderr)


@pytest.mark.slow
def test_a_few_random_mutations_through_dsgen_run(tmp_path: Path, h264_cuts: VideoFixture,
                                                  special: dict[str, Path]) -> None:
    """Random mutations that `config check` accepts also start (and finish) a real
    `dsgen run` without a traceback: exit 0/1 (done, or short), or 2 with a clear message."""
    rng = random.Random(SEED + 2)
    ran = 0
    for i in range(40):
        if ran == 3:
            break
        doc = base_doc(h264_cuts[0], special)
        doc["metrics"]["port"] = 0
        doc["workers"] = 1
        what = mutate(doc, rng, special)
        try:
            text = to_toml(doc)
        except (TypeError, ValueError):
            continue
        work = tmp_path / f"r{i}"
        work.mkdir()
        path = work / "dsgen.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with deadline(HANG_SECONDS):
            code, _, _ = check_in_process(path)
        if code != 0:
            continue
        ran += 1
        done = subprocess.run([sys.executable, "-m", "dsgen.cli", "run", "--no-tui",
                               "--workers", "1", "--config", str(path)], capture_output=True,
                              text=True, timeout=300, cwd=work)
        assert "Traceback" not in done.stdout + done.stderr, (what, done.stderr)
        assert done.returncode in (0, 1, 2), (what, done.returncode, done.stderr)
        if done.returncode == 2:
            assert done.stderr.startswith("error: "), (what, done.stderr)
    assert ran == 3
