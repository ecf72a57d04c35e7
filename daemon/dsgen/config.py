"""Config: one frozen, typed tree built from TOML by `load_config`; defaults live here only."""

from __future__ import annotations

import dataclasses
import difflib
import errno
import hashlib
import ipaddress
import math
import os
import re
import stat
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    NONE,
    DegradationCfg,
    Weights,
    load_mix,
    load_templates,
    missing_codecs,
)
from dsgen.errors import ConfigError

Layout = Literal["stacked", "basicsr"]
SourceMode = Literal["crop", "resize"]
LrFilter = Literal["area", "bicubic", "lanczos"]
LogFormat = Literal["json", "console"]
ExecutorKind = Literal["local", "dask"]


@dataclass(frozen=True)
class FormatCfg:
    """A named patch template: GT size, LR scale, output folder and how the GT is cut."""

    name: str
    width: int
    height: int
    scale: int = 3  # ×3 is the predecessor's (and most VSR benchmarks') factor
    dir: str = ""  # output folder under the category path; defaults to the format name
    mode: SourceMode = "crop"

    @property
    def lr_size(self) -> tuple[int, int]:
        """LR (width, height) of one frame."""
        return self.width // self.scale, self.height // self.scale


@dataclass(frozen=True)
class ValidationCfg:
    """A category's validation split: how many samples, from where, in which formats."""

    fraction: float = 0.0  # of the category's target, on top of it (ceil); 0 = none
    count: int = 0  # or an exact number (give one of fraction and count)
    # No training frame of a video is closer than this to one of its validation frames: a
    # few seconds put the two splits in different shots (films cut every 2–6 s).
    guard_seconds: float = 5.0
    videos: tuple[str, ...] = ()  # held-out videos: all their samples of it are validation
    formats: tuple[tuple[str, float], ...] = ()  # () = the category's first format
    dir: str = "Val"  # folder under the category path: where the predecessor's trainers look

    def samples(self, target: int) -> int:
        """Validation samples of a category with this training `target`."""
        if self.count:
            return self.count
        # round() first: 0.07 × 100 is 7.000000000000001 in binary floating point
        return math.ceil(round(self.fraction * target, 9)) if self.fraction > 0 else 0


@dataclass(frozen=True)
class CategoryCfg:
    """A dataset category: how many samples, where, and which formats in which mix."""

    name: str
    target: int  # training samples (validation comes on top)
    path: str = ""  # under output_root; defaults to the category name
    formats: tuple[tuple[str, float], ...] = ()
    # LR degradation templates drawn per sample; `none` = clean LR (today's BI downscale).
    degradations: Weights = ((NONE, 1.0),)
    format_degradations: tuple[tuple[str, Weights], ...] = ()  # format → its own mix

    def degradation_mix(self, fmt: str) -> Weights:
        """The templates (with weights) a sample of this category in format `fmt` draws."""
        return dict(self.format_degradations).get(fmt, self.degradations)
    validation: ValidationCfg = field(default_factory=ValidationCfg)

    @property
    def val_target(self) -> int:
        """Validation samples this category must reach (0: no validation split)."""
        return self.validation.samples(self.target)

    @property
    def val_formats(self) -> tuple[tuple[str, float], ...]:
        """The validation format mix: as configured, else the category's first format (the
        trainers' validation loaders read one patch size)."""
        return self.validation.formats or self.formats[:1]


@dataclass(frozen=True)
class VideoCfg:
    """One source video and the categories (with weights) it feeds."""

    name: str
    path: Path
    categories: tuple[tuple[str, float], ...] = ()

    @property
    def slug(self) -> str:
        """The name as used in file names (`file_slug`: never too long for the filesystem)."""
        return file_slug(self.name)


