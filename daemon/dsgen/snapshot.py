"""What a dashboard shows, read without disturbing the run: status file, state (read-only),
psutil, or a remote daemon's /metrics. Field meanings: docs/status.md."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from dsgen.config import Config
from dsgen.errors import StateError
from dsgen.model import FAILED, OK, VAL, split_key, video_state
from dsgen.state import DB_NAME, KEY_SQL, State, check_damage_mark, translate

SCHEMA = "dsgen.status/1"
VAL_KEY = split_key("", VAL)  # the suffix that marks a validation planning key
# A writer is presumed dead when its status file is older than this many status periods
# (plus a grace for a slow disk or a long start-up step): a crashed run shows STOPPED.
STALE_PERIODS = 3.0
STALE_GRACE_SECONDS = 10.0
DEFAULT_STATUS_SECONDS = 5.0  # the config default, for --state-dir without a config
DEFAULT_STATUS_FILE = ".generator_status.json"
# CPU % needs two readings; a one-shot `dsgen status` waits this long between them.
PRIME_SECONDS = 0.25
EVENTS_KEPT = 20  # newest events a snapshot carries
# Status-file states → dashboard status (stale or dead-pid checks come first).
FILE_STATES = {"finished": "FINISHED", "interrupted": "STOPPED", "paused": "PAUSED",
               "idle": "IDLE", "running": "RUNNING", "initialized": "RUNNING"}


@dataclass(frozen=True)
class CategoryView:
    """One category's progress."""

    name: str
    images: int  # training samples (the category's target counts these)
    target: int | None
    bytes: int
    videos_done: int | None
    videos_total: int | None
    val_images: int = 0  # validation samples, on top of the target
    val_target: int | None = None  # None: no validation split
    val_bytes: int = 0

    @property
    def fraction(self) -> float | None:
        """images / target (None without a target)."""
        return None if not self.target else self.images / self.target


@dataclass(frozen=True)
class VideoView:
    """A video being extracted right now."""

    index: int
    name: str
    path: str
    slots_done: int
    slots_planned: int
    samples: int
    samples_target: int
    success_rate: float | None
    status: str


@dataclass(frozen=True)
class FailedVideo:
    """A video that gives nothing more, and why."""

    name: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class DamagedVideo:
    """A video found damaged, and where (dsgen.damage: what, first_s, last_s, …)."""

    name: str
    damage: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Checkpoints:
    """Videos by checkpoint state."""

    total: int = 0
    done: int = 0
    in_progress: int = 0
    pending: int = 0
    failed: int = 0
    failures: tuple[FailedVideo, ...] = ()
    damaged: tuple[DamagedVideo, ...] = ()


@dataclass(frozen=True)
class Performance:
    """Rates of this run and the resources of the dsgen process tree."""

    patches_per_min: float | None = None
    success_rate: float | None = None
    retry_rate: float | None = None
    average_attempts: float | None = None
    samples_this_run: int | None = None
    cpu_percent: float | None = None  # summed over processes: 200 = two cores busy
    cpu_count: int | None = None
    memory_bytes: int | None = None
    memory_total_bytes: int | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    processes: int | None = None


@dataclass(frozen=True)
class Disk:
    """The dataset's size and room left on the output filesystem."""

    used_bytes: int = 0
    free_bytes: int | None = None
    total_bytes: int | None = None
    needed_bytes: int | None = None
    min_free_bytes: int | None = None


@dataclass(frozen=True)
class WorkerView:
    """A worker of the run (local pool or Dask cluster)."""

    name: str
    host: str
    busy: bool


@dataclass(frozen=True)
class Event:
    """A line worth seeing: a warning, or (live) what the engine printed."""

    time: float
    level: str  # "warning" | "info"
    text: str


