"""State: one SQLite database (WAL) holding videos, plans, attempts and durable samples."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsgen.errors import StateDamaged, StateError, StateFull
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

DB_NAME = "dsgen.sqlite3"
SCHEMA_VERSION = 4
# Columns added after a table was first created: (schema, table, column, declaration).
# Older databases get them in place (ALTER TABLE) when opened for writing; their rows read
# NULL (or the default) there. Schema 2's column is in positional sample inserts of schema-1
# dsgen, so the schema number moves on with each: an older dsgen refuses the state instead
# of failing there (or writing rows without a split).
MIGRATIONS = (
    (1, "videos", "frames", "INTEGER"),  # NULL: frames in the index not known yet
    (2, "samples", "degradation", "TEXT"),  # NULL: clean LR (no template)
    (3, "slots", "split", "TEXT NOT NULL DEFAULT 'train'"),  # old slots were all training
    (3, "samples", "split", "TEXT NOT NULL DEFAULT 'train'"),
    # schema 4 (lazy probing, keyframe-aware windows, damage): positions become pts
    (4, "slots", "bounds", "TEXT"),  # JSON [[lo, hi, fence], …] per position (NULL: exact)
    (4, "slots", "tol", "INTEGER"),  # ticks a window may move to open at a keyframe
    (4, "attempts", "end_pts", "INTEGER"),  # the window's last pts (NULL: not resolved)
    (4, "attempts", "target", "INTEGER"),  # the planned position
    (4, "attempts", "origin", "TEXT"),  # keyframe | position
    (4, "samples", "window", "TEXT"),  # JSON: where the window came from
    (4, "videos", "damage", "TEXT"),  # JSON [{what, first_s, last_s, …}, …] found so far
)
# A reader (dsgen monitor/status) never blocks the writer in WAL mode; this only
# covers the short exclusive moments of checkpoints.
BUSY_TIMEOUT_MS = 10_000

# SQLite primary result codes told apart (sqlite3.Error.sqlite_errorcode & 0xFF).
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
# Statements the journal keeps (reads and transaction control are not state).
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def translate(err: sqlite3.Error, where: str) -> Exception:
    """SQLite's "disk full" and "damaged" errors as the DsgenErrors every command reports
    (with what to do); any other error unchanged."""
    code = (getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == SQLITE_FULL or (code == SQLITE_IOERR and _nearly_full(Path(where).parent)):
        return StateFull(f"{where}: the state's disk is full ({err})",
                         hint="free space on the state_dir's filesystem; nothing recorded "
                              "was lost")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(where, str(err))
    return err


# Free bytes below which an I/O error of SQLite is taken for a full disk (growing the WAL
# index fails with "disk I/O error", not "disk full").
NEARLY_FULL_BYTES = 1024 * 1024


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def damaged(where: str, detail: str) -> StateDamaged:
    """The error every command gives for a damaged state, with the way out."""
    return StateDamaged(f"{where}: the state database is damaged ({detail})",
                        hint="`dsgen state check --config FILE` shows what is wrong; "
                             "`dsgen state recover --config FILE` rebuilds it with every "
                             "recorded sample (docs/state.md)")


class StateCursor(sqlite3.Cursor):
    """A cursor whose errors are `translate`d (rows iterated one by one are not wrapped: it
    would double their cost; the commands translate what escapes, see `cli.main`)."""

    where = ""

    def execute(self, sql: str, parameters: Any = (), /) -> StateCursor:
        try:
            return super().execute(sql, parameters)  # type: ignore[return-value]
        except sqlite3.Error as e:
            raise translate(e, self.where) from None

    def executemany(self, sql: str, seq: Any, /) -> StateCursor:
        try:
            return super().executemany(sql, seq)  # type: ignore[return-value]
        except sqlite3.Error as e:
            raise translate(e, self.where) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            raise translate(e, self.where) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            raise translate(e, self.where) from None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.Error as e:
            raise translate(e, self.where) from None


class StateConnection(sqlite3.Connection):
    """The state's connection: `translate`d errors, and inside a journaled transaction the
    write statements it ran (`capture`), for the journal (docs/state.md)."""

    where = ""
    capture: list[tuple[str, Any]] | None = None

    def cursor(self, factory: Any = None) -> Any:
        cur = super().cursor(factory or StateCursor)
        cur.where = self.where
        return cur

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        if self.capture is not None and sql.lstrip()[:7].upper().startswith(WRITES):
            self.capture.append((sql, parameters))
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> Any:
        if self.capture is not None and sql.lstrip()[:7].upper().startswith(WRITES):
            seq = [p if isinstance(p, dict) else tuple(p) for p in seq]
            self.capture.extend((sql, p) for p in seq)
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str, /) -> Any:
        try:
            return super().executescript(script)
        except sqlite3.Error as e:
            raise translate(e, self.where) from None

# A sample's or slot's planning key (model.split_key) in SQL.
KEY_SQL = f"category || CASE WHEN split = '{VAL}' THEN '{VAL_SUFFIX}' ELSE '' END"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL,          -- new | ready | failed | missing | changed
    stage TEXT, reason TEXT,       -- why failed/missing
    duration REAL, fps REAL,       -- from the header, for planning shares
    probe TEXT, arrays BLOB,       -- the full probe, once indexed
    updated REAL NOT NULL,
    frames INTEGER                 -- frames in the index (planning without loading it)
);
CREATE TABLE IF NOT EXISTS quotas (
    video_id INTEGER NOT NULL, category TEXT NOT NULL, phase INTEGER NOT NULL,
    amount INTEGER NOT NULL, PRIMARY KEY (video_id, category, phase)
);
CREATE TABLE IF NOT EXISTS exhausted (
    video_id INTEGER NOT NULL, category TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (video_id, category)
);
CREATE TABLE IF NOT EXISTS slots (
    video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL, phase INTEGER NOT NULL,
    round INTEGER NOT NULL, starts TEXT NOT NULL, formats TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, split TEXT NOT NULL DEFAULT 'train',
    PRIMARY KEY (video_id, slot_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL, number INTEGER NOT NULL,
    start INTEGER NOT NULL, outcome TEXT NOT NULL, scene_diff REAL, detail TEXT,
    PRIMARY KEY (video_id, slot_id, number)
);
CREATE TABLE IF NOT EXISTS samples (
    video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL, category TEXT NOT NULL,
    format TEXT NOT NULL, files TEXT NOT NULL, bytes INTEGER NOT NULL,
    start INTEGER NOT NULL, frame_pts TEXT NOT NULL, box TEXT NOT NULL, metrics TEXT NOT NULL,
    created REAL NOT NULL, degradation TEXT, split TEXT NOT NULL DEFAULT 'train',
    PRIMARY KEY (video_id, slot_id, category)
);
CREATE TABLE IF NOT EXISTS slot_failures (
    video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL, category TEXT NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (video_id, slot_id, category)
);
CREATE TABLE IF NOT EXISTS holdout (  -- a video's validation blocks, chosen once (dsgen.split)
    video_id INTEGER PRIMARY KEY, holdout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS index_chunks (
    video_id INTEGER NOT NULL, chunk INTEGER NOT NULL, arrays BLOB NOT NULL,
    start_key INTEGER, end_key INTEGER, eof INTEGER NOT NULL, holes INTEGER NOT NULL,
    damage TEXT NOT NULL, PRIMARY KEY (video_id, chunk)
);
CREATE INDEX IF NOT EXISTS samples_cat ON samples (category);
CREATE INDEX IF NOT EXISTS slots_pending ON slots (done, video_id);
"""


