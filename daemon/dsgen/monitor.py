"""`dsgen monitor` and `dsgen status`: read-only views of a run, local or remote."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import select
import sys
import termios
import time
import tty
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live

from dsgen.config import load_config
from dsgen.errors import EXIT_ERROR, EXIT_OK, DsgenError
from dsgen.model import FAILED, OK
from dsgen.snapshot import (
    CategoryView,
    Checkpoints,
    Disk,
    LocalReader,
    LocalSource,
    Performance,
    Snapshot,
    WorkerView,
    to_json,
)
from dsgen.tui import plain_lines, render

DEFAULT_INTERVAL = 2.0  # the predecessor's monitor refreshed every 2 s
MIN_INTERVAL = 0.2  # faster only burns the reader's CPU; the status file changes every 5 s
# Remote rates are measured over scrapes this recent (the engine's own rate window).
RATE_WINDOW_SECONDS = 600.0
HTTP_TIMEOUT_SECONDS = 3.0
# The reason of a remote snapshot whose endpoint did not answer (nothing could be read).
UNREACHABLE = "unreachable"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `monitor` and `status`."""
    mon = sub.add_parser("monitor", help="watch a run (read-only; q or Ctrl+C quits the "
                                         "monitor, never the run)")
    st = sub.add_parser("status", help="print a run's status once (text, or --json)")
    for p in (mon, st):
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--config", "-c", help="the run's TOML config")
        where.add_argument("--state-dir", help="the run's state_dir (no config needed)")
        where.add_argument("--url", help="a daemon's metrics endpoint, e.g. "
                                         "http://host:9478 (remote, via /metrics)")
        p.add_argument("--output-root", help="with --state-dir: the dataset folder holding "
                                             "the status file (default: read from the state)")
    mon.add_argument("--interval", type=float, default=DEFAULT_INTERVAL,
                     help=f"seconds between refreshes (default {DEFAULT_INTERVAL:g})")
    mon.add_argument("--once", action="store_true", help="print one frame and exit")
    mon.set_defaults(func=cmd_monitor)
    st.add_argument("--json", action="store_true",
                    help="a JSON object (schema dsgen.status/1, fields in docs/status.md)")
    st.set_defaults(func=cmd_status)


@contextlib.contextmanager
def open_reader(args: argparse.Namespace) -> Iterator[Callable[[], Snapshot]]:
    """A function returning fresh snapshots of the run the arguments name."""
    if args.output_root and not args.state_dir:
        raise DsgenError("--output-root goes with --state-dir",
                         hint="with --config the config names the output root")
    if args.url:
        yield http_reader(args.url).read
        return
    if args.config:
        src = LocalSource.from_config(load_config(Path(args.config)))
    else:
        sd = Path(args.state_dir)
        if not sd.is_dir():
            raise DsgenError(f"{sd}: no such state directory",
                             hint="give the run's state_dir (see its config)")
        src = LocalSource.from_dirs(sd, Path(args.output_root) if args.output_root else None)
    reader = LocalReader(src)
    try:
        yield reader.read
    finally:
        reader.close()


def unreachable(snap: Snapshot) -> bool:
    """A remote snapshot that read nothing: the endpoint did not answer."""
    return snap.source == "http" and (snap.reason or "").startswith(UNREACHABLE)


def _exit_code(snap: Snapshot) -> int:
    """0 when something was read; 2 (with a message) when a --url did not answer."""
    if not unreachable(snap):
        return EXIT_OK
    print(f"error: {snap.where}: {snap.reason}\n  → check the address and port, and that the "
          "daemon runs with [metrics] enabled and reachable from here", file=sys.stderr)
    return EXIT_ERROR


def cmd_status(args: argparse.Namespace) -> int:
    """One snapshot as text or JSON; exit 2 when a --url does not answer."""
    with open_reader(args) as read:
        snap = read()
    if args.json:
        print(json.dumps(to_json(snap), indent=2, ensure_ascii=False))
    else:
        print("\n".join(plain_lines(snap)))
    return _exit_code(snap)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Refresh until q or Ctrl+C; plain lines when stdout is not a terminal."""
    interval = max(MIN_INTERVAL, args.interval)
    with open_reader(args) as read:
        if args.once:
            snap = read()
            Console().print(render(snap, live=False, controls=False))
            return _exit_code(snap)
        if not sys.stdout.isatty():
            try:
                while True:
                    print("\n".join(plain_lines(read())), flush=True)
                    time.sleep(interval)
            except KeyboardInterrupt:
                return EXIT_OK
        return _watch(read, interval)


def _watch(read: Callable[[], Snapshot], interval: float) -> int:
    """The full-screen monitor: redraw every `interval`, quit on q/Q or Ctrl+C."""
    console = Console()
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    try:
        if fd is not None:
            tty.setcbreak(fd)
        with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
            while True:
                live.update(render(read(), live=False, height=console.size.height),
                            refresh=True)
                if _wait_for_quit(fd, interval):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return EXIT_OK


def _wait_for_quit(fd: int | None, seconds: float) -> bool:
    """Wait up to `seconds`; True when q was pressed."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if fd is None:
            time.sleep(left)
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            ch = os.read(fd, 1)
            if not ch or ch in (b"q", b"Q"):
                return True
    return False


# -- remote: a daemon's /metrics ---------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# Remote run states → dashboard status.
RUN_STATES = {"running": "RUNNING", "initialized": "RUNNING", "idle": "IDLE", "paused": "PAUSED",
              "stopping": "STOPPING", "interrupted": "STOPPED", "finished": "FINISHED"}