@dataclass(frozen=True)
class Snapshot:
    """Everything a dashboard shows, at one moment."""

    source: str  # "local" | "http"
    where: str  # status file path or metrics URL
    status: str  # RUNNING | PAUSED | STOPPING | STOPPED | FINISHED | IDLE
    reason: str | None
    taken_at: float
    mode: str | None = None
    pid: int | None = None
    version: str | None = None
    started_at: float | None = None
    last_update: float | None = None
    stale_after_seconds: float | None = None
    total_videos: int = 0
    completed_videos: int = 0
    current_index: int | None = None
    workers: int | None = None
    workers_busy: int | None = None
    worker_list: tuple[WorkerView, ...] = ()
    eta_seconds: float | None = None
    categories: tuple[CategoryView, ...] = ()
    current: tuple[VideoView, ...] = ()
    checkpoints: Checkpoints = field(default_factory=Checkpoints)
    performance: Performance = field(default_factory=Performance)
    disk: Disk = field(default_factory=Disk)
    events: tuple[Event, ...] = ()
    output_root: str | None = None
    state_db: str | None = None

    @property
    def remaining_videos(self) -> int:
        """Videos neither done nor failed."""
        return max(0, self.total_videos - self.completed_videos)

    @property
    def update_age(self) -> float | None:
        """Seconds since the writer last updated the status."""
        return None if self.last_update is None else max(0.0, self.taken_at - self.last_update)

    @property
    def stale(self) -> bool:
        """The status is older than a live writer would leave it."""
        age, limit = self.update_age, self.stale_after_seconds
        return age is not None and limit is not None and age > limit

    @property
    def elapsed_seconds(self) -> float | None:
        """Time of this run (frozen at the last update once it stopped)."""
        if self.started_at is None:
            return None
        end = self.taken_at if self.status in ("RUNNING", "PAUSED", "IDLE", "STOPPING") else (
            self.last_update or self.taken_at)
        return max(0.0, end - self.started_at)

    @property
    def images(self) -> int:
        """Samples of all categories."""
        return sum(c.images for c in self.categories)

    @property
    def target(self) -> int:
        """Targets of all categories."""
        return sum(c.target or 0 for c in self.categories)


def to_json(snap: Snapshot) -> dict[str, Any]:
    """The stable `dsgen status --json` object (schema dsgen.status/1, docs/status.md)."""
    doc = asdict(snap)
    doc.update(remaining_videos=snap.remaining_videos, elapsed_seconds=snap.elapsed_seconds,
               update_age_seconds=snap.update_age, images=snap.images, target=snap.target)
    for c, view in zip(doc["categories"], snap.categories, strict=True):
        c["fraction"] = view.fraction
    return {"schema": SCHEMA, **doc}


# -- local ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSource:
    """Where a local run keeps its status file and state, and what the config says."""

    state_dir: Path | None
    output_root: Path | None
    status_path: Path | None
    status_seconds: float = DEFAULT_STATUS_SECONDS
    targets: tuple[tuple[str, int], ...] = ()  # config order
    video_names: tuple[str, ...] = ()  # config order
    min_free_gb: float | None = None
    val_targets: tuple[tuple[str, int], ...] = ()  # categories with a validation split

    @classmethod
    def from_config(cls, cfg: Config) -> LocalSource:
        """Everything from the config."""
        return cls(cfg.state_dir, cfg.output_root, cfg.status_path, cfg.status_seconds,
                   tuple((c.name, c.target) for c in cfg.categories),
                   tuple(v.name for v in cfg.videos), cfg.disk.min_free_gb,
                   tuple((c.name, c.val_target) for c in cfg.categories if c.val_target))

    @classmethod
    def from_dirs(cls, state_dir: Path | None, output_root: Path | None = None) -> LocalSource:
        """Without a config: the output root comes from the state's identity if not given."""
        if output_root is None and state_dir is not None:
            output_root = _identity_root(state_dir)
        status = output_root / DEFAULT_STATUS_FILE if output_root is not None else None
        return cls(state_dir, output_root, status)


def _identity_root(state_dir: Path) -> Path | None:
    """The output_root recorded in the state (meta 'identity')."""
    try:
        st = State(state_dir, readonly=True)
    except StateError:
        return None
    try:
        return Path(json.loads(st.get_meta("identity") or "")["root"])
    except (sqlite3.Error, ValueError, KeyError):
        return None
    finally:
        st.close()