def slugify(name: str) -> str:
    """Non-alphanumerics to '_' (the predecessor's file-name rule), never empty."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_") or "video"


@dataclass(frozen=True)
class QualityCfg:
    """Quality-gate thresholds, all on an 8-bit full-range luma scale (0–255)."""

    # Mean luma below this is a black frame (fades, black between scenes).
    black_level: float = 12.0
    # Luma std of a whole (downscaled) frame below this is a flat frame (title cards, fades).
    flat_frame_std: float = 4.0
    # GT-crop grey std below this carries no texture (predecessor's gate: 7).
    crop_min_std: float = 7.0
    # Laplacian variance of the GT crop's grey image; below it the crop is blurry or empty.
    # 80 is the predecessor's gate on 0–255 grey images.
    crop_min_detail: float = 80.0
    # New random crops tried inside one clip before the category gives up on it (predecessor: 5).
    crop_retries: int = 5
    # Scene cuts (docs/quality.md): a pair of consecutive frames whose motion-compensated
    # difference is this many times the clip's other pairs' (or whose camera jump is this many
    # times theirs) is a cut. 3 is PySceneDetect's adaptive threshold.
    cut_ratio: float = 3.0
    # ...when that difference is at least this (0–255): below it the frames match after
    # alignment up to what codec noise explains.
    cut_min_diff: float = 5.0
    # A pair whose best alignment beats a typical one by at most this fraction does not align
    # at all (unrelated pictures), so it is a cut even inside turbulent motion.
    cut_min_gain: float = 0.2
    # Smallest camera jump (fraction of the picture width between two frames, beyond what the
    # other pairs move) that is a cut to another view of the same set.
    cut_min_jump: float = 0.06


@dataclass(frozen=True)
class ExtractionCfg:
    """How clips are chosen, checked and turned into patches."""

    frames_per_clip: int = 7  # the VSR window: centre frame is GT, 3 neighbours each side
    lr_stacks: tuple[int, ...] = (5, 7)  # centred LR stacks written per sample (LR_5frames, …)
    # Motion-compensated difference (0–255, dsgen.cuts) of a consecutive pair above which it is
    # a cut whatever the clip's other pairs do (docs/quality.md). In-scene motion measured ≤ 5.
    scene_cut_threshold: float = 20.0
    reference_height: int = 1080  # patches are cut from frames normalised to this height
    max_attempts: int = 10  # positions tried per slot before it is given up (predecessor: 10)
    retry_skip_seconds: float = 1.0  # spacing of replacement positions inside the slot's stratum
    low_success_warning: float = 0.80  # warn when a video's clip success rate falls below it
    lr_filter: LrFilter = "bicubic"  # Vimeo-90K/REDS "BI" degradation, what VSR models expect
    edge_margin_seconds: float = 0.0  # skip this much at the start and end (logos, credits)
    # Let a window open at the keyframe nearest its random position (≈ 7 frames decoded
    # instead of the GOP up to it: docs/benchmarks.md), moving it at most this far; a slot's
    # window never leaves its stretch of the timeline or its split's region.
    keyframe_windows: bool = True
    # measured (whole runs, docs/benchmarks.md): 10 s also puts a slot's retries (1 s apart)
    # on keyframes of 2–5 s HEVC GOPs; 3 s gave 16 frames per 4K clip, 10 s 8.4
    keyframe_tolerance_seconds: float = 10.0
    # Also write the clean LR stacks (LR_<k>frames_clean / LR_clean) of degraded samples, so
    # one run trains both a BI and a real-world model.
    write_clean_lr: bool = False
    quality: QualityCfg = field(default_factory=QualityCfg)


@dataclass(frozen=True)
class DiskCfg:
    """Free-space policy for the output filesystem."""

    # Pause extraction below this much free space (GB) instead of writing a corrupt file.
    min_free_gb: float = 2.0
    # Warn when free space is below the estimate still needed to finish, checked this often.
    check_seconds: float = 30.0


# Extensions a watched folder treats as videos (containers FFmpeg demuxes well).
VIDEO_EXTENSIONS = (".mkv", ".mp4", ".m4v", ".mov", ".m2ts", ".mts", ".ts", ".avi", ".webm",
                    ".mpg", ".mpeg", ".vob", ".wmv")


@dataclass(frozen=True)
class WatchCfg:
    """A folder whose complete videos are picked up without a restart."""

    path: Path
    categories: tuple[tuple[str, float], ...] = ()
    recursive: bool = True
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    # inotify does not see writes made by other hosts on NFS/SMB mounts: poll those.
    poll: bool = False
    poll_seconds: float = 10.0
    # A file counts as complete once its size and mtime stayed unchanged this long.
    settle_seconds: float = 15.0
    prefix: str = ""  # prepended to the names of videos found here (keeps names unique)


@dataclass(frozen=True)
class MetricsCfg:
    """The Prometheus endpoint (parent process only)."""

    enabled: bool = True
    address: str = "127.0.0.1"  # loopback: open it deliberately (see docs/metrics.md)
    port: int = 9478


@dataclass(frozen=True)
class DaemonCfg:
    """How `dsgen daemon` waits for new work."""

    # Full scan of watched folders this often: inotify events are hints and can be lost.
    rescan_seconds: float = 60.0
    # Main-loop period while idle: status, watchdog and disk checks keep this cadence.
    idle_seconds: float = 2.0
    # Reload when the config file's mtime changes (SIGHUP always reloads).
    reload_on_change: bool = True


# `LR` is where the predecessor's trainers (vsr_plus_plus core/dataset.py, train.py) read
# the 5-frame stack, beside `Val/LR`; load_config drops it when no 5-frame stack is written
# or the layout is basicsr.
DEFAULT_LR_ALIASES: tuple[tuple[str, int], ...] = (("LR", 5),)


@dataclass(frozen=True)
class DaskCfg:
    """Where a Dask cluster runs the workers (`executor = "dask"`, docs/scaling.md)."""

    scheduler: str = ""  # e.g. "tcp://10.0.0.5:8786"; required with executor = "dask"
    # Seconds to wait for the scheduler at start (a cluster may still be coming up).
    connect_seconds: float = 30.0
    # Video path prefixes as the workers see them: { "/mnt/video" = "/net/nas/video" }.
    path_map: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration."""

    source: Path
    output_root: Path
    state_dir: Path
    workers: int = 0  # 0 = one per CPU core
    seed: int = 1
    png_compression: int = 3  # Pillow level: 3 is ~2× faster than 6 for 5–10% more bytes
    layout: Layout = "stacked"
    # Files per bucket folder (stacked layout); 0 = flat folders, what the trainers glob.
    bucket_size: int = 0
    # Extra folder names for LR stacks (name → stack size), hard links to the same files.
    lr_aliases: tuple[tuple[str, int], ...] = DEFAULT_LR_ALIASES
    segment_slots: int = 24  # slots per work unit: small enough to resume fine-grained
    status_file: str = ".generator_status.json"  # under output_root, predecessor-compatible
    status_seconds: float = 5.0  # how often the status file is rewritten
    extraction: ExtractionCfg = field(default_factory=ExtractionCfg)
    disk: DiskCfg = field(default_factory=DiskCfg)
    formats: tuple[FormatCfg, ...] = ()
    categories: tuple[CategoryCfg, ...] = ()
    videos: tuple[VideoCfg, ...] = ()
    watch: tuple[WatchCfg, ...] = ()
    metrics: MetricsCfg = field(default_factory=MetricsCfg)
    daemon: DaemonCfg = field(default_factory=DaemonCfg)
    executor: ExecutorKind = "local"  # where workers run: this machine's pool, or Dask
    dask: DaskCfg = field(default_factory=DaskCfg)
    # Every template a category may name: the built-ins, replaced by user tables of the same
    # name, then the user's own (docs/degradations.md).
    degradations: tuple[DegradationCfg, ...] = BUILTIN_TEMPLATES

    def format(self, name: str) -> FormatCfg:
        """The format called `name`."""
        return next(f for f in self.formats if f.name == name)

    def category(self, name: str) -> CategoryCfg:
        """The category called `name`."""
        return next(c for c in self.categories if c.name == name)

    def degradation(self, name: str) -> DegradationCfg:
        """The degradation template called `name` (not `none`, which has no stages)."""
        return next(d for d in self.degradations if d.name == name)

    @property
    def worker_count(self) -> int:
        """Workers actually started."""
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    @property
    def status_path(self) -> Path:
        """Where the predecessor-compatible status file is written."""
        return self.output_root / self.status_file


