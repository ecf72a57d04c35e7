"""Convert the predecessor's JSON config ("Dataset Generator v2.0") into dsgen TOML.

`dsgen config import generator_config.json > dsgen.toml` moves a user over in one command.
Every predecessor key is either converted or reported in a note (never dropped silently),
values dsgen cannot take raise `ConfigError` naming their JSON key, and the TOML is checked
to load as a dsgen `Config` before it is returned. The TOML is written by hand: the format
is fixed and small, so a correct string escaper is all it takes (no writer dependency).
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import tomllib
import typing
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from dsgen.config import PREDECESSOR_FORMATS, config_from_dict
from dsgen.errors import ConfigError

# The predecessor's category folders, so an imported dataset grows where the old one lies.
CATEGORY_DIRS: dict[str, str] = {
    "general": "Universal/Mastermodell/Learn",
    "master": "Universal/Mastermodell/Learn",  # later predecessor files: master, universal
    "universal": "Universal/Mastermodell/Learn",
    "space": "Space/SpaceModel/Learn",
    "toon": "Toon/ToonModel/Learn",
}
# The predecessor's patch folders per format (dsgen's PREDECESSOR_FORMATS is the one source).
FORMAT_DIRS: dict[str, str] = {f.name: f.dir for f in PREDECESSOR_FORMATS}
# Known 16:9 formats: a smaller-first size pair for one of them was written height-first.
WIDE_FORMATS: frozenset[str] = frozenset(f.name for f in PREDECESSOR_FORMATS if f.width > f.height)
# Format names that say "16:9" although the importer does not know them (medium_169, x_1920).
WIDE_NAME = re.compile(r"169|16[x_:-]?9|1440|1920|wide", re.IGNORECASE)
# Names that ask for a tall format: their smaller-first pairs are meant as written.
TALL_NAME = re.compile(r"portrait|vertical|tall|9[x_:-]?16", re.IGNORECASE)
# The predecessor's LR factor, used when a format gives no lr_size.
PREDECESSOR_SCALE = 3
# dsgen's upper limit for retry_skip_seconds (config.py range check).
RETRY_SKIP_CAP = 3600.0
# dsgen's upper limit for workers (config.py range check).
MAX_WORKERS = 256
# The predecessor always decoded 7 frames per extraction; dsgen's default frames_per_clip.
PREDECESSOR_FRAMES = 7
# dsgen's resume database goes here, under output_root, unless the user moves it.
STATE_SUBDIR = ".dsgen-state"
# Width and height bounds dsgen accepts for a format (config.py range check).
MIN_SIDE, MAX_SIDE = 8, 16384
# Scale bounds dsgen accepts for a format (config.py range check).
MIN_SCALE, MAX_SCALE = 1, 16
# Largest category target dsgen accepts (config.py range check).
MAX_TARGET = 10**9

TOP_KEYS = ("base_settings", "category_targets", "format_config", "videos")
BASE_KEYS = frozenset({
    "base_frame_limit", "max_workers", "output_base_dir", "status_file", "scene_diff_threshold",
    "max_retry_attempts", "retry_skip_seconds", "min_file_size", "lr_versions", "val_percent",
    "temp_dir",
})
FORMAT_KEYS = frozenset({"gt_size", "lr_size", "probability"})
VIDEO_KEYS = frozenset({"name", "path", "categories", "priority"})

# base_settings keys with no dsgen equivalent, and why (shown to the user).
UNSUPPORTED_BASE: dict[str, str] = {
    "base_frame_limit": "dsgen has no per-video extraction count: it plans from each category's "
                        "target, split across the category's videos by duration (× weight)",
    "min_file_size": "dsgen judges frames by content, not PNG size: the quality gates in "
                     "[extraction.quality] (black, flat, texture, sharpness) replace it",
    "temp_dir": "dsgen writes temporary files next to their final names, so it needs no temp "
                "folder",
    "val_percent": "dsgen has no validation split yet; every sample goes to training (the "
                   "predecessor's Val/GT stayed empty too)",
}

# TOML: bare keys need no quotes; control characters, quotes and backslashes need escapes.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TO_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]')
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
            "\\": "\\\\"}
# A Windows path: drive letter, UNC share or backslash separators.
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:|\\\\)|\\")
_LR_VERSION = re.compile(r"\s*(?:LR_?)?(\d+)\s*(?:frames?)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ImportResult:
    """The dsgen TOML for a predecessor config, and what the user should know about it."""

    toml: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Format:
    """One [formats.<name>] table and the JSON key that first defined it."""

    width: int
    height: int
    scale: int
    dir: str
    origin: str


@dataclass(frozen=True)
class _Category:
    """One [categories.<name>] table."""

    name: str
    target: int
    path: str
    mix: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class _Video:
    """One [[videos]] table and its index in the JSON list."""

    index: int
    name: str
    path: str
    categories: tuple[tuple[str, float], ...]


_Line = tuple[str, str, str]  # TOML key, rendered value, trailing comment


def toml_string(s: str) -> str:
    """`s` as a TOML string: literal '…' for backslash paths when possible, else escaped "…"."""
    if "\\" in s and "'" not in s and not _CONTROL.search(s):
        return f"'{s}'"
    return '"' + _TO_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), s) + '"'


def toml_key(k: str) -> str:
    """`k` as a TOML key: bare when it may be, quoted otherwise."""
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def _float(x: float) -> str:
    """A finite float as TOML (repr always has a '.' or an exponent, both valid TOML)."""
    return repr(float(x))


def _inline(pairs: Iterable[tuple[str, float]]) -> str:
    """{name: weight} pairs as a TOML inline table."""
    return "{ " + ", ".join(f"{toml_key(k)} = {_float(v)}" for k, v in pairs) + " }"


def _comment(text: str) -> str:
    """`text` made safe for a TOML comment (no control characters, which would end it)."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)


