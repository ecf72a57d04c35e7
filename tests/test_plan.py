"""dsgen.plan: targets are split exactly, slots are placed deterministically, spread over the
runtime, never overlap each other or tried windows, and only ask for formats that fit.

Probes are real (`probe_video` on the synthetic fixtures); longer videos are the same probe
with a longer frame index, so the planner sees real geometry with many lengths.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsgen.config import Config, config_from_dict
from dsgen.model import SlotPlan, VideoProbe
from dsgen.patches import fits, geometry
from dsgen.plan import (
    allocate,
    allocate_floored,
    capacity,
    fitting_formats,
    name_key,
    place_round,
    rng_for,
    split_targets,
    start_range,
    usable_seconds,
    window_ticks,
)
from dsgen.probe import probe_video
from dsgen.synth import SynthSpec

VideoFixture = tuple[Path, SynthSpec]

N = 7  # frames per clip


def make_cfg(**extraction: Any) -> Config:
    """Formats: `small` and `medium` fit a 640×360 picture, `huge` does not."""
    doc: dict[str, Any] = {
        "output_root": "out", "state_dir": "state", "seed": 11,
        "extraction": {"frames_per_clip": N, **extraction},
        "formats": {
            "small": {"width": 96, "height": 96},
            "medium": {"width": 240, "height": 135},
            "huge": {"width": 1920, "height": 1080},
        },
        "categories": {
            "alpha": {"target": 10, "formats": {"small": 1.0, "medium": 2.0, "huge": 5.0}},
            "beta": {"target": 10, "formats": ["huge"]},
            "gamma": {"target": 10, "formats": ["medium"]},
        },
    }
    return config_from_dict(doc, Path("/nonexistent/dsgen.toml"))


CFG = make_cfg()


SPAN = N + 1  # a window's room in ticks when one tick is one frame (see window_ticks)


@pytest.fixture(scope="module")
def probe(h264_cuts: VideoFixture) -> VideoProbe:
    """The real probe of the 640×360, 96-frame H.264 fixture, timed in frames: a time base
    of one frame (1/24 s), so positions are frame numbers."""
    return longer(probe_video(h264_cuts[0], N), 96)


def longer(p: VideoProbe, frames: int) -> VideoProbe:
    """The same video, `frames` frames long by its header, timed in frames (no index)."""
    empty = np.zeros(0, dtype=np.int64)
    return dataclasses.replace(p, time_base=Fraction(1, 24), fps=24.0, frame_ticks=1,
                               first_pts=0, end_pts=frames, header_frames=frames,
                               frame_pts=empty, key_pts=empty, index_complete=False)


# --------------------------------------------------------------------------- allocate


def water_level(total: int, weights: list[float], caps: list[int]) -> list[float]:
    """Ideal shares: min(cap, λ·w) with λ chosen so they sum to min(total, Σ usable caps)."""
    live = [i for i, (w, c) in enumerate(zip(weights, caps, strict=True)) if w > 0 and c > 0]
    goal = min(total, sum(caps[i] for i in live))
    if goal <= 0:
        return [0.0] * len(weights)
    lo, hi = 0.0, max(caps[i] / weights[i] for i in live) * 2 + 1
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(caps[i], mid * weights[i]) for i in live) < goal:
            lo = mid
        else:
            hi = mid
    out = [0.0] * len(weights)
    for i in live:
        out[i] = min(float(caps[i]), hi * weights[i])
    return out


weights_st = st.one_of(
    st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
    st.integers(0, 5).map(float),
    st.sampled_from([0.1, 0.2, 0.3, 0.45, 0.35, 1 / 3, 2 / 3]),
)


@settings(max_examples=400, deadline=None)
@given(total=st.integers(0, 100_000),
       rows=st.lists(st.tuples(weights_st, st.integers(0, 50_000)), min_size=1, max_size=12))
def test_allocate_sums_exactly_caps_and_proportion(total: int,
                                                   rows: list[tuple[float, int]]) -> None:
    """allocate sums to exactly min(total, Σ caps of weighted entries), never exceeds a cap,
    gives nothing to weight-0 entries, and each share is within ±1 of the capped proportional
    share min(cap, λ·weight) (water-filling)."""
    weights = [w for w, _ in rows]
    caps = [c for _, c in rows]
    alloc = allocate(total, weights, caps)
    assert len(alloc) == len(rows)
    usable = sum(c for w, c in rows if w > 0)
    assert sum(alloc) == min(total, usable)
    for a, (w, c) in zip(alloc, rows, strict=True):
        assert 0 <= a <= c
        if w == 0:
            assert a == 0
    ideal = water_level(total, weights, caps)
    for a, x in zip(alloc, ideal, strict=True):
        assert abs(a - x) < 1 + 1e-6, (alloc, ideal)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 10_000), weights=st.lists(weights_st, min_size=1, max_size=10))
def test_allocate_uncapped_is_largest_remainder(total: int, weights: list[float]) -> None:
    """With caps that never bind, every share is floor or ceil of total·w/Σw, and the call is
    a pure function (same inputs, same result)."""
    assume(sum(weights) > 0)
    caps = [10**9] * len(weights)
    alloc = allocate(total, weights, caps)
    assert alloc == allocate(total, list(weights), list(caps))
    wsum = sum(weights)
    for a, w in zip(alloc, weights, strict=True):
        share = total * w / wsum
        assert share - 1 < a < share + 1
    assert sum(alloc) == total


@settings(max_examples=300, deadline=None)
@given(total=st.integers(0, 5_000),
       rows=st.lists(st.tuples(weights_st, st.integers(0, 2_000), st.integers(0, 60)),
                     min_size=1, max_size=10))
def test_allocate_floored_keeps_floors_and_is_allocate_when_none_binds(
        total: int, rows: list[tuple[float, int, int]]) -> None:
    """allocate_floored never gives an entry less than its floor nor more than its cap, sums
    to min(total, Σ caps of weighted entries), and equals allocate whenever allocate already
    gives every entry its floor (the two-step phase 0 is then the one-step plan exactly)."""
    weights = [w for w, _, _ in rows]
    caps = [c for _, c, _ in rows]
    floors = [min(f, c) if w > 0 else 0 for w, c, f in rows]
    assume(sum(floors) <= total)
    got = allocate_floored(total, weights, caps, floors)
    assert all(f <= a <= c for a, f, c in zip(got, floors, caps, strict=True))
    assert sum(got) == min(total, sum(c for w, c, _ in rows if w > 0))
    plain = allocate(total, weights, caps)
    if all(a >= f for a, f in zip(plain, floors, strict=True)):
        assert got == plain


def test_allocate_floored_examples() -> None:
    """A floor above a short video's share is kept; the others share the rest by weight."""
    assert allocate_floored(100, [1, 9], [10**6] * 2, [20, 0]) == [20, 80]
    assert allocate_floored(100, [1, 9], [10**6] * 2, [5, 0]) == [10, 90]  # floor not reached
    assert allocate_floored(3, [1, 1, 1, 1], [10] * 4, [0, 0, 0, 1]) == [1, 1, 0, 1]


