"""Writing samples: output layouts, atomic files (temp name, then rename), dataset descriptions."""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import deflate
import numpy as np

from dsgen.config import CategoryCfg, Config, FormatCfg
from dsgen.degrade_config import NONE, stage_dict
from dsgen.model import TRAIN, VAL

# Files per bucket folder of datasets written before bucket folders became opt-in: every
# video had its own folder, split every 10,000 slots (dsgen migrate reads this layout).
BUCKET_FILES = 10_000
# Temporary files live here, on the output filesystem, so a rename is atomic and
# anything left by a crash is removed by deleting one folder.
TMP_DIR = ".dsgen-tmp"
DATASET_JSON = "dataset.json"
META_INFO = "meta_info.txt"
META_INFO_VAL = "meta_info_val.txt"  # BasicSR's validation list, in the validation folder
# A hard link that fails with one of these falls back to a copy (FAT/exFAT, some SMB/NFS
# servers, a link count at its limit): the alias still reads the same bytes.
NO_LINK_ERRNOS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                  errno.ENOSYS)
# Folder suffix of the clean LR written beside degraded LR (extraction.write_clean_lr).
CLEAN_SUFFIX = "_clean"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {1: 0, 3: 2}  # channels → PNG colour type: greyscale, truecolour
PNG_FILTER_UP = 2  # each byte minus the one above: one numpy subtraction, compresses well

_counter = itertools.count()


class DiskFull(Exception):
    """The output filesystem is full; nothing half-written was left under a final name."""


def sample_name(slug: str, slot_id: int) -> str:
    """File stem of a sample: the predecessor's `patch_<video>_idx<n>`, stable across runs."""
    return f"patch_{slug}_idx{slot_id:06d}"


def bucket(slug: str, slot_id: int, size: int = BUCKET_FILES) -> str:
    """Bucket folder of a sample: per video, split every `size` slots."""
    part = slot_id // size
    return slug if part == 0 else f"{slug}-{part}"


def stack_dir(k: int) -> str:
    """Folder of the k-frame LR stacks."""
    return f"LR_{k}frames"


