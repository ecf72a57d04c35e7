"""`dsgen daemon` as systemd runs it: a real notify socket, a watched folder, SIGHUP, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dsgen.synth import SynthSpec, make_video
from helpers import free_port, mount_tmpfs, require_promtool, samples_in

ROOT = Path(__file__).resolve().parents[1]

DAEMON_CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
segment_slots = 4
status_seconds = 0.5

[metrics]
port = {port}

[daemon]
rescan_seconds = 1.0
idle_seconds = 0.2

[formats.tiny]
width = 96
height = 96
scale = 3

[categories.alpha]
target = {target}
formats = {{ tiny = 1.0 }}

[[watch]]
path = "incoming"
categories = ["alpha"]
settle_seconds = 0.5
"""


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout: float) -> str:
        """Receive until a datagram contains `needle`; return it."""
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if needle in m:
                return m
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(data)
            if needle in data:
                return data
        raise AssertionError(f"no {needle!r} within {timeout}s; got {self.messages}")


def wait_until(cond: object, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    """Poll `cond()` until true; fail with the daemon's exit if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        assert proc.poll() is None, f"daemon exited with {proc.returncode} waiting for {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def daemon_dir(tmp_path: Path) -> Iterator[Path]:
    """A work dir with the incoming folder and two source videos made elsewhere."""
    (tmp_path / "incoming").mkdir()
    (tmp_path / "src").mkdir()
    for name, seed in (("first", 301), ("second", 302)):
        make_video(tmp_path / "src" / f"{name}.mkv",
                   SynthSpec(name, "h264", 640, 360, 240, cuts=(120,), gop=24, seed=seed))
    yield tmp_path


@pytest.mark.slow
def test_daemon_notify_watch_reload_metrics_and_clean_stop(daemon_dir: Path) -> None:
    """READY; mv and rsync-style arrivals processed; SIGHUP target; /metrics true; SIGTERM."""
    port = free_port()
    cfg = daemon_dir / "dsgen.toml"
    cfg.write_text(DAEMON_CONFIG.format(port=port, target=10))
    listener = NotifyListener(daemon_dir / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(listener.path), PYTHONUNBUFFERED="1")
    log = (daemon_dir / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "daemon", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    state = daemon_dir / "state"
    try:
        listener.wait_for("READY=1", 60)
        # 1. moved in with mv (a rename within the filesystem).
        os.rename(daemon_dir / "src" / "first.mkv", daemon_dir / "incoming" / "first.mkv")
        wait_until(lambda: samples_in(state) == 10, 120, "10 samples from the moved video", proc)
        # 2. written rsync-style: a hidden temporary name, written in pieces, then renamed.
        data = (daemon_dir / "src" / "second.mkv").read_bytes()
        part = daemon_dir / "incoming" / ".second.mkv.Xy12Ab"
        with part.open("wb") as f:
            for i in range(0, len(data), 64 * 1024):
                f.write(data[i:i + 64 * 1024])
                f.flush()
                time.sleep(0.05)
        os.rename(part, daemon_dir / "incoming" / "second.mkv")
        wait_until(lambda: "second" in (daemon_dir / "daemon.log").read_text(), 30,
                   "the rsync-style video to be found", proc)
        time.sleep(1.0)
        assert samples_in(state) == 10  # targets met: the new video waits for a reason to work
        # 3. A bad config on SIGHUP keeps the old one running and says why.
        cfg.write_text(DAEMON_CONFIG.format(port=port, target=24) + "\nbogus_key = 1\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: '"reload_failed"' in (daemon_dir / "daemon.log").read_text(), 30,
                   "the failed reload to be reported", proc)
        bad = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert b"dsgen_config_reload_success 0.0" in bad
        time.sleep(0.5)
        assert samples_in(state) == 10
        # 4. SIGHUP with a raised target: both videos now get work.
        cfg.write_text(DAEMON_CONFIG.format(port=port, target=24))
        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1", 30)
        assert "MONOTONIC_USEC=" in reloading
        wait_until(lambda: samples_in(state) == 24, 120, "24 samples after the reload", proc)
        assert samples_in(state, "second") > 0
        assert samples_in(state, "first") + samples_in(state, "second") == 24
        # 5. /metrics agrees with the state and the files, and promtool accepts it.
        time.sleep(1.0)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for fam in text_string_to_metric_families(text.decode())
                  for s in fam.samples}
        gts = list((daemon_dir / "out").rglob("GT/*.png"))
        assert len(gts) == 24
        train = (("category", "alpha"), ("split", "train"))
        assert values[("dsgen_samples", train)] == 24
        assert values[("dsgen_category_target_samples", train)] == 24
        assert values[("dsgen_samples_written_total",
                       (("category", "alpha"), ("format", "tiny"), ("split", "train")))] == 24
        assert values[("dsgen_config_reload_success", ())] == 1
        ok = values[("dsgen_clip_attempts_total", (("reason", "ok"),))]
        assert ok >= 24
        check = subprocess.run([require_promtool(), "check", "metrics"], input=text,
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert not check.stdout.strip() and not check.stderr.strip(), check.stdout
        # 6. SIGTERM: STOPPING, a clean exit within systemd's stop timeout.
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert time.monotonic() - t0 < 60
        listener.wait_for("STOPPING=1", 5)
        assert proc.returncode == 143
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    lines = (daemon_dir / "daemon.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    names = {e["event"] for e in events}
    assert {"video_found", "video_started", "reloaded", "stopped"} <= names, names
    finished = [e for e in events if e["event"] == "video_finished"]
    assert finished and all("video" in e and "success_rate" in e for e in finished)
    assert listener.wait_for("STATUS=", 1)


@pytest.mark.slow
def test_unmounted_library_marks_videos_unavailable_and_resumes_when_back(
        daemon_dir: Path) -> None:
    """A watched library on a real tmpfs is unmounted: unavailable, samples kept; back: resumed."""
    lib = daemon_dir / "incoming"
    mount_tmpfs(lib, "size=64m")
    port = free_port()
    cfg = daemon_dir / "dsgen.toml"
    cfg.write_text(DAEMON_CONFIG.format(port=port, target=8))
    src = daemon_dir / "src" / "first.mkv"
    shutil.copy2(src, lib / "first.mkv")
    log_path = daemon_dir / "daemon.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "daemon", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    state = daemon_dir / "state"
    try:
        wait_until(lambda: samples_in(state) == 8, 120, "8 samples", proc)
        subprocess.run(["umount", "-l", str(lib)], check=True)
        wait_until(lambda: '"video_unavailable"' in log_path.read_text(), 30,
                   "the video to be marked unavailable", proc)
        assert samples_in(state) == 8  # its samples stay counted
        mount_tmpfs(lib, "size=64m")
        shutil.copy2(src, lib / "first.mkv")  # same size and mtime: the same video is back
        wait_until(lambda: '"video_back"' in log_path.read_text(), 30, "the video back", proc)
        cfg.write_text(DAEMON_CONFIG.format(port=port, target=14))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: samples_in(state, "first") == 14, 120, "14 samples after return", proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 143
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-l", str(lib)], check=False, capture_output=True)


def _start_daemon(work: Path, log_path: Path) -> subprocess.Popen[str]:
    log = log_path.open("a")
    try:
        return subprocess.Popen([sys.executable, "-m", "dsgen.cli", "daemon", "--config",
                                 str(work / "dsgen.toml")], stdout=log, stderr=subprocess.STDOUT,
                                text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    finally:
        log.close()


def _events(log_path: Path) -> list[dict[str, object]]:
    out = []
    for line in log_path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


@pytest.mark.slow
def test_a_copy_that_pauses_past_the_settle_time_is_processed_once_complete(
        tmp_path: Path) -> None:
    """An MP4 (index at its end) copied in two parts with a pause longer than settle_seconds
    is seen half-written and fails ("moov atom not found"); once the copy completes the
    daemon reads it again and takes its samples — without a restart. Its 240-character name
    is mapped to a safe file name, and a later start works too. A file whose name is not
    UTF-8 next to it is refused with its reason, and changes nothing else."""
    (tmp_path / "incoming").mkdir()
    with open(os.fsencode(tmp_path / "incoming") + b"/caf\xe9.mkv", "wb") as f:
        f.write(b"not UTF-8 in its name")
    src = make_video(tmp_path / "src.mp4", SynthSpec("paused", "h264", 640, 360, 240,
                                                    cuts=(120,), gop=24, container="mp4",
                                                    seed=311))
    (tmp_path / "dsgen.toml").write_text(DAEMON_CONFIG.format(port=free_port(), target=8))
    log_path = tmp_path / "daemon.log"
    proc = _start_daemon(tmp_path, log_path)
    state = tmp_path / "state"
    name = "p" * 240
    target = tmp_path / "incoming" / f"{name}.mp4"
    data = src.read_bytes()
    try:
        wait_until(lambda: any(e.get("event") == "idle" for e in _events(log_path)), 60,
                   "the daemon to be idle", proc)
        with target.open("wb") as f:
            f.write(data[:len(data) // 2])
        wait_until(lambda: any(e.get("event") == "video_unusable" and e.get("video") == name
                               for e in _events(log_path)),
                   30, "the half-written copy to be found unusable", proc)
        assert any(e.get("reason") == "its name is not valid UTF-8" for e in _events(log_path))
        assert samples_in(state) == 0
        with target.open("ab") as f:
            f.write(data[len(data) // 2:])
        wait_until(lambda: samples_in(state, name) == 8, 120,
                   "8 samples once the copy completed", proc)
        assert any(e.get("event") == "video_retried" for e in _events(log_path))
        gts = list((tmp_path / "out").rglob("GT/*.png"))
        assert len(gts) == 8 and all(len(p.name) <= 255 for p in gts)
        assert _stop(proc) == 143
        idle = sum(e.get("event") == "idle" for e in _events(log_path))
        proc = _start_daemon(tmp_path, log_path)  # a later start is not wedged by the name
        wait_until(lambda: sum(e.get("event") == "idle" for e in _events(log_path)) > idle, 60,
                   "the restarted daemon to be idle", proc)
        assert samples_in(state) == 8
        assert _stop(proc) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log_path.read_text()


@pytest.mark.slow
def test_a_file_replaced_under_its_name_is_noticed_while_running(tmp_path: Path) -> None:
    """A watched video being extracted is replaced by another file under the same name
    (rename over it): the daemon notices within a rescan, says so, keeps the samples
    recorded so far, records nothing more from the old file and stays up."""
    (tmp_path / "incoming").mkdir()
    first = make_video(tmp_path / "first.mkv", SynthSpec("first", "h264", 960, 540, 480,
                                                        cuts=(240,), gop=24, seed=321))
    other = make_video(tmp_path / "other.mkv", SynthSpec("other", "h264", 640, 360, 240,
                                                        cuts=(120,), gop=24, seed=322))
    (tmp_path / "dsgen.toml").write_text(DAEMON_CONFIG.format(port=free_port(), target=60))
    log_path = tmp_path / "daemon.log"
    shutil.copy2(first, tmp_path / "incoming" / "film.mkv")
    proc = _start_daemon(tmp_path, log_path)
    state = tmp_path / "state"
    try:
        wait_until(lambda: samples_in(state, "film") >= 3, 120, "3 samples of the film", proc)
        os.replace(other, tmp_path / "incoming" / "film.mkv")
        wait_until(lambda: any(e.get("event") == "video_changed" for e in _events(log_path)),
                   30, "the replacement to be noticed", proc)
        kept = samples_in(state, "film")
        time.sleep(3.0)  # in-flight work of the old file comes back: none of it is recorded
        assert samples_in(state, "film") == kept > 0
        db = sqlite3.connect(f"file:{state / 'dsgen.sqlite3'}?mode=ro", uri=True)
        (status,) = db.execute("SELECT status FROM videos WHERE name='film'").fetchone()
        db.close()
        assert status == "changed"
        assert proc.poll() is None
        assert _stop(proc) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log_path.read_text()