class TreeSampler:
    """CPU, memory and disk I/O of a process and its descendants, between two readings."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._io: dict[int, tuple[int, int]] = {}
        self._time = 0.0

    def sample(self, pid: int, prime: bool = True) -> Performance:
        """Figures since the previous reading (the first waits PRIME_SECONDS when `prime`)."""
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return Performance()
        if not self._procs and prime:
            self._read(tree)
            time.sleep(PRIME_SECONDS)
        return self._read(tree)

    def _read(self, tree: list[psutil.Process]) -> Performance:
        now = time.monotonic()
        dt = now - self._time if self._time else 0.0
        procs, io = {}, {}
        cpu, rss, read_bps, write_bps, io_ok = 0.0, 0, 0.0, 0.0, False
        for p in tree:
            proc = self._procs.get(p.pid, p)
            try:
                with proc.oneshot():
                    c = proc.cpu_percent(None)
                    mem = proc.memory_info().rss
            except psutil.Error:
                continue
            procs[p.pid] = proc
            if p.pid in self._procs:
                cpu += c
            rss += mem
            try:
                counters = proc.io_counters()
            except (psutil.Error, AttributeError, NotImplementedError):
                continue
            io_ok = True
            io[p.pid] = (counters.read_bytes, counters.write_bytes)
            old = self._io.get(p.pid)
            if old is not None and dt > 0:
                read_bps += max(0, io[p.pid][0] - old[0]) / dt
                write_bps += max(0, io[p.pid][1] - old[1]) / dt
        primed = bool(self._procs)
        self._procs, self._io, self._time = procs, io, now
        return Performance(cpu_percent=round(cpu, 1) if primed else None,
                           cpu_count=psutil.cpu_count() or 1, memory_bytes=rss,
                           memory_total_bytes=psutil.virtual_memory().total,
                           disk_read_bps=read_bps if io_ok and primed else None,
                           disk_write_bps=write_bps if io_ok and primed else None,
                           processes=len(procs))


def _ts(text: Any) -> float | None:
    """ISO 8601 → Unix time; a time without offset is local (as the predecessor wrote it)."""
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _unix(value: Any) -> float | None:
    """A Unix time from dsgen's own status block (a number), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# The status file's performance figures (the rest of Performance comes from psutil).
RATE_FIELDS = ("patches_per_min", "success_rate", "retry_rate", "average_attempts",
               "samples_this_run")


def pid_alive(pid: int, started_at: float | None) -> bool:
    """The pid runs and is not a later process that reused the number."""
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        # started_at is written after the process started (and rounded down to the second).
        return started_at is None or p.create_time() <= started_at + 2.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but not ours to inspect


@dataclass
class _Db:
    """What one short read transaction of the state gives."""

    videos: list[tuple[int, str, str, str, str | None]] = field(default_factory=list)
    slots: dict[int, tuple[int, int]] = field(default_factory=dict)  # vid → (total, pending)
    # (video, planning key: category or `<category>@val`) → (samples, bytes)
    samples: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    quotas: dict[tuple[int, str], int] = field(default_factory=dict)
    tried: dict[int, tuple[int, int]] = field(default_factory=dict)  # vid → (tried, ok)
    owed: dict[int, int] = field(default_factory=dict)  # vid → samples its quotas still expect
    damage: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # vid → its damage