@dataclass(frozen=True)
class PathScheme:
    """How sample files are named inside a layout: bucket folders and LR aliases.

    Stored in the state (`meta.paths`) with the first sample; a config asking for another
    scheme is refused until `dsgen migrate` moved the files.
    """

    bucket_size: int = 0  # 0: flat folders
    aliases: tuple[tuple[str, int], ...] = ()  # (folder name, stack size): hard links

    @classmethod
    def of(cls, cfg: Config) -> PathScheme:
        """The scheme a config asks for (basicsr: always one folder per clip, no aliases)."""
        return cls(cfg.bucket_size, cfg.lr_aliases) if cfg.layout == "stacked" else cls()

    def to_json(self) -> str:
        """For the state's meta table."""
        return json.dumps({"bucket_size": self.bucket_size,
                           "lr_aliases": {n: k for n, k in self.aliases}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PathScheme:
        """Read back `to_json`."""
        d = json.loads(text)
        return cls(int(d["bucket_size"]), tuple((str(n), int(k))
                                                for n, k in d["lr_aliases"].items()))

    def describe(self) -> str:
        """For messages: `bucket_size = 0, lr_aliases = { LR = 5 }`."""
        aliases = ", ".join(f"{n} = {k}" for n, k in self.aliases)
        table = f"{{ {aliases} }}" if aliases else "{}"
        return f"bucket_size = {self.bucket_size}, lr_aliases = {table}"


# What datasets written before PathScheme existed used: a folder per video, no aliases.
LEGACY_SCHEME = PathScheme(BUCKET_FILES, ())


def format_root(cfg: Config, cat: CategoryCfg, fmt: FormatCfg) -> Path:
    """Folder of one category's format: `<root>/<category path>/<format dir>`."""
    return cfg.output_root / cat.path / fmt.dir


def split_root(cfg: Config, cat: CategoryCfg, fmt: FormatCfg, split: str) -> Path:
    """Folder of a sample: the format's folder for training, `<category path>/Val` (the
    category's `validation.dir`) for validation, where the predecessor's trainers look."""
    if split == VAL:
        return cfg.output_root / cat.path / cat.validation.dir
    return format_root(cfg, cat, fmt)


def sample_files(cfg: Config, cat: CategoryCfg, fmt: FormatCfg, slug: str, slot_id: int,
                 split: str = TRAIN, scheme: PathScheme | None = None) -> list[Path]:
    """Every file of one sample, in a fixed order (what `extract._layout_images` produces):
    GT, the LR stacks (or frames), then with `write_clean_lr` the clean LR ones. LR aliases
    are not files of their own (`alias_paths`)."""
    root = split_root(cfg, cat, fmt, split)
    name = sample_name(slug, slot_id)
    suffixes = ["", CLEAN_SUFFIX] if cfg.extraction.write_clean_lr else [""]
    if cfg.layout == "stacked":
        size = (scheme or PathScheme.of(cfg)).bucket_size
        sub = Path(bucket(slug, slot_id, size)) if size else Path()
        dirs = ["GT", *[stack_dir(k) + s for s in suffixes for k in cfg.extraction.lr_stacks]]
        return [root / d / sub / f"{name}.png" for d in dirs]
    n = cfg.extraction.frames_per_clip
    seq = f"{slot_id:06d}"
    return [root / kind / slug / seq / f"im{i}.png"
            for kind in ("GT", *[f"LR{s}" for s in suffixes]) for i in range(1, n + 1)]


def alias_paths(scheme: PathScheme, files: Iterable[str]) -> list[tuple[str, str]]:
    """(alias, file) pairs of a stacked sample's files (paths relative to output_root): each
    alias is the k-frame stack's path with its `LR_<k>frames` folder renamed."""
    out = []
    for rel in files:
        parts = Path(rel).parts
        for name, k in scheme.aliases:
            d = stack_dir(k)
            if d in parts[:-1]:
                i = len(parts) - 1 - parts[::-1].index(d)  # the last such folder
                out.append((str(Path(*parts[:i], name, *parts[i + 1:])), rel))
    return out


def tmp_dir(cfg: Config) -> Path:
    """Where files are written before they are renamed into place."""
    return cfg.output_root / TMP_DIR


def encode_png(image: np.ndarray, level: int) -> bytes:
    """PNG bytes of an 8-bit RGB (or grey) image: "Up" filter, deflate by libdeflate at `level`.

    3× faster than Pillow's encoder at the same level with files no larger (measured in
    bench/bench_png.py): PNG encoding is the largest cost after decoding at 1080p.
    """
    if image.ndim == 2:
        image = image[..., None]
    h, w, c = image.shape
    if c not in PNG_COLOUR_TYPES:
        raise ValueError(f"{c} channels: dsgen writes grey or RGB PNGs")
    rows = np.ascontiguousarray(image, dtype=np.uint8).reshape(h, w * c)
    filtered = np.empty((h, w * c + 1), dtype=np.uint8)
    filtered[:, 0] = PNG_FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps mod 256, as PNG wants
    idat = bytes(deflate.zlib_compress(filtered.tobytes(), max(level, 0)))
    header = struct.pack(">IIBBBBB", w, h, 8, PNG_COLOUR_TYPES[c], 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", idat),
                     _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(final: Path, image: np.ndarray | bytes, level: int, tmp: Path) -> int:
    """Write `image` (array, or PNG bytes from `encode_png`) under a temporary name, then
    rename it to `final`; return its size.

    Any failure leaves no temporary file and nothing new under `final` (an existing file
    there keeps its old content); a full disk (ENOSPC/EDQUOT, even while creating a folder)
    is raised as DiskFull.
    """
    data = image if isinstance(image, bytes) else encode_png(image, level)
    part = tmp / f"{os.getpid()}-{next(_counter)}.png"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
    except OSError as e:
        part.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(final)) from None
        raise
    return len(data)


def remove_files(paths: Iterable[Path]) -> None:
    """Delete files that may or may not exist (rolling back an unrecorded sample)."""
    for p in paths:
        p.unlink(missing_ok=True)


def clear_tmp(cfg: Config) -> int:
    """Remove leftovers of interrupted writes; return how many there were (folders, which
    dsgen never makes there, are left alone)."""
    d = tmp_dir(cfg)
    if not d.is_dir():
        return 0
    n = 0
    for p in d.iterdir():
        if p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)
            n += 1
    return n


# `write_text_atomic`'s temporary names: `.<name>.<pid>.part`.
PART_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.part$")


def remove_stale_parts(cfg: Config) -> int:
    """Remove `write_text_atomic` leftovers (status file, dataset.json, meta_info.txt) of
    processes that died before their rename; return how many. A part of another live
    process is kept: it is about to be renamed."""
    folders = {cfg.output_root, cfg.status_path.parent}
    for cat in cfg.categories:
        folders.add(cfg.output_root / cat.path)
        for fmt_name, _ in cat.formats:
            folders.add(format_root(cfg, cat, cfg.format(fmt_name)))
    n = 0
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = PART_RE.match(name)
            if m is None or _pid_alive(int(m["pid"])):
                continue
            try:
                (folder / name).unlink()
                n += 1
            except OSError:
                continue
    return n


def _pid_alive(pid: int) -> bool:
    """Another live process (ours writes no part before start-up ends: a part with our PID,
    as a restarted container gives, is stale)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def dataset_description(cfg: Config, cat: CategoryCfg) -> dict[str, object]:
    """What a trainer needs to read a category: formats, scale, frames, layout (no timestamps)."""
    e = cfg.extraction
    formats = {}
    for name, weight in cat.formats:
        f = cfg.format(name)
        formats[name] = {
            "dir": f.dir, "gt_size": [f.width, f.height], "lr_size": list(f.lr_size),
            "scale": f.scale, "mode": f.mode, "weight": weight,
        }
    desc: dict[str, object] = {
        "generator": "dsgen", "category": cat.name, "target": cat.target,
        "layout": cfg.layout, "frames_per_clip": e.frames_per_clip,
        "gt_frame": e.frames_per_clip // 2 + 1, "lr_filter": e.lr_filter,
        "colour": "8-bit sRGB-range RGB, BT.709 (HDR sources tone-mapped)",
        "formats": formats, "seed": cfg.seed,
    }
    if cfg.layout == "stacked":
        desc["lr_stacks"] = {stack_dir(k): {"frames": k, "stacking": "vertical",
                                            "first_frame": (e.frames_per_clip - k) // 2 + 1}
                             for k in e.lr_stacks}
        desc["lr_aliases"] = {n: stack_dir(k) for n, k in cfg.lr_aliases}
        sub = "<bucket>/" if cfg.bucket_size else ""
        desc["paths"] = f"<format dir>/{{GT,LR_<k>frames,<alias>}}/{sub}<name>.png"
        if cfg.bucket_size:
            desc["bucket"] = f"<video>, <video>-1, …: {cfg.bucket_size} samples per folder"
    else:
        desc["paths"] = f"<format dir>/{{GT,LR}}/<clip>/<seq>/im1..im{e.frames_per_clip}.png"
        desc["meta_info"] = f"<format dir>/{META_INFO}"
    v = cat.validation
    if cat.val_target:
        desc["validation"] = {
            "dir": v.dir, "samples": cat.val_target, "formats": dict(cat.val_formats),
            "from": ({"held_out_videos": list(v.videos)} if v.videos else
                     {"held_out_time_ranges": True, "guard_seconds": v.guard_seconds}),
            **({"meta_info": f"{v.dir}/{META_INFO_VAL}"} if cfg.layout == "basicsr" else {}),
        }
    degradations = _degradations(cfg, cat)
    if degradations:  # absent for clean-only categories: their dataset.json stays as it was
        desc["degradations"] = degradations
    return desc


def _degradations(cfg: Config, cat: CategoryCfg) -> dict[str, object] | None:
    """Which degradations the LR folders of a category hold (per format), the templates'
    stages, and where the clean LR is when it is written too."""
    mixes = {name: dict(cat.degradation_mix(name)) for name, _ in cat.formats}
    used = sorted({t for mix in mixes.values() for t, w in mix.items() if w > 0} - {NONE})
    if not used and not cfg.extraction.write_clean_lr:
        return None
    out: dict[str, object] = {
        "lr": "each sample's LR frames are degraded by one template drawn from its format's "
              "mix (weights below; none = clean LR); per-sample template and parameters: "
              "dsgen manifest",
        "mix": mixes,
        "templates": {t: {"description": cfg.degradation(t).description,
                          "stages": [stage_dict(s) for s in cfg.degradation(t).stages]}
                      for t in used},
    }
    if cfg.extraction.write_clean_lr:
        out["clean_lr"] = ([f"LR_{k}frames{CLEAN_SUFFIX}" for k in cfg.extraction.lr_stacks]
                           if cfg.layout == "stacked" else [f"LR{CLEAN_SUFFIX}"])
    return out


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


def write_descriptions(cfg: Config) -> None:
    """`dataset.json` at each category root."""
    for cat in cfg.categories:
        text = json.dumps(dataset_description(cfg, cat), indent=2, sort_keys=True) + "\n"
        write_text_atomic(cfg.output_root / cat.path / DATASET_JSON, text)


def write_meta_info(cfg: Config, rows: Iterable[tuple[str, str, str, int, str]]) -> None:
    """BasicSR meta_info: `<clip>/<seq> <n> (H,W,3)` lines, sorted, per category format for
    training (`<format dir>/meta_info.txt`) and per category for validation
    (`<validation dir>/meta_info_val.txt`). Rows: (category, format, slug, slot, split)."""
    lines: dict[tuple[str, str | None], list[str]] = {}  # (category, format | None = val)
    n = cfg.extraction.frames_per_clip
    fmts = {f.name: f for f in cfg.formats}
    for cat_name, fmt_name, slug, slot_id, split in rows:
        f = fmts.get(fmt_name)
        if f is not None:
            lines.setdefault((cat_name, fmt_name if split == TRAIN else None), []).append(
                f"{slug}/{slot_id:06d} {n} ({f.height},{f.width},3)")
    for cat in cfg.categories:
        files: dict[str | None, Path] = {
            fmt_name: format_root(cfg, cat, cfg.format(fmt_name)) / META_INFO
            for fmt_name, _ in cat.formats}
        files[None] = cfg.output_root / cat.path / cat.validation.dir / META_INFO_VAL
        for group, path in files.items():
            body = sorted(lines.get((cat.name, group), []))
            if body or path.exists():
                write_text_atomic(path, "".join(line + "\n" for line in body))


def link_file(target: Path, final: Path, tmp: Path) -> bool:
    """Make `final` another name of `target` (a hard link, atomically renamed into place);
    where the filesystem has no hard links, a copy. True if it had to copy."""
    part = tmp / f"{os.getpid()}-{next(_counter)}.png"
    copied = False
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            os.link(target, part)
        except OSError as e:
            if e.errno not in NO_LINK_ERRNOS:
                raise
            shutil.copyfile(target, part)
            copied = True
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
    except OSError as e:
        part.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(final)) from None
        raise
    return copied


def write_sample(cfg: Config, files: Iterable[tuple[str, bytes]],
                 aliases: Iterable[tuple[str, str]] = ()) -> int:
    """Write a sample's encoded files (paths relative to output_root) under their final names,
    then its aliases (alias, file) as hard links; return how many aliases had to be copies.

    Each goes through a temporary name and a rename; if any fails, the ones this call
    already wrote are removed, so a sample is on disk whole or not at all (DiskFull on a
    full disk, the OSError otherwise).
    """
    tmp = tmp_dir(cfg)
    done: list[Path] = []
    copies = 0
    try:
        for rel, data in files:
            final = cfg.output_root / rel
            write_png(final, data, cfg.png_compression, tmp)
            done.append(final)
        for alias, rel in aliases:
            final = cfg.output_root / alias
            copies += link_file(cfg.output_root / rel, final, tmp)
            done.append(final)
    except BaseException:
        remove_files(done)
        raise
    return copies
