"""What every predecessor-config importer shares: value checks, notes, records, folder layouts.

The importers (`import_v1.py` for `generator_config.json` with `base_settings`,
`import_v2.py` for `generator_config_v2.json`) fill one `Plan`; `config_import.py` renders
it as TOML. A value dsgen cannot take raises `ConfigError` naming its JSON key; every key
that is not carried over gets a note.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from dsgen.config import MAX_WORKERS, NAME_MAX
from dsgen.errors import ConfigError

# Width and height bounds dsgen accepts for a format (config.py range check).
MIN_SIDE, MAX_SIDE = 8, 16384
# Scale bounds dsgen accepts for a format (config.py range check).
MIN_SCALE, MAX_SCALE = 1, 16
# Largest category target dsgen accepts (config.py range check).
MAX_TARGET = 10**9
# The predecessor's LR factor, used when a format gives neither lr_size nor scale.
PREDECESSOR_SCALE = 3
# dsgen's resume database goes here, under output_root, unless the user moves it.
STATE_SUBDIR = ".dsgen-state"
# Known 16:9 format names of the predecessor: a smaller-first pair was written height-first.
WIDE_FORMATS = frozenset({"medium_169", "xlarge_1440", "fullhd_1920", "720_169"})
# Format names that say "16:9" although the importer does not know them (medium_169, x_1920).
WIDE_NAME = re.compile(r"169|16[x_:-]?9|1440|1920|wide", re.IGNORECASE)
# Names that ask for a tall format: their smaller-first pairs are meant as written.
TALL_NAME = re.compile(r"portrait|vertical|tall|9[x_:-]?16", re.IGNORECASE)
# A Windows path: drive letter, UNC share or backslash separators.
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:|\\\\)|\\")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TO_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]')
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
            "\\": "\\\\"}

Mix = tuple[tuple[str, float], ...]
Line = tuple[str, str, str]  # TOML key, rendered value, origin (JSON key or "new …")


def toml_string(s: str) -> str:
    """`s` as a TOML string: literal '…' for backslash paths when possible, else escaped "…"."""
    if "\\" in s and "'" not in s and not _CONTROL.search(s):
        return f"'{s}'"
    return '"' + _TO_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), s) + '"'


def toml_float(x: float) -> str:
    """A finite float as TOML (repr always has a '.' or an exponent, both valid TOML)."""
    return repr(float(x))


def comment_safe(text: str) -> str:
    """`text` made safe for a TOML comment (no control characters, which would end it)."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)


def show(value: Any) -> str:
    """A short JSON rendering of a user value, for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def sub(prefix: str, key: str) -> str:
    """The JSON path of `key` inside the object at `prefix`."""
    return f"{prefix}.{key}" if prefix else key


def ranges(indices: list[int]) -> str:
    """Sorted indices as compact ranges: [0, 1, 2, 5] → '0-2,5'."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def is_windows(path: str) -> bool:
    """Whether `path` is written the Windows way (drive, UNC share or backslashes)."""
    return bool(_WINDOWS_PATH.search(path))


def flavour(*paths: str) -> type[PurePath]:
    """The pure-path class that parses all of `paths` as their author meant."""
    return PureWindowsPath if any(is_windows(p) for p in paths) else PurePosixPath


def join(folder: str, name: str) -> str:
    """`folder`/`name`, with the separator `folder` already uses."""
    sep = "\\" if "\\" in folder else "/"
    return folder.rstrip("/\\") + sep + name


def _span(lo: float, hi: float) -> str:
    return f"use a value from {lo:g} to {hi:g}" if math.isfinite(hi) else f"use a value ≥ {lo:g}"


def wide(fmt: str, first: int, second: int) -> bool:
    """Whether the smaller-first pair [first, second] of format `fmt` is 16:9 written H-first."""
    if first >= second or TALL_NAME.search(fmt):
        return False
    return fmt in WIDE_FORMATS or bool(WIDE_NAME.search(fmt)) or first * 16 == second * 9


@dataclass(frozen=True)
class Format:
    """One [formats.<name>] table and the JSON key that first defined it."""

    width: int
    height: int
    scale: int
    dir: str
    origin: str
    mode: str = "crop"


