"""State writes that keep the run's counts in step: one call changes the database and the
`RunState` figures together, so the loop never re-reads whole tables to know where it is.
Counts are keyed by planning key (`model.split_key`: the category, or `<category>@val`)."""

from __future__ import annotations

import time

from dsgen.model import OK, SlotPlan, SlotResult, VideoCounts, split_key
from dsgen.runstate import RunState
from dsgen.state import State


def mark_exhausted(run: RunState, st: State, vid: int, categories: list[str],
                   reason: str) -> None:
    """A video cannot give more samples for these categories."""
    if not categories:
        return
    st.mark_exhausted(vid, categories, reason)
    ex = run.video_counts(vid).exhausted
    for c in categories:
        ex[c] = reason


def clear_exhausted(run: RunState, st: State, vid: int, reasons: tuple[str, ...]) -> None:
    """Forget exhaustion marks with these reasons (the file or its mount came back)."""
    st.clear_exhausted(vid, reasons)
    ex = run.video_counts(vid).exhausted
    for c in [c for c, why in ex.items() if why in reasons]:
        del ex[c]


def add_quotas(run: RunState, st: State, phase: int, amounts: dict[str, dict[int, int]],
               meta: dict[str, str | None] | None = None) -> None:
    """Record a planning phase (or a step of one): category → video → samples added."""
    st.add_quotas(phase, amounts, meta)
    for cat, per in amounts.items():
        for vid, n in per.items():
            q = run.video_counts(vid).quota
            q[cat] = q.get(cat, 0) + n


def add_slots(run: RunState, st: State, vid: int, slots: list[SlotPlan]) -> None:
    """Record a new round of slots of a video."""
    if not slots:
        return
    st.add_slots(vid, slots)
    c = run.video_counts(vid)
    c.slots += len(slots)
    c.pending += len(slots)
    c.next_slot = max(c.next_slot, max(s.slot_id for s in slots) + 1)
    c.last_round = max(c.last_round, max(s.round for s in slots))


def record_slot(run: RunState, st: State, vid: int, res: SlotResult) -> None:
    """Make a complete slot durable (one transaction) and count it."""
    st.record_slot(vid, res)
    c = run.video_counts(vid)
    c.pending = max(0, c.pending - 1)
    c.tried += len(res.attempts)
    c.ok += sum(a.outcome == OK for a in res.attempts)
    for s in res.samples:
        key = split_key(s.category, s.split)
        c.achieved[key] = c.achieved.get(key, 0) + 1
        run.totals[key] = run.totals.get(key, 0) + 1
        run.total_bytes[key] = run.total_bytes.get(key, 0) + sum(b for _, b in s.files)
    k = run.counters
    k.add_samples(len(res.samples), time.time())
    k.attempts += len(res.attempts)
    k.attempts_ok += sum(a.outcome == OK for a in res.attempts)
    k.slots += 1


def reset_video(run: RunState, st: State, vid: int) -> None:
    """A video with no recorded sample starts over: its slots, attempts, probe and exhaustion
    go; its quotas stay (the samples are still owed)."""
    st.reset_video(vid)
    old = run.video_counts(vid)
    run.counts[vid] = VideoCounts(quota=dict(old.quota))


def load(run: RunState, st: State) -> None:
    """Fill the run's counts and totals from the state (start-up and reloads)."""
    run.counts = st.load_counts()
    totals = st.category_totals()
    run.totals = {c: n for c, (n, _) in totals.items()}
    run.total_bytes = {c: b for c, (_, b) in totals.items()}
