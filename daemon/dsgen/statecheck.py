"""`dsgen state check` / `dsgen state recover`: is the state whole, and rebuild it if not.

Recovery takes, in this order: the newest backup that passes SQLite's integrity check, the
journal from that backup on (every committed write since), then whatever rows and probes
the damaged file still gives. Probes are not journaled: those lost are made again from the
video files. Recorded samples whose files are gone are made pending, so the next run
redoes them with the same bytes. The damaged files are kept aside (docs/state.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsgen.config import Config
from dsgen.errors import StateError
from dsgen.journal import BACKUP_DIR, JOURNAL_DIR, Backups, Journal, numbered, read_journal
from dsgen.state import DB_NAME, State, boot_id, clear_damage_mark, quote_path
from dsgen.statelock import StateLock

# The last 12 bytes of every PNG dsgen writes: the empty IEND chunk and its CRC.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Rows read per query when salvaging; a range that fails is halved until single rows.
SALVAGE_CHUNK = 1000
# Rowids probed past the highest known one when the damaged table cannot tell its own.
SALVAGE_MARGIN = 100_000
_INSERT = re.compile(r"^\s*INSERT\s+INTO\b", re.IGNORECASE)


# -- files -----------------------------------------------------------------------------------


def file_ok(path: Path, size: int) -> bool:
    """The file is there, has the recorded size and (a PNG) its end marker."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                return False
            if path.suffix.lower() == ".png" and size >= len(PNG_END):
                f.seek(size - len(PNG_END))
                return f.read(len(PNG_END)) == PNG_END
            return True
    except OSError:
        return False


def slots_with_bad_files(root: Path, rows: list[tuple[int, int, str]]
                         ) -> tuple[int, list[tuple[int, int]]]:
    """(files checked, slots any of whose sample files is missing or incomplete)."""
    bad: set[tuple[int, int]] = set()
    checked = 0
    for vid, slot, files in rows:
        for rel, size in json.loads(files):
            checked += 1
            if not file_ok(root / rel, int(size)):
                bad.add((vid, slot))
    return checked, sorted(bad)


def verify_after_reboot(cfg: Config, st: State) -> tuple[int, int] | None:
    """When the last run ended uncleanly in another boot (an OS crash or power cut), the
    files of its newest samples may never have reached the disk: check every sample that
    run recorded; incomplete ones are made pending (redone, same bytes). (checked, redone)
    or None when there is nothing to check. After a kill -9 the files are safe (page cache)
    and nothing is read."""
    last = st.last_run()
    if last is None:
        return None
    _, started, status, boot = last
    now_boot = boot_id()
    if status != "running" or boot is None or now_boot is None or boot == now_boot:
        return None
    rows = st.samples_since(started)
    _, bad = slots_with_bad_files(cfg.output_root, rows)
    if bad:
        st.unrecord_slots(bad)
    return len(rows), len(bad)


# -- check -----------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """What `dsgen state check` found."""

    lines: list[str] = field(default_factory=list)
    damaged: bool = False
    missing_files: int = 0

    @property
    def healthy(self) -> bool:
        """No damage and every recorded file in place."""
        return not self.damaged and not self.missing_files


