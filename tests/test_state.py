"""dsgen.state: a database from before lazy probing is migrated in place, nothing lost.

Such a database keeps window positions as frame indices into each video's stored frame
index (and has none of the newer columns). Opening it for writing rewrites every position
as the pts of that frame, in one transaction; a slot planned then resolves to exactly the
window it was planned at.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from dsgen.decode import ClipReader, WindowPlan
from dsgen.probe import probe_video
from dsgen.state import DB_NAME, State
from dsgen.synth import SynthSpec

# The tables as the first schema had them (columns added later are absent).
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE videos (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, status TEXT NOT NULL, stage TEXT, reason TEXT,
    duration REAL, fps REAL, probe TEXT, arrays BLOB, updated REAL NOT NULL);
CREATE TABLE quotas (video_id INTEGER NOT NULL, category TEXT NOT NULL, phase INTEGER NOT NULL,
    amount INTEGER NOT NULL, PRIMARY KEY (video_id, category, phase));
CREATE TABLE exhausted (video_id INTEGER NOT NULL, category TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (video_id, category));
CREATE TABLE slots (video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL, phase INTEGER NOT NULL,
    round INTEGER NOT NULL, starts TEXT NOT NULL, formats TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (video_id, slot_id));
CREATE TABLE attempts (video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL,
    number INTEGER NOT NULL, start INTEGER NOT NULL, outcome TEXT NOT NULL, scene_diff REAL,
    detail TEXT, PRIMARY KEY (video_id, slot_id, number));
CREATE TABLE samples (video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL,
    category TEXT NOT NULL, format TEXT NOT NULL, files TEXT NOT NULL, bytes INTEGER NOT NULL,
    start INTEGER NOT NULL, frame_pts TEXT NOT NULL, box TEXT NOT NULL, metrics TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (video_id, slot_id, category));
CREATE TABLE slot_failures (video_id INTEGER NOT NULL, slot_id INTEGER NOT NULL,
    category TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (video_id, slot_id, category));
CREATE TABLE runs (id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL,
    status TEXT NOT NULL);
"""


def test_frame_index_positions_become_pts_in_place(tmp_path: Path,
                                                   h264_cuts: tuple[Path, SynthSpec]) -> None:
    """An old database (frame-index positions, its probe with the full index) opened by
    this dsgen: slots, attempts and samples now hold the pts of the frames they named, the
    newer columns exist, the probe still loads complete, and a pending slot's position
    resolves to exactly the frames it was planned at; opening it again changes nothing."""
    probe = probe_video(h264_cuts[0], 7)
    pts = probe.frame_pts.tolist()
    sd = tmp_path / "state"
    sd.mkdir()
    db = sqlite3.connect(sd / DB_NAME)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO meta VALUES ('identity', ?)", (json.dumps({"frames": 7}),))
    db.execute("INSERT INTO videos VALUES (1, 'film', ?, ?, ?, 'ready', NULL, NULL, 4.0, 24.0,"
               " ?, ?, 0)", (probe.path, probe.size, probe.mtime_ns, probe.to_json(),
                             probe.arrays_blob()))
    db.execute("INSERT INTO slots VALUES (1, 0, 0, 0, '[10, 40]', '[[\"a\", \"f\"]]', 1)")
    db.execute("INSERT INTO slots VALUES (1, 1, 0, 0, '[70]', '[[\"a\", \"f\"]]', 0)")
    db.execute("INSERT INTO attempts VALUES (1, 0, 0, 10, 'scene_cut', 60.0, '')")
    db.execute("INSERT INTO attempts VALUES (1, 0, 1, 40, 'ok', 3.0, '')")
    db.execute("INSERT INTO samples VALUES (1, 0, 'a', 'f', '[]', 0, 40, ?, '[0,0,8,8]', '{}',"
               " 0)", (json.dumps(pts[40:47]),))
    db.commit()
    db.close()

    st = State(sd)
    try:
        slots = st.slots(1)
        assert [s.starts for s in slots] == [(pts[10], pts[40]), (pts[70],)]
        assert all(not s.bounds and s.tol == 0 for s in slots)
        assert st.used_windows(1) == [(pts[10], pts[16]), (pts[40], pts[46])]
        start = st.db.execute("SELECT start FROM samples").fetchone()[0]
        assert start == pts[40]
        loaded = st.probe(1)
        assert loaded is not None and loaded.index_complete
        assert loaded.frame_pts.tolist() == pts and loaded.first_pts == pts[0]
        assert st.positions_are_pts()
    finally:
        st.close()
    State(sd).close()  # a second open migrates nothing again
    st = State(sd)
    assert [s.starts for s in st.slots(1)] == [(pts[10], pts[40]), (pts[70],)]
    pending = st.slots(1, pending_only=True)[0]
    st.close()
    lo, hi, fence = pending.limits(0)
    reader = ClipReader(loaded.light(), 1)
    w = reader.window(WindowPlan(pending.starts[0], lo, hi, fence), 7)
    reader.close()
    assert list(w.pts) == pts[70:77]
