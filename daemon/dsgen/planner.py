"""Planning against the run: phases split targets over videos, rounds refill a video's slots.

Both read the run's counts (kept in step by `ledger`), never whole tables: a round costs the
same with 5 or 5,000 videos in the library. Everything is planned per planning key
(`dsgen.split`): a category's training and validation samples are planned alike, in their
own regions of each video.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsgen import ledger, split
from dsgen.config import Config, VideoCfg
from dsgen.model import USABLE, SlotPlan, VideoProbe
from dsgen.patches import Geometry, fits, geometry
from dsgen.plan import MAX_ROUNDS, fitting_formats, place_round, split_targets, window_capacity
from dsgen.runstate import RunState
from dsgen.split import TRAIN, Holdout
from dsgen.state import State


@dataclass(frozen=True)
class RoundOutcome:
    """What planning a video's next round did."""

    planned: int  # slots added
    exhausted: dict[str, str]  # category → why the video cannot give more
    notes: tuple[str, ...] = ()


def shares(run: RunState) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, int]]]:
    """Per planning key: each usable video's share (usable seconds × weight) and spare
    capacity, in the part of its runtime the key's split may use."""
    cfg = run.cfg
    out_shares: dict[str, dict[int, float]] = {}
    caps: dict[str, dict[int, int]] = {}
    for vid, v in run.videos.items():
        vc = run.cfg_by_id.get(vid)
        if v.status not in USABLE or not v.fps or not v.duration or vc is None:
            continue
        c = run.video_counts(vid)
        # the index's frame count once probed, the header's figures until then
        frames = v.frames if v.frames is not None else int(v.duration * v.fps)
        secs, cap0 = window_capacity(frames, v.fps, cfg)
        weights = dict(vc.categories)
        for k, (ksecs, kcap) in split.capacities(cfg, vc, frames, v.fps, secs, cap0).items():
            if k in c.exhausted:
                continue
            cap = kcap - c.quota.get(k, 0)
            if cap > 0 and ksecs > 0:
                out_shares.setdefault(k, {})[vid] = ksecs * weights[split.parse(k)[0]]
                caps.setdefault(k, {})[vid] = cap
    return out_shares, caps


def new_phase(run: RunState, st: State) -> dict[str, dict[int, int]]:
    """Give each planning key's missing samples to videos that can still give (stored);
    {} if none."""
    phase = st.phase() + 1
    outstanding: dict[str, int] = {}
    for vc in run.counts.values():
        for name in vc.quota:
            if name not in vc.exhausted:  # still planned and unfinished: will be delivered
                outstanding[name] = outstanding.get(name, 0) + vc.owed(name)
    deficits = {}
    for k, target in split.targets(run.cfg).items():
        got = 0 if phase == 0 else run.totals.get(k, 0) + outstanding.get(k, 0)
        deficits[k] = target - got
    deficits = {k: d for k, d in deficits.items() if d > 0}
    if not deficits:
        return {}
    s, caps = shares(run)
    amounts = {k: a for k, a in split_targets(run.cfg, deficits, s, caps).items() if a}
    if amounts:
        ledger.add_quotas(run, st, phase, amounts)
    return amounts


def format_notes(cfg: Config, geo: Geometry, vc: VideoCfg) -> list[str]:
    """One line per category split of the video that loses a format because the format is
    larger than the picture, naming the formats the mix is re-weighted among."""
    notes = []
    for k in split.video_keys(cfg, vc):
        cat, sp = split.parse(k)
        mix = split.formats(cfg, cat, sp)
        skipped = [f for f, _ in mix if not fits(geo, cfg.format(f))]
        kept = [f"{f} {w / sum(w for f2, w in mix if f2 not in skipped):.0%}"
                for f, w in mix if f not in skipped]
        if skipped and kept:
            what = cat if sp == TRAIN else f"{cat} validation"
            big = ", ".join(f"{f} ({cfg.format(f).width}×{cfg.format(f).height})"
                            for f in skipped)
            notes.append(f"{what}: {big} larger than its {geo.width}×{geo.height} picture, "
                         f"skipped for this video; mix re-weighted: {', '.join(kept)}")
    return notes


def holdout_of(cfg: Config, st: State, vid: int, vc: VideoCfg, probe: VideoProbe
               ) -> Holdout | None:
    """The video's held-out blocks: stored, or chosen now (once) if its categories need them."""
    text = st.holdout(vid)
    if text is not None:
        return Holdout.from_json(text)
    h = split.make_holdout(cfg, vc, probe.n_frames, probe.fps)
    if h is not None:
        st.set_holdout(vid, h.to_json())
    return h


def plan_round(run: RunState, st: State, vid: int, probe: VideoProbe) -> RoundOutcome:
    """Create the next round of slots for a video that owes samples (all its slots are done):
    one group per split region (training, held-out ranges, held-out video)."""
    cfg: Config = run.cfg
    v, vc, c = run.videos[vid], run.cfg_by_id[vid], run.video_counts(vid)
    owed = {k: c.owed(k) for k in split.video_keys(cfg, vc) if c.owed(k) > 0}
    if not owed:
        return RoundOutcome(0, {})
    assert c.pending == 0
    gone: dict[str, str] = {}
    geo = geometry(probe, cfg.extraction.reference_height)
    notes = format_notes(cfg, geo, vc)
    for k in list(owed):
        cat, sp = split.parse(k)
        if not fitting_formats(cfg, geo, cat, sp):
            gone[k] = "no format of the category fits the picture"
            what = cat if sp == TRAIN else f"{cat} validation"
            notes.append(f"no {what} format fits its {geo.width}×{geo.height} picture; "
                         "its share goes to other videos")
            del owed[k]
    reasons: dict[str, str] = {}  # split → why it can give no more
    if c.last_round + 1 >= MAX_ROUNDS:
        reasons = dict.fromkeys(split.SPLITS, f"{MAX_ROUNDS} rounds of replacement positions "
                                              "used")
    elif c.last_round >= 0:
        for sp, (tried, made) in st.round_result(vid, c.last_round).items():
            if tried and not made:
                reasons[sp] = "the last round of positions gave no usable clip"
    for k in [k for k in owed if split.parse(k)[1] in reasons]:
        gone[k] = reasons[split.parse(k)[1]]
        del owed[k]
    holdout = holdout_of(cfg, st, vid, vc, probe) if owed else None
    used = st.used_starts(vid)
    starts = [s for s, _ in used]
    planned: list[SlotPlan] = []
    for region, deficits in split.regions(cfg, vc, holdout, owed, used):
        slots = place_round(cfg, probe, v.name, deficits, starts, c.next_slot + len(planned),
                            st.phase(), c.last_round + 1, region)
        planned += slots
        starts += [s for slot in slots for s in slot.starts]
        if not slots:
            gone.update({split.key(cat, region.split): "no unused positions left"
                         for cat in deficits})
    served = {split.key(cat, s.split) for s in planned for cat, _ in s.formats}
    for k in owed:  # e.g. validation of a video too short to hold a block
        if k not in served:
            gone.setdefault(k, "no unused positions left")
    if planned:
        ledger.add_slots(run, st, vid, planned)
    for k, why in gone.items():
        ledger.mark_exhausted(run, st, vid, [k], why)
    return RoundOutcome(len(planned), gone, tuple(notes))
