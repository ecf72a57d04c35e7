"""Convert any generation of the predecessor's JSON config into dsgen TOML.

`dsgen config import generator_config.json > dsgen.toml` moves a user over in one command.
The generation is told by its keys: `base_settings` (v2.0 `generator_config.json`, with or
without `category_targets`/`format_config`: `import_v1.py`) or `root_path`
(`generator_config_v2.json`, with `output_patches` or with templates from `templates.json`:
`import_v2.py`). Every predecessor key is either converted or reported in a note (never
dropped silently), values dsgen cannot take raise `ConfigError` naming their JSON key, and
the TOML is checked to load as a dsgen `Config` before it is returned. The TOML is written
by hand: the format is fixed and small, so a correct string escaper is all it takes.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dsgen.config import config_from_dict
from dsgen.errors import ConfigError
from dsgen.import_base import (
    Degradation,
    Importer,
    Plan,
    comment_safe,
    show,
    sub,
    toml_float,
    toml_string,
)
from dsgen.import_v1 import import_v1
from dsgen.import_v2 import import_v2, is_templates

# The file that holds a V2 config's format and degradation templates, beside the config.
TEMPLATES_NAME = "templates.json"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ImportResult:
    """The dsgen TOML for a predecessor config, what the user should know, what is kept."""

    toml: str
    notes: tuple[str, ...]
    generation: str = ""


def toml_key(k: str) -> str:
    """`k` as a TOML key: bare when it may be, quoted otherwise."""
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def _inline(pairs: Iterable[tuple[str, float]]) -> str:
    """{name: weight} pairs as a TOML inline table."""
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_float(v)}" for k, v in pairs) + " }"


def _value(v: Any) -> str:
    """A stage table's value as TOML: number, string, [list] or { table }."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return toml_float(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{toml_key(k)} = {_value(x)}" for k, x in v.items()) + " }"


def _degradation(d: Degradation, pad: Callable[[str, str], str]) -> list[str]:
    """One [degradations.<name>] table and its [[…stages]], in order."""
    head = f"degradations.{toml_key(d.name)}"
    out = ["", pad(f"[{head}]", f"from templates.json degradation_templates.{d.origin}"),
           f"description = {toml_string(d.description)}"]
    for stage in d.stages:
        out += ["", f"[[{head}.stages]]"] + [f"{k} = {_value(v)}" for k, v in stage.items()]
    return out


def _render(source: str, on: datetime.date, notes: list[str], plan: Plan) -> str:
    """The TOML document: header, top level, [extraction], formats, categories (with their
    degradation mixes), degradation templates, videos, watch."""
    def pad(text: str, comment: str) -> str:
        return f"{text:<36} # {comment_safe(comment)}"

    def from_(k: str, v: str, origin: str) -> str:
        return pad(f"{k} = {v}", origin if origin.startswith("new") else f"from {origin}")

    out = [
        f"# dsgen configuration imported from {comment_safe(toml_string(source))} "
        f"({comment_safe(plan.generation)}) by `dsgen config import` on {on.isoformat()}.",
        "# Keys not written here take dsgen's defaults (see etc/dsgen.toml). Check this file "
        "with: dsgen config check <file>",
    ]
    if notes:
        out += ["#", "# Import notes:"] + [f"#   - {comment_safe(n)}" for n in notes]
    out += [""] + [from_(*t) for t in plan.top]
    out += ["", "[extraction]"] + [from_(*t) for t in plan.extraction]
    if plan.quality:
        out += ["", "[extraction.quality]"] + [from_(*t) for t in plan.quality]
    for name, f in plan.formats.items():
        out += ["", pad(f"[formats.{toml_key(name)}]", f"from {f.origin}"),
                f"width = {f.width}", f"height = {f.height}", f"scale = {f.scale}",
                f"dir = {toml_string(f.dir)}"]
        if f.mode != "crop":
            out.append(f"mode = {toml_string(f.mode)}")
    for c in plan.categories:
        out += ["", f"[categories.{toml_key(c.name)}]", f"target = {c.target}",
                f"path = {toml_string(c.path)}", f"formats = {_inline(c.mix)}"]
        if c.degradations:
            out.append(f"degradations = {_inline(c.degradations)}")
        if c.format_degradations:
            out += ["", f"[categories.{toml_key(c.name)}.format_degradations]"]
            out += [f"{toml_key(f)} = {_inline(m)}" for f, m in c.format_degradations]
        if c.val_fraction:
            out += ["", f"[categories.{toml_key(c.name)}.validation]",
                    f"fraction = {toml_float(c.val_fraction)}"]
    for d in plan.degradations:
        out += _degradation(d, pad)
    for v in plan.videos:
        out += ["", "[[videos]]", f"name = {toml_string(v.name)}", f"path = {toml_string(v.path)}",
                f"categories = {_inline(v.categories)}"]
    for w in plan.watch:
        lead = "" if w.active else "# "
        out += ["", pad(f"{lead}[[watch]]", f"from {w.origin}"),
                f"{lead}path = {toml_string(w.path)}",
                f"{lead}categories = [" + ", ".join(toml_string(c) for c in w.categories) + "]",
                f"{lead}extensions = [" + ", ".join(toml_string(e) for e in w.extensions) + "]"]
    return "\n".join(out) + "\n"


