"""The dashboard: a `Snapshot` drawn with rich (live in `dsgen run`, read-only in the monitor)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.align import Align
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dsgen.report import Reporter, bar, human_time
from dsgen.runstate import RunState
from dsgen.snapshot import Event, LocalReader, LocalSource, Snapshot

if TYPE_CHECKING:
    from dsgen.engine import Engine

TITLE_RUN = "DSGEN — MULTI-CATEGORY DATASET GENERATOR"
TITLE_MONITOR = "DSGEN MONITOR"
STATUS_STYLES = {"RUNNING": "bold green", "FINISHED": "bold green", "IDLE": "bold cyan",
                 "PAUSED": "bold yellow", "STOPPING": "bold yellow", "STOPPED": "bold red"}
# Clip success rate: the engine warns below 80 % (extraction.low_success_warning); under
# half the clips passing, the video (or the gates) is likely wrong.
SUCCESS_GOOD, SUCCESS_POOR = 0.80, 0.50
# Free disk: red below what the run still needs (or the pause threshold), yellow below twice.
DISK_MARGIN = 2.0
MEMORY_WARN, MEMORY_HIGH = 0.75, 0.90  # share of the machine's RAM held by the dsgen tree
TWO_COLUMNS_MIN_WIDTH = 120  # below this, one column (the layout is made for 80 columns)
BAR_CELLS = 10  # progress bar width in the category table (fits 80 columns)
CURRENT_SHOWN = 4  # current videos listed (one per busy video; the rest summarised)
WORKERS_SHOWN = 6  # cluster workers named under "Workers" (the rest counted)
EVENTS_SHOWN = 5
# Sections left out, in this order, when a frame is taller than the terminal; last, the
# header box and the controls shrink to one line each.
DROP_ORDER = ("checkpoint", "disk", "performance", "events", "current", "compact")
RED_EVENTS = ("Disk full", "A worker process died", "Config reload failed", "Internal error")
REFRESH_SECONDS = 0.5  # the live dashboard redraws twice a second
KEY_POLL_SECONDS = 0.2  # how often the keyboard thread notices a stop
LINES_KEPT = 500  # engine lines a live dashboard keeps (re-printed if the run fails early)
STOP_LINE = "Received shutdown signal"  # the engine's Ctrl+C/SIGTERM line (engine.py)
PROGRESS_LINE = "… "  # Progress.progress_line: redundant beside the dashboard


def _rate_style(rate: float | None) -> str:
    if rate is None:
        return "dim"
    return "green" if rate >= SUCCESS_GOOD else "yellow" if rate >= SUCCESS_POOR else "red"


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def _size(n: float | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _clock(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(path: str, limit: int) -> str:
    """Keep the end of a long path: …/Planet Earth 2/S01E04.mkv."""
    if len(path) <= limit:
        return path
    parts = path.split("/")
    out = parts[-1]
    for p in reversed(parts[:-1]):
        if len(out) + len(p) + 3 > limit:
            break
        out = f"{p}/{out}"
    return ("…/" + out)[-limit:] if len(out) + 2 <= limit else "…" + out[-(limit - 1):]


def _tree(title: str, rows: Iterable[tuple[str, str | Text]]) -> Text:
    """📊 TITLE, then ├─ label: value lines."""
    items = list(rows)
    t = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    for i, (label, value) in enumerate(items):
        last = i == len(items) - 1
        if label.startswith("  "):  # a continuation line under the previous item
            t.append("\n" + ("   " if last else "│  ") + label[2:], style="dim")
        else:
            t.append("\n" + ("└─ " if last else "├─ "), style="dim")
            t.append(f"{label}: " if label else "")
        t.append(value if isinstance(value, Text) else Text(value))
    return t


def _header(s: Snapshot, live: bool, compact: bool = False) -> RenderableType:
    body = Text(TITLE_RUN if live else TITLE_MONITOR, style="bold", justify="center")
    body.append(" · Status: " if compact else "\nStatus: ", style="bold")
    body.append(s.status, style=STATUS_STYLES.get(s.status, "bold"))
    if s.reason:
        body.append(f" — {s.reason}", style="dim")
    if compact:
        body.no_wrap, body.overflow = True, "ellipsis"
        return body
    return Panel(Align.center(body), box=box.DOUBLE, padding=(0, 1))


def _overall(s: Snapshot, live: bool) -> Text:
    done = s.completed_videos
    cur = next((c for c in s.current if c.index == s.current_index), None)
    workers = "—" if s.workers is None else str(s.workers)
    if s.workers_busy is not None:
        workers += f" ({s.workers_busy} busy)"
    age = s.update_age
    upd = Text(_clock(s.last_update) + ("" if age is None or live else f" ({age:.0f} s ago)"),
               style="red" if s.stale else "")
    eta = ("done" if s.eta_seconds == 0 else "—" if s.eta_seconds is None
           else human_time(s.eta_seconds))
    rows: list[tuple[str, str | Text]] = [
        ("Total Videos", str(s.total_videos)),
        ("Completed", f"{done} ({done / s.total_videos:.1%})" if s.total_videos else "0"),
        ("Current" if live else "Current Index",
         (cur.name if cur else "—") if live else
         ("—" if s.current_index is None else str(s.current_index))),
        ("Remaining", f"{s.remaining_videos} videos"),
        ("Elapsed", "—" if s.elapsed_seconds is None else human_time(s.elapsed_seconds)),
        ("ETA", eta), ("Workers", workers), ("Last Update", upd)]
    if len({w.host for w in s.worker_list}) > 1 or any(
            not w.name.startswith("local-") for w in s.worker_list):  # a cluster: name them
        shown = ", ".join(f"{'●' if w.busy else '○'} {w.name}@{w.host}"
                          for w in s.worker_list[:WORKERS_SHOWN])
        more = len(s.worker_list) - WORKERS_SHOWN
        rows.insert(-1, ("  ", shown + (f" … +{more}" if more > 0 else "")))
    return _tree("📊 OVERALL PROGRESS", rows)


def _current(s: Snapshot, width: int) -> Text:
    title = "🎬 CURRENT VIDEOS" if len(s.current) > 1 else "🎬 CURRENT VIDEO"
    if not s.current:
        return _tree(title, [("", Text("none" if s.status != "RUNNING" else "starting…",
                                        style="dim"))])
    rows: list[tuple[str, str | Text]] = []
    for v in s.current[:CURRENT_SHOWN]:
        frac = v.samples / v.samples_target if v.samples_target else None
        rate = Text(_pct(v.success_rate), style=_rate_style(v.success_rate))
        rows.append(("", Text(f"[{v.index}] {v.name}", style="bold")))
        rows.append(("  Path: ", _short(v.path, max(20, width - 12))))
        rows.append(("  Extractions: ", f"{v.samples} / {v.samples_target} ({_pct(frac)}), "
                                        f"slots {v.slots_done} / {v.slots_planned}"))
        rows.append(("  Success Rate: ", rate + Text(f", Status: {v.status.capitalize()}")))
    if len(s.current) > CURRENT_SHOWN:
        rows.append(("", Text(f"… and {len(s.current) - CURRENT_SHOWN} more", style="dim")))
    return _tree(title, rows)


def _progress(f: float | None) -> Text:
    style = "green" if f is not None and f >= 1 else "cyan"
    return Text(bar(f or 0.0, BAR_CELLS), style=style) + Text(f" {_pct(f):>6}")


def _categories(s: Snapshot) -> Group:
    t = Table(box=box.SQUARE, header_style="bold")
    for name, just in (("Category", "left"), ("Videos", "right"), ("Images", "right"),
                       ("Target", "right"), ("Progress", "left"), ("Disk GB", "right")):
        t.add_column(name, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for c in s.categories:
        videos = "—" if c.videos_total is None else f"{c.videos_done}/{c.videos_total}"
        t.add_row(c.name.upper(), videos, f"{c.images:,}",
                  "—" if c.target is None else f"{c.target:,}", _progress(c.fraction),
                  f"{c.bytes / 1e9:.2f}")
        if c.val_target:  # validation apart, on a row of its own under the category
            t.add_row(Text(" └ val", style="dim"), "", f"{c.val_images:,}",
                      f"{c.val_target:,}", _progress(c.val_images / c.val_target),
                      f"{c.val_bytes / 1e9:.2f}")
    total = s.target
    t.add_section()
    t.add_row(Text("TOTAL", style="bold"), "", f"{s.images:,}", f"{total:,}",
              Text(f"{' ' * BAR_CELLS} {_pct(s.images / total if total else None):>6}"),
              f"{sum(c.bytes + c.val_bytes for c in s.categories) / 1e9:.2f}")
    return Group(Text("📦 CATEGORY PROGRESS", style="bold"), t)


def _disk(s: Snapshot) -> Text:
    d = s.disk
    rows: list[tuple[str, str | Text]] = [(c.name.upper(), _size(c.bytes + c.val_bytes))
                                          for c in s.categories]
    rows.append(("Total", _size(d.used_bytes)))
    if d.free_bytes is not None:
        need = d.needed_bytes or 0
        low = d.free_bytes < need or (d.min_free_bytes is not None
                                      and d.free_bytes < d.min_free_bytes)
        style = "red" if low else "yellow" if d.free_bytes < need * DISK_MARGIN else "green"
        free = Text(_size(d.free_bytes), style=style)
        if d.total_bytes:
            free.append(f" of {_size(d.total_bytes)}")
        if need:
            free.append(f" (still needed ≈ {_size(need)})", style=style if low else "")
        rows.append(("Free", free))
    return _tree("💾 DISK USAGE", rows)


def _performance(s: Snapshot) -> Text:
    p = s.performance
    rows: list[tuple[str, str | Text]] = [
        ("Extraction Speed", "—" if p.patches_per_min is None
         else f"{p.patches_per_min:.1f} patches/min"),
        ("Success Rate", Text(_pct(p.success_rate), style=_rate_style(p.success_rate))),
        ("Retry Rate", _pct(p.retry_rate)),
        ("Average Attempts", "—" if p.average_attempts is None else f"{p.average_attempts:.2f}")]
    if p.cpu_percent is not None:
        cores = "" if p.cpu_count is None else f" of {p.cpu_count * 100}%"
        procs = "" if p.processes is None else f", {p.processes} processes"
        rows.append(("CPU", f"{p.cpu_percent:.1f}%{cores}{procs}"))
    if p.memory_bytes is not None:
        mem = Text(_size(p.memory_bytes))
        if p.memory_total_bytes:
            share = p.memory_bytes / p.memory_total_bytes
            mem = Text(f"{_size(p.memory_bytes)} / {_size(p.memory_total_bytes)} "
                       f"({share:.1%})", style="red" if share >= MEMORY_HIGH else
                       "yellow" if share >= MEMORY_WARN else "")
        rows.append(("Memory", mem))
    if p.disk_read_bps is not None and p.disk_write_bps is not None:
        rows.append(("Disk I/O", f"read {p.disk_read_bps / 1e6:.1f} MB/s, "
                                 f"write {p.disk_write_bps / 1e6:.1f} MB/s"))
    return _tree("⚙ PERFORMANCE", rows)


def _checkpoint(s: Snapshot, width: int) -> Text:
    c = s.checkpoints
    rows: list[tuple[str, str | Text]] = [
        ("Videos", str(c.total)), ("Completed", str(c.done)),
        ("In Progress", str(c.in_progress)), ("Pending", str(c.pending)),
        ("Failed", Text(str(c.failed), style="red" if c.failed else ""))]
    for f in c.failures[:EVENTS_SHOWN]:
        rows.append(("  ", Text(_short(f"{f.name}: {f.status}"
                                       + (f" — {f.reason}" if f.reason else ""), width - 6),
                                style="red")))
    rows.append(("Status File" if s.source == "local" else "Metrics URL",
                 _short(s.where, max(20, width - 18))))
    return _tree("🔖 CHECKPOINT SUMMARY", rows)


def _events(s: Snapshot, width: int) -> Text:
    t = Text("📣 EVENTS", style="bold", no_wrap=True, overflow="ellipsis")
    shown = s.events[-EVENTS_SHOWN:]
    if not shown:
        t.append("\n   none", style="dim")
    for e in shown:
        style = ("red" if any(r in e.text for r in RED_EVENTS) else
                 "yellow" if e.level == "warning" else "")
        stamp = datetime.fromtimestamp(e.time).strftime("%H:%M:%S") if e.time else "--:--:--"
        line = " ".join(e.text.split())
        t.append(f"\n {stamp} ", style="dim")
        limit = max(10, width - 11)
        t.append(line if len(line) <= limit else line[: limit - 1] + "…", style=style)
    return t


def _controls(live: bool, compact: bool = False) -> Text:
    keys = (["[q] Quit & save", "[p] Pause / resume", "[Ctrl+C] Save & exit"] if live
            else ["[q] Quit monitor only (the run goes on)"])
    if compact:
        return Text("⌨ " + "  ".join(keys), style="bold", no_wrap=True, overflow="ellipsis")
    return _tree("⌨ CONTROLS", [("", k) for k in keys])


class Dashboard:
    """A frame: one column below TWO_COLUMNS_MIN_WIDTH, two above; fits `height` if given."""

    def __init__(self, snap: Snapshot, live: bool, height: int | None, controls: bool) -> None:
        self.snap, self.live, self.height, self.controls = snap, live, height, controls

    def _frame(self, width: int, dropped: set[str]) -> RenderableType:
        s, live = self.snap, self.live
        wide = width >= TWO_COLUMNS_MIN_WIDTH
        col = width // 2 - 2 if wide else width
        parts: dict[str, RenderableType] = {
            "overall": _overall(s, live), "current": _current(s, col),
            "disk": _disk(s), "performance": _performance(s), "events": _events(s, col),
            "checkpoint": _checkpoint(s, col)}
        compact = "compact" in dropped
        if self.controls:
            parts["controls"] = _controls(live, compact)
        parts = {k: v for k, v in parts.items() if k not in dropped}
        if live:  # the generator view: the checkpoint summary is the monitor's
            parts.pop("checkpoint", None)

        def group(names: tuple[str, ...]) -> Group:
            items: list[RenderableType] = []
            for n in names:
                if n in parts:
                    items.extend([parts[n], Text("")])
            return Group(*items[:-1])

        head: list[RenderableType] = [_header(s, live, compact)]
        if not wide:
            return Group(*head, group(("overall", "current")), Text(""), _categories(s),
                         Text(""), group(("disk", "performance", "checkpoint", "events",
                                          "controls")))
        grid = Table.grid(expand=True, padding=(0, 2))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(group(("overall", "current", "checkpoint")),
                     group(("performance", "disk", "events")))
        tail = [Text(""), parts["controls"]] if "controls" in parts else []
        return Group(*head, _categories(s), Text(""), grid, *tail)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Drop the least important sections until the frame fits the height."""
        dropped: set[str] = set()
        frame = self._frame(options.max_width, dropped)
        for name in DROP_ORDER:
            if self.height is None or len(console.render_lines(
                    frame, options.update(height=None), pad=False)) <= self.height:
                break
            dropped.add(name)
            frame = self._frame(options.max_width, dropped)
        yield frame


