"""Header checks (`quick_probe`: duration, rate, size) of many files, in the workers.

`read_headers` runs them here; `HeaderReader` is what `Library.sync` waits on when the loop
has an executor: batches over both lanes, a batch whose worker died read again one file at
a time, and other work that finishes meanwhile kept for the loop (`stash`). Nothing here
holds the engine.
"""

from __future__ import annotations

from pathlib import Path

from dsgen.errors import VideoError
from dsgen.executor import Done, Executor
from dsgen.extract import HeaderRequest, header_task
from dsgen.probe import QuickProbe, quick_probe

# Headers read in one piece of work: a few ms each (a decoded frame for some codecs), so a
# batch is short next to a task, and a library of thousands is few messages.
HEADER_BATCH = 16
# A file whose header read, alone, ends its worker this many times is unusable.
MAX_HEADER_CRASHES = 3
# How long one poll of the executor waits while sync waits for its headers.
POLL_SECONDS = 0.2

Header = QuickProbe | VideoError


def read_headers(paths: list[Path]) -> list[Header]:
    """Header checks in this process (what the workers run, for callers without any)."""
    out: list[Header] = []
    for path in paths:
        try:
            out.append(quick_probe(path))
        except VideoError as e:
            out.append(e)
    return out


def header_crash(path: str, why: str) -> VideoError:
    """Why a file whose header read failed its worker MAX_HEADER_CRASHES times is unusable."""
    return VideoError(path, "open", f"reading its header: {why} ({MAX_HEADER_CRASHES} times)",
                      "the file is probably damaged; re-copy or remux it")


class HeaderReader:
    """Reads headers in the executor's workers and waits for them (`executor` is set once
    the loop has one; before, they are read here)."""

    def __init__(self) -> None:
        self.executor: Executor | None = None
        self.stash: list[Done] = []  # other work that finished while sync waited

    def __call__(self, paths: list[Path]) -> list[Header]:
        """Each file's header or why it is unusable, in order."""
        ex = self.executor
        if ex is None or not paths:
            return read_headers(paths)
        got: dict[int, Header] = {}
        crashes: dict[int, int] = {}
        keys: dict[int, tuple[list[int], str, bool]] = {}  # key → (indexes, lane, alone)
        suspects: list[int] = []  # files of a lost batch: read one at a time, alone

        def submit(idx: list[int], lane: str, alone: bool = False) -> None:
            req = HeaderRequest(tuple(str(paths[i]) for i in idx))
            keys[ex.submit(header_task, req, lane=lane)] = (idx, lane, alone)
        for n, start in enumerate(range(0, len(paths), HEADER_BATCH)):
            submit(list(range(start, min(start + HEADER_BATCH, len(paths)))), ("io", "cpu")[n % 2])
        while keys or suspects:
            if suspects and not any(lane == "io" for _, lane, _ in keys.values()):
                # alone in its lane's one process: if that dies, this file is to blame
                submit([suspects.pop(0)], "io", alone=True)
            for d in ex.poll(POLL_SECONDS):
                hit = keys.pop(d.key, None)
                if hit is None:
                    self.stash.append(d)
                    continue
                idx, _, alone = hit
                if isinstance(d.result, list):
                    got.update(zip(idx, d.result, strict=True))
                elif not alone:
                    suspects.extend(idx)  # lost or raised with others: each again, alone
                else:
                    i = idx[0]
                    crashes[i] = crashes.get(i, 0) + 1
                    if crashes[i] < MAX_HEADER_CRASHES:
                        suspects.insert(0, i)
                    else:
                        why = "it killed its worker process" if d.lost else str(d.error)
                        got[i] = header_crash(str(paths[i]), why)
        return [got[i] for i in range(len(paths))]