def test_allocate_examples() -> None:
    """Known answers: the predecessor's 45/35/20 mix, spill from a capped video, ties."""
    assert allocate(100, [0.45, 0.35, 0.20], [10**6] * 3) == [45, 35, 20]
    assert allocate(10, [1, 1, 1], [10**6] * 3) == [4, 3, 3]  # tie: lowest index first
    assert allocate(100, [1, 1], [10, 1000]) == [10, 90]  # the capped video's rest spills over
    assert allocate(100, [1, 1], [10, 20]) == [10, 20]  # not enough room anywhere
    assert allocate(5, [0, 1], [100, 0]) == [0, 0]  # weight 0 / cap 0 get nothing
    assert allocate(0, [1.0], [5]) == [0]


@settings(max_examples=100, deadline=None)
@given(amounts=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 5000),
                               min_size=1),
       table=st.dictionaries(st.integers(0, 20),
                             st.tuples(st.floats(0.01, 100.0), st.integers(1, 3000)),
                             min_size=1, max_size=6))
def test_split_targets(amounts: dict[str, int], table: dict[int, tuple[float, int]]) -> None:
    """split_targets gives each category min(amount, Σ caps) over its videos, by share,
    never above a video's cap, and lists only videos that got something."""
    shares = {c: {v: s for v, (s, _) in table.items()} for c in amounts}
    caps = {c: {v: k for v, (_, k) in table.items()} for c in amounts}
    out = split_targets(CFG, amounts, shares, caps)
    assert set(out) == set(amounts)
    for cat, amount in amounts.items():
        per = out[cat]
        assert sum(per.values()) == min(amount, sum(caps[cat].values()))
        assert all(0 < n <= caps[cat][v] for v, n in per.items())
        vids = sorted(table)
        assert [per.get(v, 0) for v in vids] == allocate(
            amount, [shares[cat][v] for v in vids], [caps[cat][v] for v in vids])
    assert split_targets(CFG, {"x": 9}, {}, {}) == {"x": {}}  # no video feeds it


