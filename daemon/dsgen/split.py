"""Train/validation split: planning keys, the time ranges a video holds out for validation,
and where each split's windows may start.

Every planning figure (quotas, exhaustion, per-video counts, run totals) is keyed by a
*planning key*: the category name for training, `<category>@val` for validation. A video
feeding a category with a validation split (and no held-out videos) holds out evenly
spread blocks of its runtime: validation windows lie inside them, training windows keep
`guard` frames away from them, so no training frame is closer than the guard band to a
validation frame of the same video. The blocks are chosen once per video (from the seed,
the video's name and its frame count) and stored in the state, so later config changes
can never move them under samples already written. `plan.free_starts` consults a `Region`
from here for every window it offers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dsgen.config import CategoryCfg, Config, VideoCfg
from dsgen.model import SPLITS, TRAIN, VAL, VAL_SUFFIX, split_key

__all__ = ["SPLITS", "TRAIN", "VAL", "VAL_SUFFIX", "Holdout", "Region", "key", "parse"]
# A held-out block's target length: a few shots, so validation clips come from several
# scenes of each block while each block still costs only two guard bands of training time.
BLOCK_SECONDS = 10.0
# Blocks per video: spread over a whole film, while at most 2 × 16 guard bands are lost.
MAX_BLOCKS = 16
# Held-out runtime = this × the validation share of the video's categories: room for the
# clips the gates reject and for replacement rounds, as training has over the rest.
HOLDOUT_SLACK = 2.0
MAX_HOLDOUT = 0.5  # never more than half of a video is held out
# Seeds the blocks' phase and the validation rounds' draws apart from the training ones
# (training keeps exactly the draws it had before validation existed).
SPLIT_SALT = 0x5A1D


key = split_key  # config.RESERVED_NAME_CHAR keeps category names free of VAL_SUFFIX


def parse(k: str) -> tuple[str, str]:
    """(category, split) of a planning key."""
    if k.endswith(VAL_SUFFIX):
        return k[:-len(VAL_SUFFIX)], VAL
    return k, TRAIN


def targets(cfg: Config) -> dict[str, int]:
    """Samples each planning key must reach: every category's training target, and its
    validation target where it has one."""
    out: dict[str, int] = {}
    for c in cfg.categories:
        out[c.name] = c.target
        if c.val_target:
            out[key(c.name, VAL)] = c.val_target
    return out


def formats(cfg: Config, category: str, split: str) -> tuple[tuple[str, float], ...]:
    """The format mix of a category's split (validation: `CategoryCfg.val_formats`)."""
    c = cfg.category(category)
    return c.val_formats if split == VAL else c.formats


def held_out(c: CategoryCfg, video: str) -> bool:
    """Whether `video` is one of the category's held-out validation videos."""
    return video in c.validation.videos


def ranged(cfg: Config, vc: VideoCfg) -> list[CategoryCfg]:
    """The video's categories whose validation comes from held-out time ranges."""
    known = {c.name: c for c in cfg.categories}
    return [known[n] for n, _ in vc.categories
            if n in known and known[n].val_target and not known[n].validation.videos]


def video_keys(cfg: Config, vc: VideoCfg) -> list[str]:
    """The planning keys a video may give samples for."""
    known = {c.name: c for c in cfg.categories}
    out = []
    for name, _ in vc.categories:
        c = known.get(name)
        if c is None:
            continue
        if not held_out(c, vc.name):
            out.append(name)
        if c.val_target and (held_out(c, vc.name) or not c.validation.videos):
            out.append(key(name, VAL))
    return out


def holdout_share(cfg: Config, vc: VideoCfg) -> float:
    """Share of the video's usable runtime held out for validation (0: none)."""
    share = 0.0
    for c in ranged(cfg, vc):
        v = c.val_target
        share = max(share, min(MAX_HOLDOUT, HOLDOUT_SLACK * v / (c.target + v)))
    return share


def guard_frames(seconds: float, fps: float) -> int:
    """The guard band in frames: at least 1 (the splits never share a frame)."""
    return max(1, math.ceil(round(seconds * fps, 6)))


@dataclass(frozen=True)
class Holdout:
    """A video's held-out blocks (`[b0, b1)` frame ranges) and guard band, once chosen."""

    blocks: tuple[tuple[int, int], ...]
    guard: int  # frames: every training frame is at least this far from every block

    def to_json(self) -> str:
        """For the state's `holdout` table."""
        return json.dumps({"blocks": [list(b) for b in self.blocks], "guard": self.guard})

    @classmethod
    def from_json(cls, text: str) -> Holdout:
        """Read back `to_json`."""
        d = json.loads(text)
        return cls(tuple((int(a), int(b)) for a, b in d["blocks"]), int(d["guard"]))


