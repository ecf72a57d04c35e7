"""The state is as durable as the dataset: migrated in place from older schemas (a database
from before lazy probing has its window positions rewritten as pts, nothing lost), one
writer, a journal and backups, damage found by every command and recovered with every
recorded sample, run time that means what it says.

Real SQLite files are damaged with real bytes; every command runs as a real process.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsgen.config import load_config
from dsgen.decode import ClipReader, WindowPlan
from dsgen.engine import Engine
from dsgen.errors import StateDamaged, StateError, StateFull, StateInUse
from dsgen.journal import Journal, decode_entry, encode_entry, numbered, read_journal
from dsgen.model import Sample, SlotPlan, SlotResult, VideoProbe
from dsgen.probe import probe_video
from dsgen.report import Reporter
from dsgen.state import DB_NAME, SCHEMA, SCHEMA_VERSION, State
from dsgen.statelock import StateLock, holder_of
from dsgen.synth import SynthSpec
from helpers import mount_tmpfs, samples_in
from test_engine import dataset_files, video_block, write_config

VideoFixture = tuple[Path, SynthSpec]
PAGE = 4096

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


def dsgen(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A real `dsgen` process."""
    return subprocess.run([sys.executable, "-m", "dsgen.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def manifest(cfg_path: Path, out: Path) -> list[dict[str, object]]:
    done = dsgen("manifest", "--config", str(cfg_path), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture
def finished(tmp_path: Path, h264_cuts: VideoFixture, hevc10_hdr: VideoFixture
             ) -> tuple[Path, list[dict[str, object]], dict[str, str]]:
    """A complete run over two videos: (config, its manifest, its dataset files)."""
    good = {"h264": h264_cuts, "hevc": hevc10_hdr}
    cfg_path = write_config(tmp_path / "run", good, alpha=10, beta=4)
    done = dsgen("run", "--no-tui", "--config", str(cfg_path))
    assert done.returncode == 0, done.stdout + done.stderr
    cfg = load_config(cfg_path)
    return cfg_path, manifest(cfg_path, tmp_path / "m1.jsonl"), dataset_files(cfg.output_root)


def damage(db: Path, at: int, size: int) -> None:
    """Overwrite `size` bytes at `at` with random bytes (a bad disk, a stray write)."""
    with db.open("r+b") as f:
        f.seek(at)
        f.write(os.urandom(size))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["middle", "header"])
def test_a_damaged_database_is_named_by_every_command_and_recovered_whole(
        tmp_path: Path, finished: tuple[Path, list[dict[str, object]], dict[str, str]],
        where: str) -> None:
    """Garbage written into the middle of the database (or over its header): run, status,
    manifest and monitor each exit 2 saying the state is damaged and how to recover, never a
    traceback; `dsgen state recover` rebuilds it with every recorded sample (the manifest is
    identical, provenance included); the next run adds nothing and the dataset is unchanged."""
    cfg_path, before, files = finished
    cfg = load_config(cfg_path)
    db = cfg.state_dir / DB_NAME
    size = db.stat().st_size
    if where == "middle":
        damage(db, (size // 2) // PAGE * PAGE, 16 * PAGE)
    else:
        damage(db, 0, PAGE)
    run = dsgen("run", "--no-tui", "--config", str(cfg_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "the state database is damaged" in run.stderr
    assert "dsgen state recover" in run.stderr
    for cmd in (["status", "--config", str(cfg_path)],
                ["manifest", "--config", str(cfg_path), "-o", str(tmp_path / "x.jsonl")],
                ["monitor", "--once", "--config", str(cfg_path)],
                ["state", "check", "--config", str(cfg_path)]):
        done = dsgen(*cmd)
        text = done.stdout + done.stderr
        assert "Traceback" not in text, (cmd, text)
        assert done.returncode == 2, (cmd, text)
        assert "damaged" in text, (cmd, text)
    rec = dsgen("state", "recover", "--config", str(cfg_path))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "14 recorded samples" in rec.stdout, rec.stdout
    assert manifest(cfg_path, tmp_path / "m2.jsonl") == before
    check = dsgen("state", "check", "--config", str(cfg_path))
    assert check.returncode == 0, check.stdout
    again = dsgen("run", "--no-tui", "--config", str(cfg_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert samples_in(cfg.state_dir) == 14
    assert dataset_files(cfg.output_root) == files
    assert list(cfg.state_dir.glob("damaged-*/" + DB_NAME)), "the damaged file is kept aside"


@pytest.mark.slow
def test_recovery_without_backups_takes_the_rows_the_damaged_file_still_has(
        tmp_path: Path, finished: tuple[Path, list[dict[str, object]], dict[str, str]]) -> None:
    """With every backup and the journal gone, recovery still gives back each row the
    damaged file can read (damaged pages are skipped, not fatal), and reports the slots
    whose files are gone so the next run redoes them with the same bytes."""
    import shutil

    cfg_path, _, files = finished
    cfg = load_config(cfg_path)
    shutil.rmtree(cfg.state_dir / "backups")
    shutil.rmtree(cfg.state_dir / "journal")
    db = cfg.state_dir / DB_NAME
    damage(db, (db.stat().st_size // 2) // PAGE * PAGE, PAGE)
    rec = dsgen("state", "recover", "--config", str(cfg_path))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    again = dsgen("run", "--no-tui", "--config", str(cfg_path))
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    st = State(cfg.state_dir, readonly=True)
    have = {(r[0], r[1]) for r in st.db.execute("SELECT video_id, slot_id FROM samples")}
    st.close()
    assert have, "nothing salvaged"
    for rel, digest in dataset_files(cfg.output_root).items():
        if rel in files:
            assert files[rel] == digest  # what exists is what was written


def test_journal_lines_round_trip_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    """A journal line holds its statements (bytes included) and a CRC; a line cut short
    (kill -9 in a write) or changed on disk is refused, and the next line still reads."""
    stmts = [("INSERT INTO t VALUES (?, ?)", (1, "é")), ("UPDATE t SET b=? WHERE a=?",
                                                         (b"\x00\xff", 2.5))]
    line = encode_entry(stmts)
    assert decode_entry(line) == [(s, tuple(p)) for s, p in stmts]
    assert decode_entry(line[:-10]) is None
    assert decode_entry(line.replace(b"UPDATE", b"UPDATF")) is None
    j = Journal(tmp_path)
    j.append(stmts)
    os.write(j.fd or -1, line[:20])  # a torn line at the end, as after kill -9
    j.close()
    j = Journal(tmp_path)  # a new process appends after it on a line of its own
    j.append(stmts[:1])
    j.close()
    entries = list(read_journal(tmp_path / "journal" / "000000.jsonl"))
    assert entries == [decode_entry(line), None, decode_entry(encode_entry(stmts[:1]))]


def test_only_committed_transactions_reach_the_journal(tmp_path: Path) -> None:
    """A transaction that fails (here: a constraint) leaves no journal line; a committed one
    leaves exactly its write statements, not its reads."""
    st = State(tmp_path)
    st.set_meta("a", "1")
    with pytest.raises(sqlite3.IntegrityError), st.tx() as db:
        db.execute("INSERT INTO meta VALUES ('b', '2')")
        db.execute("INSERT INTO meta VALUES ('b', '3')")
    st.close()
    (path,) = [p for _, p in numbered(tmp_path / "journal", ".jsonl")]
    entries = [e for e in read_journal(path) if e]
    assert entries == [[("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("a", "1"))]]


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    """A second lock on a state dir fails with the holder's PID; read-only callers can ask
    who holds it; once the holder process is gone (even killed), the lock is free."""
    code = ("import sys, time; from pathlib import Path; from dsgen.statelock import StateLock;"
            "StateLock.acquire(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StateInUse) as info:
            StateLock.acquire(tmp_path)
        assert f"PID {proc.pid}" in str(info.value)
        assert holder_of(tmp_path) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    lock = StateLock.acquire(tmp_path)
    assert holder_of(tmp_path) is None or holder_of(tmp_path) == os.getpid()
    lock.release()


def test_sqlite_full_and_damaged_errors_become_state_errors(tmp_path: Path) -> None:
    """A full filesystem (a real 1 MB tmpfs) gives StateFull with nothing changed and the
    connection still usable; a file that is not a database gives StateDamaged."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount_tmpfs(mnt, "size=1m")
    try:
        st = State(mnt, journal=False)
        st.set_meta("kept", "yes")
        with pytest.raises(StateFull), st.tx() as db:
            db.execute("INSERT INTO meta VALUES ('big', ?)", ("x" * 4_000_000,))
        assert st.get_meta("kept") == "yes" and st.get_meta("big") is None
        st.set_meta("after", "ok")  # no transaction left open
        st.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / DB_NAME).write_bytes(os.urandom(8 * PAGE))
    with pytest.raises(StateDamaged):
        st = State(bad, readonly=True)
        st.check_quick()


def test_stale_parts_of_killed_writes_are_removed_at_start(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """`.<name>.<pid>.part` files of `write_text_atomic` left by a killed process (status file,
    dataset.json) are removed when a run starts; a live process's part is left alone."""
    cfg_path = write_config(tmp_path, {"h264": h264_cuts}, alpha=2, beta=1)
    cfg = load_config(cfg_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    cat_root = cfg.output_root / cfg.categories[0].path
    cat_root.mkdir(parents=True)
    stale = [cfg.output_root / f"..generator_status.json.{dead}.part",
             cat_root / f".dataset.json.{dead}.part"]
    live = cfg.output_root / f".dataset.json.{os.getppid()}.part"
    for p in (*stale, live):
        p.write_text("{")
    buf = io.StringIO()
    assert Engine(cfg, Reporter(out=buf)).run() == 0, buf.getvalue()
    assert not any(p.exists() for p in stale)
    assert live.exists()
    assert "Removed 2 temporary file(s)" in buf.getvalue()


def test_total_time_counts_running_not_the_idle_time_between_runs(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """Two runs a (pretended) day apart: "Total Time" is the time spent running, from the
    runs table (a killed run counts to its last heartbeat), not first start → now."""
    cfg_path = write_config(tmp_path, {"h264": h264_cuts}, alpha=3, beta=1)
    cfg = load_config(cfg_path)
    st = State(cfg.state_dir)
    day = 86_400.0
    now = time.time()
    with st.tx() as db:  # an earlier run of 100 s two days ago, a killed one of 50 s
        db.execute("INSERT INTO runs (started, ended, status) VALUES (?, ?, 'finished')",
                   (now - 2 * day, now - 2 * day + 100))
        db.execute("INSERT INTO runs (started, ended, status) VALUES (?, ?, 'running')",
                   (now - day, now - day + 50))
    st.close()
    buf = io.StringIO()
    assert Engine(cfg, Reporter(out=buf)).run() == 0
    line = next(x for x in buf.getvalue().splitlines() if x.startswith("Total Time: "))
    h, m, s = (int(v) for v in line.removeprefix("Total Time: ").split(":"))
    assert 150 <= h * 3600 + m * 60 + s < 150 + 300, line


def test_a_resumed_run_shows_no_rate_before_its_first_slot_and_says_lines_once(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """After a resume, the progress line shows "—" until this run recorded a slot, never
    "0.0 patches/min, success 0.0%"; a video's summary and low-success warning are said
    once, not again at each later planning phase, and not for videos of earlier runs."""
    from dsgen.progress import Progress
    from dsgen.runstate import RunState

    cfg = load_config(write_config(tmp_path, {"h264": h264_cuts}, alpha=3, beta=1,
                                   extra="\n[extraction]\nlow_success_warning = 1.0\n"
                                   # exact positions: one meets a cut, so there is a warning
                                   "keyframe_windows = false\n"))
    buf = io.StringIO()
    assert Engine(cfg, Reporter(out=buf)).run() == 0
    first = buf.getvalue()
    assert first.count("✓ Video 1/1 h264") == 1 and first.count("Low success rate") <= 1
    run = RunState(cfg)
    out = io.StringIO()
    progress = Progress(run, Reporter(out=out), None, Engine(cfg).notify)
    progress.progress_line()
    assert "— patches/min, success —" in out.getvalue()
    st = State(cfg.state_dir)
    try:
        from dsgen import ledger

        ledger.load(run, st)
        run.videos = {v.id: v for v in st.videos(probes=False)}
        vid = next(iter(run.videos))
        progress.video_finished(st, vid)  # finished in an earlier run: not summarised again
        assert "✓ Video" not in out.getvalue()
        progress._worked.add(vid)  # as if this run recorded one of its slots
        run.finished.discard(vid)
        progress.video_finished(st, vid)
        run.finished.discard(vid)  # a new phase gives it work; it finishes with nothing new
        progress.video_finished(st, vid)
    finally:
        st.close()
    text = out.getvalue()
    assert text.count("✓ Video 1/1 h264") == 1, text
    assert text.count("Low success rate") == 1, text


def test_a_long_watched_name_and_a_slug_clash_are_handled(tmp_path: Path,
                                                         h264_cuts: VideoFixture) -> None:
    """Two configured names with one slug are refused by the config; a state that already
    holds a video whose slug a new name repeats refuses the new one (it would overwrite the
    old one's files) with a warning, and the run goes on."""
    extra = video_block("Film 1", h264_cuts[0], '["alpha"]')
    cfg_path = write_config(tmp_path, {}, alpha=2, beta=0, extra=extra)
    buf = io.StringIO()
    assert Engine(load_config(cfg_path), Reporter(out=buf)).run() == 0
    text = cfg_path.read_text().replace('name = "Film 1"', 'name = "Film_1"')
    cfg_path.write_text(text.replace("target = 2", "target = 4"))
    buf = io.StringIO()
    code = Engine(load_config(cfg_path), Reporter(out=buf)).run()
    out = buf.getvalue()
    assert "are those of video 'Film 1'" in out, out
    assert code == 1  # the renamed video is refused: alpha stays short
    cfg = load_config(cfg_path)
    assert samples_in(cfg.state_dir) == 2


@pytest.mark.slow
def test_after_a_reboot_the_last_runs_files_are_checked_and_redone(
        tmp_path: Path, h264_cuts: VideoFixture) -> None:
    """Files are renamed into place without fsync (safe against kill -9, docs/state.md): when
    the last run ended uncleanly in an earlier boot (an OS crash), the files of the samples
    it recorded are checked at start; one lost or cut short is redone with the same bytes.
    After a plain kill (same boot) nothing is read."""
    cfg = load_config(write_config(tmp_path, {"h264": h264_cuts}, alpha=5, beta=2))
    assert Engine(cfg, Reporter(out=io.StringIO())).run() == 0
    files = dataset_files(cfg.output_root)
    gts = sorted(cfg.output_root.rglob("GT/*.png"))
    gts[0].unlink()
    gts[1].write_bytes(gts[1].read_bytes()[:100])  # written, but its data never reached disk
    st = State(cfg.state_dir)
    with st.tx() as db:  # the last run "died with the machine"
        db.execute("UPDATE runs SET status='running', boot='an-earlier-boot' WHERE id="
                   "(SELECT MAX(id) FROM runs)")
    st.close()
    buf = io.StringIO()
    assert Engine(cfg, Reporter(out=buf)).run() == 0, buf.getvalue()
    assert "ended with the machine (reboot)" in buf.getvalue()
    assert "2 incomplete, redone" in buf.getvalue()
    assert dataset_files(cfg.output_root) == files


@pytest.mark.slow
def test_a_state_disk_full_at_start_waits_for_space(tmp_path: Path,
                                                   h264_cuts: VideoFixture) -> None:
    """A start on a state disk that is already full pauses with the same message as a
    disk that fills up later, and goes on by itself once there is space."""
    state = tmp_path / "state"
    state.mkdir()
    mount_tmpfs(state, "size=16m")
    try:
        cfg_path = write_config(tmp_path, {"h264": h264_cuts}, alpha=3, beta=1)
        done = dsgen("run", "--no-tui", "--config", str(cfg_path))
        assert done.returncode == 0, done.stdout + done.stderr
        cfg_path.write_text(cfg_path.read_text().replace("target = 3", "target = 6"))
        filler = state / "filler"
        with filler.open("wb", buffering=0) as f:  # unbuffered: closing it flushes nothing
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "run", "--no-tui",
                                 "--config", str(cfg_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "State disk full: extraction paused" in line:
                break
        assert any("State disk full" in line for line in seen), "".join(seen)
        time.sleep(1.0)
        assert proc.poll() is None
        filler.unlink()
        out, _ = proc.communicate(timeout=300)
        out = "".join(seen) + out
        assert proc.returncode == 0, out
        assert "Traceback" not in out
        assert samples_in(state) == 7
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


@pytest.mark.slow
def test_files_lost_from_a_whole_state_are_found_and_redone(
        tmp_path: Path, finished: tuple[Path, list[dict[str, object]], dict[str, str]]) -> None:
    """A recorded sample whose file is gone (deleted, or lost to two runs at once before the
    lock): `state check` says so (exit 2), `state recover` makes its slot pending without
    rebuilding the whole database, and the next run writes the same bytes again."""
    cfg_path, _, files = finished
    cfg = load_config(cfg_path)
    lost = sorted(cfg.output_root.rglob("LR_7frames/*.png"))[0]
    lost.unlink()
    check = dsgen("state", "check", "--config", str(cfg_path))
    assert check.returncode == 2, check.stdout
    assert "1 slot(s) with missing or incomplete files" in check.stdout
    rec = dsgen("state", "recover", "--config", str(cfg_path))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "1 slot(s) had missing or incomplete files" in rec.stdout
    assert "not rebuilt" in rec.stdout and not list(cfg.state_dir.glob("damaged-*"))
    again = dsgen("run", "--no-tui", "--config", str(cfg_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert dataset_files(cfg.output_root) == files
    assert dsgen("state", "check", "--config", str(cfg_path)).returncode == 0