def integrity(path: Path, full: bool = False) -> list[str]:
    """SQLite's verdict on a database file: [] when whole, else its complaints."""
    if not path.exists():
        return ["the file does not exist"]
    try:
        db = sqlite3.connect(f"file:{quote_path(path)}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        return [str(e)]
    try:
        rows = [str(r[0]) for r in db.execute(
            "PRAGMA integrity_check(20)" if full else "PRAGMA quick_check(20)")]
    except sqlite3.Error as e:
        return [str(e)]
    finally:
        db.close()
    return [] if rows == ["ok"] else rows


def check(cfg: Config, files: bool = True) -> CheckReport:
    """The database, its backups and journal, and (with `files`) every recorded file."""
    rep = CheckReport()
    sd = cfg.state_dir
    db_path = sd / DB_NAME
    problems = integrity(db_path, full=True)
    if problems:
        rep.damaged = True
        rep.lines.append(f"✗ {db_path}: damaged: " + "; ".join(problems[:5]))
    else:
        clear_damage_mark(sd)
        rep.lines.append(f"✓ {db_path}: integrity check ok")
    backups = numbered(sd / BACKUP_DIR, ".sqlite3")
    if backups:
        n, newest = backups[-1]
        age = time.time() - newest.stat().st_mtime
        ok = not integrity(newest)
        rep.lines.append(f"{'✓' if ok else '✗'} backup {n} ({age / 60:.0f} min old)"
                         f"{'' if ok else ' is damaged'}; {len(backups)} kept")
    else:
        rep.lines.append("⚠ no backup yet (the first run of this dsgen makes one)")
    entries = damaged_lines = 0
    for _, path in numbered(sd / JOURNAL_DIR, ".jsonl"):
        for entry in read_journal(path):
            entries += 1
            damaged_lines += entry is None
    rep.lines.append(f"{'✓' if not damaged_lines else '⚠'} journal: {entries} entries"
                     + (f", {damaged_lines} damaged" if damaged_lines else ""))
    if files and not rep.damaged:
        st = State(sd, readonly=True)
        try:
            rows = st.samples_since(0.0)
        finally:
            st.close()
        checked, bad = slots_with_bad_files(cfg.output_root, rows)
        rep.missing_files = len(bad)
        rep.lines.append(f"{'✓' if not bad else '✗'} {len(rows)} recorded samples, {checked} "
                         f"files" + (f": {len(bad)} slot(s) with missing or incomplete files"
                                     if bad else " in place"))
    return rep


# -- recover ---------------------------------------------------------------------------------


@dataclass
class Recovery:
    """What `dsgen state recover` did."""

    base: str = "an empty database"
    replayed: int = 0
    skipped: int = 0  # journal lines damaged or statements that failed
    salvaged: dict[str, int] = field(default_factory=dict)
    probes_redone: int = 0
    probes_lost: list[str] = field(default_factory=list)
    samples: int = 0
    redo_slots: int = 0
    missing_untouched: int = 0  # files missing everywhere: the output looks unmounted
    kept_aside: Path | None = None
    lines: list[str] = field(default_factory=list)


def recover(cfg: Config, force: bool = False) -> Recovery:
    """Rebuild the state database (see the module doc); the old files are kept aside."""
    sd = cfg.state_dir
    lock = StateLock.acquire(sd)
    try:
        db_path = sd / DB_NAME
        rec = Recovery()
        if not force and not integrity(db_path, full=True):
            _repair_files(cfg, rec)
            rec.lines.append(f"✓ {db_path} is whole: not rebuilt (--force rebuilds it anyway)")
            return rec
        work = sd / f".recover-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            _rebuild(cfg, db_path, work, rec)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return rec
    finally:
        lock.release()


def _rebuild(cfg: Config, db_path: Path, work: Path, rec: Recovery) -> None:
    sd = cfg.state_dir
    damaged = work / "damaged.sqlite3"
    for suffix in ("", "-wal"):  # salvage reads a copy; the originals are kept as they are
        src = Path(f"{db_path}{suffix}")
        if src.exists():
            shutil.copyfile(src, f"{damaged}{suffix}")
    new_path = work / DB_NAME
    base = _base_backup(sd)
    if base is not None:
        shutil.copyfile(base[1], new_path)
        rec.base = f"backup {base[0]}"
    new = State(work, db_path=new_path, journal=False)
    try:
        _replay(new, sd, base[0] if base else None, rec)
        if damaged.exists():
            _salvage(damaged, new, rec)
        _redo_probes(cfg, new, rec)
        _check_files(cfg, new, rec)
        rec.samples = int(new.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        problems = [str(r[0]) for r in new.db.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise StateError(f"{new_path}: the rebuilt database fails its own check: "
                             f"{problems}", hint="please report this; nothing was replaced")
    finally:
        new.close()
    aside = sd / time.strftime("damaged-%Y%m%d-%H%M%S")
    aside.mkdir()
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{db_path}{suffix}")
        if old.exists():
            os.replace(old, aside / old.name)
    os.replace(new_path, db_path)
    clear_damage_mark(sd)
    rec.kept_aside = aside
    journal = Journal(sd)  # the rebuilt database gets a backup of its own at once
    number = journal.rotate()
    journal.close()
    backups = Backups(db_path, sd)
    if number is not None:
        backups.start(number)
        backups.wait(600)
    rec.lines.append(f"✓ Rebuilt {db_path} from {rec.base}, {rec.replayed} journal "
                     f"entries and {sum(rec.salvaged.values())} row(s) only the damaged file "
                     f"still had: {rec.samples} recorded samples")
    if rec.skipped:
        rec.lines.append(f"⚠ {rec.skipped} damaged journal line(s) or statement(s) skipped")
    if rec.probes_redone:
        rec.lines.append(f"✓ {rec.probes_redone} video probe(s) made again from the files")
    for name in rec.probes_lost:
        rec.lines.append(f"⚠ {name}: probe lost and the file is not there; it is made "
                         "again when the video is back")
    if rec.redo_slots:
        rec.lines.append(f"⚠ {rec.redo_slots} slot(s) had missing files: they are redone "
                         "(same bytes) by the next run")
    if rec.missing_untouched:
        rec.lines.append(f"⚠ none of the {rec.missing_untouched} recorded files was found "
                         f"under {cfg.output_root}: is it mounted? Samples were kept as "
                         "recorded")
    if backups.error:
        rec.lines.append(f"⚠ the new backup failed: {backups.error}")
    rec.lines.append(f"→ The damaged files are kept in {aside}")


def _repair_files(cfg: Config, rec: Recovery) -> None:
    """A whole database whose samples lost files (deleted by hand, two runs at once before
    the lock): their slots become pending, and the next run redoes them, same bytes."""
    st = State(cfg.state_dir)  # journaled like any write
    try:
        _check_files(cfg, st, rec)
        rec.samples = int(st.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    finally:
        st.close()
    if rec.redo_slots:
        rec.lines.append(f"⚠ {rec.redo_slots} slot(s) had missing or incomplete files: they "
                         "are redone (same bytes) by the next run")
    elif rec.missing_untouched:
        rec.lines.append(f"⚠ none of the {rec.missing_untouched} recorded files was found "
                         f"under {cfg.output_root}: is it mounted? Samples were kept as "
                         "recorded")
    else:
        rec.lines.append(f"✓ all {rec.samples} recorded samples have their files")


def _base_backup(sd: Path) -> tuple[int, Path] | None:
    """The newest backup that passes the integrity check."""
    for number, path in reversed(numbered(sd / BACKUP_DIR, ".sqlite3")):
        if not integrity(path, full=True):
            return number, path
    return None


def _replay(new: State, sd: Path, since: int | None, rec: Recovery) -> None:
    """Every journaled transaction from journal `since` on, in order (plain INSERTs become
    INSERT OR IGNORE: a row the backup already holds is the same row)."""
    db = new.db
    for number, path in numbered(sd / JOURNAL_DIR, ".jsonl"):
        if since is not None and number < since:
            continue
        for entry in read_journal(path):
            if entry is None:
                rec.skipped += 1
                continue
            db.execute("BEGIN IMMEDIATE")
            for sql, params in entry:
                try:
                    db.execute(_INSERT.sub("INSERT OR IGNORE INTO", sql, count=1), params)
                except sqlite3.Error:  # e.g. a column a newer schema dropped
                    rec.skipped += 1
            db.execute("COMMIT")
            rec.replayed += 1


def _salvage(damaged: Path, new: State, rec: Recovery) -> None:
    """Rows the damaged file still gives, where the rebuilt database lacks them."""
    try:
        src = sqlite3.connect(damaged, timeout=10)
    except sqlite3.Error:
        return
    try:
        tables = [str(r[0]) for r in new.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            try:
                have = {str(r[1]) for r in src.execute(f"PRAGMA table_info({table})")}
            except sqlite3.Error:
                continue
            cols = [str(r[1]) for r in new.db.execute(f"PRAGMA table_info({table})")
                    if r[1] in have]
            if not cols:
                continue
            known = new.db.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").fetchone()[0]
            rows = list(_readable_rows(src, table, cols, int(known)))
            marks = ", ".join("?" * len(cols))
            before = new.db.total_changes
            new.db.execute("BEGIN IMMEDIATE")
            new.db.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES "
                               f"({marks})", rows)
            if table == "videos" and {"id", "probe", "arrays", "frames"} <= set(cols):
                i = {c: cols.index(c) for c in ("id", "probe", "arrays", "frames")}
                new.db.executemany(
                    "UPDATE videos SET probe=?, arrays=?, frames=? WHERE id=? AND probe IS NULL",
                    [(r[i["probe"]], r[i["arrays"]], r[i["frames"]], r[i["id"]])
                     for r in rows if r[i["probe"]] is not None])
            new.db.execute("COMMIT")
            rec.salvaged[table] = new.db.total_changes - before
    finally:
        src.close()


def _readable_rows(src: sqlite3.Connection, table: str, cols: list[str], known: int
                   ) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` that can be read, skipping damaged pages by halving ranges."""
    sel = ", ".join(cols)
    try:
        yield from src.execute(f"SELECT {sel} FROM {table}").fetchall()
        return
    except sqlite3.Error:
        pass
    try:
        top = int(src.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0)
    except sqlite3.Error:
        top = known + SALVAGE_MARGIN
    query = f"SELECT {sel} FROM {table} WHERE rowid >= ? AND rowid < ?"

    def part(lo: int, hi: int) -> list[tuple[Any, ...]]:
        try:
            return list(src.execute(query, (lo, hi)).fetchall())
        except sqlite3.Error:
            if hi - lo <= 1:
                return []
            mid = (lo + hi) // 2
            return part(lo, mid) + part(mid, hi)

    for lo in range(-1, top + 1, SALVAGE_CHUNK):
        yield from part(lo, lo + SALVAGE_CHUNK)


def _redo_probes(cfg: Config, new: State, rec: Recovery) -> None:
    """Videos with slots but no probe (probes are not journaled): probe the file again —
    the same file gives the same probe; a file that changed or is gone is left to the run."""
    from dsgen.errors import VideoError
    from dsgen.probe import probe_video

    rows = new.db.execute(
        "SELECT v.id, v.name, v.path, v.size, v.mtime_ns FROM videos v WHERE v.probe IS NULL"
        " AND EXISTS (SELECT 1 FROM slots s WHERE s.video_id = v.id)").fetchall()
    for vid, name, path, size, mtime_ns in rows:
        try:
            probe = probe_video(Path(path), cfg.extraction.frames_per_clip)
        except VideoError:
            rec.probes_lost.append(str(name))
            continue
        if (probe.size, probe.mtime_ns) != (size, mtime_ns):
            rec.probes_lost.append(str(name))
            continue
        new.set_probe(int(vid), probe)
        rec.probes_redone += 1


def _check_files(cfg: Config, new: State, rec: Recovery) -> None:
    """Recorded samples whose files are missing become pending (the next run redoes them);
    when none of the files is there the output is probably not mounted: nothing changes."""
    rows = new.samples_since(0.0)
    checked, bad = slots_with_bad_files(cfg.output_root, rows)
    if not bad:
        return
    root = cfg.output_root
    if len(bad) == len({(v, s) for v, s, _ in rows}) and (
            not root.is_dir() or not any(root.iterdir())):
        rec.missing_untouched = checked
        return
    new.unrecord_slots(bad)
    rec.redo_slots = len(bad)

