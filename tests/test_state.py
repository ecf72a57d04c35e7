"""dsgen.state: a database written by an earlier schema is migrated in place (new columns,
old rows kept and readable; a database from before lazy probing has its window positions
rewritten as pts, nothing lost) and a newer one is refused; every test uses a real SQLite
file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dsgen.decode import ClipReader, WindowPlan
from dsgen.errors import StateError
from dsgen.model import Sample, SlotPlan, SlotResult, VideoProbe
from dsgen.probe import probe_video
from dsgen.state import DB_NAME, SCHEMA, SCHEMA_VERSION, State
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
        assert st.used_windows(1) == [(pts[10], pts[16], "train"), (pts[40], pts[46], "train")]
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


# Schema 1, as dsgen wrote it before samples had a degradation column and slots and
# samples a split.
SCHEMA_1 = (SCHEMA.replace("created REAL NOT NULL, degradation TEXT, split TEXT NOT NULL "
                           "DEFAULT 'train',", "created REAL NOT NULL,")
            .replace("done INTEGER NOT NULL DEFAULT 0, split TEXT NOT NULL DEFAULT 'train',",
                     "done INTEGER NOT NULL DEFAULT 0,"))


def _old_state(state_dir: Path, probe: VideoProbe) -> None:
    """A schema-1 database holding one video (its probe with the full frame index, as the
    old probe stored it), one slot and one sample (inserted the old way: positionally, 11
    values)."""
    assert "split TEXT" not in SCHEMA_1 and "degradation TEXT" not in SCHEMA_1
    state_dir.mkdir(parents=True)
    db = sqlite3.connect(state_dir / DB_NAME)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO videos (id, name, path, status, updated, probe, arrays) VALUES "
               "(1, 'film', '/v.mkv', 'ready', 0, ?, ?)", (probe.to_json(), probe.arrays_blob()))
    db.execute("INSERT INTO slots VALUES (1, 0, 0, 0, '[10]', '[[\"general\", \"tiny\"]]', 1)")
    db.execute("INSERT INTO samples VALUES (1, 0, 'general', 'tiny', '[[\"a.png\", 5]]', 5, 10,"
               " '[1, 2]', '[0, 0, 96, 96]', '{}', 1.0)")
    db.commit()
    db.close()


def test_a_schema_1_state_gains_the_new_columns_and_keeps_its_rows(
        tmp_path: Path, h264_cuts: tuple[Path, SynthSpec]) -> None:
    """Opening a schema-1 state for writing adds `samples.degradation` and the `split` of
    slots and samples (ALTER TABLE) and moves the schema number on; the old rows read NULL
    (no degradation) and `train`; new samples store their degradation as JSON and their
    split; counts are keyed by split; reopening changes nothing further."""
    probe = probe_video(h264_cuts[0], 7)
    _old_state(tmp_path / "state", probe)
    ro = State(tmp_path / "state", readonly=True)  # read-only on the old file: no column yet
    (row,) = list(ro.sample_rows())
    assert row[-3:] == (None, "train", None)
    ro.close()
    st = State(tmp_path / "state")
    assert st.get_meta("schema") == str(SCHEMA_VERSION) == "4"
    assert {"degradation", "split"} <= st._columns("samples")
    assert "split" in st._columns("slots")
    assert [s.split for s in st.slots(1)] == ["train"]
    assert [s.starts for s in st.slots(1)] == [(int(probe.frame_pts[10]),)]  # now pts
    deg = {"template": "toon_sd", "lr_size": [32, 32], "stages": []}
    res = SlotResult(1, samples=[Sample(1, "general", "tiny", (("b.png", 7),), 30, (3, 4),
                                        (0, 0, 96, 96), {}, degradation=deg, split="val")],
                     complete=True)
    st.add_slots(1, [SlotPlan(1, 0, 0, (30,), (("general", "tiny"),), "val")])
    st.record_slot(1, res)
    rows = {r[2]: r[-3:-1] for r in st.sample_rows()}
    assert rows[0] == (None, "train") and json.loads(rows[1][0]) == deg and rows[1][1] == "val"
    assert st.category_totals() == {"general": (1, 5), "general@val": (1, 7)}
    assert st.load_counts()[1].achieved == {"general": 1, "general@val": 1}
    assert st.used_windows(1) == []  # no attempts recorded
    st.close()
    again = State(tmp_path / "state")
    assert len(list(again.sample_rows())) == 2
    again.close()


def test_a_state_from_a_newer_dsgen_is_refused(tmp_path: Path) -> None:
    """A schema number above this dsgen's is a StateError naming the schema."""
    st = State(tmp_path / "state")
    st.set_meta("schema", str(SCHEMA_VERSION + 1))
    st.close()
    with pytest.raises(StateError, match=f"schema {SCHEMA_VERSION + 1}"):
        State(tmp_path / "state")
