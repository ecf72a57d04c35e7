"""Metrics: served over real HTTP, parsed with prometheus_client's parser, linted by promtool."""

from __future__ import annotations

import math
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from dsgen.metrics import (
    ATTEMPT_REASONS,
    OTHER,
    RUN_STATES,
    STAGE_BUCKETS,
    STAGES,
    VIDEO_STATES,
    Metrics,
)
from dsgen.model import REASONS
from helpers import require_promtool

REPO = Path(__file__).resolve().parents[1]
# Labels a dashboard may group by; anything else (a video name, a path) would be unbounded.
BOUNDED_LABELS = {"state", "reason", "category", "format", "split", "stage", "kind", "result", "le",
                  "dsgen_run_state", "version", "python", "pyav", "ffmpeg"}


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    m.start_http(0)
    yield m
    m.stop_http()


def scrape(m: Metrics) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=5) as r:
        assert r.status == 200
        return str(r.read().decode())


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text: str, sample: str, **labels: str) -> float:
    """The value of the one sample named `sample` whose labels include `labels`."""
    found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == sample and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{sample}{labels}: {len(found)} samples"
    return float(found[0])


def drive(m: Metrics) -> None:
    """Call every recording method once or more, as the engine would."""
    m.declare({"general": ["small_540", "large_720"], "toon": ["small_540"]})
    m.set_targets({"general": 100, "toon": 40})
    m.set_samples("general", 10, 10_000)  # from the state at start-up
    m.sample_written("general", "small_540", 1_500, ts=1_700_000_000.0)
    m.sample_written("general", "large_720", 2_500, ts=1_700_000_001.0)
    m.attempt("ok", 2)
    m.attempt("scene_cut")
    m.attempt("worker_crash")
    m.stage("decode", 1.0, n=4)
    m.stage("probe", 42.0)
    m.decoded(frames=70, seeks=3, per_clip=[7, 9, 54])
    m.worker_failure("died")
    m.set_videos({"pending": 2, "in_progress": 3, "missing": 1})
    m.set_workers(busy=3, total=4)
    m.set_disk(free=5 * 10**9, size=100 * 10**9)
    m.eta(1_800_000_000.0)
    m.reload(False)
    m.paused(True)
    m.run_state("running")


def test_serves_on_an_ephemeral_port_until_stopped() -> None:
    m = Metrics()
    assert m.port == 0 and not m.alive()
    port = m.start_http(0)
    assert port > 0 and port == m.port and m.alive()
    assert m.start_http(0) == port  # idempotent
    assert "dsgen_up" not in scrape(m)  # Prometheus' own `up` covers reachability
    m.stop_http()
    assert not m.alive() and m.port == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_instances_have_their_own_registries(metrics: Metrics) -> None:
    other = Metrics()
    other.attempt("ok", 5)
    metrics.attempt("ok", 1)
    assert value(scrape(metrics), "dsgen_clip_attempts_total", reason="ok") == 1
    assert b'dsgen_clip_attempts_total{reason="ok"} 5.0' in other.render()


def test_every_fixed_label_value_exists_from_the_start(metrics: Metrics) -> None:
    text = scrape(metrics)
    assert set(ATTEMPT_REASONS) == {*REASONS, "worker_crash"}
    for reason in ATTEMPT_REASONS:
        assert value(text, "dsgen_clip_attempts_total", reason=reason) == 0
    for state in VIDEO_STATES:
        assert value(text, "dsgen_videos", state=state) == 0
    for stage in STAGES:
        assert value(text, "dsgen_stage_seconds_total", stage=stage) == 0
        assert value(text, "dsgen_stage_duration_seconds_count", stage=stage) == 0
    assert value(text, "dsgen_workers", state="busy") == 0
    assert value(text, "dsgen_workers", state="idle") == 0
    assert value(text, "dsgen_config_reloads_total", result="failure") == 0
    assert value(text, "dsgen_config_reload_success") == 1
    assert value(text, "dsgen_run_state", dsgen_run_state="initialized") == 1
    assert math.isnan(value(text, "dsgen_estimated_completion_timestamp_seconds"))
    assert "_created" not in text


