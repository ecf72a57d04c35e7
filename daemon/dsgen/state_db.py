"""The state's SQLite layer: a connection whose "disk full" and "damaged" errors become
StateFull / StateDamaged and whose committed writes go to the journal; the damage mark."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsgen.errors import StateDamaged, StateError, StateFull
from dsgen.journal import Journal

DB_NAME = "dsgen.sqlite3"
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


class StateBase:
    """What every part of `State` stands on: the database file, its connection, the journal
    and one write transaction."""

    path: Path
    db: StateConnection
    journal: Journal | None

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
