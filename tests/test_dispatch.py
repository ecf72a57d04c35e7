"""dsgen.dispatch: how pending slots become tasks (cost only: results never depend on it)."""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np

from dsgen.dispatch import CUT_GAP_SECONDS, CUT_GROWTH, segments
from dsgen.model import SlotPlan
from dsgen.probe import probe_video
from dsgen.synth import SynthSpec


def test_tasks_never_split_a_gop_between_workers(h264_cuts: tuple[Path, SynthSpec]) -> None:
    """With the keyframes known, slots are grouped in order into tasks of at least
    `segment_slots` (the last may be smaller), and two slots whose first windows lie in the
    same GOP always share a task, so no two workers decode the same GOP's references."""
    p = probe_video(h264_cuts[0], 7)
    frames = [1, 3, 9, 20, 25, 30, 31, 47, 50, 60, 80, 85, 88]
    slots = [SlotPlan(i, 0, 0, (int(p.frame_pts[f]),), (("a", "f"),))
             for i, f in enumerate(frames)]
    gop = {s.slot_id: int(np.searchsorted(p.key_pts, s.starts[0], "right")) for s in slots}
    for size in (1, 2, 3, 5, 100):
        chunks = segments(slots, size, p, p.key_pts)
        assert [s for c in chunks for s in c] == slots
        assert all(len(c) >= size for c in chunks[:-1])
        for a, b in itertools.pairwise(chunks):
            assert gop[a[-1].slot_id] != gop[b[0].slot_id], size
    assert segments([], 4, p, p.key_pts) == []


def test_without_keyframes_tasks_are_cut_at_long_gaps(h264_cuts: tuple[Path, SynthSpec]
                                                      ) -> None:
    """Before a video's index is complete, a task is cut only where two positions lie more
    than CUT_GAP_SECONDS apart (no GOP is that long), or once it has grown CUT_GROWTH times."""
    p = dataclasses.replace(probe_video(h264_cuts[0], 7).light(), time_base=Fraction(1, 1))
    gap = int(CUT_GAP_SECONDS)
    starts = [0, 2, 4, 4 + 2 * gap, 5 + 2 * gap, 6 + 2 * gap, 7 + 2 * gap, 8 + 2 * gap,
              9 + 2 * gap]
    slots = [SlotPlan(i, 0, 0, (s,), (("a", "f"),)) for i, s in enumerate(starts)]
    chunks = segments(slots, 2, p)
    assert [[s.starts[0] for s in c] for c in chunks] == [
        starts[:3], starts[3:3 + 2 * CUT_GROWTH], starts[3 + 2 * CUT_GROWTH:]]


def test_a_runs_first_task_is_one_slot_where_it_shares_no_gop(
        h264_cuts: tuple[Path, SynthSpec]) -> None:
    """With `first_size`, the first task ends after `first_size` slots at the first GOP boundary (so
    the first sample comes after one clip), and the rest are grouped as without it; with the
    first slots in one GOP, that task holds the whole GOP's slots."""
    p = probe_video(h264_cuts[0], 7)
    frames = [1, 30, 31, 47, 50, 60, 80, 85, 88]
    slots = [SlotPlan(i, 0, 0, (int(p.frame_pts[f]),), (("a", "f"),))
             for i, f in enumerate(frames)]
    chunks = segments(slots, 4, p, p.key_pts, first_size=1)
    assert [s for c in chunks for s in c] == slots
    assert len(chunks[0]) == 1
    assert chunks[1:] == segments(slots[1:], 4, p, p.key_pts)
    gop = {s.slot_id: int(np.searchsorted(p.key_pts, s.starts[0], "right")) for s in slots}
    same_gop = segments(slots[1:], 4, p, p.key_pts, first_size=1)  # frames 30, 31…: one GOP
    assert [s.slot_id for s in same_gop[0]] == [s.slot_id for s in slots[1:]
                                                 if gop[s.slot_id] == gop[1]]
    assert len(same_gop[0]) > 1
