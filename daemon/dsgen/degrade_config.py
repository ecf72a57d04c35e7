"""Degradation templates in the config: typed stage tables, their validation, built-in templates.

`config.py` calls `load_templates`, `config_sections.py` `load_mix`; every error goes through
the caller's context (`fail(key, problem, fix)`), so it names file, key, value and fix like
every other config error. Nothing here imports PyAV until a codec stage has to be checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NoReturn, Protocol

FloatRange = tuple[float, float]
IntRange = tuple[int, int]
Weights = tuple[tuple[str, float], ...]  # (name, weight ≥ 0), at least one weight > 0

NONE = "none"  # the reserved template: clean LR, exactly what dsgen writes without degradations

BLUR_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                "plateau_aniso", "sinc")
RESIZE_KERNELS = ("area", "bilinear", "bicubic", "lanczos")
# Codec name in the config → (PyAV encoder, PyAV decoder).
CODECS: dict[str, tuple[str, str]] = {
    "h264": ("libx264", "h264"),
    "hevc": ("libx265", "hevc"),
    "mpeg2": ("mpeg2video", "mpeg2video"),
    "mpeg4": ("mpeg4", "mpeg4"),  # FFmpeg's own MPEG-4 Part 2 (DivX/Xvid-era) encoder
}
CRF_CODECS = ("h264", "hevc")  # rate-controlled by crf; MPEG-2/4 by qscale
Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow"]
NoisePer = Literal["frame", "clip"]


class Ctx(Protocol):
    """Where errors go: the config loader's context (file name + message format)."""

    def fail(self, key: str, problem: str, fix: str) -> NoReturn: ...


def _b(lo: float, hi: float) -> dict[str, float]:
    """Field metadata: the closed range a stage key's values must lie in."""
    return {"lo": lo, "hi": hi}


@dataclass(frozen=True)
class BlurStage:
    """Convolve each frame with one kernel drawn per clip (Real-ESRGAN's kernel family)."""

    KIND: ClassVar[str] = "blur"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    kernels: Weights = (("iso", 1.0),)
    # LR pixels; σx (and σy of anisotropic kernels) drawn from it
    sigma: FloatRange = field(default=(0.2, 1.5), metadata=_b(0.05, 20.0))
    # degrees; the angle of anisotropic kernels
    rotation: FloatRange = field(default=(-180.0, 180.0), metadata=_b(-180.0, 180.0))
    # odd sizes only, Real-ESRGAN's 7–21
    kernel_size: IntRange = field(default=(7, 21), metadata=_b(3, 41))
    # Real-ESRGAN's betag_range / betap_range
    beta_generalized: FloatRange = field(default=(0.5, 4.0), metadata=_b(0.1, 10.0))
    beta_plateau: FloatRange = field(default=(1.0, 2.0), metadata=_b(0.1, 10.0))
    # ω_c / π: 1 = Nyquist (Real-ESRGAN draws ω_c from [π/3, π])
    sinc_cutoff: FloatRange = field(default=(0.33, 1.0), metadata=_b(0.05, 1.0))


@dataclass(frozen=True)
class ResizeStage:
    """Resize to round(LR size × scale); a leading resize starts from the GT frames."""

    KIND: ClassVar[str] = "resize"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    kernels: Weights = (("area", 1.0), ("bilinear", 1.0), ("bicubic", 1.0))
    # relative to the final LR size, not the current one
    scale: FloatRange = field(default=(0.5, 1.5), metadata=_b(0.1, 4.0))


@dataclass(frozen=True)
class NoiseStage:
    """Additive Gaussian or Poisson noise, a new noise field in every frame."""

    KIND: ClassVar[str] = "noise"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    # chance of Gaussian, else Poisson (Real-ESRGAN: 0.5)
    gaussian_probability: float = field(default=0.5, metadata=_b(0.0, 1.0))
    # on the 0–255 scale
    gaussian_sigma: FloatRange = field(default=(1.0, 30.0), metadata=_b(0.0, 255.0))
    poisson_scale: FloatRange = field(default=(0.05, 3.0), metadata=_b(0.0, 20.0))
    # chance of the same noise in R, G and B (Real-ESRGAN: 0.4)
    grey_probability: float = field(default=0.4, metadata=_b(0.0, 1.0))
    per: NoisePer = "clip"  # level, type and grey drawn once per clip or per frame


