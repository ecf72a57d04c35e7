"""Building frame indexes as work proceeds: which chunk to scan next, and what a scan gives.

A video's index is scanned chunk by chunk in the io lane (`index.scan_chunk`) from the time
its probe is in, alongside its first tasks: its first samples never wait for the scan.
Each chunk is stored as it comes (a stop or a kill loses at most the chunk in flight, and
nothing is read twice); when every chunk is in, the complete index replaces them. Nothing
the planner decides depends on the index (it completes whenever its scans do): it gives
the manifest its frame numbers and the dispatcher its GOPs.
"""

from __future__ import annotations

from dsgen.damage import DamageLog, entry
from dsgen.index import ChunkScan, assemble, chunk_count, gaps
from dsgen.model import VideoProbe
from dsgen.report import Reporter
from dsgen.runstate import RunState
from dsgen.state import State

# A chunk whose scan failed (the worker died, the file vanished) is tried this many times
# before the video's index is given up (its samples keep their pts; only frame numbers in
# the manifest are missing).
MAX_CHUNK_TRIES = 3
# The chunk number meaning "the whole file in one scan" (after chunks failed to tile).
WHOLE_FILE = -1


class Indexer:
    """Schedules and records the frame index scans of the run's videos."""

    def __init__(self, run: RunState, ui: Reporter, damage: DamageLog) -> None:
        self.run = run
        self.ui = ui
        self.damage = damage
        self.tries: dict[tuple[int, int], int] = {}

    def resume(self, st: State) -> None:
        """At start-up: videos probed before whose index is not complete yet."""
        for vid in st.incomplete_indexes():
            if vid in self.run.videos:
                self.probed(st, vid, None)

    def probed(self, st: State, vid: int, probe: VideoProbe | None) -> None:
        """A video's probe is in: queue the chunks its index still needs."""
        probe = probe if probe is not None else st.probe(vid)
        if probe is None or probe.index_complete:
            self.run.index_todo.pop(vid, None)
            return
        done = st.chunks_done(vid)
        todo = [k for k in range(chunk_count(probe)) if k not in done]
        if WHOLE_FILE in done or not todo:
            self._complete(st, vid, probe)
            return
        self.run.index_todo[vid] = todo

    def forget(self, st: State, vid: int) -> None:
        """The video changed or left: its index is no longer wanted."""
        self.run.index_todo.pop(vid, None)

    def handle(self, st: State, vid: int, scan: ChunkScan) -> None:
        """A chunk's scan came back: store it; complete the index when it was the last."""
        todo = self.run.index_todo.get(vid)
        if todo is None:
            return  # the video changed or left meanwhile
        if scan.error is not None:
            self.failed(st, vid, scan.chunk, scan.error)
            return
        st.add_chunk(vid, scan.chunk, scan.blob(), scan.start_key, scan.end_key, scan.eof,
                     scan.holes, scan.damage)
        if scan.chunk in todo:
            todo.remove(scan.chunk)
        probe = st.probe(vid) if scan.damage or not todo else None
        if probe is not None and scan.damage:
            self._record(st, vid, probe, scan.damage)
        if not todo and probe is not None:
            self._complete(st, vid, probe)

    def _record(self, st: State, vid: int, probe: VideoProbe,
                found: list[tuple[str, int, int]]) -> None:
        self.damage.record(st, vid, [entry(what, a, b, probe.first_pts, probe.time_base,
                                           source="index") for what, a, b in found])

    def failed(self, st: State, vid: int, chunk: int, why: str) -> None:
        """A chunk's scan failed or was lost: retry it, a bounded number of times."""
        key = (vid, chunk)
        self.tries[key] = self.tries.get(key, 0) + 1
        if self.tries[key] < MAX_CHUNK_TRIES:
            return  # still first in the video's list: scanned again next
        self.run.index_todo.pop(vid, None)
        v = self.run.videos.get(vid)
        name = v.name if v is not None else str(vid)
        self.ui.warn("Frame index not built", [f"Video: {name}", f"Reason: {why}"],
                     ["Its samples are kept and identified by timestamp; the manifest lists "
                      "no frame numbers for them"], event="index_failed", video=name,
                     reason=why)

    def _complete(self, st: State, vid: int, probe: VideoProbe) -> None:
        """Every chunk is in: store the complete index (or scan the whole file once, if the
        chunks do not tile the stream)."""
        chunks = st.chunks(vid)
        scans = [ChunkScan(k, *ChunkScan.arrays(blob), start_key=sk, end_key=ek, holes=h,
                           damage=list(d), eof=eof)
                 for k, blob, sk, ek, eof, h, d in chunks if k != WHOLE_FILE]
        whole = [c for c in chunks if c[0] == WHOLE_FILE]
        if whole:
            _, blob, _, _, _, h, d = whole[0]
            scans = [ChunkScan(0, *ChunkScan.arrays(blob), start_key=None, end_key=None,
                               holes=h, damage=list(d), eof=True)]
        got = assemble(scans)
        if got is None:
            self.run.index_todo[vid] = [WHOLE_FILE]
            return
        pts, keys = got
        if pts.shape[0] == 0:
            self.run.index_todo.pop(vid, None)
            return
        st.set_index(vid, probe.with_index(pts, keys))
        self.run.index_todo.pop(vid, None)
        # holes across chunk boundaries show only in the whole index
        holes = [("gap", a, b) for a, b in gaps(pts)]
        if holes:
            self._record(st, vid, probe, holes)
