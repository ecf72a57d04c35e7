"""LR degradations: a template's stages drawn once per clip from the sample's identity, then
applied to the clip's LR frames in the worker; `reproduce` redoes it from a manifest line.

`draw` makes every random decision and returns it as a JSON-able dict (the manifest's
`degradation`); `apply` is a pure function of that dict and the frames — noise fields come
from a seed drawn into the dict — so a sample's degraded LR bytes follow from its manifest
line and its clean LR (or GT) frames alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsgen import degrade_codec, degrade_colour, degrade_kernels, degrade_noise
from dsgen.config import Config, FormatCfg
from dsgen.degrade_config import (
    NONE,
    BlurStage,
    ChromaStage,
    CodecStage,
    ColourStage,
    DegradationCfg,
    JpegStage,
    NoiseStage,
    ResizeStage,
    Stage,
    Weights,
)
from dsgen.patches import lr_frame
from dsgen.plan import name_key, rng_for

# Last part of the degradation RNG's key: keeps these draws apart from the crop draws of the
# same (slot, attempt, category), so the GT and clean LR never depend on degradations.
DEGRADE_STREAM = 0x64656772  # "degr"
# Smallest side of an intermediate frame (a resize stage far below 1 on a tiny format).
MIN_SIDE = 2
DIGITS = 4  # drawn floats are rounded to this many decimals: readable and exact in JSON


def _pick(rng: np.random.Generator, weights: Weights) -> str:
    names = [n for n, w in weights if w > 0]
    if len(names) == 1:
        return names[0]
    w = np.asarray([w for _, w in weights if w > 0], dtype=np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return round(float(rng.uniform(r[0], r[1])), DIGITS) if r[0] < r[1] else float(r[0])


def _integer(rng: np.random.Generator, r: tuple[int, int], odd: bool = False) -> int:
    if odd:  # odd values in [lo, hi]; config guarantees lo and hi are odd
        return int(r[0]) + 2 * int(rng.integers(0, (r[1] - r[0]) // 2 + 1))
    return int(rng.integers(int(r[0]), int(r[1]) + 1))


def _beta(rng: np.random.Generator, r: tuple[float, float]) -> float:
    """Real-ESRGAN's shape draw: below or above 1 with equal chance when the range spans 1."""
    if r[0] < 1.0 < r[1]:
        return _uniform(rng, (r[0], 1.0) if rng.random() < 0.5 else (1.0, r[1]))
    return _uniform(rng, r)


def _draw_stage(stage: Stage, rng: np.random.Generator, n: int, lr: tuple[int, int]
                ) -> dict[str, Any]:
    """The parameters of one applied stage."""
    if isinstance(stage, BlurStage):
        kind = _pick(rng, stage.kernels)
        p: dict[str, Any] = {"kernel": kind, "kernel_size": _integer(rng, stage.kernel_size, True)}
        if kind == "sinc":
            p["cutoff"] = _uniform(rng, stage.sinc_cutoff)
            return p
        sx = _uniform(rng, stage.sigma)
        iso = kind.endswith("iso") and not kind.endswith("aniso")
        p.update(sigma_x=sx, sigma_y=sx if iso else _uniform(rng, stage.sigma),
                 rotation=0.0 if iso else _uniform(rng, stage.rotation))
        if kind.startswith(("generalized", "plateau")):
            p["beta"] = _beta(rng, stage.beta_generalized if kind.startswith("generalized")
                              else stage.beta_plateau)
        return p
    if isinstance(stage, ResizeStage):
        s = _uniform(rng, stage.scale)
        return {"kernel": _pick(rng, stage.kernels), "scale": s,
                "size": [max(MIN_SIDE, round(lr[0] * s)), max(MIN_SIDE, round(lr[1] * s))]}
    if isinstance(stage, NoiseStage):
        def level() -> dict[str, Any]:
            if rng.random() < stage.gaussian_probability:
                return {"type": "gaussian", "sigma": _uniform(rng, stage.gaussian_sigma),
                        "grey": bool(rng.random() < stage.grey_probability)}
            return {"type": "poisson", "scale": _uniform(rng, stage.poisson_scale),
                    "grey": bool(rng.random() < stage.grey_probability)}
        levels = [level() for _ in range(n if stage.per == "frame" else 1)]
        return {"seed": int(rng.integers(0, 2**63)),
                "frames": levels if stage.per == "frame" else levels * n}
    if isinstance(stage, JpegStage):
        return {"quality": _integer(rng, stage.quality)}
    if isinstance(stage, CodecStage):
        codec = _pick(rng, stage.codecs)
        p = {"codec": codec}
        if stage.bitrate_kbps:
            p["bitrate_kbps"] = _integer(rng, stage.bitrate_kbps)
        elif codec in ("h264", "hevc"):
            p["crf"] = _integer(rng, stage.crf)
        else:
            p["qscale"] = _integer(rng, stage.qscale)
        if codec in ("h264", "hevc"):
            p["preset"] = stage.preset
        p.update(gop=_integer(rng, stage.gop), bframes=_integer(rng, stage.bframes))
        return p
    if isinstance(stage, ChromaStage):
        sat = _uniform(rng, stage.saturation)
        bleed = _uniform(rng, stage.bleed_strength) if rng.random() < stage.bleed_probability \
            else 0.0
        return {"saturation": sat, "bleed": bleed}
    assert isinstance(stage, ColourStage)
    return {"contrast": _uniform(rng, stage.contrast),
            "brightness": _uniform(rng, stage.brightness),
            "black_lift": _uniform(rng, stage.black_lift), "gamma": _uniform(rng, stage.gamma)}


