"""The section parsers `config_from_dict` calls: formats, categories (validation split,
degradation mixes), videos, watched folders, Dask, LR aliases, and the checks across sections.

They build `config.py`'s dataclasses, so they import it; `config.py` imports this module only
inside `config_from_dict`, so neither module imports the other while it loads.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from dsgen.config import (
    DEFAULT_LR_ALIASES,
    PREDECESSOR_FORMATS,
    RESERVED_NAME_CHAR,
    VIDEO_EXTENSIONS,
    CategoryCfg,
    Config,
    DaskCfg,
    ExtractionCfg,
    FormatCfg,
    ValidationCfg,
    VideoCfg,
    WatchCfg,
    file_slug,
)
from dsgen.config_check import (
    NAME_MAX,
    PATH_MAX,
    ConfigCtx,
    check_folder,
    check_range,
    coerce,
    key_path,
    read_table,
    read_weights,
    resolve_path,
    suggest,
)
from dsgen.degrade_config import NONE, DegradationCfg, load_mix, missing_codecs

# Longest path below a format folder: a sample sub-folder (GT, LR_7frames_clean…), a
# bucket of a SLUG_MAX slug, and a file name, each with its separator.
SAMPLE_TAIL_BYTES = 1 + 32 + 1 + NAME_MAX + 1 + NAME_MAX


def check_extraction(ctx: ConfigCtx, e: ExtractionCfg) -> None:
    """[extraction] and [extraction.quality]: clip length, LR stacks and every threshold."""
    n = e.frames_per_clip
    if n < 3 or n % 2 == 0:
        ctx.fail("extraction.frames_per_clip", f"{n} is not an odd number ≥ 3",
                 "use an odd number so the GT frame is the centre, e.g. 7")
    if not e.lr_stacks:
        ctx.fail("extraction.lr_stacks", "[] names no LR stack",
                 "list the centred stack sizes to write, e.g. [5, 7]")
    for i, k in enumerate(e.lr_stacks):
        if k < 1 or k % 2 == 0 or k > n:
            ctx.fail(f"extraction.lr_stacks[{i}]",
                     f"{k} is not an odd number ≤ frames_per_clip ({n})",
                     "use centred odd stack sizes, e.g. [5, 7]")
        if k in e.lr_stacks[:i]:
            ctx.fail(f"extraction.lr_stacks[{i}]", f"{k} is listed twice",
                     "list each stack size once, e.g. [5, 7]")
    check_range(ctx, "extraction.scene_cut_threshold", e.scene_cut_threshold, 0.1, 255)
    check_range(ctx, "extraction.reference_height", e.reference_height, 64, 8640)
    check_range(ctx, "extraction.max_attempts", e.max_attempts, 1, 1000)
    check_range(ctx, "extraction.retry_skip_seconds", e.retry_skip_seconds, 0.0, 3600)
    check_range(ctx, "extraction.low_success_warning", e.low_success_warning, 0.0, 1.0)
    check_range(ctx, "extraction.edge_margin_seconds", e.edge_margin_seconds, 0.0, 36000)
    check_range(ctx, "extraction.keyframe_tolerance_seconds", e.keyframe_tolerance_seconds,
                 0.0, 3600)
    q = e.quality
    for name in ("black_level", "flat_frame_std", "crop_min_std"):
        check_range(ctx, f"extraction.quality.{name}", getattr(q, name), 0.0, 255.0)
    check_range(ctx, "extraction.quality.crop_min_detail", q.crop_min_detail, 0.0, 1e7)
    check_range(ctx, "extraction.quality.crop_retries", q.crop_retries, 1, 100)
    # A ratio at or below 1 would call every pair that is a little above its neighbours a cut.
    check_range(ctx, "extraction.quality.cut_ratio", q.cut_ratio, 1.1, 1000.0)
    check_range(ctx, "extraction.quality.cut_min_diff", q.cut_min_diff, 0.0, 255.0)
    check_range(ctx, "extraction.quality.cut_min_gain", q.cut_min_gain, 0.0, 1.0)
    check_range(ctx, "extraction.quality.cut_min_jump", q.cut_min_jump, 0.0, 1.0)


def load_aliases(ctx: ConfigCtx, raw: dict[str, Any], layout: str, e: ExtractionCfg
                 ) -> tuple[tuple[str, int], ...]:
    """`lr_aliases = { LR = 5 }`: extra folder names of LR stacks (stacked layout only)."""
    if "lr_aliases" not in raw:
        if layout != "stacked":
            return ()
        return tuple((n, k) for n, k in DEFAULT_LR_ALIASES if k in e.lr_stacks)
    table = raw["lr_aliases"]
    if not isinstance(table, dict):
        ctx.fail("lr_aliases", f"{table!r} is not a table", "write e.g. lr_aliases = { LR = 5 }")
    if table and layout != "stacked":
        ctx.fail("lr_aliases", f"{table!r} with layout = \"basicsr\": that layout has one "
                 "LR folder", "remove lr_aliases")
    taken = {"GT", *(f"LR_{k}frames" for k in e.lr_stacks)}
    out = []
    for name, k in table.items():
        key = f"lr_aliases.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in taken:
            ctx.fail(key, f"{name!r} is not a free folder name",
                     "use a plain folder name other than GT and LR_<k>frames, e.g. LR")
        k = coerce(ctx, key, k, int)
        if k not in e.lr_stacks:
            ctx.fail(key, f"{k} is not a stack that is written (lr_stacks = "
                     f"{list(e.lr_stacks)})", f"use one of {list(e.lr_stacks)}")
        out.append((name, k))
    return tuple(out)


def load_formats(ctx: ConfigCtx, table: Any) -> tuple[FormatCfg, ...]:
    """The [formats.<name>] tables (none or empty: the predecessor's formats)."""
    if table is None or table == {}:  # no [formats] table, or an empty one
        return PREDECESSOR_FORMATS
    if not isinstance(table, dict):
        ctx.fail("formats", f"{table!r} is not a table", "write [formats.<name>] tables")
    out = []
    for name, body in table.items():
        key = key_path("formats", name)
        vals = read_table(ctx, FormatCfg, body, key, skip=set(),
                          hidden={"name": "the table name is the format name; remove it"})
        for req in ("width", "height"):
            if req not in vals:
                ctx.fail(f"{key}.{req}", "missing", f"add {req} = <pixels> (GT size)")
        fmt = FormatCfg(name=name, **vals)
        if fmt.dir == "":
            fmt = dataclasses.replace(fmt, dir=name)
        check_folder(ctx, f"{key}.dir", fmt.dir, "the category folder", '"Patches"')
        check_range(ctx, f"{key}.scale", fmt.scale, 1, 16)
        for dim in ("width", "height"):
            v = getattr(fmt, dim)
            check_range(ctx, f"{key}.{dim}", v, 8, 16384)
            if v % fmt.scale:
                ctx.fail(f"{key}.{dim}", f"{v} is not divisible by scale {fmt.scale}",
                         f"use a multiple of {fmt.scale}, e.g. {v - v % fmt.scale}")
        out.append(fmt)
    return tuple(out)


def load_categories(ctx: ConfigCtx, table: Any, fmt_dirs: dict[str, str], templates: set[str]
                    ) -> tuple[CategoryCfg, ...]:
    """The [categories.<name>] tables: target, folder, format mix, degradations, validation."""
    if not isinstance(table, dict) or not table:
        ctx.fail("categories", "missing or empty", "add at least one [categories.<name>] table")
    out = []
    folders: dict[tuple[str, ...], str] = {}
    for name, body in table.items():
        key = key_path("categories", name)
        vals = read_table(ctx, CategoryCfg, body, key,
                          skip={"formats", "degradations", "format_degradations", "validation"},
                          hidden={"name": "the table name is the category name; remove it"})
        if RESERVED_NAME_CHAR in name:
            ctx.fail(key, f"{name!r} contains {RESERVED_NAME_CHAR!r}",
                     f"rename the category without {RESERVED_NAME_CHAR!r} (dsgen reserves it)")
        if "target" not in vals:
            ctx.fail(f"{key}.target", "missing", "add target = <number of samples>")
        check_range(ctx, f"{key}.target", vals["target"], 0, 10**9)
        if "formats" not in body:
            ctx.fail(f"{key}.formats", "missing", "add formats = { small_540 = 1.0 }")
        mix = read_weights(ctx, f"{key}.formats", body["formats"], set(fmt_dirs), "format",
                           "formats")
        path = vals.pop("path", "") or name
        check_folder(ctx, f"{key}.path", path, "the output root", '"Universal/Learn"')
        # Two categories in one folder would overwrite each other's samples and dataset.json.
        parts = Path(path).parts
        if parts in folders:
            ctx.fail(f"{key}.path", f"{path!r} is also the folder of categories.{folders[parts]}",
                     "give each category its own folder")
        folders[parts] = name
        dirs: dict[tuple[str, ...], str] = {}
        for fmt_name, _ in mix:
            d = Path(fmt_dirs[fmt_name]).parts
            if d in dirs:  # their meta_info.txt and sample folders would be shared
                ctx.fail(f"{key}.formats.{fmt_name}",
                         f"writes to folder {fmt_dirs[fmt_name]!r}, as {dirs[d]!r} does",
                         f"give formats.{fmt_name}.dir a folder of its own")
            dirs[d] = fmt_name
        degr = degradation_mixes(ctx, key, body, templates, [f for f, _ in mix])
        validation = load_validation(ctx, f"{key}.validation", body.get("validation", {}),
                                     mix, fmt_dirs)
        out.append(CategoryCfg(name=name, path=path, formats=mix, validation=validation,
                               **degr, **vals))
    return tuple(out)


def degradation_mixes(ctx: ConfigCtx, key: str, body: dict[str, Any], templates: set[str],
                      formats: list[str]) -> dict[str, Any]:
    """A category's `degradations` mix and its per-format overrides."""
    known = templates | {NONE}
    define = f"define [degradations.<name>] or use a built-in or {NONE!r}"
    out: dict[str, Any] = {}
    if "degradations" in body:
        out["degradations"] = load_mix(ctx, f"{key}.degradations", body["degradations"], known,
                                       "degradation template", define)
    if "format_degradations" in body:
        table = body["format_degradations"]
        if not isinstance(table, dict):
            ctx.fail(f"{key}.format_degradations", f"{table!r} is not a table",
                     "write { format = { template = weight } }")
        per = []
        for fmt, mix in table.items():
            if fmt not in formats:
                ctx.fail(f"{key}.format_degradations.{fmt}",
                         f"{fmt!r} is not one of this category's formats",
                         "add it to the category's formats or remove the override"
                         + suggest(fmt, formats))
            per.append((fmt, load_mix(ctx, f"{key}.format_degradations.{fmt}", mix, known,
                                      "degradation template", define)))
        out["format_degradations"] = tuple(per)
    return out


def load_validation(ctx: ConfigCtx, key: str, body: Any, mix: tuple[tuple[str, float], ...],
                    fmt_dirs: dict[str, str]) -> ValidationCfg:
    """`[categories.<name>.validation]`: size, guard band, held-out videos, formats, folder."""
    vals = read_table(ctx, ValidationCfg, body, key, skip={"formats"})
    if "fraction" in vals and "count" in vals:
        ctx.fail(f"{key}.count", "given together with fraction",
                 "keep one: fraction (of the target) or count (exact)")
    check_range(ctx, f"{key}.fraction", vals.get("fraction", 0.0), 0.0, 1.0)
    check_range(ctx, f"{key}.count", vals.get("count", 0), 0, 10**9)
    check_range(ctx, f"{key}.guard_seconds", vals.get("guard_seconds", 5.0), 0.0, 3600.0)
    if len(set(vals.get("videos", ()))) != len(vals.get("videos", ())):
        ctx.fail(f"{key}.videos", f"{list(vals['videos'])!r} names a video twice",
                 "list each held-out video once")
    formats = (read_weights(ctx, f"{key}.formats", body["formats"], set(fmt_dirs), "format",
                            "formats") if "formats" in body else ())
    folder = vals.get("dir", "Val")
    check_folder(ctx, f"{key}.dir", folder, "the category folder", '"Val"')
    for fmt_name, _ in mix:
        if Path(fmt_dirs[fmt_name]).parts == Path(folder).parts:
            ctx.fail(f"{key}.dir", f"{folder!r} is also the folder of format {fmt_name}",
                     "give validation a folder of its own, e.g. \"Val\"")
    return ValidationCfg(**{**vals, "formats": formats, "dir": folder})


def check_templates_used(ctx: ConfigCtx, user: Any, categories: tuple[CategoryCfg, ...],
                         templates: tuple[DegradationCfg, ...]) -> None:
    """A template the file defines must be named by some category (else it is a typo or a
    forgotten mix); every used template's codecs must exist in this PyAV build."""
    used: dict[str, str] = {}
    for c in categories:
        for name, _ in c.degradations:
            used.setdefault(name, f"categories.{c.name}.degradations")
        for fmt, mix in c.format_degradations:
            for name, _ in mix:
                used.setdefault(name, f"categories.{c.name}.format_degradations.{fmt}")
    for name in user:
        if name not in used:
            ctx.fail(f"degradations.{name}", "no category uses this template",
                     f"add it to a mix, e.g. degradations = {{ {name} = 1.0 }} in a "
                     "[categories.<name>] table, or remove it")
    for t in templates:
        missing = missing_codecs(t) if t.name in used else None
        if missing is None:
            continue
        where, problem = missing
        codec = where.rsplit(".", 1)[1]
        if t.name in user:
            ctx.fail(f"degradations.{t.name}.{where}", problem,
                     f"remove {codec} from codecs (or give it weight 0), or install a PyAV "
                     "wheel whose FFmpeg has it")
        ctx.fail(f"{used[t.name]}.{t.name}", f"the built-in template {t.name!r} uses {codec}: "
                 f"{problem}", f"choose another template, or define your own "
                 f"[degradations.{t.name}] without {codec}")


def load_videos(ctx: ConfigCtx, items: Any, cats: set[str], base: Path) -> tuple[VideoCfg, ...]:
    """The [[videos]] tables: unique names and file names, paths, category mixes."""
    if items is None:
        return ()
    if not isinstance(items, list):
        ctx.fail("videos", f"{items!r} is not a list of tables",
                 "write each video as a [[videos]] table")
    out: list[VideoCfg] = []
    seen: dict[str, int] = {}
    slugs: dict[str, int] = {}
    for i, body in enumerate(items):
        key = f"videos[{i}]"
        vals = read_table(ctx, VideoCfg, body, key, skip={"categories"})
        for req in ("name", "path"):
            if req not in vals:
                ctx.fail(f"{key}.{req}", "missing", f"add {req} = \"...\"")
        if vals["name"] in seen:
            ctx.fail(f"{key}.name", f"{vals['name']!r} is also videos[{seen[vals['name']]}]",
                     "give every video a unique name (it names the sample files)")
        seen[vals["name"]] = i
        slug = file_slug(vals["name"])
        if slug in slugs:
            ctx.fail(f"{key}.name", f"{vals['name']!r} gives the same file names ({slug}) as "
                     f"videos[{slugs[slug]}]", "make the names differ in a letter or digit")
        slugs[slug] = i
        if "categories" not in body:
            ctx.fail(f"{key}.categories", "missing", 'add categories = ["general"]')
        mix = read_weights(ctx, f"{key}.categories", body["categories"], cats, "category",
                           "categories")
        out.append(VideoCfg(name=vals["name"], path=resolve_path(base, vals["path"]),
                            categories=mix))
    return tuple(out)


def load_watch(ctx: ConfigCtx, items: Any, cats: set[str], base: Path) -> tuple[WatchCfg, ...]:
    """The [[watch]] tables: folder, category mix, extensions, settle and poll times."""
    if items is None:
        return ()
    if not isinstance(items, list):
        ctx.fail("watch", "is not a list of tables", "write each folder as a [[watch]] table")
    out = []
    for i, body in enumerate(items):
        key = f"watch[{i}]"
        vals = read_table(ctx, WatchCfg, body, key, skip={"categories"})
        if "path" not in vals:
            ctx.fail(f"{key}.path", "missing", 'add path = "/folder/to/watch"')
        if "categories" not in body:
            ctx.fail(f"{key}.categories", "missing", 'add categories = ["general"]')
        mix = read_weights(ctx, f"{key}.categories", body["categories"], cats, "category",
                           "categories")
        exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}"
                     for e in vals.pop("extensions", VIDEO_EXTENSIONS))
        check_range(ctx, f"{key}.settle_seconds", vals.get("settle_seconds", 15.0), 0.0, 86_400)
        check_range(ctx, f"{key}.poll_seconds", vals.get("poll_seconds", 10.0), 0.1, 86_400)
        path = resolve_path(base, vals.pop("path"))
        out.append(WatchCfg(path=path, categories=mix, extensions=exts, **vals))
    return tuple(out)