@dataclass(frozen=True)
class Category:
    """One [categories.<name>] table."""

    name: str
    target: int
    path: str
    mix: Mix
    degradations: Mix = ()  # the category's degradation mix (empty: dsgen's default, none)
    format_degradations: tuple[tuple[str, Mix], ...] = ()  # format → its own mix
    val_fraction: float = 0.0  # [categories.<name>.validation] fraction (0: no split)


@dataclass(frozen=True)
class Video:
    """One [[videos]] table and its index in the JSON list."""

    index: int
    name: str
    path: str
    categories: Mix


@dataclass(frozen=True)
class Watch:
    """One [[watch]] table; `active` False renders it commented out (the notes say why)."""

    path: str
    categories: tuple[str, ...]
    extensions: tuple[str, ...]
    origin: str
    active: bool


@dataclass(frozen=True)
class DegradationTemplate:
    """A `templates.json` degradation template, kept as written (its parts and description)."""

    name: str
    description: str
    parts: dict[str, Any]


@dataclass(frozen=True)
class Degradation:
    """One [degradations.<name>] table: its stage tables as dsgen's config takes them."""

    name: str
    description: str
    stages: tuple[dict[str, Any], ...]
    origin: str  # the templates.json template it comes from

    def body(self) -> dict[str, Any]:
        """The table as parsed TOML (for dsgen's own template loader)."""
        return {"description": self.description, "stages": [dict(s) for s in self.stages]}


@dataclass
class Plan:
    """Everything the TOML is rendered from, and what is kept for later emission."""

    generation: str
    top: list[Line] = field(default_factory=list)
    extraction: list[Line] = field(default_factory=list)
    quality: list[Line] = field(default_factory=list)
    formats: dict[str, Format] = field(default_factory=dict)
    categories: list[Category] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    watch: list[Watch] = field(default_factory=list)
    # templates.json degradation templates, each (category, format)'s mix of them (empty:
    # none given), and the [degradations.<name>] tables written from them.
    degradation_templates: dict[str, DegradationTemplate] = field(default_factory=dict)
    degradation_mixes: dict[tuple[str, str], Mix] = field(default_factory=dict)
    degradations: list[Degradation] = field(default_factory=list)


