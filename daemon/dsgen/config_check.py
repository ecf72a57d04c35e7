"""Config checks every section shares: the error context, typed keys, weight mixes, ranges, and
the names, paths and addresses the filesystem and the network accept.

Imports nothing from `config.py`: `config.py` and `config_sections.py` build on it.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import ipaddress
import math
import os
import re
import stat
import typing
from pathlib import Path
from typing import Any, Literal

from dsgen.errors import ConfigError

# Longest name of one file or folder (NAME_MAX, bytes) and of a whole path (PATH_MAX, bytes
# with the final NUL) that Linux filesystems accept.
NAME_MAX = 255
PATH_MAX = 4096
# Names dsgen keeps for itself at the top of output_root (writer.TMP_DIR).
RESERVED_TOP = (".dsgen-tmp",)


class ConfigCtx:
    """Where we are in the TOML file, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, problem: str, fix: str) -> typing.NoReturn:
        """Raise the ConfigError naming this file, `key`, the problem and its fix."""
        raise ConfigError(self.file, key, problem, fix)


def suggest(name: str, options: typing.Iterable[str]) -> str:
    """' (did you mean ...?)' with the closest of `options`, or nothing."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def key_path(prefix: str, key: object) -> str:
    """`prefix.key` for messages, the key quoted as TOML does when it is not a bare key."""
    text = str(key)
    shown = text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else repr(text)
    return f"{prefix}.{shown}" if prefix else shown


def coerce(ctx: ConfigCtx, key: str, value: Any, hint: Any) -> Any:
    """Check `value` against the annotation `hint`; return it converted."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            ctx.fail(key, f"{value!r} is not allowed",
                     "use one of: " + ", ".join(map(str, allowed))
                     + (suggest(value, map(str, allowed)) if isinstance(value, str) else ""))
        return value
    if hint is bool:
        if not isinstance(value, bool):
            ctx.fail(key, f"{value!r} is not a boolean", "write true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(key, f"{value!r} is not an integer", "write a whole number, e.g. 3")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            ctx.fail(key, f"{value!r} is not a number", "write a number, e.g. 0.5")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            ctx.fail(key, f"{value!r} is not a string", 'quote it, e.g. "name"')
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            ctx.fail(key, f"{value!r} is not a path", 'write a path string, e.g. "/srv/data"')
        check_path_text(ctx, key, value)
        try:
            return Path(value).expanduser()
        except RuntimeError:
            ctx.fail(key, f"{value!r}: '~user' names no known user", "write the full path")
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        inner = typing.get_args(hint)[0]
        if not isinstance(value, list):
            ctx.fail(key, f"{value!r} is not a list", "write a list, e.g. [5, 7]")
        return tuple(coerce(ctx, f"{key}[{i}]", v, inner) for i, v in enumerate(value))
    raise AssertionError(f"unsupported annotation {hint!r}")  # a programming error, not user input


_HINTS: dict[type[Any], dict[str, Any]] = {}


def field_hints(cls: type[Any]) -> dict[str, Any]:
    """A config dataclass's field types (resolved once: a 500-video config builds 500)."""
    got = _HINTS.get(cls)
    if got is None:
        got = _HINTS[cls] = typing.get_type_hints(cls)
    return got


def read_table(ctx: ConfigCtx, cls: type[Any], table: Any, prefix: str, skip: set[str],
               hidden: dict[str, str] | None = None) -> dict[str, Any]:
    """Read the scalar keys of dataclass `cls` from `table`; reject unknown keys.

    `skip` keys are valid but read by the caller; `hidden` fields are not user keys (key →
    the fix to tell a user who writes one anyway) and are never suggested.
    """
    if not isinstance(table, dict):
        ctx.fail(prefix, f"{table!r} is not a table", f"write it as [{prefix}]")
    hidden = hidden or {}
    hints = field_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - set(hidden)
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = key_path(prefix, key)
        if key in skip:
            continue
        if key in hidden:
            ctx.fail(full, "unknown key", hidden[key])
        if key not in names or dataclasses.is_dataclass(hints[key]):
            ctx.fail(full, "unknown key", "remove it or fix its spelling" + suggest(key, names))
        out[key] = coerce(ctx, full, value, hints[key])
    return out


def read_weights(
    ctx: ConfigCtx, key: str, value: Any, known: set[str], what: str, section: str
) -> tuple[tuple[str, float], ...]:
    """A list of names (weight 1) or a {name: weight} table, checked against `known`."""
    if isinstance(value, list):
        for i, name in enumerate(value):
            if not isinstance(name, str):
                ctx.fail(f"{key}[{i}]", f"{name!r} is not a {what} name",
                         f'write names as strings, e.g. ["{next(iter(sorted(known)), what)}"]')
    table = dict.fromkeys(value, 1.0) if isinstance(value, list) else value
    if not isinstance(table, dict) or not table:
        ctx.fail(key, f"{value!r} is not a non-empty list or table",
                 f"write e.g. {{ some_{what} = 1.0 }}")
    out = []
    for name, weight in table.items():
        if not isinstance(name, str) or name not in known:
            ctx.fail(key_path(key, name), f"unknown {what} {name!r}",
                     f"define [{section}.{name}] first" + suggest(str(name), known))
        w = coerce(ctx, key_path(key, name), weight, float)
        if not 0 < w < math.inf:  # also rejects nan
            ctx.fail(key_path(key, name), f"weight {w} is not a positive finite number",
                     "use a weight > 0 or remove it")
        out.append((name, w))
    return tuple(out)


def resolve_path(base: Path, p: Path) -> Path:
    """`p` relative to the config file's folder `base` unless it is absolute."""
    return p if p.is_absolute() else (base / p)


def check_range(ctx: ConfigCtx, key: str, value: float, lo: float, hi: float) -> None:
    """`lo` ≤ `value` ≤ `hi`."""
    if not lo <= value <= hi:  # also rejects nan
        ctx.fail(key, f"{value} is out of range", f"use a value from {lo} to {hi}")


def check_folder(ctx: ConfigCtx, key: str, value: str, root: str, example: str) -> None:
    """A non-empty relative path that stays below `root` (no absolute path, no '..'), made
    of names the filesystem accepts, not one dsgen keeps for itself at the top of the root."""
    p = Path(value)
    if not p.parts or p.is_absolute() or ".." in p.parts:
        ctx.fail(key, f"{value!r} is not a relative path inside {root}",
                 f"use a plain relative path: {example}")
    check_path_text(ctx, key, value)
    if any(ord(ch) < 32 for ch in value):
        ctx.fail(key, f"{value!r} contains a control character",
                 f"use printable characters only: {example}")
    if root == "the output root" and p.parts[0] in RESERVED_TOP:
        ctx.fail(key, f"{value!r} is inside {p.parts[0]}, dsgen's own temporary folder",
                 f"choose another folder: {example}")


def check_path_text(ctx: ConfigCtx, key: str, value: str) -> None:
    """A path the kernel can take at all: no NUL byte, no name above NAME_MAX, below PATH_MAX."""
    if "\x00" in value:
        ctx.fail(key, f"{value!r} contains a NUL byte", "remove the \\u0000 from the path")
    raw = os.fsencode(value)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        ctx.fail(key, f"{value[:60]!r}… has a name of {longest} bytes; the filesystem allows "
                 f"{NAME_MAX}", "shorten that file or folder name")
    if len(raw) >= PATH_MAX:
        ctx.fail(key, f"{value[:60]!r}… is {len(raw)} bytes long; paths must stay below "
                 f"{PATH_MAX}", "use a shorter path")


def check_folder_target(ctx: ConfigCtx, key: str, path: Path) -> None:
    """A folder dsgen creates when needed: it, or what exists of its parents, is a folder."""
    p = path
    while True:
        try:
            mode = os.stat(p).st_mode
        except (FileNotFoundError, NotADirectoryError):
            if p.parent == p:
                return
            p = p.parent
            continue
        except OSError as e:  # no permission to look: `run` says what it cannot create
            if e.errno in (errno.EACCES, errno.EPERM):
                return
            ctx.fail(key, f"{str(path)!r} cannot be used: {e.strerror}", "use another folder")
        if not stat.S_ISDIR(mode):
            what = "is a file" if p == path else f"is inside {str(p)!r}, which is a file"
            ctx.fail(key, f"{str(path)!r} {what}, not a folder",
                     "point it at a folder (it is created if missing)")
        return


def check_address(ctx: ConfigCtx, key: str, address: str) -> None:
    """An IP address or a host name that resolves can be tried (RFC 1123 labels)."""
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    try:
        ascii_name = address.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.rstrip(".").split(".")
    if not ascii_name or len(ascii_name) > 253 or not all(
            re.fullmatch(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", label) for label in labels):
        ctx.fail(key, f"{address!r} is neither an IP address nor a host name",
                 'use e.g. "127.0.0.1" (this machine only), "0.0.0.0" or "::" (every '
                 "interface), or a host name")