class State:
    """The only writer of the database; every method is one transaction."""

    def __init__(self, state_dir: Path, readonly: bool = False, *,
                 db_path: Path | None = None, journal: bool = True) -> None:
        self.path = db_path or state_dir / DB_NAME
        self.journal: Journal | None = None
        self.db: StateConnection
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
                self.db.executescript(SCHEMA)
                self._check_version()
                self._add_run_columns()
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

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StateError(f"{self.path}: written by a newer dsgen (schema {row[0]})",
                             hint="upgrade dsgen or use another state_dir")
        if row is not None and int(row[0]) == SCHEMA_VERSION:
            return
        # the new columns, positions as pts and the new schema number, atomically
        with self.tx() as db:
            for _, table, column, decl in MIGRATIONS:
                if column not in self._columns(table):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            if row is None:  # a new database: its positions are pts from the start
                db.execute("INSERT OR REPLACE INTO meta VALUES ('positions', 'pts')")
            elif self.get_meta("positions") != "pts":
                self._positions_to_pts(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _columns(self, table: str) -> set[str]:
        return {str(r[1]) for r in self.db.execute(f"PRAGMA table_info({table})")}

    def _positions_to_pts(self, db: sqlite3.Connection) -> None:
        """Databases from before lazy probing keep window positions as frame indices into
        each video's stored index: rewrite them as pts (slots' positions, attempts' and
        samples' first frames, attempts' last frames), inside the migration's transaction.
        Such slots keep no bounds: their windows are exactly where they were planned."""
        ident = self.get_meta("identity")
        n = int(json.loads(ident).get("frames", 7)) if ident else 7
        for vid, probe, arrays in db.execute("SELECT id, probe, arrays FROM videos").fetchall():
            rows = db.execute("SELECT COUNT(*) FROM slots WHERE video_id=?", (vid,)).fetchone()[0]
            if not rows:
                continue
            if not probe or not arrays:
                raise StateError(f"{self.path}: video {vid} has planned slots but no frame "
                                 "index to convert them with",
                                 hint="use a new state_dir (this one is damaged)")
            pts = VideoProbe.from_state(probe, arrays).frame_pts.tolist()

            def at(i: int, pts: list[int] = pts) -> int:
                return int(pts[i]) if 0 <= i < len(pts) else i
            for slot_id, starts in db.execute(
                    "SELECT slot_id, starts FROM slots WHERE video_id=?", (vid,)).fetchall():
                db.execute("UPDATE slots SET starts=? WHERE video_id=? AND slot_id=?",
                           (json.dumps([at(i) for i in json.loads(starts)]), vid, slot_id))
            for slot_id, number, start in db.execute(
                    "SELECT slot_id, number, start FROM attempts WHERE video_id=?",
                    (vid,)).fetchall():
                db.execute("UPDATE attempts SET start=?, end_pts=?, target=? WHERE video_id=?"
                           " AND slot_id=? AND number=?",
                           (at(start), at(start + n - 1) if start >= 0 else None,
                            at(start), vid, slot_id, number))
            db.execute("UPDATE samples SET start=json_extract(frame_pts, '$[0]')"
                       " WHERE video_id=?", (vid,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('positions', 'pts')")

    @contextmanager
    def tx(self, journal: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; once committed, its writes go to the journal (unless
        `journal` is False: the probe, which a start-up repeats if it is lost)."""
        self.db.execute("BEGIN IMMEDIATE")
        capture: list[tuple[str, Any]] | None = [] if (
            journal and self.journal is not None) else None
        self.db.capture = capture
        try:
            yield self.db
            self.db.capture = None
            self.db.execute("COMMIT")
        except BaseException:
            self.db.capture = None
            if self.db.in_transaction:  # SQLite may have rolled back already (disk full)
                with contextlib.suppress(sqlite3.Error, StateError):
                    self.db.execute("ROLLBACK")
            raise
        if capture and self.journal is not None:
            self.journal.append(capture)

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

    # -- runs ------------------------------------------------------------------------------

    def start_run(self) -> int:
        """Record a run start (with this boot's id); return its id."""
        with self.tx() as db:
            cur = db.execute("INSERT INTO runs (started, status, ended, boot) VALUES "
                             "(?, 'running', ?, ?)", (now := time.time(), now, boot_id()))
            return int(cur.lastrowid or 0)

    def touch_run(self, run_id: int) -> None:
        """The run is still alive now: a run killed later has ended about here."""
        with self.tx() as db:
            db.execute("UPDATE runs SET ended=? WHERE id=?", (time.time(), run_id))

    def running_seconds(self, now: float | None = None) -> float:
        """Time spent running over every run (idle time between runs left out): each run
        from its start to its end or last heartbeat, the current one to `now`."""
        now = time.time() if now is None else now
        rows = self.db.execute("SELECT id, started, ended, status FROM runs ORDER BY id"
                               ).fetchall()
        total = 0.0
        for i, (_, started, ended, status) in enumerate(rows):
            if ended is None:  # a run from before heartbeats: until its last sample
                nxt = rows[i + 1][1] if i + 1 < len(rows) else now
                last = self.db.execute("SELECT MAX(created) FROM samples WHERE created >= ? "
                                       "AND created < ?", (started, nxt)).fetchone()[0]
                ended = last or started
            elif status == "running" and i + 1 == len(rows):
                ended = max(ended, now)  # the run in progress
            total += max(0.0, float(ended) - float(started))
        return total

    def last_run(self) -> tuple[int, float, str, str | None] | None:
        """(id, started, status, boot id) of the newest run before this one, if any."""
        row = self.db.execute("SELECT id, started, status, boot FROM runs ORDER BY id DESC "
                              "LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), float(row[1]), str(row[2]), row[3])

    def _add_run_columns(self) -> None:
        """runs.boot (which boot a run ran in): added in place to older databases."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        if "boot" not in have:
            self.db.execute("ALTER TABLE runs ADD COLUMN boot TEXT")

    # -- durability (docs/state.md) --------------------------------------------------------

    def check_quick(self) -> None:
        """StateDamaged when SQLite's quick_check finds damage (reads every page once)."""
        rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(5)")]
        if rows != ["ok"]:
            raise damaged(str(self.path), "; ".join(rows))

    def video_has_samples(self, video_id: int) -> bool:
        """Whether any sample of the video is recorded."""
        return self.db.execute("SELECT 1 FROM samples WHERE video_id=? LIMIT 1",
                               (video_id,)).fetchone() is not None

    def reset_video(self, video_id: int) -> None:
        """Forget a video's slots, attempts, exhaustion and probe (it has no sample): it is
        planned again from its header. Its quotas stay."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM samples WHERE video_id=? LIMIT 1",
                          (video_id,)).fetchone() is not None:
                raise StateError(f"{self.path}: video {video_id} has samples; not reset")
            for table in ("slots", "attempts", "slot_failures", "exhausted"):
                db.execute(f"DELETE FROM {table} WHERE video_id=?", (video_id,))
            db.execute("UPDATE videos SET probe=NULL, arrays=NULL, frames=NULL, size=NULL,"
                       " mtime_ns=NULL WHERE id=?", (video_id,))

    def samples_since(self, since: float) -> list[tuple[int, int, str]]:
        """(video, slot, files JSON) of samples recorded at or after `since`."""
        return [(int(r[0]), int(r[1]), str(r[2])) for r in self.db.execute(
            "SELECT video_id, slot_id, files FROM samples WHERE created >= ?", (since,))]

    def unrecord_slots(self, slots: list[tuple[int, int]]) -> None:
        """Make recorded slots pending again (their files are gone): they are redone, with
        the same bytes, and recorded again."""
        with self.tx() as db:
            for vid, slot in slots:
                for table in ("samples", "slot_failures", "attempts"):
                    db.execute(f"DELETE FROM {table} WHERE video_id=? AND slot_id=?",
                               (vid, slot))
                db.execute("UPDATE slots SET done=0 WHERE video_id=? AND slot_id=?", (vid, slot))

    def end_run(self, run_id: int, status: str) -> None:
        """Record how a run ended."""
        with self.tx() as db:
            db.execute("UPDATE runs SET ended=?, status=? WHERE id=?",
                       (time.time(), status, run_id))

    def last_sample_time(self) -> float | None:
        """When the newest sample became durable."""
        row = self.db.execute("SELECT MAX(created) FROM samples").fetchone()
        return None if row[0] is None else float(row[0])

    def first_start(self) -> float | None:
        """When the first run started (for 'Total Time')."""
        row = self.db.execute("SELECT MIN(started) FROM runs").fetchone()
        return None if row[0] is None else float(row[0])


def boot_id() -> str | None:
    """This boot's id (Linux): a run that ended uncleanly in another boot saw an OS crash."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def quote_path(path: Path) -> str:
    """A path as the file part of an SQLite URI (`?`, `#` and `%` escaped)."""
    return urllib.parse.quote(str(path), safe="/")


# Left in state_dir by a command that found the database damaged, so that the read-only
# commands (status, monitor) say so too; removed when a check or recovery finds it whole.
DAMAGE_MARK = "DAMAGED.txt"


def mark_damaged(state_dir: Path, err: StateDamaged) -> None:
    """Remember that the database was found damaged (best effort)."""
    with contextlib.suppress(OSError):
        (state_dir / DAMAGE_MARK).write_text(err.message + "\n", encoding="utf-8")


def clear_damage_mark(state_dir: Path) -> None:
    """The database is whole again."""
    with contextlib.suppress(OSError):
        (state_dir / DAMAGE_MARK).unlink(missing_ok=True)


def check_damage_mark(state_dir: Path) -> None:
    """StateDamaged if a command found this state damaged and it was not recovered since."""
    try:
        text = (state_dir / DAMAGE_MARK).read_text(encoding="utf-8").strip()
    except OSError:
        return
    raise StateDamaged(text or f"{state_dir / DB_NAME}: the state database is damaged",
                       hint=damaged("", "").hint)
