"""Logging: each snippet runs in a fresh interpreter and its stdout is checked line by line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dsgen.logs import configure_logging

# The array's elements after the first (1234568, …) appear nowhere in the source, so they
# can only reach the output through a repr of the local.
RAISER = """
import numpy as np

def decode_clip():
    frames = np.arange(10**6).reshape(1000, 1000) + 1234567
    secret_local = "SECRET-LOCAL-VALUE"
    raise RuntimeError("clip broke")
"""
ARRAY_TRACES = ("1234568", "array(", "SECRET-LOCAL-VALUE", "secret_local")


def run(fmt: str, body: str, level: str = "info") -> str:
    """Configure logging as `fmt` in a fresh interpreter, run `body`, return its stdout."""
    code = (f"from dsgen.logs import configure_logging, get_logger\n{RAISER}\n"
            f"configure_logging({fmt!r}, {level!r})\n{textwrap.dedent(body)}")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr  # everything goes to stdout through the one handler
    return p.stdout


def json_lines(out: str) -> list[dict[str, Any]]:
    lines = out.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_json_lines_carry_time_level_logger_event_and_context() -> None:
    out = run("json", """
        log = get_logger("dsgen.engine", video="Avatar (2009)")
        log.info("clip rejected", category="general", reason="scene_cut", stage="quality")
        log.warning("low disk space", free_bytes=12)
    """)
    first, second = json_lines(out)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["event"] == "clip rejected" and first["level"] == "info"
    assert first["logger"] == "dsgen.engine"
    assert (first["video"], first["category"], first["reason"], first["stage"]) == (
        "Avatar (2009)", "general", "scene_cut", "quality")
    ts = datetime.fromisoformat(first["timestamp"])
    assert ts.utcoffset() == timedelta(0) and first["timestamp"].endswith("Z")
    assert abs(datetime.now(UTC) - ts) < timedelta(minutes=5)
    assert second["level"] == "warning" and second["free_bytes"] == 12


def test_level_filters_both_structlog_and_stdlib() -> None:
    body = """
        import logging
        get_logger("dsgen.plan").debug("placing slots")
        logging.getLogger("watchdog").debug("event")
        get_logger("dsgen.plan").info("placed")
    """
    assert [r["event"] for r in json_lines(run("json", body))] == ["placed"]
    assert [r["event"] for r in json_lines(run("json", body, "debug"))] == [
        "placing slots", "event", "placed"]


def test_stdlib_records_become_json_too() -> None:
    out = run("json", """
        import logging, warnings
        logging.getLogger("watchdog.observers").warning("inotify watch limit %d reached", 8192)
        logging.getLogger("dsgen.watcher").info("rescan", extra={"video": "Up"})
        warnings.warn("old option")
    """)
    watchdog, extra, warning = json_lines(out)
    assert watchdog["logger"] == "watchdog.observers" and watchdog["level"] == "warning"
    assert watchdog["event"] == "inotify watch limit 8192 reached"
    assert "timestamp" in watchdog
    assert extra["video"] == "Up"
    assert warning["logger"] == "py.warnings" and "old option" in warning["event"]


def test_ffmpeg_errors_come_through_the_libav_loggers() -> None:
    out = run("json", """
        import av.logging
        av.logging.log(av.logging.ERROR, "hevc", "Could not find ref with POC 12")
        av.logging.log(av.logging.WARNING, "hevc", "a warning FFmpeg keeps to itself")
    """)
    (rec,) = json_lines(out)
    assert rec["logger"] == "libav.hevc" and rec["level"] == "error"
    assert rec["event"] == "Could not find ref with POC 12"


def test_json_exceptions_have_frames_but_no_locals() -> None:
    out = run("json", """
        import logging
        log = get_logger("dsgen.extract", video="v")
        try:
            decode_clip()
        except RuntimeError:
            log.exception("task failed")
        try:
            decode_clip()
        except RuntimeError:
            logging.getLogger("concurrent.futures").exception("stdlib saw it")
    """)
    for rec in json_lines(out):
        assert rec["level"] == "error"
        (exc,) = rec["exception"]
        assert exc["exc_type"] == "RuntimeError" and exc["exc_value"] == "clip broke"
        assert [f["name"] for f in exc["frames"]][-1] == "decode_clip"
        assert all("locals" not in f for f in exc["frames"])
    for trace in ARRAY_TRACES:
        assert trace not in out


def test_console_is_for_people_and_also_hides_locals() -> None:
    out = run("console", """
        log = get_logger("dsgen.engine")
        log.info("video done", video="Avatar", samples=120)
        try:
            decode_clip()
        except RuntimeError:
            log.exception("task failed")
    """)
    lines = out.splitlines()
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "video done" in lines[0] and "video=Avatar" in lines[0] and "samples=120" in lines[0]
    assert "RuntimeError: clip broke" in out and "decode_clip" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    for trace in ARRAY_TRACES:
        assert trace not in out


def test_configuring_again_replaces_the_handler() -> None:
    out = run("json", """
        configure_logging("console")
        configure_logging("json", "warning")
        get_logger("x").info("dropped")
        get_logger("x").warning("once")
    """)
    assert [r["event"] for r in json_lines(out)] == ["once"]


def test_undecodable_file_names_stay_writable() -> None:
    """A Linux path that is not UTF-8 arrives as surrogates; the JSON line escapes them."""
    out = run("json", """
        import os
        get_logger("dsgen.engine").warning("not found", path=os.fsdecode(b"/v/caf\\xe9.mkv"))
    """)
    (rec,) = json_lines(out)
    assert rec["path"] == "/v/caf\udce9.mkv"


def test_bad_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info")  # type: ignore[arg-type]
