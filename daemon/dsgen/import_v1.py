"""`generator_config.json` with `base_settings`: the v2.0 files and their successors.

Two shapes: the first (`base_settings` + `videos` only: the predecessor filled in its
built-in targets, formats and mixes from `utils/format_definitions.py` and
`utils/progress_tracker.py`), and the later one with `category_targets` and
`format_config`. Missing parts take the built-ins the predecessor used, each told in a note.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dsgen.config import PREDECESSOR_FORMATS
from dsgen.import_base import (
    PREDECESSOR_SCALE,
    Category,
    Format,
    Importer,
    Line,
    Mix,
    Plan,
    flavour,
    join,
    show,
    toml_float,
    toml_string,
)
from dsgen.import_layouts import choose, layout_notes, v1_layouts

TOP_KEYS = frozenset({"base_settings", "category_targets", "format_config", "videos"})
BASE_KEYS = frozenset({
    "base_frame_limit", "max_workers", "output_base_dir", "status_file", "scene_diff_threshold",
    "max_retry_attempts", "retry_skip_seconds", "min_file_size", "lr_versions", "val_percent",
    "temp_dir", "min_detail_threshold",
})
FORMAT_KEYS = frozenset({"gt_size", "lr_size", "probability"})
VIDEO_KEYS = frozenset({"name", "path", "categories", "priority"})
# v2.0's built-in targets (utils/progress_tracker.py), shown but never enforced by it.
DEFAULT_TARGETS: dict[str, int] = {"general": 80000, "space": 55000, "toon": 30000}
# The built-in format mixes (utils/format_definitions.py CATEGORY_FORMAT_DISTRIBUTION) of
# v2.0 (general/space/toon) and of the master/universal era.
V20_MIXES: dict[str, Mix] = {
    "general": (("small_540", 0.45), ("medium_169", 0.35), ("large_720", 0.20)),
    "space": (("small_540", 0.30), ("xlarge_1440", 0.45), ("fullhd_1920", 0.25)),
    "toon": (("small_540", 0.65), ("medium_169", 0.35)),
}
MASTER_ERA_MIXES: dict[str, Mix] = {
    "master": (("small_540", 0.50), ("medium_169", 0.35), ("large_720", 0.15)),
    "universal": (("small_540", 0.50), ("medium_169", 0.35), ("large_720", 0.15)),
    "space": (("small_540", 0.40), ("medium_169", 0.35), ("large_720", 0.25)),
    "toon": (("small_540", 0.65), ("medium_169", 0.35)),
}
# The predecessor's last resort for a category without a mix.
FALLBACK_MIX: Mix = (("small_540", 1.0),)
BUILTIN_FORMATS = {f.name: f for f in PREDECESSOR_FORMATS}
# dsgen's upper limit for retry_skip_seconds (config.py range check).
RETRY_SKIP_CAP = 3600.0
# The predecessor always decoded 7 frames per extraction; dsgen's default frames_per_clip.
PREDECESSOR_FRAMES = 7

# base_settings keys with no dsgen equivalent, and why (shown to the user).
UNSUPPORTED_BASE: dict[str, str] = {
    "base_frame_limit": "dsgen has no per-video extraction count: it plans from each category's "
                        "target, split across the category's videos by duration (× weight)",
    "min_file_size": "dsgen judges frames by content, not PNG size: the quality gates in "
                     "[extraction.quality] (black, flat, texture, sharpness) replace it",
    "temp_dir": "dsgen writes temporary files next to their final names, so it needs no temp "
                "folder",
}
_LR_VERSION = re.compile(r"\s*(?:LR_?)?(\d+)\s*(?:frames?)?\s*", re.IGNORECASE)


def _val_fraction(imp: Importer, bs: dict[str, Any]) -> float:
    """base_settings.val_percent → every category's validation fraction (0: no split)."""
    if "val_percent" not in bs:
        return 0.0
    key = "base_settings.val_percent"
    pct = imp.number(key, bs["val_percent"], 0.0, 100.0)
    if not pct:
        imp.note(key, "0 not imported: no validation split, as in the predecessor; trainers "
                 "that read Val/GT need one: [categories.<name>.validation] fraction "
                 "(docs/config.md)")
        return 0.0
    imp.note(key, f"{pct:g} % imported as [categories.<name>.validation] fraction = "
             f"{pct / 100:g} for every category: validation samples come on top of the "
             "target, from held-out time ranges of each video, written to <category>/Val "
             "(the predecessor's Val/GT stayed empty)")
    return pct / 100


