"""`dsgen monitor` / `dsgen status` beside real runs, and the live dashboard's keys, in tmux."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dsgen.config import load_config
from dsgen.state import State
from dsgen.synth import SynthSpec, make_video

PY = sys.executable
# Long enough (about 10 s on 2 cores with one worker) for the monitor to see it grow.
CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 1
seed = 3
segment_slots = 3
status_seconds = 0.5

[metrics]
enabled = {metrics}
port = {port}

[formats.tiny]
width = 96
height = 96
scale = 3

[formats.wide]
width = 384
height = 216
scale = 3

[categories.alpha]
target = 50
formats = {{ tiny = 0.5, wide = 0.5 }}

[categories.beta]
target = 25
formats = {{ wide = 1.0 }}

[[videos]]
name = "long h264"
path = "{a}"
categories = ["alpha", "beta"]

[[videos]]
name = "long hevc"
path = "{b}"
categories = ["alpha", "beta"]
"""
TOTAL = 75

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """20 s H.264 720p with 4 cuts and 10 s HEVC 10-bit HDR (as in test_engine)."""
    d = tmp_path_factory.mktemp("long")
    a = SynthSpec("long_h264", "h264", 1280, 720, 480, cuts=(100, 190, 300, 410), gop=48,
                  seed=201)
    b = SynthSpec("long_hevc", "hevc10", 960, 540, 240, cuts=(120,), hdr=True, gop=48, seed=202)
    return make_video(d / "a.mkv", a), make_video(d / "b.mkv", b)


def _config(d: Path, videos: tuple[Path, Path], port: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "dsgen.toml").write_text(CONFIG.format(a=videos[0], b=videos[1], port=port,
                                                metrics="true" if port else "false"))
    return d / "dsgen.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(state_dir: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{state_dir / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _dsgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "dsgen.cli", *args], capture_output=True, text=True,
                          timeout=60)


class Tmux:
    """A private tmux server (its own socket): panes we can read and type into."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]
        tmpdir = Path(os.environ.get("TMUX_TMPDIR", "/tmp"))
        self.socket = tmpdir / f"tmux-{os.getuid()}" / name

    def new(self, session: str, command: str, width: int, height: int) -> None:
        """Start `command` in a detached session of the given size."""
        subprocess.run([*self.base, "new-session", "-d", "-s", session, "-x", str(width),
                        "-y", str(height), command], check=True,
                       env=dict(os.environ, TERM="xterm-256color"))

    def screen(self, session: str) -> str:
        """What the pane shows now."""
        r = subprocess.run([*self.base, "capture-pane", "-p", "-t", session],
                           capture_output=True, text=True)
        return r.stdout

    def keys(self, session: str, *keys: str) -> None:
        """Type into the pane."""
        subprocess.run([*self.base, "send-keys", "-t", session, *keys], check=True)

    def wait_for(self, session: str, test: Callable[[str], bool], timeout: float = 60) -> str:
        """The first screen that passes `test`."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen(session)
            if test(s):
                return s
            assert time.monotonic() < deadline, s
            time.sleep(0.2)

    def kill(self) -> None:
        """Stop the server and everything in it; remove its socket."""
        subprocess.run([*self.base, "kill-server"], capture_output=True)
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(f"dsgen-test-{os.getpid()}-{tmp_path.name}")
    yield t
    t.kill()


TOTAL_ROW = re.compile(r"│ TOTAL\s+│\s+│\s+([\d,]+) │\s+([\d,]+) │")


