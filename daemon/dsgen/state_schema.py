"""The state's tables, and the in-place migration of databases an older dsgen wrote."""

from __future__ import annotations

import json
import sqlite3

from dsgen.errors import StateError
from dsgen.model import VideoProbe
from dsgen.state_db import StateBase

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


def prepare(st: StateBase) -> None:
    """Create the tables a new database lacks and bring an older one to `SCHEMA_VERSION`
    (opened for writing, before the journal)."""
    st.db.executescript(SCHEMA)
    _check_version(st)
    _add_run_columns(st.db)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The columns a table has (an older database lacks the newer ones)."""
    return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


def _meta(db: sqlite3.Connection, key: str) -> str | None:
    """A stored setting (as `State.get_meta`)."""
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _check_version(st: StateBase) -> None:
    """Refuse a newer dsgen's database; bring an older one to this schema, atomically."""
    row = st.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise StateError(f"{st.path}: written by a newer dsgen (schema {row[0]})",
                         hint="upgrade dsgen or use another state_dir")
    if row is not None and int(row[0]) == SCHEMA_VERSION:
        return
    # the new columns, positions as pts and the new schema number, atomically
    with st.tx() as db:
        for _, table, column, decl in MIGRATIONS:
            if column not in columns(db, table):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        if row is None:  # a new database: its positions are pts from the start
            db.execute("INSERT OR REPLACE INTO meta VALUES ('positions', 'pts')")
        elif _meta(db, "positions") != "pts":
            _positions_to_pts(st, db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))


def _positions_to_pts(st: StateBase, db: sqlite3.Connection) -> None:
    """Databases from before lazy probing keep window positions as frame indices into
    each video's stored index: rewrite them as pts (slots' positions, attempts' and
    samples' first frames, attempts' last frames), inside the migration's transaction.
    Such slots keep no bounds: their windows are exactly where they were planned."""
    ident = _meta(db, "identity")
    n = int(json.loads(ident).get("frames", 7)) if ident else 7
    for vid, probe, arrays in db.execute("SELECT id, probe, arrays FROM videos").fetchall():
        rows = db.execute("SELECT COUNT(*) FROM slots WHERE video_id=?", (vid,)).fetchone()[0]
        if not rows:
            continue
        if not probe or not arrays:
            raise StateError(f"{st.path}: video {vid} has planned slots but no frame "
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


def _add_run_columns(db: sqlite3.Connection) -> None:
    """runs.boot (which boot a run ran in): added in place to older databases."""
    have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    if "boot" not in have:
        db.execute("ALTER TABLE runs ADD COLUMN boot TEXT")