def test_recorded_values_are_scraped(metrics: Metrics) -> None:
    drive(metrics)
    text = scrape(metrics)

    def v(name: str, **labels: str) -> float:
        return value(text, name, **labels)

    assert v("dsgen_clip_attempts_total", reason="ok") == 2
    assert v("dsgen_clip_attempts_total", reason="scene_cut") == 1
    assert v("dsgen_clip_attempts_total", reason="worker_crash") == 1
    assert v("dsgen_samples_written_total", category="general", format="small_540") == 1
    assert v("dsgen_samples_written_total", category="general", format="large_720") == 1
    assert v("dsgen_samples_written_total", category="toon", format="small_540") == 0
    assert v("dsgen_written_bytes_total", category="general") == 4_000
    # durable totals start from the state and grow with each recorded sample
    assert v("dsgen_samples", category="general") == 12
    assert v("dsgen_output_bytes", category="general") == 14_000
    assert v("dsgen_samples", category="toon") == 0
    assert v("dsgen_category_target_samples", category="general") == 100
    assert v("dsgen_category_target_samples", category="toon") == 40
    assert v("dsgen_last_success_timestamp_seconds") == 1_700_000_001.0
    assert v("dsgen_videos", state="in_progress") == 3
    assert v("dsgen_videos", state="missing") == 1
    assert v("dsgen_videos", state="failed") == 0
    assert v("dsgen_workers", state="busy") == 3
    assert v("dsgen_workers", state="idle") == 1
    assert v("dsgen_filesystem_free_bytes") == 5e9
    assert v("dsgen_filesystem_size_bytes") == 1e11
    assert v("dsgen_frames_decoded_total") == 70
    assert v("dsgen_seeks_total") == 3
    assert v("dsgen_clip_frames_decoded_count") == 3
    assert v("dsgen_clip_frames_decoded_sum") == 70
    assert v("dsgen_clip_frames_decoded_bucket", le="7.0") == 1
    assert v("dsgen_clip_frames_decoded_bucket", le="10.0") == 2
    assert v("dsgen_worker_failures_total", kind="died") == 1
    assert v("dsgen_worker_failures_total", kind="error") == 0
    assert v("dsgen_estimated_completion_timestamp_seconds") == 1_800_000_000.0
    assert v("dsgen_config_reload_success") == 0
    assert v("dsgen_config_reloads_total", result="failure") == 1
    assert v("dsgen_paused") == 1
    assert v("dsgen_run_state", dsgen_run_state="running") == 1
    assert v("dsgen_run_state", dsgen_run_state="initialized") == 0


def test_stage_times_feed_a_counter_and_a_per_item_histogram(metrics: Metrics) -> None:
    metrics.stage("decode", 1.0, n=4)  # a task: 4 clips decoded in 1 s in all
    metrics.stage("encode", 0.03)
    text = scrape(metrics)
    assert value(text, "dsgen_stage_seconds_total", stage="decode") == 1.0
    assert value(text, "dsgen_stage_duration_seconds_count", stage="decode") == 4
    assert value(text, "dsgen_stage_duration_seconds_sum", stage="decode") == 1.0
    assert value(text, "dsgen_stage_duration_seconds_bucket", stage="decode", le="0.1") == 0
    assert value(text, "dsgen_stage_duration_seconds_bucket", stage="decode", le="0.25") == 4
    assert value(text, "dsgen_stage_duration_seconds_bucket", stage="encode", le="0.025") == 0
    assert value(text, "dsgen_stage_duration_seconds_bucket", stage="encode", le="0.05") == 1
    assert STAGE_BUCKETS[0] == 0.005 and 60.0 in STAGE_BUCKETS


def test_reload_success_and_eta_reset(metrics: Metrics) -> None:
    metrics.reload(False)
    metrics.reload(True, ts=1_750_000_000.0)
    metrics.eta(1_800_000_000.0)
    metrics.eta(None)
    metrics.paused(True)
    metrics.paused(False)
    text = scrape(metrics)
    assert value(text, "dsgen_config_reload_success") == 1
    assert value(text, "dsgen_config_reload_timestamp_seconds") == 1_750_000_000.0
    assert value(text, "dsgen_config_reloads_total", result="success") == 1
    assert value(text, "dsgen_config_reloads_total", result="failure") == 1
    assert math.isnan(value(text, "dsgen_estimated_completion_timestamp_seconds"))
    assert value(text, "dsgen_paused") == 0


def test_unknown_label_values_are_bounded(metrics: Metrics) -> None:
    metrics.attempt("made_up_reason")
    metrics.stage("/mnt/video/Avatar.mkv", 1.0)
    metrics.set_videos({"done": 1, "weird": 2})
    metrics.run_state("dancing")
    metrics.worker_failure("exploded")
    text = scrape(metrics)
    assert "made_up_reason" not in text and "Avatar" not in text and "weird" not in text
    assert value(text, "dsgen_clip_attempts_total", reason=OTHER) == 1
    assert value(text, "dsgen_stage_seconds_total", stage=OTHER) == 1.0
    assert value(text, "dsgen_videos", state=OTHER) == 2
    assert value(text, "dsgen_run_state", dsgen_run_state=OTHER) == 1
    assert value(text, "dsgen_worker_failures_total", kind=OTHER) == 1
    assert OTHER in RUN_STATES