def render(snap: Snapshot, *, live: bool, height: int | None = None,
           controls: bool = True) -> RenderableType:
    """The dashboard (`live`: the generator's own; else the monitor's) for any width ≥ 80."""
    return Dashboard(snap, live, height, controls)


def plain_lines(snap: Snapshot) -> list[str]:
    """A compact text version for journald, pipes and `dsgen status`."""
    s, p = snap, snap.performance
    eta = "—" if s.eta_seconds is None else human_time(s.eta_seconds)
    lines = [f"dsgen {s.status}" + (f" ({s.reason})" if s.reason else "")
             + f" — videos {s.completed_videos}/{s.total_videos} done, "
             f"elapsed {human_time(s.elapsed_seconds or 0)}, ETA {eta}"]
    for c in s.categories:
        tgt = "?" if c.target is None else f"{c.target:,}"
        val = f", validation {c.val_images:,} / {c.val_target:,}" if c.val_target else ""
        lines.append(f"  {c.name.upper()}: {c.images:,} / {tgt} ({_pct(c.fraction)}) "
                     f"{_size(c.bytes + c.val_bytes)}{val}")
    rate = "—" if p.patches_per_min is None else f"{p.patches_per_min:.1f}"
    lines.append(f"  {rate} patches/min, success {_pct(p.success_rate)}, workers "
                 f"{s.workers_busy if s.workers_busy is not None else '—'}/"
                 f"{s.workers if s.workers is not None else '—'} busy")
    if s.worker_list:
        lines.append("  workers: " + ", ".join(f"{w.name}@{w.host} {'busy' if w.busy else 'idle'}"
                                               for w in s.worker_list))
    for v in s.current:
        lines.append(f"  now: [{v.index}] {v.name} {v.samples}/{v.samples_target} samples, "
                     f"slots {v.slots_done}/{v.slots_planned}")
    if s.disk.free_bytes is not None:
        lines.append(f"  disk: {_size(s.disk.used_bytes)} used, {_size(s.disk.free_bytes)} free"
                     + (f", ≈ {_size(s.disk.needed_bytes)} still needed"
                        if s.disk.needed_bytes else ""))
    ck = s.checkpoints
    lines.append(f"  videos: {ck.done} done, {ck.in_progress} in progress, {ck.pending} pending,"
                 f" {ck.failed} failed")
    lines.extend(f"  failed: {f.name}: {f.status}" + (f" — {f.reason}" if f.reason else "")
                 for f in ck.failures)
    lines.extend(f"  ⚠ {' '.join(e.text.split())}" for e in s.events[-3:]
                 if e.level == "warning")
    return lines


