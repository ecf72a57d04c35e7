"""dsgen.dispatch: how pending slots become tasks (cost only: results never depend on it)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from dsgen.dispatch import segments
from dsgen.model import SlotPlan
from dsgen.probe import probe_video
from dsgen.synth import SynthSpec


def test_tasks_never_split_a_gop_between_workers(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """Slots are grouped in order into tasks of at least `segment_slots` (the last may be
    smaller), and two slots whose first windows lie in the same GOP always share a task, so
    no two workers decode the same GOP's reference frames."""
    p = probe_video(h264_cuts[0], 7)
    starts = [1, 3, 9, 20, 25, 30, 31, 47, 50, 60, 80, 85, 88]
    slots = [SlotPlan(i, 0, 0, (s,), (("a", "f"),)) for i, s in enumerate(starts)]
    for size in (1, 2, 3, 5, 100):
        chunks = segments(slots, size, p)
        assert [s for c in chunks for s in c] == slots
        assert all(len(c) >= size for c in chunks[:-1])
        gop = {s.slot_id: int(np.searchsorted(p.key_pts, p.frame_pts[s.starts[0]], "right"))
               for s in slots}
        for a, b in itertools.pairwise(chunks):
            assert gop[a[-1].slot_id] != gop[b[0].slot_id], size
    assert segments([], 4, p) == []
