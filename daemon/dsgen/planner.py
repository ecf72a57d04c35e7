"""Planning against the run: phases split targets over videos, rounds refill a video's slots.

Both read the run's counts (kept in step by `ledger`), never whole tables: a round costs the
same with 5 or 5,000 videos in the library.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsgen import ledger
from dsgen.config import Config
from dsgen.model import USABLE, VideoProbe
from dsgen.patches import geometry
from dsgen.plan import MAX_ROUNDS, fitting_formats, place_round, split_targets, window_capacity
from dsgen.runstate import RunState
from dsgen.state import State


@dataclass(frozen=True)
class RoundOutcome:
    """What planning a video's next round did."""

    planned: int  # slots added
    exhausted: dict[str, str]  # category → why the video cannot give more
    notes: tuple[str, ...] = ()


def shares(run: RunState) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, int]]]:
    """Per category: each usable video's share (usable seconds × weight) and spare capacity."""
    cfg = run.cfg
    out_shares: dict[str, dict[int, float]] = {}
    caps: dict[str, dict[int, int]] = {}
    for vid, v in run.videos.items():
        vc = run.cfg_by_id.get(vid)
        if v.status not in USABLE or not v.fps or not v.duration or vc is None:
            continue
        c = run.video_counts(vid)
        # the header's figures: the index completes whenever its scans do, and a share must
        # not depend on timing
        frames = int(v.duration * v.fps)
        secs, cap0 = window_capacity(frames, v.fps, cfg)
        for cat, weight in vc.categories:
            if cat in c.exhausted:
                continue
            cap = cap0 - c.quota.get(cat, 0)
            if cap > 0 and secs > 0:
                out_shares.setdefault(cat, {})[vid] = secs * weight
                caps.setdefault(cat, {})[vid] = cap
    return out_shares, caps


def new_phase(run: RunState, st: State) -> dict[str, dict[int, int]]:
    """Give each category's missing samples to videos that can still give (stored); {} if none."""
    cfg = run.cfg
    phase = st.phase() + 1
    outstanding: dict[str, int] = {}
    for vc in run.counts.values():
        for name in vc.quota:
            if name not in vc.exhausted:  # still planned and unfinished: will be delivered
                outstanding[name] = outstanding.get(name, 0) + vc.owed(name)
    deficits = {}
    for cat in cfg.categories:
        got = 0 if phase == 0 else run.totals.get(cat.name, 0) + outstanding.get(cat.name, 0)
        deficits[cat.name] = cat.target - got
    deficits = {c: d for c, d in deficits.items() if d > 0}
    if not deficits:
        return {}
    s, caps = shares(run)
    amounts = {c: a for c, a in split_targets(cfg, deficits, s, caps).items() if a}
    if amounts:
        ledger.add_quotas(run, st, phase, amounts)
    return amounts


def plan_round(run: RunState, st: State, vid: int, probe: VideoProbe) -> RoundOutcome:
    """Create the next round of slots for a video that owes samples (all its slots are done)."""
    cfg: Config = run.cfg
    v, vc, c = run.videos[vid], run.cfg_by_id[vid], run.video_counts(vid)
    known = set(run.category_names)
    owed = {cat: c.owed(cat) for cat, _ in vc.categories if cat in known and c.owed(cat) > 0}
    if not owed:
        return RoundOutcome(0, {})
    assert c.pending == 0
    gone: dict[str, str] = {}
    notes = []
    geo = geometry(probe, cfg.extraction.reference_height)
    for cat in list(owed):
        if not fitting_formats(cfg, geo, cat):
            gone[cat] = "no format of the category fits the picture"
            notes.append(f"no {cat} format fits its {geo.width}×{geo.height} picture; "
                         "its share goes to other videos")
            del owed[cat]
    reason = None
    if c.last_round + 1 >= MAX_ROUNDS:
        reason = f"{MAX_ROUNDS} rounds of replacement positions used"
    elif c.last_round >= 0 and st.round_yield(vid, c.last_round) == 0:
        reason = "the last round of positions gave no usable clip"
    planned = 0
    if reason is None and owed:
        slots = place_round(cfg, probe, v.name, owed, st.used_windows(vid), c.next_slot,
                            st.phase(), c.last_round + 1)
        if slots:
            ledger.add_slots(run, st, vid, slots)
            planned = len(slots)
        else:
            reason = "no unused positions left"
    if not planned:
        gone.update(dict.fromkeys(owed, reason or "exhausted"))
    for cat, why in gone.items():
        ledger.mark_exhausted(run, st, vid, [cat], why)
    return RoundOutcome(planned, gone, tuple(notes))