def import_v1(imp: Importer, root: dict[str, Any]) -> Plan:
    """A `base_settings` config → Plan."""
    imp.unknown("", root, TOP_KEYS)
    bs = imp.table("base_settings", root["base_settings"])
    first = "category_targets" not in root and "format_config" not in root
    plan = Plan("v2.0 generator_config.json, built-in targets and formats" if first
                else "v2.0 generator_config.json with category_targets and format_config")
    imp.unknown("base_settings", bs, BASE_KEYS)
    key = "base_settings.output_base_dir"
    out = imp.output_root(key, imp.require(bs, "base_settings", "output_base_dir",
                                           '"output_base_dir": "/srv/dataset"'), plan.top)
    if "max_workers" in bs:
        imp.workers("base_settings.max_workers", bs["max_workers"], plan.top)
    if "status_file" in bs:
        _status_file(imp, bs["status_file"], out, plan.top)
    stacks = _extraction(imp, bs, plan)
    val = _val_fraction(imp, bs)

    names = _category_names(imp, root)
    master_era = not set(names) <= set(V20_MIXES)
    targets = _targets(imp, root, names, bs)
    mixes = _mixes(imp, root.get("format_config"), targets, master_era, plan)
    wanted = {c: [f for f, _ in mixes[c]] for c in targets}
    layout = choose(imp, key, out, v1_layouts(list(targets), 7 if 7 in stacks else 5), wanted)
    if len(layout.stack_dirs) == 1 and set(layout.stack_dirs) != set(stacks):
        (k,) = layout.stack_dirs
        plan.extraction = [t for t in plan.extraction if t[0] != "lr_stacks"]
        plan.extraction.append(("lr_stacks", f"[{k}]", f"{layout.writer} wrote one stack"))
        imp.note("base_settings.lr_versions", f"{layout.writer} wrote only the {k}-frame "
                 f"stack; imported as extraction.lr_stacks = [{k}]")
        stacks = (k,)
    layout_notes(imp, layout, stacks)
    for name, fmt in plan.formats.items():
        plan.formats[name] = Format(fmt.width, fmt.height, fmt.scale, layout.format_dir(name),
                                    fmt.origin)
    owner: dict[str, str] = {}
    for cat, target in targets.items():
        path = layout.category_path(cat)
        ckey = f"category_targets.{cat}"
        if path in owner:
            imp.fail(ckey, f"writes to {path!r}, as category {owner[path]!r} does",
                     "give the categories names that differ in more than letter case")
        imp.folder(ckey, path, "category")
        owner[path] = cat
        plan.categories.append(Category(cat, target, path, mixes[cat], val_fraction=val))
    plan.videos = imp.videos(root.get("videos"), targets, VIDEO_KEYS, {
        "priority": "not imported: dsgen has no priority; the videos keep the file's order"})
    return plan


def _category_names(imp: Importer, root: dict[str, Any]) -> list[str]:
    """The categories: category_targets' keys, else those the videos name (file order)."""
    if "category_targets" in root:
        return list(imp.table("category_targets", root["category_targets"]))
    names: list[str] = []
    videos = root.get("videos")
    for i, v in enumerate(videos if isinstance(videos, list) else []):
        cats = v.get("categories") if isinstance(v, dict) else None
        for c in (cats if isinstance(cats, list | dict) else []):
            if isinstance(c, str) and c not in names:
                names.append(imp.name(f"videos[{i}].categories.{c}", c))
    return names or list(DEFAULT_TARGETS)


def _targets(imp: Importer, root: dict[str, Any], names: list[str], bs: dict[str, Any]
             ) -> dict[str, int]:
    """category_targets {cat: n}, or the predecessor's built-in targets."""
    key = "category_targets"
    if key in root:
        table = imp.table(key, root[key])
        if not table:
            imp.fail(key, "is empty", 'add at least one category, e.g. {"general": 80000}')
        return {imp.name(f"{key}.{cat}", cat): imp.integer(f"{key}.{cat}", n, 0, 10**9)
                for cat, n in table.items()}
    made = _predecessor_counts(imp, root.get("videos"), bs)
    out: dict[str, int] = {}
    for cat in names:
        got = f"; from your videos it made about {made[cat]:,} (base_frame_limit × the sum of " \
              "each video's weights)" if cat in made else ""
        if cat in DEFAULT_TARGETS:
            out[cat] = DEFAULT_TARGETS[cat]
            imp.note(f"categories.{cat}.target", f"missing in the file (no category_targets); "
                     f"the predecessor's built-in target {out[cat]:,} is used. It only showed "
                     f"that number and never stopped at it{got}. dsgen stops at the target "
                     "exactly: set the number you want")
        elif cat in made:
            out[cat] = max(1, made[cat])
            imp.note(f"categories.{cat}.target", f"missing in the file and the predecessor had "
                     f"no built-in target for it: set to what it made from your videos, "
                     f"{out[cat]:,} (base_frame_limit × the sum of each video's weights)")
        else:
            imp.fail("category_targets", f"missing, and category {cat!r} has no built-in "
                     "target", f'add "category_targets": {{"{cat}": 50000}}')
    return out


