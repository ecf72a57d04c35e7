"""One writer per state dir: an flock held for the life of `dsgen run` / `dsgen daemon`.

The kernel releases an flock when its process ends in any way (kill -9 included), so a
stale lock file never blocks a restart. The file is never deleted: unlinking it could let
two processes lock two different files of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from dsgen.errors import StateError, StateInUse

LOCK_NAME = "dsgen.lock"
# How long to wait for a holder that has just locked to write its PID (a tiny window).
PID_WAIT_SECONDS = 0.5


class StateLock:
    """An exclusive lock on `<state_dir>/dsgen.lock`, holding this process's PID."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Lock the state dir (creating it); StateInUse with the holder's PID if taken."""
        path = state_dir / LOCK_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateError(f"{state_dir}: cannot create the state folder or its lock file: "
                             f"{e.strerror}",
                             hint="check that state_dir is a folder dsgen may write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "a process that has not written its PID yet"
            raise StateInUse(
                f"{state_dir}: the state is in use by another dsgen ({who})",
                hint="only one run or daemon may use a state dir: stop the other one first; "
                     "dsgen status, monitor and manifest work meanwhile") from None
        except OSError as e:  # e.g. ENOLCK on a network filesystem without lock support
            os.close(fd)
            raise StateError(f"{state_dir}: cannot lock the state: {e.strerror}",
                             hint="keep state_dir on a local disk") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Unlock (idempotent); the file stays."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def read_holder(fd: int) -> int | None:
    """The PID written in a lock file held by someone else (None if not written yet)."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def holder_of(state_dir: Path) -> int | None:
    """The PID of the live dsgen holding `state_dir`, or None when nobody holds it."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(fd) or -1
    except OSError:
        return None
    finally:
        os.close(fd)
    return None