@needs_tmux
@pytest.mark.slow
def test_monitor_beside_a_live_run_sees_it_grow_and_never_blocks_it(
        tmp_path: Path, long_videos: tuple[Path, Path], tmux: Tmux) -> None:
    """RUNNING with growing numbers while `dsgen run` writes; the run ends exact, unlocked."""
    port = _free_port()
    cfg_path = _config(tmp_path, long_videos, port)
    cfg = load_config(cfg_path)
    run = subprocess.Popen([PY, "-m", "dsgen.cli", "run", "--config", str(cfg_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tmux.new("mon", f"{PY} -m dsgen.cli monitor --config {cfg_path} --interval 0.5; "
                    "echo MONITOR_EXIT=$?; sleep 60", 120, 50)
    totals: list[int] = []
    running = ""
    remote: dict[str, Any] = {}
    while run.poll() is None:
        screen = tmux.screen("mon")
        m = TOTAL_ROW.search(screen)
        if "Status: RUNNING" in screen and m:
            totals.append(int(m[1].replace(",", "")))
            running = screen
            if not remote:  # the same run seen through its /metrics endpoint
                r = _dsgen("status", "--url", f"http://127.0.0.1:{port}", "--json")
                remote = json.loads(r.stdout) if r.returncode == 0 else {}
        time.sleep(0.25)
    out, _ = run.communicate()
    assert run.returncode == 0, out
    assert "database is locked" not in out and "Traceback" not in out
    assert _samples(cfg.state_dir) == TOTAL  # exact: the reader never disturbed the writer
    assert running, "the monitor never showed the run as RUNNING"
    assert totals == sorted(totals) and len(set(totals)) >= 3, totals
    assert "📊 OVERALL PROGRESS" in running and "🎬 CURRENT VIDEO" in running
    assert remote.get("source") == "http" and remote.get("status") == "RUNNING", remote
    assert [(c["name"], c["target"]) for c in remote["categories"]] == [("alpha", 50),
                                                                         ("beta", 25)]
    done = tmux.wait_for("mon", lambda s: "Status: FINISHED" in s, timeout=10)
    m = TOTAL_ROW.search(done)
    assert m and (m[1], m[2]) == (str(TOTAL), str(TOTAL)), done
    tmux.keys("mon", "q")
    tmux.wait_for("mon", lambda s: "MONITOR_EXIT=0" in s, timeout=10)

    # `dsgen status --json` after the run: FINISHED, numbers equal to the state.
    r = _dsgen("status", "--config", str(cfg_path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    st = State(cfg.state_dir, readonly=True)
    totals_db = st.category_totals()
    st.close()
    assert doc["schema"] == "dsgen.status/1" and doc["status"] == "FINISHED"
    assert {c["name"]: (c["images"], c["bytes"]) for c in doc["categories"]} == totals_db
    assert {c["name"]: c["target"] for c in doc["categories"]} == {"alpha": 50, "beta": 25}
    assert (doc["total_videos"], doc["completed_videos"], doc["images"]) == (2, 2, TOTAL)
    assert doc["eta_seconds"] == 0 and doc["current"] == []
    text = _dsgen("status", "--state-dir", str(cfg.state_dir))
    assert text.stdout.startswith("dsgen FINISHED — videos 2/2 done"), text.stdout


def _run_command(cfg_path: Path) -> str:
    """`dsgen run` as a user types it in a terminal (it starts the live dashboard there)."""
    return f"{PY} -m dsgen.cli run --config {cfg_path}"


@needs_tmux
@pytest.mark.slow
def test_q_in_the_dashboard_exits_130_restores_the_terminal_and_resumes(
        tmp_path: Path, long_videos: tuple[Path, Path], tmux: Tmux) -> None:
    """The live dashboard in a real terminal: q → 130, terminal sane; a rerun completes."""
    cfg_path = _config(tmp_path, long_videos)
    cfg = load_config(cfg_path)
    cmd = _run_command(cfg_path)
    tmux.new("run", f"{cmd}; echo EXIT=$?; stty -a; exec bash --norc", 100, 45)
    deadline = time.monotonic() + 60
    while _samples(cfg.state_dir) < 5:
        assert time.monotonic() < deadline, tmux.screen("run")
        time.sleep(0.05)
    live = tmux.wait_for("run", lambda s: "Status: RUNNING" in s and "TOTAL" in s)
    assert "DSGEN — MULTI-CATEGORY DATASET GENERATOR" in live and "[p] Pause / resume" in live
    tmux.keys("run", "q")
    # `stty -a` prints its line (speed … baud; …) right after EXIT=: wait for both
    after = tmux.wait_for("run", lambda s: "EXIT=" in s and "baud" in s)
    assert "EXIT=130" in after, after
    assert "Safe to resume later with: dsgen run --config" in after
    assert re.search(r"(?<!-)icanon", after) and re.search(r"(?<![-\w])echo\b", after), after
    assert "Traceback" not in after
    kept = _samples(cfg.state_dir)
    assert 5 <= kept < TOTAL
    assert json.loads(cfg.status_path.read_text())["status"] == "interrupted"

    # Ctrl+C in the dashboard: the same, and its line is repeated below the closed view.
    tmux.keys("run", "clear", "Enter")
    tmux.keys("run", f"{cmd}; echo EXIT2=$?", "Enter")
    tmux.wait_for("run", lambda s: "Status: RUNNING" in s and "TOTAL" in s)
    while _samples(cfg.state_dir) <= kept:
        assert time.monotonic() < deadline + 60, tmux.screen("run")
        time.sleep(0.05)
    tmux.keys("run", "C-c")
    after = tmux.wait_for("run", lambda s: re.search(r"EXIT2=\d", s) is not None)
    assert "EXIT2=130" in after and "Received shutdown signal. Saving progress..." in after
    assert _samples(cfg.state_dir) < TOTAL
    r = subprocess.run([PY, "-m", "dsgen.cli", "run", "--config", str(cfg_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "📍 Resuming from video" in r.stdout
    assert _samples(cfg.state_dir) == TOTAL
    gts = [p for p in cfg.output_root.rglob("*.png") if "/GT/" in str(p)]
    assert len(gts) == TOTAL


@pytest.mark.slow
def test_a_killed_run_shows_stopped(tmp_path: Path, long_videos: tuple[Path, Path]) -> None:
    """kill -9: the status file still says running, but its pid is gone → STOPPED."""
    cfg_path = _config(tmp_path, long_videos)
    cfg = load_config(cfg_path)
    run = subprocess.Popen([PY, "-m", "dsgen.cli", "run", "--config", str(cfg_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _samples(cfg.state_dir) < 3 or not cfg.status_path.exists():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    running = json.loads(_dsgen("status", "--config", str(cfg_path), "--json").stdout)
    assert running["status"] == "RUNNING" and running["pid"] == run.pid
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert json.loads(cfg.status_path.read_text())["status"] == "running"
    doc = json.loads(_dsgen("status", "--config", str(cfg_path), "--json").stdout)
    assert doc["status"] == "STOPPED" and f"process {run.pid} is gone" in doc["reason"]
    assert doc["images"] == _samples(cfg.state_dir)
    frame = _dsgen("monitor", "--state-dir", str(cfg.state_dir), "--once").stdout
    assert "Status: STOPPED" in frame and "DSGEN MONITOR" in frame


def test_status_url_that_does_not_answer_exits_2_but_one_that_answers_exits_0() -> None:
    """`dsgen status --url` (and `monitor --once`) to nothing listening: STOPPED/unreachable
    on stdout as documented, an error on stderr, exit 2; a real /metrics endpoint: exit 0."""
    dead = f"http://127.0.0.1:{_free_port()}"
    for args in (("status", "--url", dead), ("status", "--url", dead, "--json"),
                 ("monitor", "--url", dead, "--once")):
        r = _dsgen(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith(f"error: {dead}/metrics: unreachable: "), r.stderr
        assert "\n  → " in r.stderr and "Traceback" not in r.stderr
        assert "STOPPED" in r.stdout
    doc = json.loads(_dsgen("status", "--url", dead, "--json").stdout)
    assert doc["status"] == "STOPPED" and doc["reason"].startswith("unreachable: ")

    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    Gauge("dsgen_paused", "1 while paused", registry=registry).set(0)
    port = _free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry=registry)
    try:
        r = _dsgen("status", "--url", f"http://127.0.0.1:{port}", "--json")
    finally:
        server.shutdown()
        thread.join(10)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "RUNNING"