@dataclass(frozen=True)
class JpegStage:
    """Each frame JPEG-encoded and decoded in memory at one quality per clip."""

    KIND: ClassVar[str] = "jpeg"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    quality: IntRange = field(default=(30, 95), metadata=_b(1, 100))  # Real-ESRGAN's


@dataclass(frozen=True)
class CodecStage:
    """The frames encoded as one short clip with a real video codec and decoded back."""

    KIND: ClassVar[str] = "codec"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    codecs: Weights = (("h264", 1.0),)
    crf: IntRange = field(default=(20, 32), metadata=_b(0, 51))  # h264 / hevc
    # MPEG-2 / MPEG-4 fixed quantiser
    qscale: IntRange = field(default=(3, 12), metadata=_b(1, 31))
    # when set: bitrate control (kbit/s at 25 fps) for every codec instead of crf/qscale
    bitrate_kbps: IntRange | tuple[()] = field(default=(), metadata=_b(1, 1_000_000))
    preset: Preset = "medium"  # x264 / x265
    gop: IntRange = field(default=(6, 24), metadata=_b(1, 600))  # keyframe interval, frames
    bframes: IntRange = field(default=(0, 2), metadata=_b(0, 8))


@dataclass(frozen=True)
class ChromaStage:
    """Saturation change and analogue-style horizontal chroma bleed (the predecessor's chroma)."""

    KIND: ClassVar[str] = "chroma"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    saturation: FloatRange = field(default=(0.85, 1.1), metadata=_b(0.0, 3.0))
    bleed_probability: float = field(default=0.3, metadata=_b(0.0, 1.0))
    # 1.0 = a horizontal chroma blur of σ 6 LR pixels
    bleed_strength: FloatRange = field(default=(0.1, 0.25), metadata=_b(0.0, 2.0))


@dataclass(frozen=True)
class ColourStage:
    """Tone changes: contrast, brightness, black lift and gamma (the predecessor's colour)."""

    KIND: ClassVar[str] = "colour"
    probability: float = field(default=1.0, metadata=_b(0.0, 1.0))
    contrast: FloatRange = field(default=(0.95, 1.05), metadata=_b(0.1, 3.0))  # mid-grey pivot
    # fraction of full scale
    brightness: FloatRange = field(default=(-0.02, 0.03), metadata=_b(-0.5, 0.5))
    # black raised to this fraction, white kept
    black_lift: FloatRange = field(default=(0.0, 0.02), metadata=_b(0.0, 0.5))
    gamma: FloatRange = field(default=(0.95, 1.05), metadata=_b(0.2, 5.0))  # in^(1/gamma)


Stage = BlurStage | ResizeStage | NoiseStage | JpegStage | CodecStage | ChromaStage | ColourStage
STAGE_TYPES: dict[str, type[Any]] = {c.KIND: c for c in typing.get_args(Stage)}
# Names a weights key accepts, per stage field.
_WEIGHT_NAMES: dict[tuple[type[Any], str], tuple[str, ...]] = {
    (BlurStage, "kernels"): BLUR_KERNELS,
    (ResizeStage, "kernels"): RESIZE_KERNELS,
    (CodecStage, "codecs"): tuple(CODECS),
}


@dataclass(frozen=True)
class DegradationCfg:
    """A named degradation template: stages applied in order to every frame of a clip."""

    name: str
    description: str = ""
    stages: tuple[Stage, ...] = ()


