"""State: one SQLite database (WAL) holding videos, plans, attempts and durable samples."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsgen.errors import StateError
from dsgen.journal import Journal
from dsgen.model import (
    VAL,
    VAL_SUFFIX,
    SlotPlan,
    SlotResult,
    VideoCounts,
    VideoProbe,
    VideoRow,
)
from dsgen.state_db import (
    BUSY_TIMEOUT_MS,
    DAMAGE_MARK,
    DB_NAME,
    NEARLY_FULL_BYTES,
    SQLITE_CORRUPT,
    SQLITE_FULL,
    SQLITE_IOERR,
    SQLITE_NOTADB,
    WRITES,
    StateConnection,
    StateCursor,
    check_damage_mark,
    clear_damage_mark,
    damaged,
    mark_damaged,
    quote_path,
    translate,
)
from dsgen.state_runs import StateRuns, boot_id
from dsgen.state_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, columns, prepare

# The state's API; what moved to state_db / state_schema / state_runs is still imported
# from here by the rest of dsgen, the tests and the benchmarks.
__all__ = [
    "BUSY_TIMEOUT_MS", "DAMAGE_MARK", "DB_NAME", "KEY_SQL", "MIGRATIONS", "NEARLY_FULL_BYTES",
    "SCHEMA", "SCHEMA_VERSION", "SQLITE_CORRUPT", "SQLITE_FULL", "SQLITE_IOERR",
    "SQLITE_NOTADB", "WRITES", "State", "StateConnection", "StateCursor", "boot_id",
    "check_damage_mark", "clear_damage_mark", "damaged", "mark_damaged", "quote_path",
    "translate",
]

# A sample's or slot's planning key (model.split_key) in SQL.
KEY_SQL = f"category || CASE WHEN split = '{VAL}' THEN '{VAL_SUFFIX}' ELSE '' END"


class State(StateRuns):
    """The only writer of the database; every method is one transaction."""

    def __init__(self, state_dir: Path, readonly: bool = False, *,
                 db_path: Path | None = None, journal: bool = True) -> None:
        self.path = db_path or state_dir / DB_NAME
        self.journal = None
        try:
            if readonly:
                uri = f"file:{quote_path(self.path)}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                          factory=StateConnection)
                self.db.where = str(self.path)
            else:
                state_dir.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                          isolation_level=None, factory=StateConnection)
                self.db.where = str(self.path)
                self.db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL: a commit survives a process crash (kill -9); only an OS
                # crash can lose the last commits, and their files are then redone.
                self.db.execute("PRAGMA synchronous=NORMAL")
                prepare(self)
                if journal:
                    self.journal = Journal(state_dir)
        except StateError:
            self._close_quietly()
            raise
        except sqlite3.Error as e:
            self._close_quietly()
            err = translate(e, str(self.path))
            if isinstance(err, StateError):
                raise err from None
            raise StateError(f"{self.path}: cannot open the state database: {e}",
                             hint="check the state_dir permissions and free space") from None
        except OSError as e:
            self._close_quietly()
            raise StateError(f"{state_dir}: cannot use the state folder: {e.strerror or e}",
                             hint="check that state_dir is a folder dsgen may write to"
                             ) from None

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error, StateError):
                db.close()

    def close(self) -> None:
        """Close the connection (checkpoints the WAL) and the journal."""
        if self.journal is not None:
            self.journal.close()
        try:
            self.db.close()
        except sqlite3.Error as e:
            raise translate(e, str(self.path)) from None

    def _columns(self, table: str) -> set[str]:
        """A table's columns (an older state opened read-only lacks the newer ones)."""
        return columns(self.db, table)

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored setting (seed, layout…)."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def del_meta(self, key: str) -> None:
        """Forget a setting."""
        with self.tx() as db:
            db.execute("DELETE FROM meta WHERE key=?", (key,))

    # -- videos ----------------------------------------------------------------------------

    def videos(self, probes: bool = True, video_id: int | None = None) -> list[VideoRow]:
        """All videos (or one), in insertion order; `probes=False` skips the frame indexes
        (megabytes per film) for callers that only need names and states."""
        cols = "probe, arrays" if probes else "NULL, NULL"
        damage = "damage" if "damage" in self._columns("videos") else "NULL"
        where, args = ("WHERE id=?", (video_id,)) if video_id is not None else ("", ())
        rows = self.db.execute(
            "SELECT id, name, path, size, mtime_ns, status, stage, reason, duration, fps,"
            f" {cols}, frames, {damage} FROM videos {where} ORDER BY id", args).fetchall()
        out = []
        for r in rows:
            probe = VideoProbe.from_state(r[10], r[11]) if r[10] else None
            out.append(VideoRow(id=r[0], name=r[1], path=r[2], size=r[3], mtime_ns=r[4],
                                status=r[5], stage=r[6], reason=r[7], duration=r[8], fps=r[9],
                                probe=probe, frames=r[12],
                                damage=json.loads(r[13]) if r[13] else None))
        return out

    def set_damage(self, video_id: int, damage: list[dict[str, Any]]) -> None:
        """Store a video's damaged ranges (dsgen.damage)."""
        with self.tx() as db:
            db.execute("UPDATE videos SET damage=? WHERE id=?",
                       (json.dumps(damage, sort_keys=True), video_id))

    def probe(self, video_id: int) -> VideoProbe | None:
        """A video's full probe (its frame index), or None before it is probed."""
        row = self.db.execute("SELECT probe, arrays FROM videos WHERE id=?",
                              (video_id,)).fetchone()
        return VideoProbe.from_state(row[0], row[1]) if row and row[0] else None

    def upsert_video(self, name: str, path: str, status: str, *, size: int | None = None,
                     mtime_ns: int | None = None, stage: str | None = None,
                     reason: str | None = None, duration: float | None = None,
                     fps: float | None = None) -> int:
        """Insert or update a video by name; return its id."""
        with self.tx() as db:
            row = db.execute("SELECT id FROM videos WHERE name=?", (name,)).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO videos (name, path, size, mtime_ns, status, stage, reason,"
                    " duration, fps, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (name, path, size, mtime_ns, status, stage, reason, duration, fps,
                     time.time()))
                return int(cur.lastrowid or 0)
            db.execute(
                "UPDATE videos SET path=?, size=COALESCE(?, size), mtime_ns=COALESCE(?, mtime_ns),"
                " status=?, stage=?, reason=?, duration=COALESCE(?, duration),"
                " fps=COALESCE(?, fps), updated=? WHERE id=?",
                (path, size, mtime_ns, status, stage, reason, duration, fps, time.time(), row[0]))
            return int(row[0])

    def add_videos(self, videos: list[tuple[str, str]]) -> dict[str, int]:
        """Record new videos (name, path) in one transaction, before their headers are read
        (status new, no size): ids in config order, whenever the headers arrive."""
        with self.tx() as db:
            now = time.time()
            db.executemany("INSERT INTO videos (name, path, status, updated) VALUES "
                           "(?, ?, 'new', ?)", [(n, p, now) for n, p in videos])
        names = {n for n, _ in videos}
        return {r[1]: int(r[0]) for r in self.db.execute("SELECT id, name FROM videos")
                if r[1] in names}

    def video(self, video_id: int) -> VideoRow:
        """One video, with its probe."""
        return self.videos(video_id=video_id)[0]

    def has_probe(self, video_id: int) -> bool:
        """Whether a video's frame index is stored."""
        row = self.db.execute("SELECT probe IS NOT NULL FROM videos WHERE id=?",
                              (video_id,)).fetchone()
        return bool(row and row[0])

    def probed_count(self) -> int:
        """Videos whose frame index is stored."""
        return int(self.db.execute("SELECT COUNT(*) FROM videos WHERE probe IS NOT NULL")
                   .fetchone()[0])

    def set_probe(self, video_id: int, probe: VideoProbe) -> None:
        """Store a video's probe (colour, bars, header timing) and its frame index if it is
        complete (not journaled: a recovered state without it probes the video again)."""
        done = probe.index_complete
        with self.tx(journal=False) as db:
            db.execute("UPDATE videos SET probe=?, arrays=?, frames=?, updated=? WHERE id=?",
                       (probe.to_json(), probe.arrays_blob() if done else None,
                        probe.n_frames if done else None, time.time(), video_id))

    # -- the frame index, chunk by chunk ----------------------------------------------------

    def incomplete_indexes(self) -> list[int]:
        """Usable videos that were probed but whose frame index is not complete."""
        return [int(r[0]) for r in self.db.execute(
            "SELECT id FROM videos WHERE probe IS NOT NULL AND arrays IS NULL"
            " AND status IN ('new', 'ready') ORDER BY id")]

    def add_chunk(self, video_id: int, chunk: int, blob: bytes, start_key: int | None,
                  end_key: int | None, eof: bool, holes: int,
                  damage: list[tuple[str, int, int]]) -> None:
        """Store one chunk's scan of a video's index (not journaled: a recovered state
        without it scans the chunk again)."""
        with self.tx(journal=False) as db:
            db.execute("INSERT OR REPLACE INTO index_chunks VALUES (?,?,?,?,?,?,?,?)",
                       (video_id, chunk, blob, start_key, end_key, int(eof), holes,
                        json.dumps(damage)))

    def chunks_done(self, video_id: int) -> set[int]:
        """Chunks of a video's index already scanned."""
        return {int(r[0]) for r in self.db.execute(
            "SELECT chunk FROM index_chunks WHERE video_id=?", (video_id,))}

    def chunks(self, video_id: int) -> list[tuple[int, bytes, int | None, int | None, bool, int,
                                                  list[tuple[str, int, int]]]]:
        """(chunk, arrays, start_key, end_key, eof, holes, damage) of every scanned chunk."""
        rows = self.db.execute(
            "SELECT chunk, arrays, start_key, end_key, eof, holes, damage FROM index_chunks"
            " WHERE video_id=? ORDER BY chunk", (video_id,)).fetchall()
        return [(int(r[0]), bytes(r[1]), r[2], r[3], bool(r[4]), int(r[5]),
                 [tuple(d) for d in json.loads(r[6])]) for r in rows]

    def set_index(self, video_id: int, probe: VideoProbe) -> None:
        """Store a video's complete frame index and drop its chunks, in one transaction (not
        journaled: megabytes; a recovered state without it scans the video again)."""
        with self.tx(journal=False) as db:
            db.execute("UPDATE videos SET probe=?, arrays=?, frames=?, updated=? WHERE id=?",
                       (probe.to_json(), probe.arrays_blob(), probe.n_frames, time.time(),
                        video_id))
            db.execute("DELETE FROM index_chunks WHERE video_id=?", (video_id,))

    def forget_index(self, video_id: int) -> None:
        """Drop a video's probe, index and chunks (the file changed)."""
        with self.tx() as db:
            db.execute("UPDATE videos SET probe=NULL, arrays=NULL, frames=NULL WHERE id=?",
                       (video_id,))
            db.execute("DELETE FROM index_chunks WHERE video_id=?", (video_id,))

    # -- plan ------------------------------------------------------------------------------

    def quotas(self) -> dict[tuple[int, str], int]:
        """Total quota per (video, category) over all phases."""
        rows = self.db.execute(
            "SELECT video_id, category, SUM(amount) FROM quotas GROUP BY video_id, category")
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def phase(self) -> int:
        """The newest planning phase (-1 before the first)."""
        row = self.db.execute("SELECT MAX(phase) FROM quotas").fetchone()
        return -1 if row[0] is None else int(row[0])

    def add_quotas(self, phase: int, amounts: dict[str, dict[int, int]],
                   meta: dict[str, str | None] | None = None) -> None:
        """Record a planning phase (or a step of one): category → video → samples added, and
        settings changed with it in the same transaction (None deletes)."""
        with self.tx() as db:
            for cat, per_video in amounts.items():
                for vid, amount in per_video.items():
                    db.execute("INSERT INTO quotas VALUES (?,?,?,?) ON CONFLICT(video_id, "
                               "category, phase) DO UPDATE SET amount = amount + "
                               "excluded.amount", (vid, cat, phase, amount))
            for key, value in (meta or {}).items():
                if value is None:
                    db.execute("DELETE FROM meta WHERE key=?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def exhausted(self) -> dict[tuple[int, str], str]:
        """(video, category) pairs that cannot give more, with why."""
        rows = self.db.execute("SELECT video_id, category, reason FROM exhausted")
        return {(r[0], r[1]): r[2] for r in rows}

    def mark_exhausted(self, video_id: int, categories: list[str], reason: str) -> None:
        """Record that a video cannot give more samples for these categories."""
        with self.tx() as db:
            for c in categories:
                db.execute("INSERT OR REPLACE INTO exhausted VALUES (?,?,?)", (video_id, c, reason))

    def clear_exhausted(self, video_id: int, reasons: tuple[str, ...]) -> None:
        """Forget exhaustion marks with these reasons (the file or its mount came back)."""
        with self.tx() as db:
            db.executemany("DELETE FROM exhausted WHERE video_id=? AND reason=?",
                           [(video_id, r) for r in reasons])

    def add_slots(self, video_id: int, slots: list[SlotPlan]) -> None:
        """Record new slots of a video."""
        with self.tx() as db:
            db.executemany(
                "INSERT INTO slots (video_id, slot_id, phase, round, starts, formats, split,"
                " bounds, tol) VALUES (?,?,?,?,?,?,?,?,?)",
                [(video_id, s.slot_id, s.phase, s.round, json.dumps(s.starts),
                  json.dumps(s.formats), s.split, json.dumps(s.bounds) if s.bounds else None,
                  s.tol) for s in slots])

    def slots(self, video_id: int, pending_only: bool = False) -> list[SlotPlan]:
        """A video's slots in slot order."""
        q = ("SELECT slot_id, phase, round, starts, formats, split, bounds, tol FROM slots"
             " WHERE video_id=?")
        if pending_only:
            q += " AND done=0"
        rows = self.db.execute(q + " ORDER BY slot_id", (video_id,)).fetchall()
        return [SlotPlan(r[0], r[1], r[2], tuple(json.loads(r[3])),
                         tuple((c, f) for c, f in json.loads(r[4])), r[5],
                         tuple(tuple(b) for b in json.loads(r[6])) if r[6] else (),  # type: ignore[misc]
                         int(r[7] or 0)) for r in rows]

    def has_slots(self) -> bool:
        """Whether any slot was ever planned (files may exist)."""
        return self.db.execute("SELECT 1 FROM slots LIMIT 1").fetchone() is not None

    def slot_stats(self, video_id: int) -> tuple[int, int, int, int]:
        """(slots, pending slots, next slot id, last round) of a video."""
        r = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(done=0), 0), COALESCE(MAX(slot_id)+1, 0),"
            " COALESCE(MAX(round), -1) FROM slots WHERE video_id=?", (video_id,)).fetchone()
        return int(r[0]), int(r[1]), int(r[2]), int(r[3])

    def used_windows(self, video_id: int) -> list[tuple[int, int, str]]:
        """(first, last) pts and split of every window a slot of this video has tried (an
        attempt that was not resolved blocks its planned position)."""
        rows = self.db.execute(
            "SELECT a.start, COALESCE(a.end_pts, a.start), t.split FROM attempts a JOIN slots t"
            " ON a.video_id=t.video_id AND a.slot_id=t.slot_id WHERE a.video_id=? AND"
            " a.start >= 0", (video_id,))
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]

    def round_result(self, video_id: int, rnd: int) -> dict[str, tuple[int, int]]:
        """(slots, samples) per split of the given round of a video."""
        out = {str(r[0]): (int(r[1]), 0) for r in self.db.execute(
            "SELECT split, COUNT(*) FROM slots WHERE video_id=? AND round=? GROUP BY split",
            (video_id, rnd))}
        for sp, n in self.db.execute(
                "SELECT t.split, COUNT(*) FROM samples s JOIN slots t ON s.video_id=t.video_id"
                " AND s.slot_id=t.slot_id WHERE s.video_id=? AND t.round=? GROUP BY t.split",
                (video_id, rnd)):
            out[str(sp)] = (out.get(str(sp), (0, 0))[0], int(n))
        return out

    def holdout(self, video_id: int) -> str | None:
        """A video's held-out validation blocks (split.Holdout JSON), once chosen."""
        row = self.db.execute("SELECT holdout FROM holdout WHERE video_id=?",
                              (video_id,)).fetchone()
        return None if row is None else str(row[0])

    def set_holdout(self, video_id: int, text: str) -> None:
        """Store a video's held-out blocks (never changed afterwards)."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO holdout VALUES (?, ?)", (video_id, text))

    # -- results ---------------------------------------------------------------------------

    def record_slot(self, video_id: int, res: SlotResult) -> None:
        """Make a complete slot durable: its attempts, samples and failures, atomically."""
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO attempts (video_id, slot_id, number, start, outcome,"
                " scene_diff, detail, end_pts, target, origin) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(video_id, a.slot_id, a.number, a.start, a.outcome, a.scene_diff, a.detail,
                  a.end, a.target, a.origin or None) for a in res.attempts])
            db.executemany(
                "INSERT OR REPLACE INTO samples (video_id, slot_id, category, format, files,"
                " bytes, start, frame_pts, box, metrics, created, degradation, split, window)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(video_id, s.slot_id, s.category, s.format, json.dumps(s.files),
                  sum(b for _, b in s.files), s.start, json.dumps(s.frame_pts),
                  json.dumps(s.box), json.dumps(s.metrics, sort_keys=True), now,
                  json.dumps(s.degradation, sort_keys=True), s.split,
                  json.dumps(s.window, sort_keys=True) if s.window else None)
                 for s in res.samples])
            db.executemany("INSERT OR REPLACE INTO slot_failures VALUES (?,?,?,?)",
                           [(video_id, res.slot_id, c, r) for c, r in res.failed.items()])
            db.execute("UPDATE slots SET done=1 WHERE video_id=? AND slot_id=?",
                       (video_id, res.slot_id))

    def load_counts(self) -> dict[int, VideoCounts]:
        """Every video's plan and result figures, in a few grouped queries (start, reload)."""
        out: dict[int, VideoCounts] = {}

        def get(vid: int) -> VideoCounts:
            return out.setdefault(vid, VideoCounts())
        for vid, total, pending, nxt, rnd in self.db.execute(
                "SELECT video_id, COUNT(*), SUM(done=0), MAX(slot_id)+1, MAX(round)"
                " FROM slots GROUP BY video_id"):
            c = get(vid)
            c.slots, c.pending, c.next_slot, c.last_round = total, pending, nxt, rnd
        for vid, cat, amount in self.db.execute(
                "SELECT video_id, category, SUM(amount) FROM quotas GROUP BY video_id, category"):
            get(vid).quota[cat] = int(amount)
        for vid, k, n in self.db.execute(
                f"SELECT video_id, {KEY_SQL}, COUNT(*) FROM samples GROUP BY video_id, 2"):
            get(vid).achieved[k] = int(n)
        for vid, cat, why in self.db.execute("SELECT video_id, category, reason FROM exhausted"):
            get(vid).exhausted[cat] = why
        for vid, tried, ok in self.db.execute(
                "SELECT video_id, COUNT(*), SUM(outcome='ok') FROM attempts GROUP BY video_id"):
            c = get(vid)
            c.tried, c.ok = int(tried), int(ok or 0)
        return out

    def achieved(self) -> dict[tuple[int, str], int]:
        """Samples per (video, planning key)."""
        rows = self.db.execute(
            f"SELECT video_id, {KEY_SQL}, COUNT(*) FROM samples GROUP BY video_id, 2")
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def category_totals(self) -> dict[str, tuple[int, int]]:
        """(samples, bytes) per planning key (the category, or `<category>@val`)."""
        rows = self.db.execute(
            f"SELECT {KEY_SQL}, COUNT(*), COALESCE(SUM(bytes), 0) FROM samples GROUP BY 1")
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def outcome_counts(self, video_id: int | None = None) -> dict[str, int]:
        """Attempts by outcome, for one video or all."""
        q = "SELECT outcome, COUNT(*) FROM attempts"
        args: tuple[Any, ...] = ()
        if video_id is not None:
            q += " WHERE video_id=?"
            args = (video_id,)
        return {r[0]: int(r[1]) for r in self.db.execute(q + " GROUP BY outcome", args)}

    def _split_sql(self) -> str:
        """The samples' split column (an older read-only state has none: all training)."""
        return "s.split" if "split" in self._columns("samples") else "'train'"

    def sample_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every sample joined with its video, for the manifest (the degradation and window
        JSON are NULL for samples of an older state, read-only and not yet migrated)."""
        cols = self._columns("samples")
        degradation = "s.degradation" if "degradation" in cols else "NULL"
        window = "s.window" if "window" in cols else "NULL"
        yield from self.db.execute(
            "SELECT v.name, v.path, s.slot_id, s.category, s.format, s.files, s.start,"
            " s.frame_pts, s.box, s.metrics, v.arrays IS NOT NULL, s.video_id,"
            f" {degradation}, {self._split_sql()}, {window} FROM samples s"
            " JOIN videos v ON v.id = s.video_id ORDER BY s.video_id, s.slot_id, s.category")

    def positions_are_pts(self) -> bool:
        """Whether window positions are pts (False: frame indices, an old database opened
        read-only before a run migrated it)."""
        return self.get_meta("positions") == "pts"

    def sample_keys(self) -> list[tuple[str, str, str, int, str]]:
        """(category, format, video name, slot, split) of every sample."""
        rows = self.db.execute(
            f"SELECT s.category, s.format, v.name, s.slot_id, {self._split_sql()} FROM samples"
            " s JOIN videos v ON v.id = s.video_id ORDER BY 1, 2, 3, 4")
        return [(r[0], r[1], r[2], int(r[3]), str(r[4])) for r in rows]

    def sample_files(self) -> list[tuple[int, int, str, str, str]]:
        """(video id, slot, category, video name, files JSON) of every sample (migration)."""
        rows = self.db.execute(
            "SELECT s.video_id, s.slot_id, s.category, v.name, s.files FROM samples s JOIN"
            " videos v ON v.id = s.video_id ORDER BY s.video_id, s.slot_id, s.category")
        return [(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def set_sample_files(self, rows: list[tuple[int, int, str, str]]) -> None:
        """Point samples at their files' new paths: (video id, slot, category, files JSON)."""
        with self.tx() as db:
            db.executemany("UPDATE samples SET files=? WHERE video_id=? AND slot_id=? AND"
                           " category=?", [(f, v, s, c) for v, s, c, f in rows])

