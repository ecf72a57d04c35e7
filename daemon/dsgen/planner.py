"""Planning against the state: phases split targets over videos, rounds refill a video's slots."""

from __future__ import annotations

from dataclasses import dataclass

from dsgen.config import Config, VideoCfg
from dsgen.model import VideoRow
from dsgen.patches import geometry
from dsgen.plan import MAX_ROUNDS, capacity, fitting_formats, place_round, split_targets
from dsgen.plan import usable_seconds as probe_seconds
from dsgen.state import State

USABLE = ("new", "ready")


@dataclass(frozen=True)
class RoundOutcome:
    """What planning a video's next round did."""

    planned: int  # slots added
    exhausted: dict[str, str]  # category → why the video cannot give more
    notes: tuple[str, ...] = ()


def shares(cfg: Config, st: State, videos: dict[int, VideoRow], cfgs: dict[int, VideoCfg]
           ) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, int]]]:
    """Per category: each usable video's share (usable seconds × weight) and spare capacity."""
    out_shares: dict[str, dict[int, float]] = {}
    caps: dict[str, dict[int, int]] = {}
    used = st.quotas()
    exhausted = st.exhausted()
    for vid, v in videos.items():
        if v.status not in USABLE or not v.fps or not v.duration or vid not in cfgs:
            continue
        for cat, weight in cfgs[vid].categories:
            if (vid, cat) in exhausted:
                continue
            if v.probe is not None:
                secs, cap = probe_seconds(v.probe, cfg), capacity(v.probe, cfg)
            else:  # header figures until the video is indexed
                secs = max(0.0, v.duration - 2 * cfg.extraction.edge_margin_seconds)
                cap = int(secs * v.fps) // cfg.extraction.frames_per_clip
            cap -= used.get((vid, cat), 0)
            if cap > 0 and secs > 0:
                out_shares.setdefault(cat, {})[vid] = secs * weight
                caps.setdefault(cat, {})[vid] = cap
    return out_shares, caps


def new_phase(cfg: Config, st: State, videos: dict[int, VideoRow], cfgs: dict[int, VideoCfg]
              ) -> dict[str, dict[int, int]]:
    """Give each category's missing samples to videos that can still give (stored); {} if none."""
    phase = st.phase() + 1
    totals = {c: n for c, (n, _) in st.category_totals().items()}
    planned, achieved, exhausted = st.quotas(), st.achieved(), st.exhausted()
    outstanding: dict[str, int] = {}
    for (vid, cat), q in planned.items():
        if (vid, cat) not in exhausted:  # still planned and unfinished: will be delivered
            outstanding[cat] = outstanding.get(cat, 0) + max(0, q - achieved.get((vid, cat), 0))
    deficits = {}
    for c in cfg.categories:
        got = 0 if phase == 0 else totals.get(c.name, 0) + outstanding.get(c.name, 0)
        deficits[c.name] = c.target - got
    deficits = {c: d for c, d in deficits.items() if d > 0}
    if not deficits:
        return {}
    s, caps = shares(cfg, st, videos, cfgs)
    amounts = {c: a for c, a in split_targets(cfg, deficits, s, caps).items() if a}
    if amounts:
        st.add_quotas(phase, amounts)
    return amounts


def plan_round(cfg: Config, st: State, v: VideoRow, vc: VideoCfg) -> RoundOutcome:
    """Create the next round of slots for a video that owes samples (all its slots are done)."""
    assert v.probe is not None
    quotas, achieved, exhausted = st.quotas(), st.achieved(), st.exhausted()
    owed = {}
    for cat, _ in vc.categories:
        if cat not in {c.name for c in cfg.categories}:
            continue
        d = quotas.get((v.id, cat), 0) - achieved.get((v.id, cat), 0)
        if d > 0 and (v.id, cat) not in exhausted:
            owed[cat] = d
    if not owed:
        return RoundOutcome(0, {})
    _, pending, next_id, last_round = st.slot_stats(v.id)
    assert pending == 0
    gone: dict[str, str] = {}
    notes = []
    geo = geometry(v.probe, cfg.extraction.reference_height)
    for cat in list(owed):
        if not fitting_formats(cfg, geo, cat):
            gone[cat] = "no format of the category fits the picture"
            notes.append(f"no {cat} format fits its {geo.width}×{geo.height} picture; "
                         "its share goes to other videos")
            del owed[cat]
    reason = None
    if last_round + 1 >= MAX_ROUNDS:
        reason = f"{MAX_ROUNDS} rounds of replacement positions used"
    elif last_round >= 0 and st.round_yield(v.id, last_round) == 0:
        reason = "the last round of positions gave no usable clip"
    planned = 0
    if reason is None and owed:
        slots = place_round(cfg, v.probe, v.name, owed, st.used_starts(v.id), next_id,
                            st.phase(), last_round + 1)
        if slots:
            st.add_slots(v.id, slots)
            planned = len(slots)
        else:
            reason = "no unused positions left"
    if not planned:
        gone.update(dict.fromkeys(owed, reason or "exhausted"))
    for cat, why in gone.items():
        st.mark_exhausted(v.id, [cat], why)
    return RoundOutcome(planned, gone, tuple(notes))