class Importer:
    """One conversion: checks values, collects notes, raises ConfigError with the JSON key."""

    def __init__(self, source: str, prefix: str = "") -> None:
        self.file = source
        self.notes: list[str] = []
        self.prefix = prefix  # before every note's key: which file the key is in

    def fail(self, key: str, problem: str, fix: str) -> typing.NoReturn:
        """Reject the value at JSON key `key`."""
        raise ConfigError(self.file, key, problem, fix)

    def note(self, key: str, text: str) -> None:
        """Tell the user about `key` (a JSON path, or a dsgen key for new settings)."""
        self.notes.append(f"{self.prefix}{key}: {text}")

    # -- value checks ------------------------------------------------------------------------

    def table(self, key: str, value: Any) -> dict[str, Any]:
        """`value` if it is a JSON object."""
        if not isinstance(value, dict):
            self.fail(key, f"{show(value)} is not an object", 'write it as { "key": value, ... }')
        return value

    def require(self, body: dict[str, Any], key: str, name: str, example: str) -> Any:
        """body[name], which must be present."""
        if name not in body:
            self.fail(sub(key, name), "missing", f"add it, e.g. {example}")
        return body[name]

    def number(self, key: str, value: Any, lo: float, hi: float) -> float:
        """A finite JSON number in [lo, hi]."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"{show(value)} is not a number", "write a number, e.g. 45")
        try:
            v = float(value)
        except OverflowError:
            self.fail(key, f"{show(value)} is too large", _span(lo, hi))
        if not math.isfinite(v):
            self.fail(key, f"{show(value)} is not a finite number", "write a finite number")
        if not lo <= v <= hi:
            self.fail(key, f"{value} is out of range", _span(lo, hi))
        return v

    def integer(self, key: str, value: Any, lo: int, hi: int) -> int:
        """A whole JSON number (3 or 3.0) in [lo, hi]."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{show(value)} is not a whole number", "write a whole number, e.g. 3")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range", f"use a whole number from {lo} to {hi}")
        return value

    def text(self, key: str, value: Any) -> str:
        """A JSON string that TOML (UTF-8) can hold: no unpaired surrogates."""
        if not isinstance(value, str):
            self.fail(key, f"{show(value)} is not a string", 'write it in quotes, e.g. "name"')
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(key, "contains an unpaired UTF-16 surrogate (a broken \\u escape)",
                      "fix the \\uD8xx-\\uDFxx escape in the JSON")
        return value

    def path_text(self, key: str, value: str) -> None:
        """Reject a path no filesystem can hold: empty or with a NUL character."""
        if not value.strip():
            self.fail(key, "is empty", "give the path")
        if "\0" in value:
            self.fail(key, "contains a NUL character", "fix the path")
        try:  # dsgen expands ~ and ~user; an unknown user would stop it loading the TOML
            Path(value).expanduser()
        except RuntimeError:
            self.fail(key, f"{show(value)} starts with ~ but that home folder is unknown here",
                      "write the full path")

    def name(self, key: str, value: str) -> str:
        """A JSON object key used as a dsgen name: non-empty text."""
        if not self.text(key, value).strip():
            self.fail(key, "is an empty name", "give it a name")
        return value

    def folder(self, key: str, path: str, what: str) -> None:
        """Reject a name that, used as a folder, would leave the dataset tree."""
        parts = PurePosixPath(path.replace("\\", "/")).parts
        if not parts or parts[0] == "/" or ".." in parts or re.match(r"[A-Za-z]:", path):
            self.fail(key, f"{show(path)} cannot be a folder inside the dataset",
                      f"rename the {what} (it names its folder)")
        if any(ord(ch) < 32 for ch in path):  # dsgen's config refuses them in folder names
            self.fail(key, f"{show(path)} contains a control character",
                      f"rename the {what} with printable characters (it names its folder)")
        try:
            longest = max(len(os.fsencode(part)) for part in parts)
        except UnicodeError:  # a lone surrogate from the JSON: no file name can hold it
            self.fail(key, f"{show(path)} is not valid text for a file name",
                      f"rename the {what} (it names its folder)")
        if longest > NAME_MAX:
            self.fail(key, f"{show(path)} has a name of {longest} bytes; the filesystem allows "
                      f"{NAME_MAX}", f"rename the {what} with a shorter name")

    def workers(self, key: str, value: Any, top: list[Line]) -> None:
        """max_workers / workers → workers (null → 0, one per core; capped at dsgen's max)."""
        if value is None:
            n = 0
            self.note(key, "null imported as workers = 0 (one per CPU core)")
        else:
            n = self.integer(key, value, 0, 1 << 31)
            if n > MAX_WORKERS:
                self.note(key, f"{n} capped at dsgen's maximum of {MAX_WORKERS}")
                n = MAX_WORKERS
        top.append(("workers", str(n), key))

    def output_root(self, key: str, value: Any, top: list[Line]) -> str:
        """The dataset folder → output_root, plus the new state_dir beside it."""
        out = self.text(key, value)
        self.path_text(key, out)
        top.append(("output_root", toml_string(out), key))
        self.path_notes(lambda _: key, [(0, out)])
        state = join(out, STATE_SUBDIR)
        top.append(("state_dir", toml_string(state), "new in dsgen: resume database"))
        self.note("state_dir", f"new in dsgen (its resume database); set to {toml_string(state)}, "
                  "under the output folder; move it to a local disk if that folder is a "
                  "network share")
        return out

    def path_notes(self, where: Callable[[list[int]], str],
                   paths: list[tuple[int, str]]) -> None:
        """Notes for relative and Windows-style paths (kept as written), by index."""
        relative = [i for i, p in paths
                    if not flavour(p)(p).is_absolute() and not p.startswith("~")]
        windows = [i for i, p in paths if is_windows(p)]
        tilde = [i for i, p in paths if p.startswith("~")]
        if relative:
            self.note(where(relative), "relative path kept as written; dsgen resolves it against "
                      "the TOML file's folder (the predecessor used its working directory)")
        if windows:
            self.note(where(windows), "Windows path kept as written; fine if dsgen runs on "
                      "Windows, otherwise change it to this machine's path")
        if tilde:
            self.note(where(tilde), "starts with ~, which dsgen expands to a home folder (the "
                      "predecessor did not)")

    def unused(self, prefix: str, body: dict[str, Any], why: dict[str, str]) -> None:
        """A note for each key of `body` listed in `why` (key → why it is not imported)."""
        for k, reason in why.items():
            if k in body:
                self.note(sub(prefix, k), f"{show(body[k])} not imported: {reason}")

    def unknown(self, prefix: str, body: dict[str, Any], known: Iterable[str]) -> None:
        """A note for each key of `body` the importer does not know."""
        known = set(known)
        for k in body:
            if k not in known:
                self.note(sub(prefix, k), f"unknown key ({show(body[k])}); not imported")

    # -- sizes -------------------------------------------------------------------------------

    def pair(self, key: str, value: Any) -> tuple[int, int]:
        """A size: an int (square) or a two-number list, as written."""
        if isinstance(value, list):
            if len(value) != 2:
                self.fail(key, f"{show(value)} is not [width, height]",
                          "write two numbers, e.g. [720, 405], or one for a square")
            return (self.integer(f"{key}[0]", value[0], 1, 1 << 31),
                    self.integer(f"{key}[1]", value[1], 1, 1 << 31))
        n = self.integer(key, value, 1, 1 << 31)
        return n, n

    def size(self, fkey: str, fmt: str, body: dict[str, Any], default_scale: int
             ) -> tuple[int, int, int]:
        """GT width, height and LR scale of one format entry, 16:9 pairs turned width-first.

        The scale comes from `lr_size` (v2.0), else `scale` (V2), else `default_scale`.
        """
        gkey, lkey = f"{fkey}.gt_size", f"{fkey}.lr_size"
        gw, gh = self.pair(gkey, self.require(body, fkey, "gt_size", '"gt_size": [720, 405]'))
        if wide(fmt, gw, gh):
            self.note(gkey, f"[{gw}, {gh}] is a 16:9 size written height-first; imported as "
                      f"width {gh}, height {gw}")
            gw, gh = gh, gw
        elif gw < gh:
            self.note(gkey, f"[{gw}, {gh}] imported as written: width {gw}, height {gh} (tall); "
                      "swap it if it was meant height-first")
        for side, v in (("width", gw), ("height", gh)):
            if not MIN_SIDE <= v <= MAX_SIDE:
                self.fail(gkey, f"{side} {v} is out of range",
                          f"use {MIN_SIDE} to {MAX_SIDE} pixels")
        if "lr_size" in body:
            lw, lh = self.pair(lkey, body["lr_size"])
            if lw != lh and gw != gh and (lw < lh) != (gw < gh):
                self.note(lkey, f"[{lw}, {lh}] is written height-first; imported as width {lh}, "
                          f"height {lw} to match gt_size")
                lw, lh = lh, lw
            if min(lw, lh) < 1 or gw % lw or gh % lh or gw // lw != gh // lh:
                self.fail(lkey, f"GT {gw}×{gh} over LR {lw}×{lh} is not one whole-number scale "
                          "on both axes",
                          "dsgen needs LR = GT / scale with the same integer scale for width and "
                          f"height, e.g. lr_size [{gw // PREDECESSOR_SCALE}, "
                          f"{gh // PREDECESSOR_SCALE}] for ×{PREDECESSOR_SCALE}")
            scale, skey = gw // lw, lkey
        elif "scale" in body:
            skey = f"{fkey}.scale"
            scale = self.integer(skey, body["scale"], MIN_SCALE, MAX_SCALE)
        else:
            scale, skey = default_scale, lkey
            self.note(fkey, f"gives neither lr_size nor scale; ×{default_scale} assumed")
        if not MIN_SCALE <= scale <= MAX_SCALE:
            self.fail(skey, f"scale ×{scale} is out of range",
                      f"use a scale from {MIN_SCALE} to {MAX_SCALE}")
        for side, v in (("width", gw), ("height", gh)):
            if v % scale:
                self.fail(gkey, f"{side} {v} is not divisible by the scale ×{scale}",
                          f"use a multiple of {scale}, e.g. {v - v % scale}")
        return gw, gh, scale

    # -- videos ------------------------------------------------------------------------------

    def videos(self, raw: Any, cats: Iterable[str], known: frozenset[str],
               told: dict[str, str]) -> list[Video]:
        """videos[] → [[videos]] with unique names; `told` keys (key → why) get one note each."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail("videos", f"{show(raw)} is not a list", 'write "videos": [{...}, ...]')
        cats = list(cats)
        unknown: dict[str, list[int]] = {}
        noted: dict[str, list[int]] = {}
        unassigned: list[int] = []
        reweighted: list[int] = []
        out: list[Video] = []
        for i, item in enumerate(raw):
            key = f"videos[{i}]"
            body = self.table(key, item)
            for k in body:
                if k in told:
                    noted.setdefault(k, []).append(i)
                elif k not in known:
                    unknown.setdefault(k, []).append(i)
            path = self.text(f"{key}.path",
                             self.require(body, key, "path", '"path": "/videos/film.mkv"'))
            self.path_text(f"{key}.path", path)
            name = self.text(f"{key}.name", body.get("name", ""))
            if not name.strip():
                name = flavour(path)(path).stem or path
                self.note(f"{key}.name", f"missing or empty; named {toml_string(name)} after "
                          "its file")
            weights = self.video_categories(key, body, cats)
            if not weights:
                unassigned.append(i)
                continue
            if any(w != 1.0 for _, w in weights):
                reweighted.append(i)
            out.append(Video(i, name, path, weights))
        self.path_notes(lambda idx: f"videos[{ranges(idx)}].path",
                        [(v.index, v.path) for v in out])
        for k, idx in unknown.items():
            self.note(f"videos[{ranges(idx)}].{k}", "unknown key; not imported")
        for k, idx in noted.items():
            self.note(f"videos[{ranges(idx)}].{k}", told[k])
        if unassigned:
            self.note(f"videos[{ranges(unassigned)}]", "feed no category (none assigned, or "
                      "weight 0); not imported, as the predecessor skipped them")
        if reweighted:
            self.note(f"videos[{ranges(reweighted)}].categories", "weights imported unchanged, "
                      "but their meaning changed: the predecessor multiplied the video's "
                      "extraction count by their sum, dsgen scales the video's share of each "
                      "category's target by them")
        return self.unique_names(out)

    def video_categories(self, key: str, body: dict[str, Any], cats: list[str]) -> Mix:
        """A video's {category: weight} (a list means weight 1 each), zero weights dropped."""
        ckey = f"{key}.categories"
        value = self.require(body, key, "categories", '"categories": {"general": 1.0}')
        if isinstance(value, list):
            value = {self.text(f"{ckey}[{j}]", c): 1.0 for j, c in enumerate(value)}
        out: list[tuple[str, float]] = []
        for cat, weight in self.table(ckey, value).items():
            if cat not in cats:
                close = difflib.get_close_matches(cat, cats, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"{ckey}.{cat}", "is not one of the file's categories "
                          f"({', '.join(cats) or 'none'})",
                          f"add the category with its target and formats, or fix the name{hint}")
            w = self.number(f"{ckey}.{cat}", weight, 0, math.inf)
            if w == 0:
                self.note(f"{ckey}.{cat}", "weight 0 (feeds nothing); left out")
                continue
            out.append((cat, w))
        return tuple(out)

    def unique_names(self, videos: list[Video]) -> list[Video]:
        """Videos with duplicate names renamed 'name (2)', 'name (3)', … (dsgen needs unique)."""
        taken = {v.name for v in videos}
        first: dict[str, int] = {}
        out: list[Video] = []
        for v in videos:
            if v.name not in first:
                first[v.name] = v.index
                out.append(v)
                continue
            n = 2
            while f"{v.name} ({n})" in taken:
                n += 1
            new = f"{v.name} ({n})"
            taken.add(new)
            first[new] = v.index
            self.note(f"videos[{v.index}].name", f"{toml_string(v.name)} is also "
                      f"videos[{first[v.name]}]'s name; renamed {toml_string(new)} (dsgen names "
                      "sample files after the video, so names must be unique)")
            out.append(replace(v, name=new))
        return out
