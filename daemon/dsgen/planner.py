"""Planning against the run: phases split targets over videos, rounds refill a video's slots.

Both read the run's counts (kept in step by `ledger`), never whole tables: a round costs the
same with 5 or 5,000 videos in the library. Everything is planned per planning key
(`dsgen.split`): a category's training and validation samples are planned alike, in their
own regions of each video.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

from dsgen import ledger, split
from dsgen.config import Config, VideoCfg
from dsgen.model import USABLE, SlotPlan, VideoProbe
from dsgen.patches import Geometry, fits, geometry
from dsgen.plan import (
    MAX_ROUNDS,
    allocate_floored,
    fitting_formats,
    place_round,
    split_targets,
    window_capacity,
    window_ticks,
)
from dsgen.runstate import RunState
from dsgen.split import TRAIN, Holdout
from dsgen.state import State


@dataclass(frozen=True)
class RoundOutcome:
    """What planning a video's next round did."""

    planned: int  # slots added
    exhausted: dict[str, str]  # category → why the video cannot give more
    notes: tuple[str, ...] = ()


# Phase 0 of a fresh state is planned in two steps (docs/architecture.md). Its opening gives
# the first video of each planning key, at once, a few samples (at most the key's average
# share, target / videos that may give it, and OPENING_SAMPLES), from the config and that
# video's header alone: its first sample does not wait for the headers of the rest of a
# large new library. The rest of phase 0 is split by duration once every header is read,
# never leaving an opening video below its opening: both steps depend on the config and the
# headers only, never on timing.
# Videos from which a fresh plan takes two steps: below, reading every header first costs
# seconds at most (32 H.264 files at 160 ms each over two lanes: 2.6 s), and the one-step
# plan packs short, heavily sampled videos best (an opening round splits a video's windows
# in two rounds, which can leave gaps no window fits in).
TWO_STEP_VIDEOS = 32
# Samples an opening gives at most: work for the first tasks while the other headers are
# read, and small, so that it rarely exceeds a video's share of the target or of its
# windows (the rest is then the one-step split exactly).
OPENING_SAMPLES = 4
PLAN_META = "phase0"  # state setting: OPENING while the rest of phase 0 is still to plan
OPENING = "opening"
# State setting: the opening itself (JSON: video id → planning key → samples). An opening
# video's first round is planned from it alone, whether or not the rest has come since.
OPENING_META = "phase0_opening"
# Statuses a video can take from outside (the file went or changed): the rest of phase 0
# leaves it out, as a plan made once every header is read would.
OUTSIDE = ("missing", "changed", "gone", "unavailable")


def header_capacities(run: RunState, vid: int) -> dict[str, tuple[float, int]]:
    """Per planning key of a video: (usable seconds × its category weight, non-overlapping
    windows), from the header's figures (the index completes whenever its scans do, and a
    share must not depend on timing); {} without them."""
    v, vc = run.videos[vid], run.cfg_by_id.get(vid)
    if not v.fps or not v.duration or vc is None:
        return {}
    cfg = run.cfg
    frames = int(v.duration * v.fps)
    secs, cap0 = window_capacity(frames, v.fps, cfg)
    weights = dict(vc.categories)
    return {k: (ksecs * weights[split.parse(k)[0]], kcap)
            for k, (ksecs, kcap) in split.capacities(cfg, vc, frames, v.fps, secs, cap0).items()}


def shares(run: RunState) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, int]]]:
    """Per planning key: each usable video's share (usable seconds × weight) and spare
    capacity, in the part of its runtime the key's split may use."""
    out_shares: dict[str, dict[int, float]] = {}
    caps: dict[str, dict[int, int]] = {}
    for vid, v in run.videos.items():
        if v.status not in USABLE:
            continue
        c = run.video_counts(vid)
        for k, (share, kcap) in header_capacities(run, vid).items():
            if k in c.exhausted:
                continue
            cap = kcap - c.quota.get(k, 0)
            if cap > 0 and share > 0:
                out_shares.setdefault(k, {})[vid] = share
                caps.setdefault(k, {})[vid] = cap
    return out_shares, caps


def openers(cfg: Config, vcs: list[VideoCfg]) -> dict[str, tuple[str, int]]:
    """Per planning key: the first of `vcs` (the library's order) that may give it, and how
    many may."""
    out: dict[str, tuple[str, int]] = {}
    for vc in vcs:
        for k in split.video_keys(cfg, vc):
            first, n = out.get(k, (vc.name, 0))
            out[k] = (first, n + 1)
    return out


def fresh_plan(run: RunState, st: State, vcs: list[VideoCfg]) -> str | None:
    """How a fresh state's phase 0 is planned: "two" steps for a library of TWO_STEP_VIDEOS
    videos or more, else "one"; None for a state planned already (or in two steps)."""
    if st.phase() >= 0 or st.get_meta(PLAN_META) is not None:
        return None
    return "two" if len(vcs) >= TWO_STEP_VIDEOS else "one"


