"""Watched folders: scans are the truth, inotify/polling events only hint that one is due."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from dsgen.config import VideoCfg, WatchCfg

# Name endings of files still being written by common tools (browsers, rsync --partial,
# download managers, editors); such files are never queued even if stable.
TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", "~",
                 ".!qb", ".filepart")


def is_candidate(path: Path, extensions: tuple[str, ...]) -> bool:
    """A visible, non-temporary file with a video extension (rsync's `.name.XXXXXX` is hidden)."""
    name = path.name
    if name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES):
        return False
    return path.suffix.lower() in extensions


class FileId(NamedTuple):
    """What tells one version of a file from another: a copy that grows, or a replacement
    renamed over it (a new inode, even with the same size and mtime)."""

    size: int
    mtime_ns: int
    ino: int


def file_id(path: Path) -> FileId | None:
    """The file's identity now, or None if it is not there (or not a regular file)."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileId(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class Seen:
    """A candidate file as last seen by a scan."""

    id: FileId
    since: float  # monotonic time it was first seen with this identity


def video_name(watch: WatchCfg, path: Path) -> str:
    """A stable video name for a watched file: its path under the watch root, no extension."""
    rel = path.relative_to(watch.path).with_suffix("")
    return f"{watch.prefix}{rel.as_posix()}" if watch.prefix else rel.as_posix()


class FolderWatcher:
    """Finds complete videos in watched folders: stable size and mtime, not temporary."""

    def __init__(self, watches: tuple[WatchCfg, ...], on_hint: Callable[[], None]) -> None:
        self.watches = watches
        self.on_hint = on_hint
        self.seen: dict[Path, Seen] = {}
        self.refused: dict[Path, str] = {}  # candidates that cannot become videos, with why
        self.observers: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start inotify (or polling, for network filesystems) observers as scan hints."""
        handler = _Hint(self.on_hint)
        for w in self.watches:
            if not w.path.is_dir():
                continue
            obs = PollingObserver(timeout=w.poll_seconds) if w.poll else Observer()
            obs.schedule(handler, str(w.path), recursive=w.recursive)
            obs.daemon = True
            obs.start()
            self.observers.append(obs)

    def stop(self) -> None:
        """Stop the observers."""
        for obs in self.observers:
            obs.stop()
        for obs in self.observers:
            obs.join(timeout=5)
        self.observers.clear()

    def alive(self) -> bool:
        """Whether every observer thread still runs (for the systemd watchdog)."""
        return all(obs.is_alive() for obs in self.observers)

    def _files(self, w: WatchCfg) -> Iterator[Path]:
        if not w.path.is_dir():
            return
        if w.recursive:
            for dirpath, dirnames, filenames in os.walk(w.path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for f in filenames:
                    yield Path(dirpath) / f
        else:
            yield from w.path.iterdir()

    def scan(self) -> tuple[list[VideoCfg], dict[Path, FileId]]:
        """(complete videos, every candidate present now with its identity); call
        periodically. A file is complete once its identity stayed the same `settle_seconds`."""
        now = time.monotonic()
        ready: list[VideoCfg] = []
        present: dict[Path, FileId] = {}
        with self._lock:
            for w in self.watches:
                for p in self._files(w):
                    if not is_candidate(p, w.extensions):
                        continue
                    try:
                        str(p).encode("utf-8")
                    except UnicodeEncodeError:  # the state stores names and paths as UTF-8
                        self.refused[p] = "its name is not valid UTF-8"
                        continue
                    fid = file_id(p)
                    if fid is None or fid.size == 0:
                        continue
                    present[p] = fid
                    old = self.seen.get(p)
                    if old is None or old.id != fid:
                        self.seen[p] = Seen(fid, now)
                        continue
                    if now - old.since >= w.settle_seconds:
                        ready.append(VideoCfg(name=video_name(w, p), path=p,
                                              categories=w.categories))
            for gone in set(self.seen) - set(present):
                del self.seen[gone]
        return ready, present

    def roots_available(self) -> dict[Path, bool]:
        """Whether each watch root is reachable (an unmounted library is not 'gone')."""
        return {w.path: w.path.is_dir() for w in self.watches}


class _Hint(FileSystemEventHandler):
    """Any event under a watched folder: a scan is due (the scan decides what it means)."""

    def __init__(self, on_hint: Callable[[], None]) -> None:
        self.on_hint = on_hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Wake the engine."""
        self.on_hint()

