"""`generator_config_v2.json` (`root_path`, no `base_settings`): the V2 generations.

Two shapes: `category_patches` + `output_patches` (make_dataset_v2_uhd.py through
`utils/config_normalizer.py`, and make_dataset_v2_clean.py), and the templates generation
(`categories.<cat>{target_total, formats[{template, weight, source_mode,
degradation_mix}]}` with `templates.json` beside it, `utils/config_io.py`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath
from typing import Any

from dsgen.import_base import (
    PREDECESSOR_SCALE,
    Category,
    DegradationTemplate,
    Format,
    Importer,
    Line,
    Mix,
    Plan,
    Watch,
    flavour,
    show,
    toml_float,
)
from dsgen.import_degrade import carry
from dsgen.import_layouts import Layout, choose, layout_notes, template_layout, v2_layouts

TOP_KEYS = frozenset({
    "root_path", "source_dirs", "videos", "category_patches", "category_weights",
    "category_targets", "output_patches", "categories", "processing", "quality", "workers",
    "batch_size", "random_seed", "ffmpeg_timeout", "ffprobe_timeout", "validation",
    "dataset_name", "output_format",
})
VIDEO_KEYS = frozenset({"name", "path", "categories", "priority", "forced_frames"})
OUTPUT_PATCH_KEYS = frozenset({"enabled", "gt_size", "lr_size", "scale", "weight"})
FORMAT_ENTRY_KEYS = frozenset({"template", "weight", "source_mode", "degradation_mix"})
SOURCE_MODES = ("crop", "resize")
# Keys of a templates.json format template that describe it, not configure it.
TEMPLATE_TEXT = ("aspect_ratio", "description")
# utils/config_normalizer.py: category_weights × processing.total_patches, this by default.
DEFAULT_TOTAL_PATCHES = 100_000
# processing.n_frames when the file has none (every V2 script decoded 7 frames).
DEFAULT_FRAMES = 7
# The extensions the predecessor's rescan looked for when a source dir gives none.
DEFAULT_EXTENSIONS = (".mkv", ".mp4", ".avi")

# Top-level keys with no dsgen equivalent, and why.
UNSUPPORTED_TOP: dict[str, str] = {
    "batch_size": "dsgen has no batches: each worker takes work units of segment_slots "
                  "positions",
    "ffmpeg_timeout": "dsgen decodes in-process with PyAV; there is no ffmpeg process to time "
                      "out",
    "ffprobe_timeout": "dsgen probes in-process with PyAV; there is no ffprobe to time out",
    "validation": "dsgen's validation split is [categories.<name>.validation] (fraction or "
                  "count, from held-out time ranges or videos; docs/config.md): add it per "
                  "category",
}
UNSUPPORTED_PROCESSING: dict[str, str] = {
    "scene_threshold": "it was a histogram distance (Bhattacharyya × 100) between the first "
                       "and last frame; dsgen's extraction.scene_cut_threshold is a motion-"
                       "compensated mean luma difference between every two consecutive frames "
                       "(default 20, 0–255; docs/quality.md)",
    "min_scene_length": "dsgen needs no minimum scene length: a clip is kept when none of its "
                        "consecutive frames crosses a cut",
    "stride": "dsgen spreads each video's positions evenly over its runtime from the targets",
    "center_snap_seconds": "dsgen places positions itself (evenly spread, seeded)",
}
UNSUPPORTED_QUALITY: dict[str, str] = {
    "min_sharpness": "dsgen's sharpness gate is extraction.quality.crop_min_detail",
    "jpeg_quality": "dsgen writes PNG files only",
}
LR_DEGRADE_WHY = ("the predecessor's flat LR degradation (one chance per clip, raised for dark "
                  "scenes; then JPEG, sometimes noise) is not converted: dsgen's templates "
                  "have no dark-scene rule. For degraded LR write a [degradations.<name>] "
                  "template (docs/degradations.md) and name it in each category's "
                  "degradations")


def is_templates(root: dict[str, Any]) -> bool:
    """The templates generation: categories.<cat> are objects with formats/target_total."""
    cats = root.get("categories")
    return isinstance(cats, dict) and any(
        isinstance(c, dict) and ("formats" in c or "target_total" in c) for c in cats.values())


def import_v2(imp: Importer, root: dict[str, Any], templates: dict[str, Any] | None,
              templates_source: str) -> Plan:
    """A `root_path` config (with its templates.json for the templates generation) → Plan."""
    tmpl = is_templates(root)
    plan = Plan("V2 generator_config_v2.json + templates.json" if tmpl else
                "V2 generator_config_v2.json with category_patches and output_patches")
    _comments(imp, root)
    imp.unknown("", {k: v for k, v in root.items() if not k.startswith("_")}, TOP_KEYS)
    out = imp.output_root("root_path", imp.require(root, "", "root_path",
                                                   '"root_path": "/srv/dataset"'), plan.top)
    if "workers" in root:
        imp.workers("workers", root["workers"], plan.top)
    _seed(imp, root.get("random_seed"), "random_seed" in root, plan.top)
    imp.unused("", root, UNSUPPORTED_TOP)
    _output_format(imp, root)
    n = _processing(imp, root.get("processing"), plan, "category_weights" in root)
    _quality(imp, root.get("quality"), plan)
    if tmpl:
        wanted = _templates(imp, root, templates, templates_source, plan)
        layout = choose(imp, "root_path", out, [template_layout(n)], wanted)
    else:
        wanted = _output_patches(imp, root, plan)
        name = root.get("dataset_name")
        layout = choose(imp, "root_path", out, v2_layouts(n, name if isinstance(name, str)
                                                        else None), wanted)
        if "dataset_name" in root:
            imp.note("dataset_name", f"{show(root['dataset_name'])} not imported: dsgen "
                     "writes each category into its own folder (named after the category)")
    _apply_layout(imp, layout, wanted, plan, (n,))
    cats = [c.name for c in plan.categories]
    plan.videos = imp.videos(root.get("videos"), cats, VIDEO_KEYS, {
        "priority": "not imported: dsgen has no priority; the videos keep the file's order",
        "forced_frames": "not imported: dsgen has no per-video minimum yet. A video's share "
                         "of each category is its usable duration × its weight: to get more "
                         "from one video, give it a weight above 1, e.g. categories = "
                         "{ master = 2.0 } doubles its share"})
    plan.watch = _watch(imp, root.get("source_dirs"), cats, root.get("videos"))
    return plan


def _comments(imp: Importer, root: dict[str, Any]) -> None:
    """One note for all `_comment…`/`_format`-style keys: documentation, not settings."""
    skipped = [k for k in root if k.startswith("_")]
    if skipped:
        imp.note(", ".join(skipped), "comments and file markers, not settings; not imported")


def _seed(imp: Importer, value: Any, given: bool, top: list[Line]) -> None:
    """random_seed → seed (null: the predecessor drew a new seed every run)."""
    if not given:
        return
    if value is None:
        imp.note("random_seed", "null (the predecessor drew new random positions every run); "
                 "dsgen is always seeded so a run can resume byte-identically: seed = 1 "
                 "(dsgen's default)")
        return
    top.append(("seed", str(imp.integer("random_seed", value, 0, 2**63 - 1)), "random_seed"))


def _output_format(imp: Importer, root: dict[str, Any]) -> None:
    """output_format: dsgen writes PNG only."""
    if "output_format" not in root:
        return
    fmt = imp.text("output_format", root["output_format"]).strip().lower().lstrip(".")
    if fmt == "png":
        imp.note("output_format", '"png": dsgen writes PNG files, as asked')
    else:
        imp.note("output_format", f"{show(root['output_format'])} not imported: dsgen writes "
                 "PNG only, so new samples are .png files beside the old ones; a trainer that "
                 f"reads only *.png sees just the new samples (convert the .{fmt} files to "
                 "PNG to keep one set)")


def _processing(imp: Importer, raw: Any, plan: Plan, weights: bool) -> int:
    """processing.* → frames_per_clip and lr_stacks; the rest noted. Returns n_frames."""
    body = imp.table("processing", raw) if raw is not None else {}
    known = {"n_frames", "scale", "total_patches", *UNSUPPORTED_PROCESSING}
    if "total_patches" in body and not weights:
        imp.note("processing.total_patches", f"{show(body['total_patches'])} not imported: "
                 "the predecessor used it only with category_weights")
    imp.unknown("processing", body, known)
    n = DEFAULT_FRAMES
    if "n_frames" in body:
        n = imp.integer("processing.n_frames", body["n_frames"], 3, 999)
        if n % 2 == 0:
            imp.fail("processing.n_frames", f"{n} is even",
                     "dsgen centres the GT frame in the clip: use an odd count, e.g. 7")
    if n != DEFAULT_FRAMES:
        plan.extraction.append(("frames_per_clip", str(n), "processing.n_frames"))
    plan.extraction.append(("lr_stacks", f"[{n}]", "processing.n_frames"))
    imp.note("processing.n_frames", f"{n}" + ("" if "n_frames" in body else " (its default)")
             + f": the predecessor wrote one {n}-frame LR stack per sample, so "
             f"extraction.lr_stacks = [{n}]")
    if "scale" in body:
        imp.integer("processing.scale", body["scale"], 1, 16)
        imp.note("processing.scale", f"{body['scale']} used for formats that give no scale of "
                 "their own")
    imp.unused("processing", body, UNSUPPORTED_PROCESSING)
    return n


def _default_scale(imp: Importer, root: dict[str, Any]) -> int:
    proc = root.get("processing")
    if isinstance(proc, dict) and "scale" in proc:
        return imp.integer("processing.scale", proc["scale"], 1, 16)
    return PREDECESSOR_SCALE


def _quality(imp: Importer, raw: Any, plan: Plan) -> None:
    """quality.* → [extraction.quality] where dsgen has the same gate; the rest noted."""
    if raw is None:
        return
    body = imp.table("quality", raw)
    if "blur_threshold" in body:
        v = imp.number("quality.blur_threshold", body["blur_threshold"], 0, 1e7)
        plan.quality.append(("crop_min_detail", toml_float(v), "quality.blur_threshold"))
        imp.note("quality.blur_threshold", f"{v:g} kept as extraction.quality.crop_min_detail "
                 "(Laplacian variance; dsgen measures it on each GT crop, the predecessor on "
                 "the whole centre frame or the patch depending on the script)")
    if "min_variety_std" in body:
        v = imp.number("quality.min_variety_std", body["min_variety_std"], 0, 255)
        plan.quality.append(("crop_min_std", toml_float(v), "quality.min_variety_std"))
        imp.note("quality.min_variety_std", f"{v:g} kept as extraction.quality.crop_min_std "
                 "(grey standard deviation a GT crop needs)")
    lr = [k for k in body if k.startswith("lr_")]
    if lr:
        imp.note(", ".join(f"quality.{k}" for k in lr), f"not imported: {LR_DEGRADE_WHY}")
    imp.unused("quality", body, UNSUPPORTED_QUALITY)
    imp.unknown("quality", body, {"blur_threshold", "min_variety_std", *lr,
                                  *UNSUPPORTED_QUALITY})


def _targets_flat(imp: Importer, root: dict[str, Any]) -> dict[str, int]:
    """category_patches, else category_weights × processing.total_patches, else targets."""
    for key in ("category_patches", "category_targets"):
        if key in root:
            table = imp.table(key, root[key])
            if table:
                return {imp.name(f"{key}.{c}", c): imp.integer(f"{key}.{c}", n, 0, 10**9)
                        for c, n in table.items()}
    if "category_weights" in root:
        proc = root.get("processing") if isinstance(root.get("processing"), dict) else {}
        total = DEFAULT_TOTAL_PATCHES
        if isinstance(proc, dict) and "total_patches" in proc:
            total = imp.integer("processing.total_patches", proc["total_patches"], 1, 10**9)
        table = imp.table("category_weights", root["category_weights"])
        out = {imp.name(f"category_weights.{c}", c): max(1, int(
            imp.number(f"category_weights.{c}", w, 0, 1e6) * total)) for c, w in table.items()}
        imp.note("category_weights", f"targets = weight × processing.total_patches ({total:,}"
                 + (", the predecessor's default" if total == DEFAULT_TOTAL_PATCHES else "")
                 + "): " + ", ".join(f"{c} {n:,}" for c, n in out.items()))
        if out:
            return out
    imp.fail("category_patches", "missing: the file names no category with a patch count",
             'add e.g. "category_patches": {"master": 100000}')


def _output_patches(imp: Importer, root: dict[str, Any], plan: Plan) -> dict[str, list[str]]:
    """output_patches → formats; one mix (the weights) for every category."""
    targets = _targets_flat(imp, root)
    raw = imp.require(root, "", "output_patches", '"output_patches": {"540": {...}}')
    scale = _default_scale(imp, root)
    mix: list[tuple[str, float]] = []
    equal = True
    for fmt, spec in imp.table("output_patches", raw).items():
        key = f"output_patches.{fmt}"
        imp.name(key, fmt)
        body = imp.table(key, spec)
        imp.unknown(key, body, OUTPUT_PATCH_KEYS)
        if body.get("enabled", True) is False:
            imp.note(key, "enabled: false; not imported")
            continue
        w, h, s = imp.size(key, fmt, body, scale)
        imp.folder(key, fmt, "format")
        plan.formats[fmt] = Format(w, h, s, fmt, key)
        weight = imp.number(f"{key}.weight", body.get("weight", 1), 0, math.inf)
        if weight == 0:
            imp.note(f"{key}.weight", "is 0; left out of the mix")
            continue
        equal = equal and (not mix or weight == mix[0][1])
        mix.append((fmt, weight))
    if not mix:
        imp.fail("output_patches", "has no enabled format with a weight > 0",
                 "enable at least one format")
    if not equal:
        imp.note("output_patches", "weights imported as every category's format mix. The "
                 "predecessor gave each enabled format an equal share instead "
                 "(utils/config_normalizer.py ignored weight, make_dataset_v2_clean.py wrote "
                 "every size from each scene): set the weights equal to keep its proportions")
    for cat, target in targets.items():
        plan.categories.append(Category(cat, target, cat, tuple(mix)))
    return {c: [f for f, _ in mix] for c in targets}


def _templates(imp: Importer, root: dict[str, Any], templates: dict[str, Any] | None,
               source: str, plan: Plan) -> dict[str, list[str]]:
    """categories.<cat>.formats[] + templates.json → formats, mixes, degradation mixes."""
    if templates is None:
        raise AssertionError("config_import loads templates.json first")  # a programming error
    # Errors in templates.json name that file; its notes start with the file's name.
    timp = Importer(source, prefix=f"{PurePath(source).name} ")
    timp.notes = imp.notes
    fmt_tmpls = timp.table("format_templates", timp.require(
        templates, "", "format_templates", '"format_templates": {"960x540_169": {...}}'))
    marks = [k for k in templates if k.startswith("_")]
    if marks:
        timp.note(", ".join(marks), "file markers; not imported")
    timp.unknown("", {k: v for k, v in templates.items() if not k.startswith("_")},
                 {"format_templates", "degradation_templates"})
    deg_raw = templates.get("degradation_templates", {})
    for name, body in timp.table("degradation_templates", deg_raw).items():
        dkey = f"degradation_templates.{name}"
        timp.name(dkey, name)
        b = timp.table(dkey, body)
        desc = b.get("description", "")
        if not isinstance(desc, str):
            timp.note(f"{dkey}.description", f"{show(desc)} is not text; written as that text")
            desc = show(desc)
        plan.degradation_templates[name] = DegradationTemplate(
            name, timp.text(f"{dkey}.description", desc),
            {k: v for k, v in b.items() if k != "description"})
    scale = _default_scale(imp, root)
    entries: list[tuple[str, str, str, str, float, Mix]] = []  # cat, key, template, mode, w, mix
    targets: dict[str, int] = {}
    for cat, body in imp.table("categories", root["categories"]).items():
        ckey = f"categories.{cat}"
        imp.name(ckey, cat)
        c = imp.table(ckey, body)
        imp.unknown(ckey, c, {"target_total", "formats"})
        targets[cat] = imp.integer(f"{ckey}.target_total", imp.require(
            c, ckey, "target_total", '"target_total": 100000'), 0, 10**9)
        items = imp.require(c, ckey, "formats", '"formats": [{"template": "960x540_169", ...}]')
        if not isinstance(items, list) or not items:
            imp.fail(f"{ckey}.formats", f"{show(items)} is not a non-empty list",
                     'write "formats": [{"template": "...", "weight": 1, ...}]')
        for i, item in enumerate(items):
            key = f"{ckey}.formats[{i}]"
            f = imp.table(key, item)
            imp.unknown(key, f, FORMAT_ENTRY_KEYS)
            t = imp.text(f"{key}.template", imp.require(f, key, "template",
                                                        '"template": "960x540_169"'))
            if t not in fmt_tmpls:
                imp.fail(f"{key}.template", f"{t!r} is not in {source}'s format_templates",
                         "add it there or use one of: " + ", ".join(fmt_tmpls))
            mode = f.get("source_mode", "crop")
            if mode not in SOURCE_MODES:
                imp.fail(f"{key}.source_mode", f"{show(mode)} is not allowed",
                         "use \"crop\" or \"resize\"")
            w = imp.number(f"{key}.weight", f.get("weight", 1), 0, math.inf)
            if w > 0:
                entries.append((cat, key, t, mode, w, _degradation_mix(imp, key, f, plan)))
            else:
                imp.note(f"{key}.weight", "is 0; left out of the mix")
    modes: dict[str, set[str]] = {}
    for _, _, t, mode, _, _ in entries:
        modes.setdefault(t, set()).add(mode)
    mixes: dict[str, dict[str, float]] = {c: {} for c in targets}
    sized: dict[str, tuple[int, int, int]] = {}  # template → GT width, height, scale
    for cat, key, t, mode, w, mix in entries:
        name = t if len(modes[t]) == 1 else f"{t}_{mode}"
        if t not in sized:  # once per template, also when it gives two formats
            tk = f"format_templates.{t}"
            tbody = timp.table(tk, fmt_tmpls[t])
            timp.unknown(tk, tbody, {"gt_size", "scale", "lr_size", *TEMPLATE_TEXT})
            told = [k for k in TEMPLATE_TEXT if k in tbody]
            if told:
                timp.note(", ".join(f"{tk}.{k}" for k in told),
                          "descriptive (the size gives the aspect); not imported")
            sized[t] = timp.size(tk, t, tbody, scale)
            timp.folder(tk, t, "format template")
        if name not in plan.formats:
            plan.formats[name] = Format(*sized[t], t, key, mode)
        other = next((n for n in mixes[cat] if plan.formats[n].dir == t and n != name), None)
        if other is not None:
            imp.fail(f"{key}.source_mode", f"template {t!r} is used here with {mode!r} and "
                     f"also with {plan.formats[other].mode!r}: the predecessor mixed both into "
                     "one folder, dsgen writes one format per folder",
                     f"copy template {t!r} under a new name in {source} for one of them")
        if name in mixes[cat]:
            before = plan.degradation_mixes.get((cat, name), ())
            imp.note(key, f"{t} ({mode}) is listed twice in {cat}; weights added" + (
                "; its degradation_mix is this entry's, as the predecessor kept the last one"
                if dict(before) != dict(mix) else ""))
        mixes[cat][name] = mixes[cat].get(name, 0.0) + w
        plan.degradation_mixes[(cat, name)] = mix
    for cat, target in targets.items():
        if not mixes[cat]:
            imp.fail(f"categories.{cat}.formats", "has no format with a weight > 0",
                     "give at least one format a weight > 0")
        plan.categories.append(Category(cat, target, cat, tuple(mixes[cat].items())))
    carry(imp, timp, plan)
    return {c: [plan.formats[n].dir for n in m] for c, m in mixes.items()}


def _degradation_mix(imp: Importer, key: str, f: dict[str, Any], plan: Plan) -> Mix:
    """A format's degradation_mix {template: weight}, checked against templates.json (empty:
    the format's LR stays clean, as the predecessor's extractor left it without a mix)."""
    mkey = f"{key}.degradation_mix"
    if "degradation_mix" not in f or not imp.table(mkey, f["degradation_mix"]):
        imp.note(mkey, ("missing" if "degradation_mix" not in f else "empty") + ": the "
                 "predecessor's extractor degraded nothing without a mix (its config check "
                 "refused to start); imported as clean LR (none)")
        return ()
    out: list[tuple[str, float]] = []
    for name, w in f["degradation_mix"].items():
        dkey = f"{mkey}.{name}"
        if name not in plan.degradation_templates:
            imp.fail(dkey, "is not in templates.json's degradation_templates",
                     "add it there or use one of: " + (", ".join(plan.degradation_templates)
                                                       or "(none defined)"))
        weight = imp.number(dkey, w, 0, math.inf)
        if weight > 0:
            out.append((name, weight))
        else:
            imp.note(dkey, "weight 0: never drawn; left out of the mix")
    if not out:
        imp.fail(mkey, "has no weight above 0",
                 "give at least one template a weight > 0 (the predecessor's random.choices "
                 "refused weights that sum to 0)")
    return tuple(out)


def _apply_layout(imp: Importer, layout: Layout, wanted: dict[str, list[str]], plan: Plan,
                  stacks: tuple[int, ...]) -> None:
    """Category paths and format folders as `layout` wrote them."""
    layout_notes(imp, layout, stacks)
    for name, f in plan.formats.items():
        plan.formats[name] = Format(f.width, f.height, f.scale, layout.format_dir(f.dir),
                                    f.origin, f.mode)
    cats = []
    for c in plan.categories:
        path = layout.category_path(c.name)
        imp.folder(f"categories.{c.name}", path, "category")
        cats.append(dataclasses.replace(c, path=path))
    plan.categories = cats
    if not wanted:
        imp.fail("categories", "names no category", "add at least one category")


def _watch(imp: Importer, raw: Any, cats: list[str], videos: Any) -> list[Watch]:
    """source_dirs → [[watch]]; commented out where it would repeat or add videos."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        imp.fail("source_dirs", f"{show(raw)} is not a list",
                 'write "source_dirs": [{"path": "/videos"}]')
    listed: list[str] = [v["path"] for v in (videos if isinstance(videos, list) else [])
                         if isinstance(v, dict) and isinstance(v.get("path"), str)]
    out: list[Watch] = []
    for i, item in enumerate(raw):
        key = f"source_dirs[{i}]"
        body = {"path": item} if isinstance(item, str) else imp.table(key, item)
        imp.unknown(key, body, {"path", "extensions"})
        path = imp.text(f"{key}.path", imp.require(body, key, "path", '"path": "/videos"'))
        imp.path_text(f"{key}.path", path)
        exts = body.get("extensions", list(DEFAULT_EXTENSIONS))
        if not isinstance(exts, list) or not all(isinstance(e, str) and e.strip("."
                                                                                 ) for e in exts):
            imp.fail(f"{key}.extensions", f"{show(exts)} is not a list of file extensions",
                     'write e.g. [".mkv", ".mp4"]')
        kind = flavour(path, *listed)
        inside = [p for p in listed if kind(p).is_relative_to(kind(path))]
        active = not inside
        out.append(Watch(path, tuple(cats), tuple(exts), key, active))
        if active:
            imp.note(key, "imported as a [[watch]] folder: dsgen extracts every complete video "
                     f"in it (and those added later) into {', '.join(cats)}; edit its "
                     "categories to choose")
        else:
            imp.note(key, f"written as a commented-out [[watch]] table: {len(inside)} of the "
                     "listed videos are in this folder. dsgen would extract every video in it "
                     f"into {', '.join(cats)}, including those the predecessor left without "
                     "categories, and the listed ones a second time under their path names. "
                     "Uncomment it if every video there should feed those categories, and then "
                     "remove the [[videos]] entries inside it")
    return out