def read_db(db: sqlite3.Connection) -> _Db:
    """Aggregates only (never the probe blobs), in one short read transaction."""
    out = _Db()
    db.execute("BEGIN")
    try:
        out.videos = list(db.execute("SELECT id, name, path, status, reason FROM videos "
                                     "ORDER BY id"))
        out.slots = {r[0]: (int(r[1]), int(r[2])) for r in db.execute(
            "SELECT video_id, COUNT(*), SUM(done=0) FROM slots GROUP BY video_id")}
        has_split = any(r[1] == "split" for r in db.execute("PRAGMA table_info(samples)"))
        key = KEY_SQL if has_split else "category"  # an older state: all training
        out.samples = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in db.execute(
            f"SELECT video_id, {key}, COUNT(*), COALESCE(SUM(bytes), 0) FROM samples"
            " GROUP BY video_id, 2")}
        out.quotas = {(r[0], r[1]): int(r[2]) for r in db.execute(
            "SELECT video_id, category, SUM(amount) FROM quotas GROUP BY video_id, category")}
        out.tried = {r[0]: (int(r[1]), int(r[2])) for r in db.execute(
            "SELECT video_id, COUNT(*), SUM(outcome=?) FROM attempts GROUP BY video_id", (OK,))}
        exhausted = set(db.execute("SELECT video_id, category FROM exhausted"))
        if any(r[1] == "damage" for r in db.execute("PRAGMA table_info(videos)")):
            out.damage = {r[0]: json.loads(r[1]) for r in db.execute(
                "SELECT id, damage FROM videos WHERE damage IS NOT NULL")}
    finally:
        db.execute("COMMIT")
    for (vid, cat), q in out.quotas.items():
        if (vid, cat) not in exhausted:
            left = max(0, q - out.samples.get((vid, cat), (0, 0))[0])
            out.owed[vid] = out.owed.get(vid, 0) + left
    return out