def plan_opening(run: RunState, st: State, vcs: list[VideoCfg]) -> dict[str, dict[int, int]]:
    """Phase 0, step 1: record the opening of a fresh plan (and that its rest is to come)."""
    targets = split.targets(run.cfg)
    ids = {vc.name: vid for vid, vc in run.cfg_by_id.items()}
    amounts: dict[str, dict[int, int]] = {}
    for k, (name, n) in openers(run.cfg, vcs).items():
        target, vid = targets.get(k, 0), ids.get(name)
        if target <= 0 or vid is None or run.videos[vid].status not in USABLE:
            continue
        share, cap = header_capacities(run, vid).get(k, (0.0, 0))
        amount = min(cap, OPENING_SAMPLES, max(1, target // n)) if share > 0 else 0
        if amount > 0:
            amounts.setdefault(k, {})[vid] = amount
    opening = {vid: {k: per[vid] for k, per in amounts.items() if vid in per}
               for vid in {v for per in amounts.values() for v in per}}
    ledger.add_quotas(run, st, 0, amounts, {PLAN_META: OPENING, OPENING_META: json.dumps(
        {str(vid): keys for vid, keys in sorted(opening.items())}, sort_keys=True)})
    run.plan_pending = True
    run.opening = opening
    return amounts


def load_opening(run: RunState, st: State) -> None:
    """The run's view of a two-step phase 0 from the state: pending or not, and the opening."""
    run.plan_pending = st.get_meta(PLAN_META) == OPENING
    text = st.get_meta(OPENING_META)
    run.opening = {int(vid): dict(keys) for vid, keys in json.loads(text).items()} if text else {}


def plan_rest(run: RunState, st: State) -> dict[str, dict[int, int]]:
    """Phase 0, step 2, once every header is read: each key's target split by duration over
    the videos whose headers allow it (`allocate_floored`: an opening is a floor), recorded
    with the end of the two steps; what each video got."""
    out: dict[str, dict[int, int]] = {}
    for k, target in split.targets(run.cfg).items():
        vids: list[int] = []
        weights: list[float] = []
        caps: list[int] = []
        floors: list[int] = []
        fixed = 0  # openings of videos that can no longer share
        for vid in sorted(run.videos):
            opened = run.video_counts(vid).quota.get(k, 0)
            share, cap = (0.0, 0) if run.videos[vid].status in OUTSIDE else (
                header_capacities(run, vid).get(k, (0.0, 0)))
            if share <= 0 or cap <= 0:
                fixed += opened
                continue
            vids.append(vid)
            weights.append(share)
            caps.append(max(cap, opened))
            floors.append(opened)
        alloc = allocate_floored(max(0, target - fixed), weights, caps, floors)
        per = {v: a - f for v, a, f in zip(vids, alloc, floors, strict=True) if a > f}
        if per:
            out[k] = per
    ledger.add_quotas(run, st, 0, out, {PLAN_META: None})
    run.plan_pending = False
    return out


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
    # the header's frame count: the index completes whenever its scans do, and the blocks
    # must not depend on timing
    h = split.make_holdout(cfg, vc, probe.header_frames or probe.n_frames, probe.fps)
    if h is not None:
        st.set_holdout(vid, h.to_json())
    return h


def plan_round(run: RunState, st: State, vid: int, probe: VideoProbe) -> RoundOutcome:
    """Create the next round of slots for a video that owes samples (all its slots are done):
    one group per split region (training, held-out ranges, held-out video)."""
    cfg: Config = run.cfg
    v, vc, c = run.videos[vid], run.cfg_by_id[vid], run.video_counts(vid)
    owed = {k: c.owed(k) for k in split.video_keys(cfg, vc) if c.owed(k) > 0}
    if c.last_round < 0 and vid in run.opening:  # an opening round: the opening alone
        owed = {k: min(n, run.opening[vid].get(k, 0)) for k, n in owed.items()}
        owed = {k: n for k, n in owed.items() if n > 0}
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
    used = st.used_windows(vid)
    windows = [(a, b) for a, b, _ in used]
    groups = split.regions(cfg, vc, holdout, owed, [(a, sp) for a, _, sp in used])
    # Windows may move to keyframes where each group has its own part of the runtime
    # (training away from held-out blocks, validation inside them); a held-out video that
    # also trains other categories shares its runtime between groups: exact positions there,
    # so one group's windows can keep clear of the other's.
    shared = len(groups) > 1 and any(r.holdout is None and not r.inside and r.split != TRAIN
                                     for r, _ in groups)
    tol = 0 if shared else keyframe_tolerance(cfg, probe)
    planned: list[SlotPlan] = []
    for region, deficits in groups:
        slots = place_round(cfg, probe, v.name, deficits, windows, c.next_slot + len(planned),
                            st.phase(), c.last_round + 1, region, tol=tol)
        planned += slots
        # later groups keep clear of where these slots' windows may open (a position, or a
        # keyframe within the tolerance of it)
        span = window_ticks(probe, cfg)
        for slot in slots:
            for i, s in enumerate(slot.starts):
                lo, hi, _ = slot.limits(i)
                windows.append((max(lo, s - tol), max(s, min(hi, s + tol)) + span))
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


def keyframe_tolerance(cfg: Config, probe: VideoProbe) -> int:
    """How far (ticks) a window may move from its position to open at a keyframe: the
    config's `keyframe_tolerance_seconds`, 0 with `keyframe_windows` off."""
    e = cfg.extraction
    if not e.keyframe_windows or e.keyframe_tolerance_seconds <= 0:
        return 0
    return round(Fraction(e.keyframe_tolerance_seconds) / probe.time_base)