def _suggest(name: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _number(ctx: Ctx, key: str, value: Any, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            integer and not isinstance(value, int)):
        what, eg = ("an integer", "3") if integer else ("a number", "0.5")
        ctx.fail(key, f"{value!r} is not {what}", f"write {what}, e.g. {eg}")
    return value


def _in_bounds(ctx: Ctx, key: str, value: float, meta: typing.Mapping[str, Any]) -> None:
    lo, hi = meta["lo"], meta["hi"]
    if not lo <= value <= hi:  # also rejects nan
        ctx.fail(key, f"{value} is out of range", f"use a value from {lo:g} to {hi:g}")


def _range(ctx: Ctx, key: str, value: Any, integer: bool, meta: typing.Mapping[str, Any]
           ) -> tuple[float, float]:
    """`[lo, hi]` (lo ≤ hi), or one number meaning a fixed value."""
    if not isinstance(value, list):
        x = _number(ctx, key, value, integer)
        _in_bounds(ctx, key, x, meta)
        return (x, x) if integer else (float(x), float(x))
    if len(value) != 2:
        ctx.fail(key, f"{value!r} is not a [lo, hi] range", "write two numbers, e.g. [0.5, 1.5]")
    lo, hi = (_number(ctx, f"{key}[{i}]", v, integer) for i, v in enumerate(value))
    for i, v in enumerate((lo, hi)):
        _in_bounds(ctx, f"{key}[{i}]", v, meta)
    if lo > hi:
        ctx.fail(key, f"{value!r} has lo > hi", f"write the smaller bound first: [{hi}, {lo}]")
    return (lo, hi) if integer else (float(lo), float(hi))


def load_mix(ctx: Ctx, key: str, value: Any, known: typing.Collection[str], what: str,
             define: str) -> Weights:
    """A `{ name = weight }` table (or a list of names, weight 1 each): weights ≥ 0 summing to
    more than 0; names must be in `known` (`define` says how to add one)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = dict.fromkeys(value, 1.0)
    if not isinstance(value, dict) or not value:
        ctx.fail(key, f"{value!r} is not a non-empty table of weights",
                 f"write e.g. {{ {next(iter(known), what)} = 1.0 }}")
    out = []
    for name, weight in value.items():
        if name not in known:
            ctx.fail(f"{key}.{name}", f"unknown {what} {name!r}",
                     f"{define}{_suggest(name, known)}")
        w = float(_number(ctx, f"{key}.{name}", weight, integer=False))
        if not 0 <= w < math.inf:  # also rejects nan
            ctx.fail(f"{key}.{name}", f"weight {w} is not a finite number ≥ 0",
                     "use a weight ≥ 0 (0 keeps the entry but never draws it)")
        out.append((name, w))
    if sum(w for _, w in out) <= 0:
        ctx.fail(key, f"{value!r}: the weights sum to 0", "give at least one entry a weight > 0")
    return tuple(out)


def _stage(ctx: Ctx, key: str, body: Any) -> Stage:
    if not isinstance(body, dict):
        ctx.fail(key, f"{body!r} is not a table", "write each stage as a [[…stages]] table")
    kind = body.get("kind")
    if kind not in STAGE_TYPES:
        ctx.fail(f"{key}.kind", "missing" if kind is None else f"unknown stage kind {kind!r}",
                 "use kind = one of: " + ", ".join(STAGE_TYPES)
                 + (_suggest(kind, STAGE_TYPES) if isinstance(kind, str) else ""))
    cls = STAGE_TYPES[kind]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    vals: dict[str, Any] = {}
    for name, value in body.items():
        full = f"{key}.{name}"
        if name == "kind":
            continue
        if name not in fields:
            ctx.fail(full, f"unknown key for a {kind} stage",
                     "remove it or fix its spelling" + _suggest(name, fields))
        vals[name] = _value(ctx, full, value, cls, fields[name], hints[name])
    stage: Stage = cls(**vals)
    if isinstance(stage, BlurStage):
        for k in stage.kernel_size:
            if k % 2 == 0:
                ctx.fail(f"{key}.kernel_size", f"{list(stage.kernel_size)}: {k} is even",
                         "use odd kernel sizes (the kernel has a centre pixel), e.g. [7, 21]")
    if isinstance(stage, CodecStage) and stage.bitrate_kbps and ("crf" in vals
                                                                  or "qscale" in vals):
        ctx.fail(f"{key}.bitrate_kbps", f"{list(stage.bitrate_kbps)} is given with "
                 f"{'crf' if 'crf' in vals else 'qscale'}",
                 "choose one rate control: crf/qscale (quality) or bitrate_kbps")
    return stage


def _value(ctx: Ctx, key: str, value: Any, cls: type[Any], f: dataclasses.Field[Any],
           hint: Any) -> Any:
    """One stage key checked against its annotation and bounds."""
    if hint is float:
        x = float(_number(ctx, key, value, integer=False))
        _in_bounds(ctx, key, x, f.metadata)
        return x
    if hint in (FloatRange, IntRange) or f.name == "bitrate_kbps":
        return _range(ctx, key, value, hint != FloatRange, f.metadata)
    if hint == Weights:
        names = _WEIGHT_NAMES[(cls, f.name)]
        return load_mix(ctx, key, value, names, f.name.rstrip("s"),
                        "use one of: " + ", ".join(names))
    allowed = typing.get_args(hint)
    if value not in allowed:
        ctx.fail(key, f"{value!r} is not allowed", "use one of: " + ", ".join(allowed)
                 + (_suggest(value, allowed) if isinstance(value, str) else ""))
    return value


def load_templates(ctx: Ctx, table: Any) -> tuple[DegradationCfg, ...]:
    """The built-in templates, each replaced by a user table of the same name, then the
    user's other templates in file order."""
    if table is None:
        return BUILTIN_TEMPLATES
    if not isinstance(table, dict):
        ctx.fail("degradations", f"{table!r} is not a table",
                 "write [degradations.<name>] tables")
    user: dict[str, DegradationCfg] = {}
    for name, body in table.items():
        key = f"degradations.{name}"
        if name == NONE:
            ctx.fail(key, f"{NONE!r} is reserved for clean LR",
                     "give your template another name")
        if not isinstance(body, dict):
            ctx.fail(key, f"{body!r} is not a table", f"write it as [{key}]")
        for k in body:
            if k not in ("description", "stages"):
                ctx.fail(f"{key}.{k}", "unknown key",
                         "a template has description and [[stages]]"
                         + _suggest(k, ("description", "stages")))
        desc = body.get("description", "")
        if not isinstance(desc, str):
            ctx.fail(f"{key}.description", f"{desc!r} is not a string", 'quote it, e.g. "DVD"')
        stages = body.get("stages")
        if not isinstance(stages, list) or not stages:
            ctx.fail(f"{key}.stages", "missing or empty",
                     f'add at least one [[{key}.stages]] table with kind = "blur" (or another)')
        user[name] = DegradationCfg(name, desc, tuple(
            _stage(ctx, f"{key}.stages[{i}]", s) for i, s in enumerate(stages)))
    builtin = tuple(user.pop(t.name, t) for t in BUILTIN_TEMPLATES)
    return builtin + tuple(user.values())


def missing_codecs(template: DegradationCfg) -> tuple[str, str] | None:
    """(key below the template, problem) for the first codec a template may draw that this
    PyAV build lacks as encoder or decoder; None when all are there."""
    from dsgen.degrade_codec import missing_codec

    for i, stage in enumerate(template.stages):
        if isinstance(stage, CodecStage):
            for name, weight in stage.codecs:
                problem = missing_codec(name) if weight > 0 else None
                if problem:
                    return f"stages[{i}].codecs.{name}", problem
    return None


def stage_dict(stage: Stage) -> dict[str, Any]:
    """A stage as its config table (for dataset.json): kind first, ranges as lists."""
    out: dict[str, Any] = {"kind": stage.KIND}
    for f in dataclasses.fields(stage):
        v = getattr(stage, f.name)
        if isinstance(v, tuple) and v and isinstance(v[0], tuple):
            v = dict(v)
        elif isinstance(v, tuple):
            if not v:
                continue
            v = list(v)
        out[f.name] = v
    return out


# ---- built-in templates --------------------------------------------------------------------

def _predecessor(name: str, description: str, blur: tuple[float, FloatRange],
                 jpeg: tuple[float, IntRange], noise: tuple[float, FloatRange, float],
                 chroma: tuple[FloatRange, float, float],
                 colour: tuple[FloatRange, FloatRange, float, FloatRange]) -> DegradationCfg:
    """One of the predecessor's templates.json templates, stage for stage, in its order
    (blur → noise → JPEG → chroma bleed + saturation → colour)."""
    return DegradationCfg(name, description, (
        BlurStage(probability=blur[0], sigma=blur[1], kernel_size=(7, 7)),
        # Gaussian only, σ once per clip; its color_noise_prob is our 1 − grey_probability.
        NoiseStage(probability=noise[0], gaussian_probability=1.0, gaussian_sigma=noise[1],
                   grey_probability=round(1.0 - noise[2], 6), per="clip"),
        JpegStage(probability=jpeg[0], quality=jpeg[1]),
        ChromaStage(saturation=chroma[0], bleed_probability=chroma[1],
                    bleed_strength=(chroma[2], chroma[2])),
        ColourStage(contrast=colour[0], brightness=colour[1],
                    black_lift=(colour[2], colour[2]), gamma=colour[3]),
    ))


# Real-ESRGAN's seven kernel weights (kernel_prob × (1 − sinc_prob), sinc_prob 0.1).
_REALESRGAN_KERNELS: Weights = (("iso", 0.405), ("aniso", 0.225), ("generalized_iso", 0.108),
                                ("generalized_aniso", 0.027), ("plateau_iso", 0.108),
                                ("plateau_aniso", 0.027), ("sinc", 0.1))
_THREE_RESIZES: Weights = (("area", 1.0), ("bilinear", 1.0), ("bicubic", 1.0))


def _realesrgan_orders(codec: CodecStage | None) -> tuple[Stage, ...]:
    """Real-ESRGAN's two degradation orders in LR pixels (σ divided by ~2.5: Real-ESRGAN
    blurs at GT size, dsgen after the first resize, at 0.5–2 × LR); `codec` after each JPEG
    makes it RealBasicVSR's pipeline."""
    first: list[Stage] = [
        ResizeStage(scale=(0.5, 2.0), kernels=_THREE_RESIZES),
        BlurStage(kernels=_REALESRGAN_KERNELS, sigma=(0.1, 1.2)),
        NoiseStage(gaussian_sigma=(1.0, 30.0), poisson_scale=(0.05, 3.0)),
        JpegStage(quality=(30, 95)),
    ]
    second: list[Stage] = [
        BlurStage(probability=0.8, kernels=_REALESRGAN_KERNELS, sigma=(0.1, 0.8)),
        ResizeStage(scale=(0.3, 1.2), kernels=_THREE_RESIZES),
        NoiseStage(gaussian_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)),
        # Real-ESRGAN's last step, in its "resize back + sinc, then JPEG" order.
        ResizeStage(scale=(1.0, 1.0), kernels=_THREE_RESIZES),
        BlurStage(probability=0.8, kernels=(("sinc", 1.0),)),
        JpegStage(quality=(30, 95)),
    ]
    if codec is not None:
        first.append(codec)
        second.append(codec)
    return (*first, *second)