# --------------------------------------------------------------------------- ranges


def test_start_range_capacity_and_usable_seconds(probe: VideoProbe) -> None:
    """Positions leave room for a window (7 frames and the one it may start after) before the
    end, inside the edge margins at both ends; capacity is the number of disjoint windows that
    fit; usable seconds follow the same range; all from the header's runtime in pts."""
    assert probe.n_frames == 96 and probe.fps == 24.0
    assert window_ticks(probe, CFG) == SPAN
    assert start_range(probe, CFG) == (0, 96 - SPAN)
    assert capacity(probe, CFG) == (96 - SPAN) // SPAN + 1
    assert usable_seconds(probe, CFG) == pytest.approx((96 - SPAN + 1) / 24)
    cfg = make_cfg(edge_margin_seconds=1.0)  # 24 frames each end
    assert start_range(probe, cfg) == (24, 96 - 24 - SPAN)
    assert capacity(probe, cfg) == (96 - 48 - SPAN) // SPAN + 1
    assert capacity(probe, make_cfg(edge_margin_seconds=2.0)) == 0  # nothing left
    assert usable_seconds(probe, make_cfg(edge_margin_seconds=2.0)) == 0.0
    real = probe_video(Path(probe.path), N)  # 1/1000 s ticks, 23.976-style rounding
    assert window_ticks(real, CFG) >= (N + 1) * 1000 / 24


def test_fitting_formats_follow_the_picture(probe: VideoProbe) -> None:
    """A category's formats that fit this picture, with weights; none for `beta` (1920×1080
    does not fit a 640×360 picture, GT is never upscaled)."""
    geo = geometry(probe, CFG.extraction.reference_height)
    assert [(f.name, w) for f, w in fitting_formats(CFG, geo, "alpha")] == [
        ("small", 1.0), ("medium", 2.0)]
    assert fitting_formats(CFG, geo, "beta") == []


# --------------------------------------------------------------------------- rng


def test_rng_for_depends_only_on_seed_name_and_parts() -> None:
    """The same (seed, name, parts) always gives the same stream, whatever happened before
    (global numpy state, other generators); changing any input changes it."""
    def draw(*args: Any) -> list[int]:
        return rng_for(*args).integers(0, 2**62, size=8).tolist()

    ref = draw(1, "Film", 3, 4)
    np.random.seed(123)
    np.random.random(10)
    rng_for(1, "Film", 3, 4).random(1000)
    assert draw(1, "Film", 3, 4) == ref
    others = [draw(2, "Film", 3, 4), draw(1, "Film ", 3, 4), draw(1, "Film", 4, 3),
              draw(1, "Film", 3), draw(1, "Film", 3, 4, 0), draw(1, "film", 3, 4)]
    assert all(o != ref for o in others)
    assert len({tuple(o) for o in others}) == len(others)
    assert name_key("Film") == name_key("Film") and 0 <= name_key("Film") < 2**63


# --------------------------------------------------------------------------- place_round


def free_windows(p: VideoProbe, cfg: Config, used: list[tuple[int, int]]) -> list[int]:
    """Positions a new window may take: in range, its room clear of every used window."""
    lo, hi = start_range(p, cfg)
    return [s for s in range(max(lo, 0), hi + 1)
            if all(s + SPAN <= a or s > b for a, b in used)]


def packable(free: list[int], n: int) -> int:
    """How many disjoint windows the free positions hold (greedy from the left is optimal)."""
    count, edge = 0, -(10**9)
    for s in free:
        if s >= edge:
            count, edge = count + 1, s + n
    return count