def import_predecessor(raw: dict[str, Any], source: str, *,
                       templates: dict[str, Any] | None = None,
                       templates_source: str = TEMPLATES_NAME,
                       today: datetime.date | None = None) -> ImportResult:
    """Convert a parsed predecessor JSON config (from `source`) into checked dsgen TOML.

    `templates` is the parsed templates.json, needed by the templates generation only.
    """
    imp = Importer(source)
    root = imp.table("(top level)", raw)
    if "base_settings" in root:
        plan = import_v1(imp, root)
    elif "root_path" in root:
        if "sizes" in root and "output_patches" not in root and not is_templates(root):
            imp.fail("sizes", "is the first make_dataset_v2_clean.py prototype's setting: it "
                     "wrote GT-resolution tiles as \"LR\" (no downscale, frames side by side), "
                     "which no dsgen format reproduces",
                     "write a dsgen config (see etc/dsgen.toml) with the videos and the GT size "
                     "you want")
        if is_templates(root) and templates is None:
            first = next(iter(root["categories"]))
            imp.fail(f"categories.{first}.formats", f"the format templates are defined in "
                     f"{TEMPLATES_NAME}, which was not found beside this file",
                     f"pass the {TEMPLATES_NAME} that goes with it: dsgen config import "
                     f"{source} --templates /path/to/{TEMPLATES_NAME}")
        plan = import_v2(imp, root, templates, templates_source)
    else:
        imp.fail("(top level)", "has neither base_settings (generator_config.json) nor "
                 "root_path (generator_config_v2.json): not a predecessor config",
                 "pass the predecessor's generator_config.json or generator_config_v2.json")
    text = _render(source, today or datetime.date.today(), imp.notes, plan)
    try:  # the promise to the user: what we print loads as a dsgen config
        config_from_dict(tomllib.loads(text), Path("dsgen.toml"))
    except (tomllib.TOMLDecodeError, ConfigError) as e:
        key = e.key if isinstance(e, ConfigError) else "(import)"
        raise ConfigError(source, key, f"the imported TOML does not load: {e}",
                          "this is a dsgen bug: please report it with the JSON file") from e
    return ImportResult(text, tuple(imp.notes), plan.generation)


def read_json(path: Path, what: str) -> tuple[dict[str, Any], list[str]]:
    """A JSON object from `path`, and a note for each key given twice (the last one wins)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows add a BOM
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "not found", f"pass the predecessor's {what}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(file, "(file)", f"is not UTF-8 ({e.reason} at byte {e.start})",
                          "save it as UTF-8 and import again") from None
    except OSError as e:
        raise ConfigError(file, "(file)", f"cannot be read: {e.strerror or e}",
                          "check the path and its permissions") from None
    duplicates: list[tuple[dict[str, Any], str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        """A JSON object, remembering keys given twice (json keeps the last, silently)."""
        obj: dict[str, Any] = {}
        for k, v in items:
            if k in obj:
                duplicates.append((obj, k))
            obj[k] = v
        return obj

    try:
        raw = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise ConfigError(file, "(syntax)",
                          f"invalid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                          "fix the JSON at that place (a missing comma or quote, or a trailing "
                          "comma, is the usual cause)") from None
    if not isinstance(raw, dict):
        raise ConfigError(file, "(top level)", f"{show(raw)} is not a JSON object",
                          f"pass the predecessor's {what}")
    where = _object_paths(raw)
    prefix = "" if what.startswith("generator") else f"{path.name}: "
    return raw, [f"{prefix}{sub(where.get(id(obj), '?'), k)}: given more than once; the last "
                 "value is used, as the predecessor did" for obj, k in duplicates]


def import_file(path: Path, templates: Path | None = None) -> ImportResult:
    """Read the predecessor's JSON config at `path` (and its templates.json) and convert it."""
    raw, notes = read_json(path, "generator_config.json or generator_config_v2.json")
    tmpl: dict[str, Any] | None = None
    tpath = templates
    if tpath is None and "root_path" in raw and is_templates(raw):
        beside = path.parent / TEMPLATES_NAME
        tpath = beside if beside.is_file() else None
    if tpath is not None:
        tmpl, tnotes = read_json(tpath, TEMPLATES_NAME)
        notes += tnotes
        if templates is None:
            notes.append(f"{TEMPLATES_NAME}: read from beside the config ({tpath})")
    result = import_predecessor(raw, str(path), templates=tmpl,
                                templates_source=str(tpath or TEMPLATES_NAME))
    return replace(result, notes=tuple(notes) + result.notes) if notes else result


def _object_paths(value: Any, prefix: str = "") -> dict[int, str]:
    """id() of every JSON object in `value` → its JSON path (for duplicate-key notes)."""
    found: dict[int, str] = {}
    if isinstance(value, dict):
        found[id(value)] = prefix
        for k, v in value.items():
            found.update(_object_paths(v, sub(prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.update(_object_paths(v, f"{prefix}[{i}]"))
    return found