def test_names_units_and_labels_follow_the_conventions(metrics: Metrics) -> None:
    drive(metrics)
    fams = families(scrape(metrics))
    ours = {n: f for n, f in fams.items() if n.startswith("dsgen_")}
    assert len(ours) >= 20
    for name, fam in ours.items():
        assert fam.documentation, name
        for s in fam.samples:
            assert set(s.labels) <= BOUNDED_LABELS, (s.name, s.labels)
            if fam.type == "counter":
                assert s.name.endswith("_total"), s.name
    assert fams["dsgen_clip_attempts"].type == "counter"
    assert fams["dsgen_stage_duration_seconds"].type == "histogram"
    assert fams["dsgen_videos"].type == "gauge"
    build = next(s for s in fams["dsgen_build_info"].samples)
    assert build.value == 1
    assert set(build.labels) == {"version", "python", "pyav", "ffmpeg"}
    assert all(build.labels.values())
    assert "process_resident_memory_bytes" in fams  # the parent's own resources


def test_promtool_finds_no_problem(metrics: Metrics) -> None:
    tool = require_promtool()
    drive(metrics)
    metrics.attempt("made_up_reason")
    text = scrape(metrics)
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr


def test_promtool_does_report_problems() -> None:
    """The lint above is real: promtool flags a badly named metric (exit 3, a message)."""
    tool = require_promtool()
    bad = "# HELP bad_count a counter\n# TYPE bad_count counter\nbad_count 1\n"
    p = subprocess.run([tool, "check", "metrics"], input=bad, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "_total" in p.stdout + p.stderr


def test_worker_series_follow_the_workers_that_are_connected() -> None:
    """dsgen_worker_busy has one series per worker now; a worker that leaves loses its series."""
    m = Metrics(process_metrics=False)
    m.set_worker_list([("w1", "node-a", True), ("w2", "node-b", False)])
    text = m.render().decode()
    assert value(text, "dsgen_worker_busy", worker="w1", host="node-a") == 1
    assert value(text, "dsgen_worker_busy", worker="w2", host="node-b") == 0
    m.set_worker_list([("w2", "node-b", True)])
    text = m.render().decode()
    assert 'worker="w1"' not in text
    assert value(text, "dsgen_worker_busy", worker="w2", host="node-b") == 1


def _idle_connections(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        out.append(s)
    return out


def test_idle_connections_cost_no_thread_and_scrapes_still_answer() -> None:
    """100 connections that send nothing: no thread per connection (prometheus_client's own
    server started 109), at most MAX_CONNECTIONS held open, and a scrape still answers."""
    from dsgen.metrics_http import MAX_CONNECTIONS

    m = Metrics(process_metrics=False)
    m.start_http(0)
    try:
        before = threading.active_count()
        idle = _idle_connections(m.port, 100)
        time.sleep(0.5)
        assert threading.active_count() <= before
        assert m.server is not None and m.server.open_connections <= MAX_CONNECTIONS
        t0 = time.monotonic()
        text = scrape(m)
        assert time.monotonic() - t0 < 2.0
        assert "dsgen_samples" in text
        assert threading.active_count() <= before
        for s in idle:
            s.close()
    finally:
        m.stop_http()


def test_a_client_that_never_finishes_its_request_is_cut_off() -> None:
    """An idle connection and a request whose headers never end are closed by the server
    after the read time (slowloris): the client sees the connection end."""
    m = Metrics(process_metrics=False)
    m.start_http(0, read_seconds=0.5)
    try:
        idle, slow = _idle_connections(m.port, 2)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        t0 = time.monotonic()
        for s in (idle, slow):
            s.settimeout(5)
            assert s.recv(100) == b""  # closed by the server, without an answer
        assert time.monotonic() - t0 < 3.0
        assert m.server is not None and m.server.open_connections == 0
        assert "dsgen_samples" in scrape(m)  # and it still serves
    finally:
        m.stop_http()


def test_an_oversized_request_is_refused_and_answers_are_prometheus_clients() -> None:
    """A request head beyond MAX_REQUEST_BYTES gets 431; answers come from prometheus_client's
    WSGI app (the same families as a render; its 405 for other methods than GET)."""
    from dsgen.metrics_http import MAX_REQUEST_BYTES

    m = Metrics(process_metrics=False)
    m.start_http(0)
    try:
        with socket.create_connection(("127.0.0.1", m.port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (MAX_REQUEST_BYTES + 10))
            assert s.recv(200).startswith(b"HTTP/1.0 431")
        req = urllib.request.Request(f"http://127.0.0.1:{m.port}/metrics", method="POST",
                                     data=b"")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 405
        assert families(scrape(m)).keys() == families(m.render().decode()).keys()
    finally:
        m.stop_http()