def _show(value: Any) -> str:
    """A short JSON rendering of a user value, for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _span(lo: float, hi: float) -> str:
    """A fix text for a number outside [lo, hi]."""
    return f"use a value from {lo:g} to {hi:g}" if math.isfinite(hi) else f"use a value ≥ {lo:g}"


def _ranges(indices: list[int]) -> str:
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


def _is_windows(path: str) -> bool:
    """Whether `path` is written the Windows way (drive, UNC share or backslashes)."""
    return bool(_WINDOWS_PATH.search(path))


def _flavour(*paths: str) -> type[PurePath]:
    """The pure-path class that parses all of `paths` as their author meant."""
    return PureWindowsPath if any(_is_windows(p) for p in paths) else PurePosixPath


def _join(folder: str, name: str) -> str:
    """`folder`/`name`, with the separator `folder` already uses."""
    sep = "\\" if "\\" in folder else "/"
    return folder.rstrip("/\\") + sep + name


def _wide(fmt: str, first: int, second: int) -> bool:
    """Whether the smaller-first pair [first, second] of format `fmt` is 16:9 written H-first."""
    if first >= second or TALL_NAME.search(fmt):
        return False
    return fmt in WIDE_FORMATS or bool(WIDE_NAME.search(fmt)) or first * 16 == second * 9


class _Importer:
    """One conversion: checks values, collects notes, raises ConfigError with the JSON key."""

    def __init__(self, source: str) -> None:
        self.file = source
        self.notes: list[str] = []

    def fail(self, key: str, problem: str, fix: str) -> typing.NoReturn:
        """Reject the value at JSON key `key`."""
        raise ConfigError(self.file, key, problem, fix)

    def note(self, key: str, text: str) -> None:
        """Tell the user about `key` (a JSON path, or a dsgen key for new settings)."""
        self.notes.append(f"{key}: {text}")

    # -- value checks ------------------------------------------------------------------------

    def table(self, key: str, value: Any) -> dict[str, Any]:
        """`value` if it is a JSON object."""
        if not isinstance(value, dict):
            self.fail(key, f"{_show(value)} is not an object", 'write it as { "key": value, ... }')
        return value

    def require(self, body: dict[str, Any], key: str, sub: str, example: str) -> Any:
        """body[sub], which must be present."""
        if sub not in body:
            self.fail(_sub(key, sub), "missing", f"add it, e.g. {example}")
        return body[sub]

    def number(self, key: str, value: Any, lo: float, hi: float) -> float:
        """A finite JSON number in [lo, hi]."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"{_show(value)} is not a number", "write a number, e.g. 45")
        try:
            v = float(value)
        except OverflowError:
            self.fail(key, f"{_show(value)} is too large", _span(lo, hi))
        if not math.isfinite(v):
            self.fail(key, f"{_show(value)} is not a finite number", "write a finite number")
        if not lo <= v <= hi:
            self.fail(key, f"{value} is out of range", _span(lo, hi))
        return v

    def integer(self, key: str, value: Any, lo: int, hi: int) -> int:
        """A whole JSON number (3 or 3.0) in [lo, hi]."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{_show(value)} is not a whole number", "write a whole number, e.g. 3")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range", f"use a whole number from {lo} to {hi}")
        return value

    def text(self, key: str, value: Any) -> str:
        """A JSON string that TOML (UTF-8) can hold: no unpaired surrogates."""
        if not isinstance(value, str):
            self.fail(key, f"{_show(value)} is not a string", 'write it in quotes, e.g. "name"')
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
            self.fail(key, f"{_show(value)} starts with ~ but that home folder is unknown here",
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
            self.fail(key, f"{_show(path)} cannot be a folder inside the dataset",
                      f"rename the {what} (it names its folder)")

    # -- base_settings -----------------------------------------------------------------------

    def base(self, raw: Any) -> tuple[list[_Line], list[_Line]]:
        """Top-level and [extraction] lines from base_settings."""
        bs = self.table("base_settings", raw)
        top: list[_Line] = []
        ext: list[_Line] = []
        for k in bs:
            if k not in BASE_KEYS:
                self.note(f"base_settings.{k}", f"unknown key ({_show(bs[k])}); not imported")

        key = "base_settings.output_base_dir"
        out = self.text(key, self.require(bs, "base_settings", "output_base_dir",
                                          '"output_base_dir": "/srv/dataset"'))
        self.path_text(key, out)
        top.append(("output_root", toml_string(out), key))
        self.path_notes(lambda _: key, [(0, out)])
        state = _join(out, STATE_SUBDIR)
        top.append(("state_dir", toml_string(state), "new in dsgen: resume database"))
        self.note("state_dir", f"new in dsgen (its resume database); set to {toml_string(state)}, "
                  "under the output folder; move it to a local disk if that folder is a "
                  "network share")

        if "max_workers" in bs:
            self.workers(bs["max_workers"], top)
        if "status_file" in bs:
            self.status_file(bs["status_file"], out, top)

        if "scene_diff_threshold" in bs:
            key = "base_settings.scene_diff_threshold"
            v = self.number(key, bs["scene_diff_threshold"], 0.1, 255)
            ext.append(("scene_cut_threshold", _float(v), key))
            self.note(key, f"{v:g} kept as extraction.scene_cut_threshold; dsgen compares every "
                      "pair of consecutive frames of a clip (the predecessor compared only the "
                      "first with the last)")
        if "max_retry_attempts" in bs:
            key = "base_settings.max_retry_attempts"
            n = self.integer(key, bs["max_retry_attempts"], 1, 1000)
            ext.append(("max_attempts", str(n), key))
        if "retry_skip_seconds" in bs:
            self.retry_skip(bs["retry_skip_seconds"], ext)
        if "lr_versions" in bs:
            self.lr_versions(bs["lr_versions"], ext)

        for k, why in UNSUPPORTED_BASE.items():
            if k in bs:
                self.note(f"base_settings.{k}", f"{_show(bs[k])} not imported: {why}")
        return top, ext

    def path_notes(self, where: typing.Callable[[list[int]], str],
                   paths: list[tuple[int, str]]) -> None:
        """Notes for relative and Windows-style paths (kept as written), by index."""
        relative = [i for i, p in paths
                    if not _flavour(p)(p).is_absolute() and not p.startswith("~")]
        windows = [i for i, p in paths if _is_windows(p)]
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

    def workers(self, value: Any, top: list[_Line]) -> None:
        """max_workers → workers (null → 0, one per CPU core; capped at dsgen's maximum)."""
        key = "base_settings.max_workers"
        if value is None:
            n = 0
            self.note(key, "null imported as workers = 0 (one per CPU core)")
        else:
            n = self.integer(key, value, 0, 1 << 31)
            if n > MAX_WORKERS:
                self.note(key, f"{n} capped at dsgen's maximum of {MAX_WORKERS}")
                n = MAX_WORKERS
        top.append(("workers", str(n), key))

    def status_file(self, value: Any, out: str, top: list[_Line]) -> None:
        """status_file → status_file relative to output_root (dsgen keeps it there)."""
        key = "base_settings.status_file"
        status = self.text(key, value)
        flavour = _flavour(out, status)
        try:
            rel = flavour(status).relative_to(flavour(out))
        except ValueError:
            rel = None
        if rel is not None and rel.parts and ".." not in rel.parts:
            top.append(("status_file", toml_string(rel.as_posix()), key))
            self.note(key, f"inside the output folder; imported relative to output_root as "
                      f"{toml_string(rel.as_posix())}")
            return
        base = flavour(status).name
        if not base or base == "..":
            self.note(key, f"{_show(status)} names no file; dsgen's default "
                      "'.generator_status.json' under output_root is used")
            return
        top.append(("status_file", toml_string(base), key))
        self.note(key, f"{_show(status)} is outside the output folder; dsgen keeps the status "
                  f"file under output_root, so it is written to {toml_string(_join(out, base))} "
                  "instead: point your monitor there")

    def retry_skip(self, value: Any, ext: list[_Line]) -> None:
        """retry_skip_seconds → extraction.retry_skip_seconds (capped at dsgen's range)."""
        key = "base_settings.retry_skip_seconds"
        v = self.number(key, value, 0, math.inf)
        why = ("dsgen retries inside the slot's own stretch of the timeline instead of skipping "
               "ahead through the video, so the value only spaces the replacement positions "
               "within that stretch and is in effect capped by its length (dsgen's default is "
               "1 s)")
        if v > RETRY_SKIP_CAP:
            self.note(key, f"{v:g} s capped at {RETRY_SKIP_CAP:g} s: {why}")
            v = RETRY_SKIP_CAP
        else:
            self.note(key, f"{v:g} s kept: {why}")
        ext.append(("retry_skip_seconds", _float(v), key))

    def lr_versions(self, value: Any, ext: list[_Line]) -> None:
        """lr_versions ["5frames", "7frames"] → extraction.lr_stacks [5, 7]."""
        key = "base_settings.lr_versions"
        if not isinstance(value, list) or not value:
            self.fail(key, f"{_show(value)} is not a non-empty list",
                      'write e.g. ["5frames", "7frames"]')
        stacks: list[int] = []
        for i, item in enumerate(value):
            m = _LR_VERSION.fullmatch(item) if isinstance(item, str) else None
            if m:
                n = int(m[1])
            elif isinstance(item, int) and not isinstance(item, bool):
                n = item
            else:
                self.fail(f"{key}[{i}]", f"{_show(item)} is not a frame count",
                          'write it like "5frames"')
            if n < 1 or n % 2 == 0 or n > 999:
                self.fail(f"{key}[{i}]", f"{n} frames is not an odd count from 1 to 999",
                          "LR stacks are centred on the GT frame: use an odd count, e.g. 5")
            stacks.append(n)
        stacks = sorted(set(stacks))
        ext.append(("lr_stacks", "[" + ", ".join(map(str, stacks)) + "]", key))
        if stacks[-1] > PREDECESSOR_FRAMES:
            ext.append(("frames_per_clip", str(stacks[-1]), key))
            self.note(key, f"a {stacks[-1]}-frame stack needs extraction.frames_per_clip = "
                      f"{stacks[-1]} (dsgen's default is {PREDECESSOR_FRAMES}); set")

    # -- categories and formats ---------------------------------------------------------------

    def targets(self, raw: Any) -> dict[str, int]:
        """category_targets {cat: n} → {cat: target}."""
        key = "category_targets"
        if raw is None:
            self.fail(key, "missing", 'add e.g. "category_targets": {"general": 80000}')
        table = self.table(key, raw)
        if not table:
            self.fail(key, "is empty", 'add at least one category, e.g. {"general": 80000}')
        return {self.name(f"{key}.{cat}", cat): self.integer(f"{key}.{cat}", n, 0, MAX_TARGET)
                for cat, n in table.items()}

    def category_paths(self, targets: dict[str, int]) -> dict[str, str]:
        """Each category's folder: the predecessor's for known ones, else its name; no sharing."""
        owner: dict[str, str] = {}
        paths: dict[str, str] = {}
        for cat in targets:
            key = f"category_targets.{cat}"
            path = CATEGORY_DIRS.get(cat.lower(), cat)
            if path in owner:
                self.note(key, f"the predecessor's folder {toml_string(path)} is already "
                          f"category {toml_string(owner[path])}'s; given its own folder "
                          f"{toml_string(cat)} so their files cannot collide")
                path = cat
            if path in owner:
                self.fail(key, f"{_show(cat)} is already another category's folder",
                          "rename the category (it is its folder's name)")
            self.folder(key, path, "category")
            owner[path] = cat
            paths[cat] = path
        return paths

    def formats(self, raw: Any, targets: dict[str, int]
                ) -> tuple[dict[str, _Format], dict[str, tuple[tuple[str, float], ...]]]:
        """format_config → the [formats.*] tables and each category's mix."""
        fc = self.table("format_config", raw) if raw is not None else {}
        for cat in fc:
            if cat not in targets:
                self.note(f"format_config.{cat}", "has no category_targets entry, so the "
                          "predecessor never used it; not imported")
        formats: dict[str, _Format] = {}
        mixes: dict[str, tuple[tuple[str, float], ...]] = {}
        for cat in targets:
            key = f"format_config.{cat}"
            if cat not in fc:
                self.fail(key, "missing: the category has a target but no formats",
                          f'add "{cat}": {{"small_540": {{"gt_size": 540, "lr_size": 180, '
                          f'"probability": 1.0}}}} or remove category_targets.{cat}')
            mix: list[tuple[str, float]] = []
            for fmt, spec in self.table(key, fc[cat]).items():
                fkey = f"{key}.{fmt}"
                self.name(fkey, fmt)
                body = self.table(fkey, spec)
                for k in body:
                    if k not in FORMAT_KEYS:
                        self.note(f"{fkey}.{k}", f"unknown key ({_show(body[k])}); not imported")
                w, h, scale = self.size(fkey, fmt, body)
                seen = formats.get(fmt)
                if seen is None:
                    folder = FORMAT_DIRS.get(fmt, fmt)
                    self.folder(fkey, folder, "format")
                    formats[fmt] = _Format(w, h, scale, folder, fkey)
                elif (seen.width, seen.height, seen.scale) != (w, h, scale):
                    self.fail(f"{fkey}.gt_size",
                              f"{fmt} is {w}×{h} ×{scale} here but {seen.width}×{seen.height} "
                              f"×{seen.scale} at {seen.origin}",
                              f"give {fmt} one size everywhere, or rename one of them (dsgen "
                              "has one [formats.<name>] table per name)")
                p = self.number(f"{fkey}.probability",
                                self.require(body, fkey, "probability", '"probability": 0.5'),
                                0, math.inf)
                if p == 0:
                    self.note(f"{fkey}.probability", "is 0 (never picked); left out of the "
                              "category's mix")
                    continue
                mix.append((fmt, p))
            if not mix:
                self.fail(key, "has no format with a probability > 0",
                          "give at least one of its formats a probability > 0")
            mixes[cat] = tuple(mix)
        return formats, mixes

    def pair(self, key: str, value: Any) -> tuple[int, int]:
        """A size: an int (square) or a two-number list, as written."""
        if isinstance(value, list):
            if len(value) != 2:
                self.fail(key, f"{_show(value)} is not [width, height]",
                          "write two numbers, e.g. [720, 405], or one for a square")
            return (self.integer(f"{key}[0]", value[0], 1, 1 << 31),
                    self.integer(f"{key}[1]", value[1], 1, 1 << 31))
        n = self.integer(key, value, 1, 1 << 31)
        return n, n

    def size(self, fkey: str, fmt: str, body: dict[str, Any]) -> tuple[int, int, int]:
        """GT width, height and LR scale of one format entry, 16:9 pairs turned width-first."""
        gkey, lkey = f"{fkey}.gt_size", f"{fkey}.lr_size"
        gw, gh = self.pair(gkey, self.require(body, fkey, "gt_size", '"gt_size": [720, 405]'))
        if _wide(fmt, gw, gh):
            self.note(gkey, f"[{gw}, {gh}] is a 16:9 size written height-first; imported as "
                      f"width {gh}, height {gw}")
            gw, gh = gh, gw
        elif gw < gh:
            self.note(gkey, f"[{gw}, {gh}] imported as written: width {gw}, height {gh} (tall); "
                      "swap it if it was meant height-first")
        if "lr_size" in body:
            lw, lh = self.pair(lkey, body["lr_size"])
            if lw != lh and gw != gh and (lw < lh) != (gw < gh):
                self.note(lkey, f"[{lw}, {lh}] is written height-first; imported as width {lh}, "
                          f"height {lw} to match gt_size")
                lw, lh = lh, lw
        else:
            lw, lh = gw // PREDECESSOR_SCALE, gh // PREDECESSOR_SCALE
            self.note(lkey, f"missing; the predecessor's ×{PREDECESSOR_SCALE} is assumed")
        if min(lw, lh) < 1 or gw % lw or gh % lh or gw // lw != gh // lh:
            self.fail(lkey, f"GT {gw}×{gh} over LR {lw}×{lh} is not one whole-number scale on "
                      "both axes",
                      "dsgen needs LR = GT / scale with the same integer scale for width and "
                      f"height, e.g. lr_size [{gw // PREDECESSOR_SCALE}, "
                      f"{gh // PREDECESSOR_SCALE}] for ×{PREDECESSOR_SCALE}")
        scale = gw // lw
        if not MIN_SCALE <= scale <= MAX_SCALE:
            self.fail(lkey, f"scale ×{scale} is out of range",
                      f"use a scale from {MIN_SCALE} to {MAX_SCALE}")
        for side, v in (("width", gw), ("height", gh)):
            if not MIN_SIDE <= v <= MAX_SIDE:
                self.fail(gkey, f"{side} {v} is out of range",
                          f"use {MIN_SIDE} to {MAX_SIDE} pixels")
        return gw, gh, scale

    # -- videos -------------------------------------------------------------------------------

    def videos(self, raw: Any, targets: dict[str, int]) -> list[_Video]:
        """videos[] → [[videos]] with unique names; priority and unknown keys noted."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail("videos", f"{_show(raw)} is not a list", 'write "videos": [{...}, ...]')
        unknown: dict[str, list[int]] = {}
        priority: list[int] = []
        reweighted: list[int] = []
        out: list[_Video] = []
        for i, item in enumerate(raw):
            key = f"videos[{i}]"
            body = self.table(key, item)
            for k in body:
                if k == "priority":
                    priority.append(i)
                elif k not in VIDEO_KEYS:
                    unknown.setdefault(k, []).append(i)
            path = self.text(f"{key}.path",
                             self.require(body, key, "path", '"path": "/videos/film.mkv"'))
            self.path_text(f"{key}.path", path)
            name = self.text(f"{key}.name", body.get("name", ""))
            if not name.strip():
                name = _flavour(path)(path).stem or path
                self.note(f"{key}.name", f"missing or empty; named {toml_string(name)} after "
                          "its file")
            cats = self.video_categories(key, body, targets)
            if not cats:
                self.note(key, "feeds no category (no weight > 0); not imported")
                continue
            if any(w != 1.0 for _, w in cats):
                reweighted.append(i)
            out.append(_Video(i, name, path, cats))
        self.path_notes(lambda idx: f"videos[{_ranges(idx)}].path",
                        [(v.index, v.path) for v in out])
        for k, idx in unknown.items():
            self.note(f"videos[{_ranges(idx)}].{k}", "unknown key; not imported")
        if priority:
            self.note(f"videos[{_ranges(priority)}].priority", "not imported: dsgen has no "
                      "priority; the videos keep the file's order")
        if reweighted:
            self.note(f"videos[{_ranges(reweighted)}].categories", "weights imported unchanged, "
                      "but their meaning changed: the predecessor multiplied the video's "
                      "extraction count by their sum, dsgen scales the video's share of each "
                      "category's target by them")
        return self.unique_names(out)

    def video_categories(self, key: str, body: dict[str, Any], targets: dict[str, int]
                         ) -> tuple[tuple[str, float], ...]:
        """A video's {category: weight} (a list means weight 1 each), zero weights dropped."""
        ckey = f"{key}.categories"
        value = self.require(body, key, "categories", '"categories": {"general": 1.0}')
        if isinstance(value, list):
            value = {self.text(f"{ckey}[{j}]", c): 1.0 for j, c in enumerate(value)}
        out: list[tuple[str, float]] = []
        for cat, weight in self.table(ckey, value).items():
            if cat not in targets:
                close = difflib.get_close_matches(cat, list(targets), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"{ckey}.{cat}", "is not in category_targets",
                          f"add it to category_targets and format_config, or fix the name{hint}")
            w = self.number(f"{ckey}.{cat}", weight, 0, math.inf)
            if w == 0:
                self.note(f"{ckey}.{cat}", "weight 0 (feeds nothing); left out")
                continue
            out.append((cat, w))
        return tuple(out)

    def unique_names(self, videos: list[_Video]) -> list[_Video]:
        """Videos with duplicate names renamed 'name (2)', 'name (3)', … (dsgen needs unique)."""
        taken = {v.name for v in videos}
        first: dict[str, int] = {}
        out: list[_Video] = []
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


def _render(source: str, on: datetime.date, notes: list[str], top: list[_Line],
            ext: list[_Line], formats: dict[str, _Format], categories: list[_Category],
            videos: list[_Video]) -> str:
    """The TOML document: header, top-level keys, [extraction], formats, categories, videos."""
    def pad(text: str, comment: str) -> str:
        return f"{text:<36} # {_comment(comment)}"

    def from_(k: str, v: str, origin: str) -> str:
        return pad(f"{k} = {v}", origin if origin.startswith("new") else f"from {origin}")

    out = [
        f"# dsgen configuration imported from {_comment(toml_string(source))} (Dataset "
        f"Generator v2.0 JSON) by `dsgen config import` on {on.isoformat()}.",
        "# Keys not written here take dsgen's defaults (see etc/dsgen.toml). Check this file "
        "with: dsgen config check <file>",
    ]
    if notes:
        out += ["#", "# Import notes:"] + [f"#   - {_comment(n)}" for n in notes]
    out += [""] + [from_(*t) for t in top]
    out += ["", "[extraction]"] + [from_(*t) for t in ext]
    for name, f in formats.items():
        out += ["", pad(f"[formats.{toml_key(name)}]", f"from {f.origin}"),
                f"width = {f.width}", f"height = {f.height}", f"scale = {f.scale}",
                f"dir = {toml_string(f.dir)}"]
    for c in categories:
        out += ["", f"[categories.{toml_key(c.name)}]", f"target = {c.target}",
                f"path = {toml_string(c.path)}", f"formats = {_inline(c.mix)}"]
    for v in videos:
        out += ["", "[[videos]]", f"name = {toml_string(v.name)}", f"path = {toml_string(v.path)}",
                f"categories = {_inline(v.categories)}"]
    return "\n".join(out) + "\n"


def import_predecessor(raw: dict[str, Any], source: str, *,
                       today: datetime.date | None = None) -> ImportResult:
    """Convert a parsed predecessor JSON config (from `source`) into checked dsgen TOML."""
    imp = _Importer(source)
    root = imp.table("(top level)", raw)
    for k in root:
        if k not in TOP_KEYS:
            imp.note(k, f"unknown top-level key ({_show(root[k])}); not imported")
    top, ext = imp.base(imp.require(root, "", "base_settings",
                                    '"base_settings": {"output_base_dir": "/srv/dataset"}'))
    targets = imp.targets(root.get("category_targets"))
    paths = imp.category_paths(targets)
    formats, mixes = imp.formats(root.get("format_config"), targets)
    categories = [_Category(c, n, paths[c], mixes[c]) for c, n in targets.items()]
    videos = imp.videos(root.get("videos"), targets)
    text = _render(source, today or datetime.date.today(), imp.notes, top, ext, formats,
                   categories, videos)
    try:  # the promise to the user: what we print loads as a dsgen config
        config_from_dict(tomllib.loads(text), Path("dsgen.toml"))
    except (tomllib.TOMLDecodeError, ConfigError) as e:
        key = e.key if isinstance(e, ConfigError) else "(import)"
        raise ConfigError(source, key, f"the imported TOML does not load: {e}",
                          "this is a dsgen bug: please report it with the JSON file") from e
    return ImportResult(text, tuple(imp.notes))


def import_file(path: Path) -> ImportResult:
    """Read the predecessor's JSON config at `path` and convert it."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows add a BOM
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "not found",
                          "pass the predecessor's generator_config.json") from None
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
        raise ConfigError(file, "(top level)", f"{_show(raw)} is not a JSON object",
                          "pass the predecessor's generator_config.json")
    result = import_predecessor(raw, file)
    if not duplicates:
        return result
    where = _object_paths(raw)
    notes = tuple(f"{_sub(where.get(id(obj), '?'), k)}: given more than once; the last value is "
                  "used, as the predecessor did" for obj, k in duplicates)
    return replace(result, notes=notes + result.notes)


def _sub(prefix: str, key: str) -> str:
    """The JSON path of `key` inside the object at `prefix`."""
    return f"{prefix}.{key}" if prefix else key


def _object_paths(value: Any, prefix: str = "") -> dict[int, str]:
    """id() of every JSON object in `value` → its JSON path (for duplicate-key notes)."""
    found: dict[int, str] = {}
    if isinstance(value, dict):
        found[id(value)] = prefix
        for k, v in value.items():
            found.update(_object_paths(v, _sub(prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.update(_object_paths(v, f"{prefix}[{i}]"))
    return found