class LocalReader:
    """Reads a local run again and again; keeps one read-only connection and a CPU sampler.

    Use it from one thread only (sqlite3 connections must not cross threads).
    """

    def __init__(self, source: LocalSource) -> None:
        self.source = source
        self._state: State | None = None
        self.sampler = TreeSampler()

    def close(self) -> None:
        """Close the read-only connection."""
        if self._state is not None:
            self._state.close()
            self._state = None

    def _db(self) -> _Db | None:
        sd = self.source.state_dir
        if sd is not None:
            check_damage_mark(sd)  # a run found it damaged: say so, never show stale data
        if self._state is None:
            if sd is None or not (sd / DB_NAME).exists():
                return None
            try:
                self._state = State(sd, readonly=True)
            except StateError:
                return None
        try:
            return read_db(self._state.db)
        except sqlite3.Error as e:
            self.close()  # e.g. the file was replaced: reopen next time
            err = translate(e, str(sd / DB_NAME) if sd else "the state database")
            if isinstance(err, StateError):  # damaged: say so, never show stale figures
                raise err from None
            return None

    def _doc(self) -> dict[str, Any] | None:
        path = self.source.status_path
        if path is None:
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def read(self, *, live: Mapping[str, Any] | None = None,
             events: Iterable[Event] | None = None, own: bool = False) -> Snapshot:
        """A snapshot; `live` overrides the status file's live block, `own` = we are the run."""
        now = time.time()
        src = self.source
        doc = self._doc() or {}
        blk: Mapping[str, Any] = live if live is not None else (doc.get("dsgen") or {})
        db = self._db() or _Db()
        started = _unix(blk.get("started"))
        if started is None and not own:
            started = _ts(doc.get("started_at"))
        last = now if own else (_unix(blk.get("last_update")) or _ts(doc.get("last_update")))
        stale_after = STALE_PERIODS * src.status_seconds + STALE_GRACE_SECONDS
        status, reason = self._status(doc, blk, own, last, now, stale_after, started)
        pid = blk.get("pid") if isinstance(blk.get("pid"), int) else None

        # Videos in the run's order: the status file's list, else the config's, else the state's.
        by_name = {v[1]: v for v in db.videos}
        names = [c.get("name", "") for _, c in sorted(
            (doc.get("video_checkpoints") or {}).items(), key=lambda kv: int(kv[0]))]
        names = names or list(src.video_names) or list(by_name)
        states: dict[str, str] = {}
        failures = []
        for name in names:
            row = by_name.get(name)
            if row is None:
                states[name] = "pending"
                continue
            total, pending = db.slots.get(row[0], (0, 0))
            state = video_state(row[3], total, pending, db.owed.get(row[0], 0))
            if state in FAILED:
                failures.append(FailedVideo(name, row[3], row[4]))
                state = "failed"  # the checkpoint tally groups them; failures say which
            states[name] = state
        tally = {k: sum(1 for s in states.values() if s == k)
                 for k in ("done", "in_progress", "pending", "failed")}
        damaged = tuple(DamagedVideo(name, tuple(db.damage[by_name[name][0]])) for name in names
                        if name in by_name and db.damage.get(by_name[name][0]))
        checkpoints = Checkpoints(len(names), tally["done"], tally["in_progress"],
                                  tally["pending"], tally["failed"], tuple(failures), damaged)
        categories = self._categories(doc, db, names, by_name, states)
        current = self._current(blk, db, names, by_name, states, live is not None or own)
        perf = self._performance(blk, pid, status, own)
        disk = self._disk(categories)
        remaining = sum(max(0, (c.target or 0) - c.images)
                        + max(0, (c.val_target or 0) - c.val_images) for c in categories)
        eta: float | None = None
        if status == "FINISHED" or (categories and not remaining):
            eta = 0.0
        elif status in ("RUNNING", "STOPPING") and perf.patches_per_min:
            eta = remaining / perf.patches_per_min * 60
        evs = tuple(events) if events is not None else tuple(
            Event(_ts(e.get("time")) or 0.0, "warning",
                  e.get("title", "") + (": " + "; ".join(e["details"]) if e.get("details")
                                        else "")) for e in blk.get("events", []))
        workers, busy = blk.get("workers", doc.get("workers")), blk.get("workers_busy")
        if isinstance(workers, int) and isinstance(busy, int):
            busy = min(busy, workers)  # the engine keeps one task queued beyond the workers
        index = next((i for i, n in enumerate(names) if states[n] == "in_progress"), None)
        if current:
            index = current[0].index
        return Snapshot(
            source="local", where=str(src.status_path), status=status, reason=reason,
            taken_at=now, mode=blk.get("mode"), pid=pid,
            version=doc.get("version"), started_at=started, last_update=last,
            stale_after_seconds=stale_after, total_videos=len(names),
            completed_videos=checkpoints.done + checkpoints.failed, current_index=index,
            workers=workers, workers_busy=busy,
            worker_list=tuple(WorkerView(str(w.get("name", "")), str(w.get("host", "")),
                                         bool(w.get("busy"))) for w in blk.get("worker_list", [])
                              if isinstance(w, dict)),
            eta_seconds=eta, categories=categories, current=current, checkpoints=checkpoints,
            performance=perf, disk=disk, events=evs[-EVENTS_KEPT:],
            output_root=str(src.output_root) if src.output_root else None,
            state_db=str(src.state_dir / DB_NAME) if src.state_dir else None)

    def _status(self, doc: Mapping[str, Any], blk: Mapping[str, Any], own: bool,
                last: float | None, now: float, stale_after: float, started: float | None
                ) -> tuple[str, str | None]:
        if own:
            state = str(blk.get("state", "running"))
            if blk.get("stopping"):
                return "STOPPING", "in-flight clips finish, then progress is saved"
            return FILE_STATES.get(state, "RUNNING"), blk.get("paused_reason")
        if not doc:
            return "STOPPED", "no status file yet (never run here?)"
        file_status = str(doc.get("status", ""))
        if file_status == "finished":
            return "FINISHED", None
        if file_status == "interrupted":
            return "STOPPED", "interrupted; run again to resume"
        pid = blk.get("pid")
        host = blk.get("host")
        if isinstance(pid, int) and (host is None or host == socket.gethostname()) and (
                not pid_alive(pid, started)):
            return "STOPPED", f"process {pid} is gone (crashed or killed); run again to resume"
        if last is not None and now - last > stale_after:
            return "STOPPED", f"no status update for {now - last:.0f} s (writer dead or hung?)"
        state = str(blk.get("state") or file_status)
        return FILE_STATES.get(state, "RUNNING"), blk.get("paused_reason")

    def _categories(self, doc: Mapping[str, Any], db: _Db, names: list[str],
                    by_name: Mapping[str, tuple[int, str, str, str, str | None]],
                    states: Mapping[str, str]) -> tuple[CategoryView, ...]:
        targets = dict(self.source.targets) or {
            k: int(v.get("target", 0)) for k, v in (doc.get("category_stats") or {}).items()}
        val_targets = dict(self.source.val_targets) or {
            k: int(v.get("target", 0)) for k, v in
            ((doc.get("dsgen") or {}).get("validation") or {}).items()}
        cats = list(targets) + sorted({c for _, c in db.samples if VAL_KEY not in c}
                                      - set(targets))
        ids = {by_name[n][0]: n for n in names if n in by_name}
        out = []
        for cat in cats:
            planned = {v for (v, c), q in db.quotas.items() if c == cat and q > 0 and v in ids}
            n = sum(k for (_, c), (k, _) in db.samples.items() if c == cat)
            size = sum(b for (_, c), (_, b) in db.samples.items() if c == cat)
            vk = split_key(cat, VAL)
            vn = sum(k for (_, c), (k, _) in db.samples.items() if c == vk)
            vsize = sum(b for (_, c), (_, b) in db.samples.items() if c == vk)
            done = sum(1 for v in planned if states.get(ids[v]) in ("done", "failed"))
            out.append(CategoryView(cat, n, targets.get(cat), size, done if planned else 0,
                                    len(planned), vn, val_targets.get(cat), vsize))
        return tuple(out)

    def _current(self, blk: Mapping[str, Any], db: _Db, names: list[str],
                 by_name: Mapping[str, tuple[int, str, str, str, str | None]],
                 states: Mapping[str, str], have_live: bool) -> tuple[VideoView, ...]:
        wanted = [str(c.get("name")) for c in blk.get("current_videos", [])]
        if not wanted and not have_live and not blk:  # an old status file: first in progress
            wanted = [n for n in names if states.get(n) == "in_progress"][:1]
        out = []
        for name in wanted:
            row = by_name.get(name)
            if row is None:
                continue
            total, pending = db.slots.get(row[0], (0, 0))
            tried, ok = db.tried.get(row[0], (0, 0))
            out.append(VideoView(
                names.index(name) if name in names else -1, name, row[2], total - pending,
                total, sum(k for (v, _), (k, _) in db.samples.items() if v == row[0]),
                sum(q for (v, _), q in db.quotas.items() if v == row[0]),
                ok / tried if tried else None, "running"))
        return tuple(out)

    def _performance(self, blk: Mapping[str, Any], pid: int | None, status: str, own: bool
                     ) -> Performance:
        res = Performance()
        if pid is not None and status not in ("STOPPED", "FINISHED") and (
                own or blk.get("host") in (None, socket.gethostname())):
            res = self.sampler.sample(pid)
        rates = {k: v for k, v in (blk.get("performance") or {}).items() if k in RATE_FIELDS}
        return replace(res, **rates)

    def _disk(self, categories: tuple[CategoryView, ...]) -> Disk:
        used = sum(c.bytes + c.val_bytes for c in categories)
        need = sum(int(c.bytes / c.images * max(0, (c.target or 0) - c.images))
                   for c in categories if c.images) + sum(
            int(c.val_bytes / c.val_images * max(0, (c.val_target or 0) - c.val_images))
            for c in categories if c.val_images)
        free = total = None
        with contextlib.suppress(OSError, TypeError):  # TypeError: no output root known
            total, _, free = shutil.disk_usage(self.source.output_root)  # type: ignore[arg-type]
        gb = self.source.min_free_gb
        return Disk(used, free, total, need, None if gb is None else int(gb * 1e9))


def from_local(cfg: Config | LocalSource) -> Snapshot:
    """One snapshot of a local run (status file + state read-only + psutil)."""
    src = cfg if isinstance(cfg, LocalSource) else LocalSource.from_config(cfg)
    reader = LocalReader(src)
    try:
        return reader.read()
    finally:
        reader.close()


# -- remote --------------------------------------------------------------------------------


def from_http(url: str) -> Snapshot:
    """A snapshot of a remote daemon from its /metrics (rates from this process's scrapes)."""
    from dsgen.monitor import http_reader  # the remote reader lives beside its main user

    return http_reader(url).read()