def check_round(cfg: Config, p: VideoProbe, deficits: dict[str, int],
                used: list[tuple[int, int]], first_slot: int, slots: list[SlotPlan]) -> None:
    """The invariants every round must keep (see test docstrings)."""
    lo, hi = start_range(p, cfg)
    geo = geometry(p, cfg.extraction.reference_height)
    assert [s.slot_id for s in slots] == list(range(first_slot, first_slot + len(slots)))
    for s in slots:
        assert s.starts and s.formats
        assert 1 <= len(s.starts) <= cfg.extraction.max_attempts
        assert len(set(s.starts)) == len(s.starts) == len(s.bounds)
        for a, (a_lo, a_hi, fence) in zip(s.starts, s.bounds, strict=True):
            assert lo <= a_lo <= a <= a_hi <= hi
            assert a_hi + SPAN <= fence  # a window started up to a frame late still ends before
            # nothing used lies between the earliest start and the fence
            assert all(b < a_lo or u >= fence for u, b in used), (a_lo, fence, used)
        cats = [c for c, _ in s.formats]
        assert len(cats) == len(set(cats))
        for cat, fmt in s.formats:
            assert fmt in dict(cfg.category(cat).formats)
            assert fits(geo, cfg.format(fmt))
    # windows of different slots never overlap: a slot's fences lie before the next's starts
    for a, b in itertools.pairwise(slots):
        assert max(f for _, _, f in a.bounds) <= min(b_lo for b_lo, _, _ in b.bounds)
    # each category gets exactly min(deficit, slots placed) slots (none if nothing fits)
    per_cat = Counter(c for s in slots for c, _ in s.formats)
    for cat, d in deficits.items():
        want = min(max(d, 0), len(slots)) if fitting_formats(cfg, geo, cat) else 0
        assert per_cat[cat] == want, (cat, per_cat, deficits, len(slots))


@pytest.fixture(scope="module")
def long_probe(probe: VideoProbe) -> VideoProbe:
    return longer(probe, 2400)  # 100 s


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.integers(N, 600), seed=st.integers(0, 2**32), phase=st.integers(0, 3),
       rnd=st.integers(0, 7), first=st.integers(0, 10_000),
       alpha=st.integers(-2, 120), beta=st.integers(0, 5), gamma=st.integers(0, 120),
       used_frac=st.lists(st.floats(0, 1), max_size=30),
       margin=st.sampled_from([0.0, 0.25, 1.0]), skip=st.sampled_from([0.0, 0.1, 1.0, 60.0]),
       attempts=st.sampled_from([1, 3, 10]))
def test_place_round_invariants(probe: VideoProbe, frames: int, seed: int, phase: int,
                                rnd: int, first: int, alpha: int, beta: int, gamma: int,
                                used_frac: list[float], margin: float, skip: float,
                                attempts: int) -> None:
    """For any video length, used windows and deficits: positions stay inside start_range
    and within their bounds, whose room stays off every used window; windows of different
    slots never overlap (a slot's fences lie before the next slot's bounds); slot ids run
    from first_slot; formats come only from the category's mix and fit the video; each
    category gets exactly min(deficit, slots) slots; and the round places as many slots as
    the biggest deficit asks for, up to what the free runtime can hold."""
    cfg = dataclasses.replace(make_cfg(edge_margin_seconds=margin, retry_skip_seconds=skip,
                                       max_attempts=attempts), seed=seed)
    p = longer(probe, frames)
    used = sorted({(int(f * (frames - N)), int(f * (frames - N)) + N - 1) for f in used_frac})
    deficits = {"alpha": alpha, "beta": beta, "gamma": gamma}
    slots = place_round(cfg, p, "Film A", deficits, used, first, phase, rnd)
    check_round(cfg, p, deficits, used, first, slots)
    fitting_need = max(alpha, gamma, 0)
    assert len(slots) == min(fitting_need, packable(free_windows(p, cfg, used), SPAN))


def test_place_round_is_deterministic(long_probe: VideoProbe) -> None:
    """Same inputs → the same slots; the slot ids only shift with first_slot; the video name,
    seed, phase and round each change the positions."""
    d = {"alpha": 30, "gamma": 12}
    used = [(100, 106), (900, 906)]
    a = place_round(CFG, long_probe, "Film A", d, used, 0, 0, 0)
    assert a == place_round(CFG, long_probe, "Film A", dict(d), list(used), 0, 0, 0)
    shifted = place_round(CFG, long_probe, "Film A", d, used, 500, 0, 0)
    assert [(s.starts, s.bounds, s.formats) for s in shifted] == [
        (s.starts, s.bounds, s.formats) for s in a]
    assert [s.slot_id for s in shifted] == list(range(500, 530))
    for other in (place_round(CFG, long_probe, "Film B", d, used, 0, 0, 0),
                  place_round(dataclasses.replace(CFG, seed=12), long_probe, "Film A", d,
                              used, 0, 0, 0),
                  place_round(CFG, long_probe, "Film A", d, used, 0, 1, 0),
                  place_round(CFG, long_probe, "Film A", d, used, 0, 0, 1)):
        assert [s.starts for s in other] != [s.starts for s in a]