def _predecessor_counts(imp: Importer, videos: Any, bs: dict[str, Any]) -> dict[str, int]:
    """Per category, the patches the predecessor made: base_frame_limit × Σ weights per video."""
    if "base_frame_limit" not in bs or not isinstance(videos, list):
        return {}
    limit = imp.integer("base_settings.base_frame_limit", bs["base_frame_limit"], 0, 10**9)
    out: dict[str, int] = {}
    for v in videos:
        cats = v.get("categories") if isinstance(v, dict) else None
        if isinstance(cats, list):
            cats = dict.fromkeys((c for c in cats if isinstance(c, str)), 1.0)
        if not isinstance(cats, dict):
            continue
        weights = {c: w for c, w in cats.items() if isinstance(w, int | float)
                   and not isinstance(w, bool) and math.isfinite(w) and w > 0}
        n = int(min(10**9, limit * sum(weights.values())))
        for c in weights:
            out[c] = min(10**9, out.get(c, 0) + n)
    return out


def _mixes(imp: Importer, raw: Any, targets: dict[str, int], master_era: bool, plan: Plan
           ) -> dict[str, Mix]:
    """format_config → plan.formats and each category's mix (built-ins where it has none)."""
    fc = imp.table("format_config", raw) if raw is not None else {}
    for cat in fc:
        if cat not in targets:
            imp.note(f"format_config.{cat}", "has no category_targets entry, so the "
                     "predecessor never used it; not imported")
    builtin = MASTER_ERA_MIXES if master_era else V20_MIXES
    mixes: dict[str, Mix] = {}
    for cat in targets:
        key = f"format_config.{cat}"
        if cat not in fc:
            mix = builtin.get(cat, FALLBACK_MIX)
            for fmt, _ in mix:
                if fmt not in plan.formats:
                    b = BUILTIN_FORMATS[fmt]
                    plan.formats[fmt] = Format(b.width, b.height, b.scale, b.dir,
                                               "the predecessor's built-in format")
            shown = ", ".join(f"{f} {w:g}" for f, w in mix)
            imp.note(key, f"missing; the predecessor's built-in mix for {cat!r} is used: "
                     f"{shown} (sizes as built in: " + ", ".join(
                         f"{f} {plan.formats[f].width}×{plan.formats[f].height}"
                         for f, _ in mix) + ")")
            mixes[cat] = mix
            continue
        mix_list: list[tuple[str, float]] = []
        for fmt, spec in imp.table(key, fc[cat]).items():
            fkey = f"{key}.{fmt}"
            imp.name(fkey, fmt)
            body = imp.table(fkey, spec)
            imp.unknown(fkey, body, FORMAT_KEYS)
            if "lr_size" not in body:
                imp.note(f"{fkey}.lr_size", f"missing; the predecessor's ×{PREDECESSOR_SCALE} "
                         "is assumed")
                body = {**body, "scale": PREDECESSOR_SCALE}
            w, h, scale = imp.size(fkey, fmt, body, PREDECESSOR_SCALE)
            seen = plan.formats.get(fmt)
            if seen is None:
                imp.folder(fkey, fmt, "format")
                plan.formats[fmt] = Format(w, h, scale, fmt, fkey)
            elif (seen.width, seen.height, seen.scale) != (w, h, scale):
                imp.fail(f"{fkey}.gt_size",
                         f"{fmt} is {w}×{h} ×{scale} here but {seen.width}×{seen.height} "
                         f"×{seen.scale} at {seen.origin}",
                         f"give {fmt} one size everywhere, or rename one of them (dsgen "
                         "has one [formats.<name>] table per name)")
            p = imp.number(f"{fkey}.probability",
                           imp.require(body, fkey, "probability", '"probability": 0.5'),
                           0, math.inf)
            if p == 0:
                imp.note(f"{fkey}.probability", "is 0 (never picked); left out of the "
                         "category's mix")
                continue
            mix_list.append((fmt, p))
        if not mix_list:
            imp.fail(key, "has no format with a probability > 0",
                     "give at least one of its formats a probability > 0")
        mixes[cat] = tuple(mix_list)
    return mixes