# RealBasicVSR's codec mix (libx264, h264, mpeg4 with equal weights: two of those names are the
# same x264 encoder), at quality settings instead of its fixed bitrates, which were meant for
# 64×64 crops and would mean a different quality at every format's LR size.
_REALBASICVSR_CODEC = CodecStage(codecs=(("h264", 2.0), ("mpeg4", 1.0)), crf=(20, 34),
                                 qscale=(3, 14), gop=(6, 24), bframes=(0, 2), preset="medium")

BUILTIN_TEMPLATES: tuple[DegradationCfg, ...] = (
    _predecessor("classic_sitcom_sd", "Classic SD sitcom / series look: VHS-era sharpness "
                 "loss, analog noise, warm color cast", (0.85, (0.4, 1.2)), (0.90, (55, 78)),
                 (0.80, (2.0, 8.0), 0.40), ((0.85, 1.10), 0.35, 0.2),
                 ((0.90, 1.05), (-0.02, 0.04), 0.03, (0.95, 1.10))),
    _predecessor("classic_scifi_sd", "Classic sci-fi SD: slightly over-sharpened, film grain, "
                 "cool desaturated look", (0.70, (0.2, 0.8)), (0.80, (62, 82)),
                 (0.75, (1.5, 6.0), 0.25), ((0.75, 0.95), 0.20, 0.1),
                 ((0.95, 1.10), (-0.03, 0.02), 0.01, (0.90, 1.05))),
    _predecessor("dvd_film_balanced", "Balanced DVD/film look: moderate compression, slight "
                 "softening, neutral color", (0.75, (0.3, 0.9)), (0.85, (65, 85)),
                 (0.65, (1.0, 4.5), 0.20), ((0.90, 1.05), 0.15, 0.08),
                 ((0.95, 1.05), (-0.02, 0.03), 0.01, (0.97, 1.03))),
    _predecessor("toon_sd", "Animated / cartoon SD: flat color loss, strong compression "
                 "artifacts, cel-like sharpness", (0.60, (0.1, 0.6)), (0.95, (50, 72)),
                 (0.50, (0.5, 3.0), 0.15), ((0.80, 1.15), 0.40, 0.25),
                 ((0.92, 1.08), (-0.01, 0.05), 0.02, (0.95, 1.08))),
    DegradationCfg("realesrgan", "Real-ESRGAN's second-order degradation (blur, resize, noise, "
                   "JPEG, twice, then resize back + sinc), in LR pixels",
                   _realesrgan_orders(None)),
    DegradationCfg("realbasicvsr", "RealBasicVSR: Real-ESRGAN's two orders with a real video "
                   "codec (H.264 or MPEG-4 Part 2) after each JPEG step",
                   _realesrgan_orders(_REALBASICVSR_CODEC)),
)