def test_place_round_spreads_slots_over_the_runtime(long_probe: VideoProbe) -> None:
    """k slots on a fresh video: slot j's attempts lie in (about) the j-th of k equal stretches
    of the usable runtime, so samples come from the whole video, not one part."""
    cfg = make_cfg(edge_margin_seconds=2.0)
    lo, hi = start_range(long_probe, cfg)
    length = hi - lo + 1
    for k in (1, 5, 24, 100):
        slots = place_round(cfg, long_probe, "Film A", {"alpha": k}, [], 0, 0, 0)
        assert len(slots) == k
        width = length / k
        for j, s in enumerate(slots):
            for a in s.starts:
                assert lo + (j - 1) * width - SPAN <= a <= lo + (j + 2) * width + SPAN, (k, j)
        firsts = [s.starts[0] for s in slots]
        assert firsts == sorted(firsts)
        if k >= 5:
            assert firsts[0] < lo + 2 * width and firsts[-1] > hi - 2 * width


def test_place_round_retries_stay_near_the_planned_moment(long_probe: VideoProbe) -> None:
    """A slot's replacement positions are max_attempts distinct windows, spaced by at least a
    window (retry_skip_seconds when the stretch is long enough), alternating around the first."""
    cfg = make_cfg(retry_skip_seconds=1.0, max_attempts=10)
    slots = place_round(cfg, long_probe, "Film A", {"gamma": 2}, [], 0, 0, 0)
    assert len(slots) == 2
    for s in slots:
        assert len(s.starts) == 10
        ordered = sorted(s.starts)
        gaps = np.diff(ordered)
        assert gaps.min() >= 24  # 1 s at 24 fps
        assert all(g % 24 == 0 for g in gaps)  # one grid, centred on the planned start


def test_place_round_avoids_everything_used(probe: VideoProbe) -> None:
    """When every window is used or there is no deficit, no slot is placed; rounds planned
    from the attempts of earlier rounds never reuse a window."""
    assert place_round(CFG, probe, "Film A", {"alpha": 0, "gamma": -3}, [], 0, 0, 0) == []
    assert place_round(CFG, probe, "Film A", {}, [], 0, 0, 0) == []
    full = [(s, s + N - 1) for s in range(0, 96, N)]
    assert place_round(CFG, probe, "Film A", {"alpha": 5}, full, 0, 0, 0) == []
    used: list[tuple[int, int]] = []
    next_id = 0
    for rnd in range(20):
        slots = place_round(CFG, probe, "Film A", {"alpha": 3, "gamma": 1}, used, next_id, 0,
                            rnd)
        if not slots:
            break
        check_round(CFG, probe, {"alpha": 3, "gamma": 1}, used, next_id, slots)
        next_id += len(slots)
        used += [(a, a + N - 1) for s in slots for a in s.starts]  # as if all were tried
    assert packable(free_windows(probe, CFG, used), SPAN) == 0


def test_damaged_ranges_are_never_planned(long_probe: VideoProbe) -> None:
    """A blocked range (damage, the part past a truncated file's end) takes no window: no
    position's room reaches into it."""
    blocked = [(500, 700), (2000, 2400)]
    slots = place_round(CFG, long_probe, "Film A", {"alpha": 100}, [], 0, 0, 0,
                        blocked=blocked)
    assert slots
    for s in slots:
        for a, (a_lo, _, fence) in zip(s.starts, s.bounds, strict=True):
            assert all(a + SPAN <= b0 or a > b1 for b0, b1 in blocked)
            assert all(b1 < a_lo or b0 >= fence for b0, b1 in blocked)


def test_place_round_formats_only_fitting(probe: VideoProbe) -> None:
    """On a 640×360 picture the `huge` format (weight 5 of 8 in alpha's mix) is never drawn;
    `beta` (huge only) gets no slot; the drawn mix follows the fitting weights (1:2)."""
    slots = place_round(CFG, longer(probe, 24_000), "Film A", {"alpha": 900, "beta": 50}, [],
                        0, 0, 0)
    assert len(slots) == 900
    fmts = Counter(f for s in slots for c, f in s.formats)
    assert set(fmts) == {"small", "medium"}
    assert 0.25 < fmts["small"] / 900 < 0.42  # expected 1/3
    assert all(c == "alpha" for s in slots for c, _ in s.formats)