def _extraction(imp: Importer, bs: dict[str, Any], plan: Plan) -> tuple[int, ...]:
    """base_settings → [extraction] and [extraction.quality] lines; the LR stacks."""
    ext = plan.extraction
    if "scene_diff_threshold" in bs:
        key = "base_settings.scene_diff_threshold"
        v = imp.number(key, bs["scene_diff_threshold"], 0.0, 255)
        imp.note(key, f"{v:g} not imported: it was the mean luma difference between a clip's "
                 "first and last frame; dsgen's extraction.scene_cut_threshold bounds the "
                 "motion-compensated difference of every two consecutive frames, on another "
                 "scale (default 20, with the adaptive cut gate in [extraction.quality]; "
                 "docs/quality.md)")
    if "max_retry_attempts" in bs:
        key = "base_settings.max_retry_attempts"
        ext.append(("max_attempts", str(imp.integer(key, bs["max_retry_attempts"], 1, 1000)),
                    key))
    if "retry_skip_seconds" in bs:
        _retry_skip(imp, bs["retry_skip_seconds"], ext)
    if "min_detail_threshold" in bs:
        key = "base_settings.min_detail_threshold"
        v = imp.number(key, bs["min_detail_threshold"], 0, 1e7)
        plan.quality.append(("crop_min_detail", toml_float(v), key))
        imp.note(key, f"{v:g} kept as extraction.quality.crop_min_detail (the Laplacian "
                 "variance a GT crop needs)")
    stacks: tuple[int, ...] = (5, 7)
    if "lr_versions" in bs:
        stacks = _lr_versions(imp, bs["lr_versions"], ext)
    imp.unused("base_settings", bs, UNSUPPORTED_BASE)
    return stacks


def _status_file(imp: Importer, value: Any, out: str, top: list[Line]) -> None:
    """status_file → status_file relative to output_root (dsgen keeps it there)."""
    key = "base_settings.status_file"
    status = imp.text(key, value)
    if any(ord(ch) < 32 for ch in status):
        imp.fail(key, f"{show(status)} contains a control character",
                 "use printable characters only, e.g. \".generator_status.json\"")
    kind = flavour(out, status)
    try:
        rel = kind(status).relative_to(kind(out))
    except ValueError:
        rel = None
    if rel is not None and rel.parts and ".." not in rel.parts:
        top.append(("status_file", toml_string(rel.as_posix()), key))
        imp.note(key, f"inside the output folder; imported relative to output_root as "
                 f"{toml_string(rel.as_posix())}")
        return
    base = kind(status).name
    if not base or base == "..":
        imp.note(key, f"{show(status)} names no file; dsgen's default "
                 "'.generator_status.json' under output_root is used")
        return
    top.append(("status_file", toml_string(base), key))
    imp.note(key, f"{show(status)} is outside the output folder; dsgen keeps the status "
             f"file under output_root, so it is written to {toml_string(join(out, base))} "
             "instead: point your monitor there")


def _retry_skip(imp: Importer, value: Any, ext: list[Line]) -> None:
    """retry_skip_seconds → extraction.retry_skip_seconds (capped at dsgen's range)."""
    key = "base_settings.retry_skip_seconds"
    v = imp.number(key, value, 0, math.inf)
    why = ("dsgen retries inside the slot's own stretch of the timeline instead of skipping "
           "ahead through the video, so the value only spaces the replacement positions "
           "within that stretch and is in effect capped by its length (dsgen's default is "
           "1 s)")
    if v > RETRY_SKIP_CAP:
        imp.note(key, f"{v:g} s capped at {RETRY_SKIP_CAP:g} s: {why}")
        v = RETRY_SKIP_CAP
    else:
        imp.note(key, f"{v:g} s kept: {why}")
    ext.append(("retry_skip_seconds", toml_float(v), key))


def _lr_versions(imp: Importer, value: Any, ext: list[Line]) -> tuple[int, ...]:
    """lr_versions ["5frames", "7frames"] → extraction.lr_stacks [5, 7]."""
    key = "base_settings.lr_versions"
    if not isinstance(value, list) or not value:
        imp.fail(key, f"{show(value)} is not a non-empty list",
                 'write e.g. ["5frames", "7frames"]')
    stacks: list[int] = []
    for i, item in enumerate(value):
        m = _LR_VERSION.fullmatch(item) if isinstance(item, str) else None
        if m:
            n = int(m[1])
        elif isinstance(item, int) and not isinstance(item, bool):
            n = item
        else:
            imp.fail(f"{key}[{i}]", f"{show(item)} is not a frame count",
                     'write it like "5frames"')
        if n < 1 or n % 2 == 0 or n > 999:
            imp.fail(f"{key}[{i}]", f"{n} frames is not an odd count from 1 to 999",
                     "LR stacks are centred on the GT frame: use an odd count, e.g. 5")
        stacks.append(n)
    stacks = sorted(set(stacks))
    ext.append(("lr_stacks", "[" + ", ".join(map(str, stacks)) + "]", key))
    if stacks[-1] > PREDECESSOR_FRAMES:
        ext.append(("frames_per_clip", str(stacks[-1]), key))
        imp.note(key, f"a {stacks[-1]}-frame stack needs extraction.frames_per_clip = "
                 f"{stacks[-1]} (dsgen's default is {PREDECESSOR_FRAMES}); set")
    return tuple(stacks)