def parse_metrics(text: str) -> Samples:
    """Exposition text → {(sample name, labels): value}."""
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def _val(m: Samples, name: str, **labels: str) -> float | None:
    v = m.get((name, frozenset(labels.items())))
    return None if v is None or math.isnan(v) else v


def _by(m: Samples, name: str, label: str, split: str | None = None) -> dict[str, float]:
    """label value → value of `name`'s series (of one `split`, where the series have one;
    a dsgen from before the split label counts as training)."""
    return {dict(k)[label]: v for (n, k), v in m.items() if n == name and label in dict(k)
            and (split is None or dict(k).get("split", "train") == split)}


class HttpReader:
    """Scrapes a daemon's /metrics; keeps recent scrapes so rates come from deltas."""

    def __init__(self, url: str) -> None:
        self.url = url if url.rstrip("/").endswith("/metrics") else url.rstrip("/") + "/metrics"
        self.history: deque[tuple[float, float, float, float, float]] = deque()

    def read(self) -> Snapshot:
        """One snapshot; STOPPED with the error when the endpoint does not answer."""
        now = time.time()
        try:
            with urllib.request.urlopen(self.url, timeout=HTTP_TIMEOUT_SECONDS) as r:
                m = parse_metrics(r.read().decode("utf-8"))
        except (OSError, ValueError) as e:
            return Snapshot("http", self.url, "STOPPED", f"{UNREACHABLE}: {e}", now)
        attempts = _by(m, "dsgen_clip_attempts_total", "reason")
        tried, ok = sum(attempts.values()), attempts.get(OK, 0.0)
        written = sum(v for (n, _), v in m.items() if n == "dsgen_samples_written_total")
        cpu = _val(m, "process_cpu_seconds_total") or 0.0
        self.history.append((now, tried, ok, written, cpu))
        while len(self.history) > 2 and now - self.history[0][0] > RATE_WINDOW_SECONDS:
            self.history.popleft()
        t0, tried0, ok0, written0, cpu0 = self.history[0]
        started = _val(m, "process_start_time_seconds")
        if len(self.history) < 2:  # one scrape: averages over the process's life
            t0, tried0, ok0, written0, cpu0 = (started or now), 0.0, 0.0, 0.0, 0.0
        span = max(1e-9, now - t0)
        d_tried = tried - tried0
        rs = _by(m, "dsgen_run_state", "dsgen_run_state")
        state = next((k for k, v in rs.items() if v == 1), "running")
        status = "PAUSED" if _val(m, "dsgen_paused") == 1 else RUN_STATES.get(state, "RUNNING")
        videos = {k: int(v) for k, v in _by(m, "dsgen_videos", "state").items()}
        failed = sum(videos.get(s, 0) for s in FAILED)
        ck = Checkpoints(sum(videos.values()), videos.get("done", 0),
                         videos.get("in_progress", 0), videos.get("pending", 0), failed)
        targets = _by(m, "dsgen_category_target_samples", "category", "train")
        samples = _by(m, "dsgen_samples", "category", "train")
        sizes = _by(m, "dsgen_output_bytes", "category", "train")
        vt, vn, vb = (_by(m, name, "category", "val") for name in (
            "dsgen_category_target_samples", "dsgen_samples", "dsgen_output_bytes"))
        cats = tuple(CategoryView(c, int(samples.get(c, 0)), int(t), int(sizes.get(c, 0)),
                                  None, None, int(vn.get(c, 0)),
                                  int(vt[c]) if c in vt else None, int(vb.get(c, 0)))
                     for c, t in targets.items())
        workers = _by(m, "dsgen_workers", "state")
        worker_list = tuple(sorted(
            (WorkerView(dict(k).get("worker", ""), dict(k).get("host", ""), v == 1)
             for (n, k), v in m.items() if n == "dsgen_worker_busy"), key=lambda w: w.name))
        eta_ts = _val(m, "dsgen_estimated_completion_timestamp_seconds")
        perf = Performance(
            patches_per_min=(written - written0) / span * 60,
            success_rate=(ok - ok0) / d_tried if d_tried > 0 else (ok / tried if tried else None),
            samples_this_run=int(written),
            cpu_percent=round((cpu - cpu0) / span * 100, 1) if len(self.history) > 1 else None,
            cpu_count=None, memory_bytes=_int(_val(m, "process_resident_memory_bytes")),
            processes=1)
        used = int(sum(sizes.values()) + sum(vb.values()))
        need = sum(int(sizes.get(c.name, 0) / c.images * max(0, (c.target or 0) - c.images))
                   for c in cats if c.images)
        disk = Disk(used, _int(_val(m, "dsgen_filesystem_free_bytes")),
                    _int(_val(m, "dsgen_filesystem_size_bytes")), need)
        return Snapshot(
            "http", self.url, status, None, now, mode="daemon", version=next(
                (dict(k).get("version") for (n, k) in m if n == "dsgen_build_info"), None),
            started_at=started, last_update=now, total_videos=ck.total,
            completed_videos=ck.done + ck.failed,
            workers=int(sum(workers.values())) if workers else None,
            workers_busy=int(workers["busy"]) if "busy" in workers else None,
            worker_list=worker_list,
            eta_seconds=max(0.0, eta_ts - now) if eta_ts is not None else None,
            categories=cats, checkpoints=ck, performance=perf, disk=disk)


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


_readers: dict[str, HttpReader] = {}


def http_reader(url: str) -> HttpReader:
    """The reader of `url` kept in this process (its scrape history gives the rates)."""
    return _readers.setdefault(url, HttpReader(url))

