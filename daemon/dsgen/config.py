"""Config: one frozen, typed tree built from TOML by `load_config`; defaults live here only.

`config_from_dict` reads the sections with `config_sections.py`, on the checks every section
shares in `config_check.py`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dsgen.config_check import NAME_MAX as NAME_MAX  # re-exported: import_base reads it here
from dsgen.config_check import (
    ConfigCtx,
    check_address,
    check_folder,
    check_folder_target,
    check_range,
    read_table,
    resolve_path,
)
from dsgen.degrade_config import BUILTIN_TEMPLATES, NONE, DegradationCfg, Weights, load_templates

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


# --- names the filesystem accepts ----------------------------------------------------------

# Slugs up to this length are used as they are: `patch_<slug>_idx000000.png` is then at most
# NAME_MAX, so every file name a dataset was ever written with stays the same.
SLUG_MAX = NAME_MAX - len("patch__idx000000.png")
# A longer slug becomes its first SLUG_KEEP characters, "_" and SLUG_HASH hex digits of the
# full name's SHA-256: unique per name, and short enough for slot numbers of any size.
SLUG_KEEP = 190
SLUG_HASH = 10


def file_slug(name: str) -> str:
    """A video's name as used in file and folder names: `slugify`, shortened with a hash of
    the name when it would give names longer than the filesystem allows (docs/config.md)."""
    slug = slugify(name)
    if len(slug) <= SLUG_MAX:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:SLUG_HASH]
    return f"{slug[:SLUG_KEEP].rstrip('_')}_{digest}"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and freeze the TOML config at `path`."""
    file = Path(path)
    ctx = ConfigCtx(str(file))
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
    # The section parsers build this module's dataclasses, so they import it: imported here,
    # when a config is built, neither module needs the other while it loads.
    from dsgen.config_sections import (
        check_extraction,
        check_held_out,
        check_layout_room,
        check_templates_used,
        load_aliases,
        load_categories,
        load_dask,
        load_formats,
        load_videos,
        load_watch,
    )

    ctx = ConfigCtx(str(file))
    base = file.resolve().parent
    sections = {"extraction", "disk", "formats", "categories", "videos", "watch", "metrics",
                "daemon", "dask", "degradations", "lr_aliases"}
    top = read_table(ctx, Config, raw, "", skip=sections,
                     hidden={"source": "remove it (the config file itself is the source)"})
    for req in ("output_root", "state_dir"):
        if req not in top:
            ctx.fail(req, "missing", f'add {req} = "/some/path" at the top of the file')
    top["output_root"] = resolve_path(base, top["output_root"])
    top["state_dir"] = resolve_path(base, top["state_dir"])
    for req in ("output_root", "state_dir"):
        check_folder_target(ctx, req, top[req])
    check_range(ctx, "workers", top.get("workers", 0), 0, MAX_WORKERS)
    check_range(ctx, "png_compression", top.get("png_compression", 3), 0, 9)
    check_range(ctx, "segment_slots", top.get("segment_slots", 24), 1, 100_000)
    check_range(ctx, "seed", top.get("seed", 1), 0, 2**63 - 1)  # numpy seeds are >= 0
    check_range(ctx, "status_seconds", top.get("status_seconds", 5.0), 0.1, 86_400)
    check_range(ctx, "bucket_size", top.get("bucket_size", 0), 0, 10_000_000)
    if top.get("layout") == "basicsr" and top.get("bucket_size", 0):
        ctx.fail("bucket_size", f"{top['bucket_size']} with layout = \"basicsr\": that layout "
                 "already keeps each clip in a folder of its own", "remove bucket_size")
    if "status_file" in top:
        check_folder(ctx, "status_file", top["status_file"], "the output root",
                     'a file name under output_root, e.g. ".generator_status.json"')

    ext_raw = raw.get("extraction", {})
    ext = read_table(ctx, ExtractionCfg, ext_raw, "extraction", skip={"quality"})
    qual = QualityCfg(**read_table(ctx, QualityCfg, ext_raw.get("quality", {}),
                                   "extraction.quality", skip=set()))
    extraction = ExtractionCfg(**ext, quality=qual)
    check_extraction(ctx, extraction)
    if top.get("layout") == "basicsr" and extraction.frames_per_clip != BASICSR_FRAMES:
        ctx.fail("extraction.frames_per_clip",
                 f"{extraction.frames_per_clip} with layout = \"basicsr\": BasicSR's Vimeo90K "
                 f"datasets read {BASICSR_FRAMES}-frame clips only (GT = im4.png, inputs "
                 "im1–im7)", f'use frames_per_clip = {BASICSR_FRAMES}, or layout = "stacked" '
                 "for other clip lengths")
    disk = DiskCfg(**read_table(ctx, DiskCfg, raw.get("disk", {}), "disk", skip=set()))
    check_range(ctx, "disk.min_free_gb", disk.min_free_gb, 0.0, 1e6)
    check_range(ctx, "disk.check_seconds", disk.check_seconds, 0.1, 86_400)

    top["lr_aliases"] = load_aliases(ctx, raw, top.get("layout", "stacked"), extraction)
    formats = load_formats(ctx, raw.get("formats"))
    templates = load_templates(ctx, raw.get("degradations"))
    categories = load_categories(ctx, raw.get("categories"), {f.name: f.dir for f in formats},
                                 {t.name for t in templates})
    check_templates_used(ctx, raw.get("degradations") or {}, categories, templates)
    videos = load_videos(ctx, raw.get("videos"), {c.name for c in categories}, base)
    watch = load_watch(ctx, raw.get("watch"), {c.name for c in categories}, base)
    check_held_out(ctx, categories, videos, bool(watch))
    metrics = MetricsCfg(**read_table(ctx, MetricsCfg, raw.get("metrics", {}), "metrics",
                                      skip=set()))
    check_range(ctx, "metrics.port", metrics.port, 0, 65535)
    check_address(ctx, "metrics.address", metrics.address)
    daemon = DaemonCfg(**read_table(ctx, DaemonCfg, raw.get("daemon", {}), "daemon", skip=set()))
    check_range(ctx, "daemon.rescan_seconds", daemon.rescan_seconds, 0.5, 86_400)
    check_range(ctx, "daemon.idle_seconds", daemon.idle_seconds, 0.05, 3600)
    dask = load_dask(ctx, raw.get("dask", {}), top.get("executor", "local"))
    cfg = Config(source=file, extraction=extraction, disk=disk, formats=formats,
                 categories=categories, videos=videos, watch=watch, metrics=metrics,
                 daemon=daemon, dask=dask, degradations=templates, **top)
    check_layout_room(ctx, cfg)
    return cfg