# -- the live dashboard of `dsgen run` -----------------------------------------------------


def live_block(run: RunState) -> dict[str, Any] | None:
    """The live block from the run's published view (never its mutable fields)."""
    view = run.view()
    return None if view is None else view.to_block()


class LiveDashboard:
    """`dsgen run`'s full-screen view: a drawing thread, a keyboard thread, the engine's sink."""

    FINAL = ("finished", "interrupted")

    def __init__(self, run: RunState, ui: Reporter, console: Console | None = None, *,
                 keyboard: bool = True, interval: float = REFRESH_SECONDS) -> None:
        self.run = run
        self.ui = ui
        self.console = console or Console()
        self.keyboard = keyboard
        self.interval = interval
        self.events: deque[Event] = deque(maxlen=LINES_KEPT)
        self.final: list[str] = []  # lines after a stop request: re-printed when closed
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._closed = False
        self._live: Live | None = None
        self._threads: list[threading.Thread] = []
        self._term: tuple[int, list[Any]] | None = None
        self.frames = 0

    def start(self) -> None:
        """Take over the screen and the engine's lines."""
        self.ui.sink = self.sink
        self._live = Live(console=self.console, screen=True, auto_refresh=False,
                          redirect_stdout=False, redirect_stderr=False, transient=True)
        self._live.start()
        self._threads = [threading.Thread(target=self._draw, name="dsgen-dashboard",
                                          daemon=True)]
        if self.keyboard and sys.stdin.isatty():
            self._threads.append(threading.Thread(target=self._keys, name="dsgen-keys",
                                                  daemon=True))
        for t in self._threads:
            t.start()

    def sink(self, level: str, text: str) -> None:
        """Reporter hook: lines go to the EVENTS area; the final summary closes the view."""
        with self._lock:
            if self._closed:
                print(text, file=self.ui.out, flush=True)
                return
            view = self.run.view()
            final = (view is not None and view.state in self.FINAL
                     and threading.current_thread() is threading.main_thread())
            if not final and text.startswith(PROGRESS_LINE):
                return  # the dashboard itself shows what the progress lines say
            if not final:
                self.events.append(Event(time.time(), level, text.strip()))
                # The Ctrl+C handler prints its line just before it sets `stopping`.
                if (self.run.stopping.is_set() or level == "warning"
                        or text.startswith(STOP_LINE)):
                    self.final.append(text)
        if final:  # the summary starts: it goes to the terminal, below the recap
            self.stop(summary=True)
            print(text, file=self.ui.out, flush=True)

    def stop(self, summary: bool = False) -> None:
        """Close the view, restore the terminal, hand lines back to the terminal (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._restore_terminal()
        if self._live is not None:
            self._live.stop()
        if self.ui.sink == self.sink:
            self.ui.sink = None
        out = self.ui.out
        # Warnings and the stop lines happened on the closed screen: say them again.
        lines = self.final if summary else [e.text for e in self.events]
        for line in lines:
            print(line, file=out, flush=True)
        if summary:
            print(file=out, flush=True)

    def _draw(self) -> None:
        """The drawing thread: its own read-only connection, never the engine's."""
        reader = LocalReader(LocalSource.from_config(self.run.cfg))
        try:
            while not self._stop.is_set() and self._live is not None:
                reader.source = LocalSource.from_config(self.run.cfg)  # reloads change it
                try:
                    with self._lock:
                        events = list(self.events)
                    snap = reader.read(live=live_block(self.run), events=events, own=True)
                    frame: RenderableType = render(snap, live=True,
                                                   height=self.console.size.height)
                except Exception as e:  # a display problem must never stop the run
                    frame = Text(f"dashboard error: {type(e).__name__}: {e}", style="red")
                self._live.update(frame, refresh=True)  # stop() joins us before closing Live
                self.frames += 1
                self._stop.wait(self.interval)
        finally:
            reader.close()

    def _keys(self) -> None:
        fd = sys.stdin.fileno()
        try:
            self._term = (fd, termios.tcgetattr(fd))
            tty.setcbreak(fd)  # keys one by one, no echo; Ctrl+C still sends SIGINT
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], KEY_POLL_SECONDS)
                if not ready:
                    continue
                ch = os.read(fd, 1)
                if not ch:
                    break
                self.key(ch.decode(errors="ignore"))
        except (OSError, termios.error):
            pass
        finally:
            self._restore_terminal()

    def key(self, ch: str) -> None:
        """q: stop like Ctrl+C (progress kept); p: pause/resume dispatching."""
        if ch in "qQ" and self.run.request_stop(signal.SIGINT):
            self.sink("info", "⏹ [q] pressed: stopping; running clips finish, progress is saved")
        elif ch in "pP":
            if self.run.toggle_pause():
                self.ui.line("⏸ Paused: running clips finish, no new work starts",
                             event="paused")
            else:
                self.ui.line("▶ Resumed", event="resumed")

    def _restore_terminal(self) -> None:
        with self._lock:
            term, self._term = self._term, None
        if term is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(term[0], termios.TCSADRAIN, term[1])


def dashboard_usable(ui: Reporter) -> bool:
    """A live view only on a real terminal with plain lines (not JSON logs, not a pipe)."""
    return (sys.stdout.isatty() and ui.log is None and ui.out is sys.stdout
            and os.environ.get("TERM", "") not in ("", "dumb"))


def run_with_dashboard(engine: Engine, console: Console | None = None,
                       keyboard: bool = True) -> int:
    """`engine.run()` in this (main) thread under the live dashboard; the exit code."""
    if console is None and not dashboard_usable(engine.ui):
        return engine.run()
    dash = LiveDashboard(engine.run_state, engine.ui, console, keyboard=keyboard)
    dash.start()
    try:
        return engine.run()
    finally:
        dash.stop()

