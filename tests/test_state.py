"""dsgen.state: a database written by the previous schema is migrated in place (new columns,
old rows kept and readable) and a newer one is refused; every test uses a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dsgen.errors import StateError
from dsgen.model import Sample, SlotPlan, SlotResult
from dsgen.state import DB_NAME, SCHEMA, SCHEMA_VERSION, State

# Schema 1, as dsgen wrote it before samples had a degradation column and slots and
# samples a split.
SCHEMA_1 = (SCHEMA.replace("created REAL NOT NULL, degradation TEXT, split TEXT NOT NULL "
                           "DEFAULT 'train',", "created REAL NOT NULL,")
            .replace("done INTEGER NOT NULL DEFAULT 0, split TEXT NOT NULL DEFAULT 'train',",
                     "done INTEGER NOT NULL DEFAULT 0,"))


def _old_state(state_dir: Path) -> None:
    """A schema-1 database holding one video, one slot and one sample (inserted the old way:
    positionally, 11 values)."""
    assert "split TEXT" not in SCHEMA_1 and "degradation TEXT" not in SCHEMA_1
    state_dir.mkdir(parents=True)
    db = sqlite3.connect(state_dir / DB_NAME)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO videos (id, name, path, status, updated) VALUES "
               "(1, 'film', '/v.mkv', 'ready', 0)")
    db.execute("INSERT INTO slots VALUES (1, 0, 0, 0, '[10]', '[[\"general\", \"tiny\"]]', 1)")
    db.execute("INSERT INTO samples VALUES (1, 0, 'general', 'tiny', '[[\"a.png\", 5]]', 5, 10,"
               " '[1, 2]', '[0, 0, 96, 96]', '{}', 1.0)")
    db.commit()
    db.close()


def test_a_schema_1_state_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    """Opening a schema-1 state for writing adds `samples.degradation` and the `split` of
    slots and samples (ALTER TABLE) and moves the schema number on; the old rows read NULL
    (no degradation) and `train`; new samples store their degradation as JSON and their
    split; counts are keyed by split; reopening changes nothing further."""
    _old_state(tmp_path / "state")
    ro = State(tmp_path / "state", readonly=True)  # read-only on the old file: no column yet
    (row,) = list(ro.sample_rows())
    assert row[-2:] == (None, "train")
    ro.close()
    st = State(tmp_path / "state")
    assert st.get_meta("schema") == str(SCHEMA_VERSION) == "3"
    assert {"degradation", "split"} <= st._columns("samples")
    assert "split" in st._columns("slots")
    assert [s.split for s in st.slots(1)] == ["train"]
    deg = {"template": "toon_sd", "lr_size": [32, 32], "stages": []}
    res = SlotResult(1, samples=[Sample(1, "general", "tiny", (("b.png", 7),), 30, (3, 4),
                                        (0, 0, 96, 96), {}, degradation=deg, split="val")],
                     complete=True)
    st.add_slots(1, [SlotPlan(1, 0, 0, (30,), (("general", "tiny"),), "val")])
    st.record_slot(1, res)
    rows = {r[2]: r[-2:] for r in st.sample_rows()}
    assert rows[0] == (None, "train") and json.loads(rows[1][0]) == deg and rows[1][1] == "val"
    assert st.category_totals() == {"general": (1, 5), "general@val": (1, 7)}
    assert st.load_counts()[1].achieved == {"general": 1, "general@val": 1}
    assert st.used_starts(1) == []  # no attempts recorded
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
