"""The state's safety copies: a journal of committed writes and online SQLite backups.

`state_dir/journal/<n>.jsonl` holds, one line per committed transaction, the write
statements it ran (with a CRC). `state_dir/backups/<n>.sqlite3` is an online copy (SQLite's
backup API, from a second connection in a thread) taken right after journal `n` was
started: it holds everything of the journals before `n`. A backup plus the journals from
its number on give back every committed write except probes, which are not journaled (a
start-up probes a video again). `dsgen state recover` rebuilds the database from them and
from what the damaged file still gives (docs/state.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

JOURNAL_DIR = "journal"
BACKUP_DIR = "backups"
# A backup is taken when the newest is older than this, or the journal since it grew past
# JOURNAL_MAX_BYTES: either bounds how much a recovery replays.
BACKUP_SECONDS = 3600.0
JOURNAL_MAX_BYTES = 64 * 1024 * 1024
# Backups kept: the newest, and the one before it in case the newest is itself damaged.
BACKUPS_KEPT = 2
# After a failed backup (a full disk), wait this long before trying again.
BACKUP_RETRY_SECONDS = 60.0


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _params(params: Any) -> Any:
    if isinstance(params, Mapping):  # named parameters
        return {"named": {str(k): _encode(v) for k, v in params.items()}}
    return [_encode(v) for v in params]


def _unparams(params: Any) -> Any:
    if isinstance(params, dict) and set(params) == {"named"}:
        return {k: _decode(v) for k, v in params["named"].items()}
    return tuple(_decode(v) for v in params)


def encode_entry(statements: list[tuple[str, Any]]) -> bytes:
    """One journal line: `<crc32 hex> <json>\\n` of [[sql, [params]], …]."""
    body = json.dumps([[sql, _params(params)] for sql, params in statements],
                      separators=(",", ":"), ensure_ascii=False)
    data = body.encode("utf-8", "surrogatepass")
    return b"%08x " % zlib.crc32(data) + data + b"\n"


def decode_entry(line: bytes) -> list[tuple[str, Any]] | None:
    """The statements of one journal line, or None when it is torn or damaged."""
    head, _, data = line.rstrip(b"\n").partition(b" ")
    try:
        if len(head) != 8 or int(head, 16) != zlib.crc32(data):
            return None
        return [(str(sql), _unparams(params))
                for sql, params in json.loads(data.decode("utf-8", "surrogatepass"))]
    except (ValueError, TypeError, AttributeError):
        return None


def numbered(folder: Path, suffix: str) -> list[tuple[int, Path]]:
    """`<n><suffix>` files of a folder, by number."""
    out = []
    with contextlib.suppress(OSError):
        for p in folder.iterdir():
            stem = p.name[:-len(suffix)] if p.name.endswith(suffix) else ""
            if stem.isdigit():
                out.append((int(stem), p))
    return sorted(out)


class Journal:
    """Appends committed transactions to `journal/<n>.jsonl` (one write(2) per line)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / JOURNAL_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        files = numbered(self.dir, ".jsonl")
        self.index = files[-1][0] if files else 0
        self.fd: int | None = None
        self.bytes = 0
        self.gap = False  # an entry could not be written: the next backup must cover it
        self._torn = False  # the last write was partial: start the next line afresh
        self._open()

    def _open(self) -> None:
        path = self.dir / f"{self.index:06d}.jsonl"
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.bytes = os.fstat(self.fd).st_size
        self._torn = self.bytes > 0  # a line cut by kill -9 must not swallow the next

    def append(self, statements: list[tuple[str, Any]]) -> None:
        """Add one committed transaction; a failure (disk full) is remembered as a gap."""
        if self.fd is None:
            return
        line = encode_entry(statements)
        if self._torn:
            line = b"\n" + line
        try:
            n = os.write(self.fd, line)
        except OSError:
            self.gap = self._torn = True
            return
        self.bytes += n
        self._torn = n < len(line)
        if self._torn:
            self.gap = True

    def rotate(self) -> int | None:
        """Start the next journal file; return its number (a backup taken now holds every
        committed entry of the earlier ones), None when it cannot be created (a gap)."""
        self.close()
        self.index += 1
        try:
            self._open()
        except OSError:
            self.gap = True
            return None
        return self.index

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def read_journal(path: Path) -> Iterator[list[tuple[str, Any]] | None]:
    """Each line's statements (None for a damaged line) of one journal file."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    for line in data.split(b"\n"):
        if line.strip():
            yield decode_entry(line)


class Backups:
    """Online copies of the state database, made in a thread, kept BACKUPS_KEPT deep."""

    def __init__(self, db_path: Path, state_dir: Path) -> None:
        self.db_path = db_path
        self.dir = state_dir / BACKUP_DIR
        self.journal_dir = state_dir / JOURNAL_DIR
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # the last backup's failure, for a warning
        self.done = 0  # backups completed by this process

    def newest(self) -> tuple[int, Path] | None:
        """(number, path) of the newest backup."""
        found = numbered(self.dir, ".sqlite3")
        return found[-1] if found else None

    def due(self, journal: Journal, now: float | None = None) -> bool:
        """A backup is missing, old, behind a journal gap, or the journal grew long."""
        if self.running:
            return False
        newest = self.newest()
        if newest is None or journal.gap or journal.bytes > JOURNAL_MAX_BYTES:
            return True
        try:
            age = (now or time.time()) - newest[1].stat().st_mtime
        except OSError:
            return True
        return age > BACKUP_SECONDS

    @property
    def running(self) -> bool:
        """A backup is being made."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, number: int) -> None:
        """Copy the database now (in a thread) as backup `number`."""
        if self.running:
            return
        self._thread = threading.Thread(target=self._copy, args=(number,),
                                        name="dsgen-backup", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> None:
        """Let a running backup finish (at exit)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _copy(self, number: int) -> None:
        part = self.dir / f".{number:06d}.sqlite3.part"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            part.unlink(missing_ok=True)
            src = sqlite3.connect(self.db_path, timeout=30)
            try:
                dst = sqlite3.connect(part)
                try:
                    src.backup(dst)  # one step: a consistent snapshot, the writer goes on
                    dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                finally:
                    dst.close()
            finally:
                src.close()
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(part, self.dir / f"{number:06d}.sqlite3")
            self.prune()
            self.error = None
            self.done += 1
        except (OSError, sqlite3.Error) as e:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            self.error = str(e)

    def prune(self) -> None:
        """Keep BACKUPS_KEPT backups and the journals a recovery from the oldest needs."""
        backups = numbered(self.dir, ".sqlite3")
        for _, p in backups[:-BACKUPS_KEPT]:
            p.unlink(missing_ok=True)
        kept = backups[-BACKUPS_KEPT:]
        if kept:
            for n, p in numbered(self.journal_dir, ".jsonl"):
                if n < kept[0][0]:
                    p.unlink(missing_ok=True)
        for p in self.dir.glob(".*.part"):  # ours was renamed: any left is a dead copy's
            with contextlib.suppress(OSError):
                p.unlink()


class Safekeeper:
    """The run's side: rotates the journal and starts a backup when one is due; reports a
    backup that failed (once per reason)."""

    def __init__(self, journal: Journal | None, backups: Backups,
                 warn: Callable[[str], None]) -> None:
        self.journal = journal
        self.backups = backups
        self.warn = warn
        self._pending: int | None = None
        self._covers_gap = False
        self._retry_at = 0.0
        self._warned: str | None = None

    def tick(self, now: float | None = None) -> None:
        """Call from the loop now and then (cheap when nothing is due)."""
        j, b = self.journal, self.backups
        if j is None or b.running:
            return
        now = time.time() if now is None else now
        if self._pending is not None:  # a backup just ended
            if b.error is not None:
                self._retry_at = now + BACKUP_RETRY_SECONDS
                if self._covers_gap:
                    j.gap = True  # still not covered by any backup
                if b.error != self._warned:
                    self._warned = b.error
                    self.warn(b.error)
            self._pending = None
        if now < self._retry_at or not b.due(j, now):
            return
        covers = j.gap
        n = j.rotate()
        if n is None:
            self._retry_at = now + BACKUP_RETRY_SECONDS
            return
        j.gap = False  # the new journal starts whole; the backup covers the old gap
        self._covers_gap, self._pending = covers, n
        b.start(n)

    def finish(self, timeout: float) -> None:
        """At exit: let a running backup end."""
        self.backups.wait(timeout)