# The predecessor's formats and mixes: shipped as the defaults so an empty
# [formats] table gives users what they had.
PREDECESSOR_FORMATS: tuple[FormatCfg, ...] = (
    FormatCfg("small_540", 540, 540, 3, "Patches"),
    FormatCfg("medium_169", 720, 405, 3, "Patches_Medium169"),
    FormatCfg("large_720", 720, 720, 3, "Patches_Large"),
    FormatCfg("xlarge_1440", 1440, 810, 3, "Patches_XLarge169"),
    FormatCfg("fullhd_1920", 1920, 1080, 3, "Patches_FullHD"),
)


# BasicSR's Vimeo90K datasets (basicsr/data/vimeo90k_dataset.py) read septuplets only: the
# GT is always im4.png and the inputs im1–im7 (Vimeo90KRecurrentDataset hard-codes 1–7).
BASICSR_FRAMES = 7
# Worker processes: 0 = one per core; more than this is a typo, not a machine.
MAX_WORKERS = 256
# Planning keys of validation are `<category>@val` (dsgen.split): names may not hold it.
RESERVED_NAME_CHAR = "@"


class _Ctx:
    """Where we are in the TOML file, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, problem: str, fix: str) -> typing.NoReturn:
        raise ConfigError(self.file, key, problem, fix)


def _suggest(name: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(ctx: _Ctx, key: str, value: Any, hint: Any) -> Any:
    """Check `value` against the annotation `hint`; return it converted."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            ctx.fail(key, f"{value!r} is not allowed",
                     "use one of: " + ", ".join(map(str, allowed))
                     + (_suggest(value, map(str, allowed)) if isinstance(value, str) else ""))
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
        return tuple(_coerce(ctx, f"{key}[{i}]", v, inner) for i, v in enumerate(value))
    raise AssertionError(f"unsupported annotation {hint!r}")  # a programming error, not user input


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """A config dataclass's field types (resolved once: a 500-video config builds 500)."""
    got = _HINTS.get(cls)
    if got is None:
        got = _HINTS[cls] = typing.get_type_hints(cls)
    return got