def draw(template: DegradationCfg, rng: np.random.Generator, n: int, lr: tuple[int, int]
         ) -> dict[str, Any]:
    """Every random decision of one clip's degradation (n frames, LR size `lr`), as the
    manifest records it."""
    out: dict[str, Any] = {"template": template.name, "lr_size": list(lr), "stages": []}
    last_resize: ResizeStage | None = None
    size = lr
    for i, stage in enumerate(template.stages):
        entry: dict[str, Any] = {"kind": stage.KIND, "applied": bool(rng.random()
                                                                     < stage.probability)}
        if entry["applied"]:
            entry.update(_draw_stage(stage, rng, n, lr))
            if isinstance(stage, ResizeStage):
                last_resize, size = stage, tuple(entry["size"])  # type: ignore[assignment]
                entry["input"] = "gt" if i == 0 else "current"
        out["stages"].append(entry)
    if size != lr:  # back to the exact LR size with a kernel of the last resize's mix
        assert last_resize is not None
        out["final_resize"] = _pick(rng, last_resize.kernels)
    return out


def applied(params: dict[str, Any]) -> bool:
    """Whether any stage changed the clip (else its LR is the clean LR, byte for byte)."""
    return any(s["applied"] for s in params.get("stages", ()))


def apply(params: dict[str, Any], gts: list[np.ndarray] | None, lrs: list[np.ndarray]
          ) -> list[np.ndarray]:
    """The degraded LR frames (uint8) of a clip from its drawn `params`, its clean LR frames
    and — only when the first stage is an applied resize — its GT frames."""
    if not applied(params):
        return lrs
    stages = params["stages"]
    if stages[0]["kind"] == "resize" and stages[0]["applied"]:
        if gts is None:
            raise ValueError("this sample's first stage resizes from the GT frames: pass them")
        x = degrade_kernels.resize(np.stack(gts), tuple(stages[0]["size"]), stages[0]["kernel"])
        stages = stages[1:]
    else:
        x = np.stack(lrs).astype(np.float32)
    for s in stages:
        if s["applied"]:
            x = _apply_stage(s, x)
    lw, lh = params["lr_size"]
    if x.shape[1:3] != (lh, lw):
        x = degrade_kernels.resize(x, (lw, lh), params["final_resize"])
    return list(degrade_codec.to_uint8(x))


def _apply_stage(s: dict[str, Any], x: np.ndarray) -> np.ndarray:
    kind = s["kind"]
    if kind == "blur":
        return degrade_kernels.convolve(x, degrade_kernels.blur_kernel(s))
    if kind == "resize":
        return degrade_kernels.resize(x, tuple(s["size"]), s["kernel"])
    if kind == "noise":
        rng = np.random.default_rng(int(s["seed"]))
        out = []
        for f, lv in zip(x, s["frames"], strict=True):
            if lv["type"] == "gaussian":
                out.append(degrade_noise.gaussian(f, lv["sigma"], lv["grey"], rng))
            else:
                out.append(degrade_noise.poisson(f, lv["scale"], lv["grey"], rng))
        return np.stack(out)
    if kind == "jpeg":
        return degrade_codec.jpeg(x, s["quality"])
    if kind == "codec":
        return degrade_codec.video(x, s)
    if kind == "chroma":
        x = degrade_colour.chroma_bleed(x, s["bleed"])
        return degrade_colour.saturation(x, s["saturation"]) if s["saturation"] != 1 else x
    if kind == "colour":
        return degrade_colour.tone(x, s["contrast"], s["brightness"], s["black_lift"],
                                   s["gamma"])
    raise ValueError(f"unknown stage kind {kind!r}")


def degrade_clip(cfg: Config, video: str, slot_id: int, attempt: int, category: str,
                 fmt: FormatCfg, gts: list[np.ndarray], lrs: list[np.ndarray]
                 ) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The worker's step: draw this sample's template and parameters from its identity
    (seed, video, slot, attempt, category) and degrade its LR frames."""
    mix = cfg.category(category).degradation_mix(fmt.name)
    if [n for n, w in mix if w > 0] == [NONE]:
        return lrs, {"template": NONE}
    rng = rng_for(cfg.seed, video, slot_id, attempt, name_key(category), DEGRADE_STREAM)
    name = _pick(rng, mix)
    if name == NONE:
        return lrs, {"template": NONE}
    params = draw(cfg.degradation(name), rng, len(lrs), fmt.lr_size)
    return apply(params, gts, lrs), params


def reproduce(record: dict[str, Any], frames: list[np.ndarray]) -> list[np.ndarray]:
    """A sample's degraded LR frames from its manifest line and either its clean LR frames or
    its GT frames (all `frames_per_clip` of them, in clip order).

    GT frames are first reduced to the clean LR exactly as dsgen does (the line's
    `lr_filter`); a sample whose first stage resized from the GT needs the GT frames.
    """
    params = record.get("degradation") or {"template": NONE}
    lw, lh = (int(v) for v in record["lr_size"])
    if frames[0].shape[:2] == (lh, lw):
        return apply(params, None, list(frames))
    gh, gw = frames[0].shape[:2]
    fmt = FormatCfg("reproduce", gw, gh, scale=gw // lw)
    lrs = [lr_frame(g, fmt, record["lr_filter"]) for g in frames]
    return apply(params, list(frames), lrs)