def make_holdout(cfg: Config, vc: VideoCfg, n_frames: int, fps: float) -> Holdout | None:
    """The held-out blocks of a video with `n_frames` frames, or None when it needs none.

    Evenly spread blocks sharing one random phase, all drawn from the seed and the name.
    """
    share = holdout_share(cfg, vc)
    if share <= 0 or fps <= 0:
        return None
    from dsgen.plan import rng_for  # plan imports this module for its regions

    n = cfg.extraction.frames_per_clip
    margin = round(cfg.extraction.edge_margin_seconds * fps)
    lo, end = margin, n_frames - margin
    held = int((end - lo) * share)
    guard = guard_frames(max(c.validation.guard_seconds for c in ranged(cfg, vc)), fps)
    if held < n:
        return Holdout((), guard)
    count = max(1, min(MAX_BLOCKS, round(held / (BLOCK_SECONDS * fps)), held // n))
    length = held // count
    period = (end - lo) / count
    phase = float(rng_for(cfg.seed, vc.name, SPLIT_SALT).random())
    blocks = tuple((b0, b0 + length) for b0 in
                   (lo + math.floor(i * period + phase * (period - length))
                    for i in range(count)))
    return Holdout(blocks, guard)


@dataclass(frozen=True)
class Region:
    """Where one group of a round's slots may start windows."""

    split: str
    salt: tuple[int, ...] = ()  # extra seed parts for this group's draws
    holdout: Holdout | None = None
    inside: bool = False  # True: inside the held-out blocks; False: away from them
    avoid: tuple[int, ...] = ()  # starts of other-split windows to keep the guard from

    def allowed(self, n_frames: int, window: int) -> np.ndarray | None:
        """Bool per frame index: may a window of this region start here (None: anywhere)?"""
        h = self.holdout
        if h is None and not self.inside:
            return None
        ok = np.zeros(n_frames, dtype=bool) if self.inside else np.ones(n_frames, dtype=bool)
        g = h.guard if h is not None else 1
        for b0, b1 in (h.blocks if h is not None else ()):
            if self.inside:  # the whole window in the block
                ok[b0:max(b0, b1 - window + 1)] = True
            else:  # every frame at least `g` away from every frame of the block
                ok[max(0, b0 - g - window + 2):max(0, b1 + g - 1)] = False
        for u in self.avoid:
            ok[max(0, u - g - window + 2):max(0, u + window + g - 1)] = False
        return ok


EVERYWHERE = Region(TRAIN)


def regions(cfg: Config, vc: VideoCfg, holdout: Holdout | None, owed: dict[str, int],
            used: Iterable[tuple[int, str]]) -> list[tuple[Region, dict[str, int]]]:
    """The round's groups: (where, category → samples owed) for training, validation from
    held-out ranges, and validation of held-out videos. `used` = (start, split) of every
    window tried so far (validation keeps the guard from training tried before the blocks
    were chosen, e.g. when validation was added to an existing dataset)."""
    known = {c.name: c for c in cfg.categories}
    train: dict[str, int] = {}
    ranges: dict[str, int] = {}
    whole: dict[str, int] = {}
    for k, n in sorted(owed.items()):
        cat, sp = parse(k)
        if sp == TRAIN:
            train[cat] = n
        elif known[cat].validation.videos:
            whole[cat] = n
        else:
            ranges[cat] = n
    out: list[tuple[Region, dict[str, int]]] = []
    if train:
        out.append((Region(TRAIN, (), holdout, False), train))
    if ranges and holdout is not None and holdout.blocks:
        trained = tuple(sorted({s for s, sp in used if sp == TRAIN}))
        out.append((Region(VAL, (SPLIT_SALT, 1), holdout, True, trained), ranges))
    if whole:
        out.append((Region(VAL, (SPLIT_SALT, 2)), whole))
    return out


def capacities(cfg: Config, vc: VideoCfg, frames: int, fps: float, secs: float, windows: int
               ) -> dict[str, tuple[float, int]]:
    """(usable seconds, non-overlapping windows) per planning key of a video whose whole
    usable runtime is `secs` seconds and `windows` windows, estimated from `frames` (the
    header's count until the video is probed) for splitting targets over videos."""
    n = cfg.extraction.frames_per_clip
    h = make_holdout(cfg, vc, frames, fps)
    train, val = (secs, windows), (0.0, 0)
    if h is not None:
        margin = round(cfg.extraction.edge_margin_seconds * fps)
        train_w, start = 0, margin  # training frames may lie in [start, block − guard]
        for b0, b1 in h.blocks:
            train_w += max(0, (b0 - h.guard + 1 - start) // n)
            start = b1 - 1 + h.guard
        train_w += max(0, (frames - margin - start) // n)
        val_w = sum((b1 - b0) // n for b0, b1 in h.blocks)
        per = secs / windows if windows else 0.0
        train, val = (per * train_w, train_w), (per * val_w, val_w)
    names = {c.name for c in ranged(cfg, vc)}
    out: dict[str, tuple[float, int]] = {}
    for k in video_keys(cfg, vc):
        cat, sp = parse(k)
        out[k] = train if sp == TRAIN else val if cat in names else (secs, windows)
    return out