def _build(ctx: _Ctx, cls: type[Any], table: Any, prefix: str, skip: set[str],
           hidden: dict[str, str] | None = None) -> dict[str, Any]:
    """Read the scalar keys of dataclass `cls` from `table`; reject unknown keys.

    `skip` keys are valid but read by the caller; `hidden` fields are not user keys (key →
    the fix to tell a user who writes one anyway) and are never suggested.
    """
    if not isinstance(table, dict):
        ctx.fail(prefix, f"{table!r} is not a table", f"write it as [{prefix}]")
    hidden = hidden or {}
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - set(hidden)
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = key_path(prefix, key)
        if key in skip:
            continue
        if key in hidden:
            ctx.fail(full, "unknown key", hidden[key])
        if key not in names or dataclasses.is_dataclass(hints[key]):
            ctx.fail(full, "unknown key", "remove it or fix its spelling" + _suggest(key, names))
        out[key] = _coerce(ctx, full, value, hints[key])
    return out


def _weights(
    ctx: _Ctx, key: str, value: Any, known: set[str], what: str, section: str
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
                     f"define [{section}.{name}] first" + _suggest(str(name), known))
        w = _coerce(ctx, key_path(key, name), weight, float)
        if not 0 < w < math.inf:  # also rejects nan
            ctx.fail(key_path(key, name), f"weight {w} is not a positive finite number",
                     "use a weight > 0 or remove it")
        out.append((name, w))
    return tuple(out)


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and freeze the TOML config at `path`."""
    file = Path(path)
    ctx = _Ctx(str(file))
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        ctx.fail("(file)", "not found", "pass --config with an existing file (see etc/dsgen.toml)")
    except (OSError, UnicodeDecodeError) as e:
        ctx.fail("(file)", f"cannot be read: {e}", "check its permissions and encoding (UTF-8)")
    except tomllib.TOMLDecodeError as e:
        ctx.fail("(syntax)", str(e), "fix the TOML syntax at that line")
    return config_from_dict(raw, file)


def config_from_dict(raw: dict[str, Any], file: Path) -> Config:
    """Validate an already-parsed TOML document (file is for messages and relative paths)."""
    ctx = _Ctx(str(file))
    base = file.resolve().parent
    sections = {"extraction", "disk", "formats", "categories", "videos", "watch", "metrics",
                "daemon", "dask", "degradations", "lr_aliases"}
    top = _build(ctx, Config, raw, "", skip=sections,
                 hidden={"source": "remove it (the config file itself is the source)"})
    for req in ("output_root", "state_dir"):
        if req not in top:
            ctx.fail(req, "missing", f'add {req} = "/some/path" at the top of the file')
    top["output_root"] = _resolve(base, top["output_root"])
    top["state_dir"] = _resolve(base, top["state_dir"])
    for req in ("output_root", "state_dir"):
        _check_folder_target(ctx, req, top[req])
    _check_range(ctx, "workers", top.get("workers", 0), 0, MAX_WORKERS)
    _check_range(ctx, "png_compression", top.get("png_compression", 3), 0, 9)
    _check_range(ctx, "segment_slots", top.get("segment_slots", 24), 1, 100_000)
    _check_range(ctx, "seed", top.get("seed", 1), 0, 2**63 - 1)  # numpy seeds are >= 0
    _check_range(ctx, "status_seconds", top.get("status_seconds", 5.0), 0.1, 86_400)
    _check_range(ctx, "bucket_size", top.get("bucket_size", 0), 0, 10_000_000)
    if top.get("layout") == "basicsr" and top.get("bucket_size", 0):
        ctx.fail("bucket_size", f"{top['bucket_size']} with layout = \"basicsr\": that layout "
                 "already keeps each clip in a folder of its own", "remove bucket_size")
    if "status_file" in top:
        _check_folder(ctx, "status_file", top["status_file"], "the output root",
                      'a file name under output_root, e.g. ".generator_status.json"')

    ext_raw = raw.get("extraction", {})
    ext = _build(ctx, ExtractionCfg, ext_raw, "extraction", skip={"quality"})
    qual = QualityCfg(**_build(ctx, QualityCfg, ext_raw.get("quality", {}), "extraction.quality",
                               skip=set()))
    extraction = ExtractionCfg(**ext, quality=qual)
    _check_extraction(ctx, extraction)
    if top.get("layout") == "basicsr" and extraction.frames_per_clip != BASICSR_FRAMES:
        ctx.fail("extraction.frames_per_clip",
                 f"{extraction.frames_per_clip} with layout = \"basicsr\": BasicSR's Vimeo90K "
                 f"datasets read {BASICSR_FRAMES}-frame clips only (GT = im4.png, inputs "
                 "im1–im7)", f'use frames_per_clip = {BASICSR_FRAMES}, or layout = "stacked" '
                 "for other clip lengths")
    disk = DiskCfg(**_build(ctx, DiskCfg, raw.get("disk", {}), "disk", skip=set()))
    _check_range(ctx, "disk.min_free_gb", disk.min_free_gb, 0.0, 1e6)
    _check_range(ctx, "disk.check_seconds", disk.check_seconds, 0.1, 86_400)

    top["lr_aliases"] = _load_aliases(ctx, raw, top.get("layout", "stacked"), extraction)
    formats = _load_formats(ctx, raw.get("formats"))
    templates = load_templates(ctx, raw.get("degradations"))
    categories = _load_categories(ctx, raw.get("categories"), {f.name: f.dir for f in formats},
                                  {t.name for t in templates})
    _check_templates_used(ctx, raw.get("degradations") or {}, categories, templates)
    videos = _load_videos(ctx, raw.get("videos"), {c.name for c in categories}, base)
    watch = _load_watch(ctx, raw.get("watch"), {c.name for c in categories}, base)
    _check_held_out(ctx, categories, videos, bool(watch))
    metrics = MetricsCfg(**_build(ctx, MetricsCfg, raw.get("metrics", {}), "metrics", skip=set()))
    _check_range(ctx, "metrics.port", metrics.port, 0, 65535)
    _check_address(ctx, "metrics.address", metrics.address)
    daemon = DaemonCfg(**_build(ctx, DaemonCfg, raw.get("daemon", {}), "daemon", skip=set()))
    _check_range(ctx, "daemon.rescan_seconds", daemon.rescan_seconds, 0.5, 86_400)
    _check_range(ctx, "daemon.idle_seconds", daemon.idle_seconds, 0.05, 3600)
    dask = _load_dask(ctx, raw.get("dask", {}), top.get("executor", "local"))
    cfg = Config(source=file, extraction=extraction, disk=disk, formats=formats,
                 categories=categories, videos=videos, watch=watch, metrics=metrics,
                 daemon=daemon, dask=dask, degradations=templates, **top)
    _check_layout_room(ctx, cfg)
    return cfg


def _load_dask(ctx: _Ctx, table: Any, executor: str) -> DaskCfg:
    """The [dask] table; with executor = "dask" the scheduler and the package must exist."""
    vals = _build(ctx, DaskCfg, table, "dask", skip={"path_map"})
    pm = table.get("path_map", {}) if isinstance(table, dict) else {}
    if not isinstance(pm, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in pm.items()):
        ctx.fail("dask.path_map", f"{pm!r} is not a table of path prefixes",
                 'write e.g. path_map = { "/mnt/video" = "/net/nas/video" }')
    _check_range(ctx, "dask.connect_seconds", vals.get("connect_seconds", 30.0), 0.1, 3600)
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


def _load_aliases(ctx: _Ctx, raw: dict[str, Any], layout: str, e: ExtractionCfg
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
        k = _coerce(ctx, key, k, int)
        if k not in e.lr_stacks:
            ctx.fail(key, f"{k} is not a stack that is written (lr_stacks = "
                     f"{list(e.lr_stacks)})", f"use one of {list(e.lr_stacks)}")
        out.append((name, k))
    return tuple(out)


def _check_held_out(ctx: _Ctx, cats: tuple[CategoryCfg, ...], videos: tuple[VideoCfg, ...],
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
                         "use a [[videos]] name" + _suggest(name, feeds))


def _load_validation(ctx: _Ctx, key: str, body: Any, mix: tuple[tuple[str, float], ...],
                     fmt_dirs: dict[str, str]) -> ValidationCfg:
    """`[categories.<name>.validation]`: size, guard band, held-out videos, formats, folder."""
    vals = _build(ctx, ValidationCfg, body, key, skip={"formats"})
    if "fraction" in vals and "count" in vals:
        ctx.fail(f"{key}.count", "given together with fraction",
                 "keep one: fraction (of the target) or count (exact)")
    _check_range(ctx, f"{key}.fraction", vals.get("fraction", 0.0), 0.0, 1.0)
    _check_range(ctx, f"{key}.count", vals.get("count", 0), 0, 10**9)
    _check_range(ctx, f"{key}.guard_seconds", vals.get("guard_seconds", 5.0), 0.0, 3600.0)
    if len(set(vals.get("videos", ()))) != len(vals.get("videos", ())):
        ctx.fail(f"{key}.videos", f"{list(vals['videos'])!r} names a video twice",
                 "list each held-out video once")
    formats = (_weights(ctx, f"{key}.formats", body["formats"], set(fmt_dirs), "format",
                        "formats") if "formats" in body else ())
    folder = vals.get("dir", "Val")
    _check_folder(ctx, f"{key}.dir", folder, "the category folder", '"Val"')
    for fmt_name, _ in mix:
        if Path(fmt_dirs[fmt_name]).parts == Path(folder).parts:
            ctx.fail(f"{key}.dir", f"{folder!r} is also the folder of format {fmt_name}",
                     "give validation a folder of its own, e.g. \"Val\"")
    return ValidationCfg(**{**vals, "formats": formats, "dir": folder})


def _load_watch(ctx: _Ctx, items: Any, cats: set[str], base: Path) -> tuple[WatchCfg, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        ctx.fail("watch", "is not a list of tables", "write each folder as a [[watch]] table")
    out = []
    for i, body in enumerate(items):
        key = f"watch[{i}]"
        vals = _build(ctx, WatchCfg, body, key, skip={"categories"})
        if "path" not in vals:
            ctx.fail(f"{key}.path", "missing", 'add path = "/folder/to/watch"')
        if "categories" not in body:
            ctx.fail(f"{key}.categories", "missing", 'add categories = ["general"]')
        mix = _weights(ctx, f"{key}.categories", body["categories"], cats, "category",
                       "categories")
        exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}"
                     for e in vals.pop("extensions", VIDEO_EXTENSIONS))
        _check_range(ctx, f"{key}.settle_seconds", vals.get("settle_seconds", 15.0), 0.0, 86_400)
        _check_range(ctx, f"{key}.poll_seconds", vals.get("poll_seconds", 10.0), 0.1, 86_400)
        path = _resolve(base, vals.pop("path"))
        out.append(WatchCfg(path=path, categories=mix, extensions=exts, **vals))
    return tuple(out)


def _check_range(ctx: _Ctx, key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:  # also rejects nan
        ctx.fail(key, f"{value} is out of range", f"use a value from {lo} to {hi}")


def _check_folder(ctx: _Ctx, key: str, value: str, root: str, example: str) -> None:
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


def _check_extraction(ctx: _Ctx, e: ExtractionCfg) -> None:
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
    _check_range(ctx, "extraction.scene_cut_threshold", e.scene_cut_threshold, 0.1, 255)
    _check_range(ctx, "extraction.reference_height", e.reference_height, 64, 8640)
    _check_range(ctx, "extraction.max_attempts", e.max_attempts, 1, 1000)
    _check_range(ctx, "extraction.retry_skip_seconds", e.retry_skip_seconds, 0.0, 3600)
    _check_range(ctx, "extraction.low_success_warning", e.low_success_warning, 0.0, 1.0)
    _check_range(ctx, "extraction.edge_margin_seconds", e.edge_margin_seconds, 0.0, 36000)
    _check_range(ctx, "extraction.keyframe_tolerance_seconds", e.keyframe_tolerance_seconds,
                 0.0, 3600)
    q = e.quality
    for name in ("black_level", "flat_frame_std", "crop_min_std"):
        _check_range(ctx, f"extraction.quality.{name}", getattr(q, name), 0.0, 255.0)
    _check_range(ctx, "extraction.quality.crop_min_detail", q.crop_min_detail, 0.0, 1e7)
    _check_range(ctx, "extraction.quality.crop_retries", q.crop_retries, 1, 100)
    # A ratio at or below 1 would call every pair that is a little above its neighbours a cut.
    _check_range(ctx, "extraction.quality.cut_ratio", q.cut_ratio, 1.1, 1000.0)
    _check_range(ctx, "extraction.quality.cut_min_diff", q.cut_min_diff, 0.0, 255.0)
    _check_range(ctx, "extraction.quality.cut_min_gain", q.cut_min_gain, 0.0, 1.0)
    _check_range(ctx, "extraction.quality.cut_min_jump", q.cut_min_jump, 0.0, 1.0)


def _load_formats(ctx: _Ctx, table: Any) -> tuple[FormatCfg, ...]:
    if table is None or table == {}:  # no [formats] table, or an empty one
        return PREDECESSOR_FORMATS
    if not isinstance(table, dict):
        ctx.fail("formats", f"{table!r} is not a table", "write [formats.<name>] tables")
    out = []
    for name, body in table.items():
        key = key_path("formats", name)
        vals = _build(ctx, FormatCfg, body, key, skip=set(),
                      hidden={"name": "the table name is the format name; remove it"})
        for req in ("width", "height"):
            if req not in vals:
                ctx.fail(f"{key}.{req}", "missing", f"add {req} = <pixels> (GT size)")
        fmt = FormatCfg(name=name, **vals)
        if fmt.dir == "":
            fmt = dataclasses.replace(fmt, dir=name)
        _check_folder(ctx, f"{key}.dir", fmt.dir, "the category folder", '"Patches"')
        _check_range(ctx, f"{key}.scale", fmt.scale, 1, 16)
        for dim in ("width", "height"):
            v = getattr(fmt, dim)
            _check_range(ctx, f"{key}.{dim}", v, 8, 16384)
            if v % fmt.scale:
                ctx.fail(f"{key}.{dim}", f"{v} is not divisible by scale {fmt.scale}",
                         f"use a multiple of {fmt.scale}, e.g. {v - v % fmt.scale}")
        out.append(fmt)
    return tuple(out)


def _load_categories(ctx: _Ctx, table: Any, fmt_dirs: dict[str, str], templates: set[str]
                     ) -> tuple[CategoryCfg, ...]:
    if not isinstance(table, dict) or not table:
        ctx.fail("categories", "missing or empty", "add at least one [categories.<name>] table")
    out = []
    folders: dict[tuple[str, ...], str] = {}
    for name, body in table.items():
        key = key_path("categories", name)
        vals = _build(ctx, CategoryCfg, body, key,
                      skip={"formats", "degradations", "format_degradations", "validation"},
                      hidden={"name": "the table name is the category name; remove it"})
        if RESERVED_NAME_CHAR in name:
            ctx.fail(key, f"{name!r} contains {RESERVED_NAME_CHAR!r}",
                     f"rename the category without {RESERVED_NAME_CHAR!r} (dsgen reserves it)")
        if "target" not in vals:
            ctx.fail(f"{key}.target", "missing", "add target = <number of samples>")
        _check_range(ctx, f"{key}.target", vals["target"], 0, 10**9)
        if "formats" not in body:
            ctx.fail(f"{key}.formats", "missing", "add formats = { small_540 = 1.0 }")
        mix = _weights(ctx, f"{key}.formats", body["formats"], set(fmt_dirs), "format",
                       "formats")
        path = vals.pop("path", "") or name
        _check_folder(ctx, f"{key}.path", path, "the output root", '"Universal/Learn"')
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
        degr = _degradation_mixes(ctx, key, body, templates, [f for f, _ in mix])
        validation = _load_validation(ctx, f"{key}.validation", body.get("validation", {}),
                                      mix, fmt_dirs)
        out.append(CategoryCfg(name=name, path=path, formats=mix, validation=validation,
                               **degr, **vals))
    return tuple(out)


def _degradation_mixes(ctx: _Ctx, key: str, body: dict[str, Any], templates: set[str],
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
                         + _suggest(fmt, formats))
            per.append((fmt, load_mix(ctx, f"{key}.format_degradations.{fmt}", mix, known,
                                      "degradation template", define)))
        out["format_degradations"] = tuple(per)
    return out


def _check_templates_used(ctx: _Ctx, user: Any, categories: tuple[CategoryCfg, ...],
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


def _load_videos(ctx: _Ctx, items: Any, cats: set[str], base: Path) -> tuple[VideoCfg, ...]:
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
        vals = _build(ctx, VideoCfg, body, key, skip={"categories"})
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
        mix = _weights(ctx, f"{key}.categories", body["categories"], cats, "category", "categories")
        out.append(VideoCfg(name=vals["name"], path=_resolve(base, vals["path"]), categories=mix))
    return tuple(out)


# --- names and paths the filesystem accepts ------------------------------------------------

# Longest name of one file or folder (NAME_MAX, bytes) and of a whole path (PATH_MAX, bytes
# with the final NUL) that Linux filesystems accept.
NAME_MAX = 255
PATH_MAX = 4096
# Slugs up to this length are used as they are: `patch_<slug>_idx000000.png` is then at most
# NAME_MAX, so every file name a dataset was ever written with stays the same.
SLUG_MAX = NAME_MAX - len("patch__idx000000.png")
# A longer slug becomes its first SLUG_KEEP characters, "_" and SLUG_HASH hex digits of the
# full name's SHA-256: unique per name, and short enough for slot numbers of any size.
SLUG_KEEP = 190
SLUG_HASH = 10
# Names dsgen keeps for itself at the top of output_root (writer.TMP_DIR).
RESERVED_TOP = (".dsgen-tmp",)
# Longest path below a format folder: a sample sub-folder (GT, LR_7frames_clean…), a
# bucket of a SLUG_MAX slug, and a file name, each with its separator.
SAMPLE_TAIL_BYTES = 1 + 32 + 1 + NAME_MAX + 1 + NAME_MAX


def file_slug(name: str) -> str:
    """A video's name as used in file and folder names: `slugify`, shortened with a hash of
    the name when it would give names longer than the filesystem allows (docs/config.md)."""
    slug = slugify(name)
    if len(slug) <= SLUG_MAX:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:SLUG_HASH]
    return f"{slug[:SLUG_KEEP].rstrip('_')}_{digest}"


def key_path(prefix: str, key: object) -> str:
    """`prefix.key` for messages, the key quoted as TOML does when it is not a bare key."""
    text = str(key)
    shown = text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else repr(text)
    return f"{prefix}.{shown}" if prefix else shown


def check_path_text(ctx: _Ctx, key: str, value: str) -> None:
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


def _check_folder_target(ctx: _Ctx, key: str, path: Path) -> None:
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


def _check_address(ctx: _Ctx, key: str, address: str) -> None:
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


def _check_layout_room(ctx: _Ctx, cfg: Config) -> None:
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