def check_held_out(ctx: ConfigCtx, cats: tuple[CategoryCfg, ...], videos: tuple[VideoCfg, ...],
                   watching: bool) -> None:
    """Held-out validation videos must feed their category (watched names are not known)."""
    feeds = {v.name: {c for c, _ in v.categories} for v in videos}
    for c in cats:
        for i, name in enumerate(c.validation.videos):
            key = f"categories.{c.name}.validation.videos[{i}]"
            if name in feeds and c.name not in feeds[name]:
                ctx.fail(key, f"{name!r} does not feed {c.name}",
                         f"add {c.name!r} to that video's categories, or remove it here")
            if name not in feeds and not watching:
                ctx.fail(key, f"no video is named {name!r}",
                         "use a [[videos]] name" + suggest(name, feeds))


def load_dask(ctx: ConfigCtx, table: Any, executor: str) -> DaskCfg:
    """The [dask] table; with executor = "dask" the scheduler and the package must exist."""
    vals = read_table(ctx, DaskCfg, table, "dask", skip={"path_map"})
    pm = table.get("path_map", {}) if isinstance(table, dict) else {}
    if not isinstance(pm, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in pm.items()):
        ctx.fail("dask.path_map", f"{pm!r} is not a table of path prefixes",
                 'write e.g. path_map = { "/mnt/video" = "/net/nas/video" }')
    check_range(ctx, "dask.connect_seconds", vals.get("connect_seconds", 30.0), 0.1, 3600)
    cfg = DaskCfg(path_map=tuple(pm.items()), **vals)
    if executor == "dask":
        if not cfg.scheduler:
            ctx.fail("dask.scheduler", "missing (executor is \"dask\")",
                     'add [dask] scheduler = "tcp://host:8786" (see docs/scaling.md)')
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            ctx.fail("executor", '"dask" needs the dask and distributed packages',
                     "pip install 'dsgen[dask]', or use executor = \"local\"")
    return cfg


def check_layout_room(ctx: ConfigCtx, cfg: Config) -> None:
    """Every sample path (output root, category, format, sample folder, file) fits PATH_MAX;
    dsgen's own folders and the status file do not collide with a category folder."""
    status_top = Path(cfg.status_file).parts[0]
    for cat in cfg.categories:
        key = key_path("categories", cat.name) + ".path"
        if Path(cat.path).parts[0] == status_top:
            ctx.fail(key, f"{cat.path!r} starts with the status file's name {status_top!r}",
                     "give the category another folder, or move status_file")
        for fmt_name, _ in cat.formats:
            root = cfg.output_root / cat.path / cfg.format(fmt_name).dir
            if len(os.fsencode(str(root))) + SAMPLE_TAIL_BYTES >= PATH_MAX:
                ctx.fail(key, f"sample paths under {str(root)[:60]!r}… would exceed the "
                         f"filesystem's {PATH_MAX}-byte limit",
                         "use a shorter output_root, category path or format dir")
