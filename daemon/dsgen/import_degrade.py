"""templates.json's degradation templates → `[degradations.<name>]`; each format's
`degradation_mix` → its category's `degradations` or `format_degradations`.

What the predecessor did with a template is read from its own code
(`make_dataset_v2_uhd.py` / `streaming_extractor.py`: `sample_degradation_template_params`,
`_apply_degrade_template_prestack` and `_poststack`; the mix drawn per patch and format with
`random.choices`): each section is one dsgen stage in the same order (blur → noise → JPEG →
chroma bleed + saturation → colour), every parameter drawn once per clip, noise fields new in
every frame. dsgen's built-in templates of the same names (`degrade_config._predecessor`) are
this mapping of the shipped `templates.json`, so an unchanged template comes out equal to the
built-in. Every key that is not carried over gets a note.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NoReturn

from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    NONE,
    BlurStage,
    ChromaStage,
    ColourStage,
    NoiseStage,
    load_templates,
)
from dsgen.errors import ConfigError
from dsgen.import_base import Category, Degradation, Importer, Mix, Plan, show, sub

# The predecessor's template sections, in the order its sampler reads them.
SECTIONS: dict[str, frozenset[str]] = {
    "blur": frozenset({"sigma_range", "prob"}),
    "compression": frozenset({"jpeg_quality_range", "prob", "ringing_strength"}),
    "noise": frozenset({"sigma_range", "prob", "color_noise_prob"}),
    "chroma": frozenset({"saturation_range", "chroma_bleed_prob", "chroma_bleed_strength"}),
    "color": frozenset({"contrast_range", "brightness_range", "black_lift", "gamma_range"}),
}
# sample_degradation_template_params' defaults for a missing key.
DEFAULT_BLUR_SIGMA = (0.5, 1.5)
DEFAULT_JPEG_QUALITY = (70, 90)
DEFAULT_NOISE_SIGMA = (1.0, 5.0)
DEFAULT_COLOUR_NOISE = 0.2
# The predecessor blurred only when the drawn σ was at least this (`if sigma >= 0.1`).
MIN_BLUR_SIGMA = 0.1
# The blur kernel of dsgen's built-ins: the predecessor's 2⌈2σ⌉+1 taps are at most 7 up to σ 1.5.
BLUR_KERNEL = 7
# OpenCV clamps the JPEG quality to 0–100 and libjpeg raises 0 to 1: the qualities it used.
JPEG_QUALITY = (1, 100)
# Digits kept of a probability the import computes (1 − color_noise_prob; as the built-ins).
DIGITS = 6

SOURCE_NOTE = (
    "imported stage for stage, in the predecessor's order (blur → noise → JPEG → chroma "
    "bleed and saturation → colour), each parameter drawn once per clip and the noise new "
    "in every frame, as make_dataset_v2_uhd.py did; color_noise_prob became "
    "grey_probability = 1 − color_noise_prob. What dsgen does differently (docs/"
    "degradations.md): the Gaussian blur kernel is 7 pixels wide, or 2⌈2σ⌉+1 for σ above "
    "1.5 (the predecessor's grew with each drawn σ); saturation scales chroma around BT.709 "
    "luma (the predecessor scaled HSV saturation, which also moves luma); black lift keeps "
    "white white (the predecessor added it before contrast); chroma bleed is a horizontal "
    "blur of σ 6 px × strength (the predecessor's ⌊24·strength + 1⌋-tap kernel is close). "
    "The predecessor degraded an INTER_AREA downscale; dsgen degrades its clean LR, "
    "extraction.lr_filter (bicubic unless set): lr_filter = \"area\" starts from the same LR")


class _Bug:
    """Context for dsgen's own template loader: a failure there is an importer bug."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, fix: str) -> NoReturn:
        raise ConfigError(self.source, key, f"the imported template does not load: {problem}",
                          "this is a dsgen bug: please report it with the JSON files")


def _bounds(cls: type[Any], name: str) -> tuple[float, float]:
    """The closed range dsgen accepts for stage key `name` (its field metadata)."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return float(meta["lo"]), float(meta["hi"])


class _Section:
    """One section of one template: its checked values, noting what the import changes."""

    def __init__(self, imp: Importer, key: str, body: dict[str, Any]) -> None:
        self.imp, self.key, self.body = imp, key, body

    def probability(self, name: str, default: float) -> float:
        """A probability the predecessor compared with random.random(): ≥ 1 always, ≤ 0 never."""
        if name not in self.body:
            return default
        key = sub(self.key, name)
        p = self.imp.number(key, self.body[name], -math.inf, math.inf)
        if not 0 <= p <= 1:
            clamped = min(1.0, max(0.0, p))
            self.imp.note(key, f"{p:g} imported as {clamped:g}: the predecessor "
                          f"{'always' if p > 1 else 'never'} passed it")
            return clamped
        return p

    def span(self, name: str, default: tuple[float, float], integer: bool = False
             ) -> tuple[float, float]:
        """A [lo, hi] range as the predecessor read it (two numbers; reversed ones swapped)."""
        if name not in self.body:
            return default
        key = sub(self.key, name)
        value = self.body[name]
        if not isinstance(value, list) or len(value) != 2:
            self.imp.fail(key, f"{show(value)} is not a [lo, hi] range",
                          "write two numbers, e.g. [0.5, 1.5] (the predecessor read "
                          "exactly these two)")
        lo, hi = (self.imp.number(f"{key}[{i}]", v, -math.inf, math.inf)
                  for i, v in enumerate(value))
        if integer and not (lo.is_integer() and hi.is_integer()):
            lo, hi = float(int(lo)), float(int(hi))
            self.imp.note(key, f"{show(value)} imported as [{lo:g}, {hi:g}]: the predecessor "
                          "cut the fractions off (int())")
        if lo > hi:
            self.imp.note(key, f"{show(value)} imported as [{hi:g}, {lo:g}] (smaller first)")
            lo, hi = hi, lo
        return lo, hi

    def within(self, name: str, r: tuple[float, float], cls: type[Any], field: str
               ) -> tuple[float, float]:
        """`r` if dsgen's stage key `field` takes it, else an error naming the JSON key."""
        lo, hi = _bounds(cls, field)
        if not (lo <= r[0] and r[1] <= hi):
            shown = f"{r[0]:g}" if r[0] == r[1] else f"[{r[0]:g}, {r[1]:g}]"
            self.imp.fail(sub(self.key, name), f"{shown} is outside what dsgen takes for a "
                          f"{cls.KIND} stage's {field}", f"use values from {lo:g} to {hi:g}")
        return r

    def number(self, name: str, default: float) -> float:
        """A single number (the predecessor's fixed values: black_lift, bleed strength)."""
        if name not in self.body:
            return default
        return self.imp.number(sub(self.key, name), self.body[name], -math.inf, math.inf)

    def known(self, part: str) -> None:
        """Notes for keys of the section its sampler never read."""
        if "ringing_strength" in self.body:
            self.imp.note(sub(self.key, "ringing_strength"),
                          f"{show(self.body['ringing_strength'])} not imported: the "
                          "predecessor's sampler never read it (a blur stage with kernels = "
                          "{ sinc = 1.0 } adds ringing in dsgen)")
        self.imp.unknown(self.key, self.body, SECTIONS[part])


def _above(imp: Importer, key: str, p: float, r: tuple[float, float], floor: float,
           inclusive: bool) -> tuple[float, tuple[float, float]] | None:
    """The predecessor skipped draws below `floor` (and at it unless `inclusive`): the same
    chance as a smaller probability over the part of the range above it (None: never)."""
    lo, hi = r
    what = f"σ {'≥' if inclusive else '>'} {floor:g}"
    if hi < floor or (hi == floor and (lo < floor or not inclusive)):
        imp.note(key, f"[{lo:g}, {hi:g}] never draws {what}, which the predecessor needed "
                 "to apply this stage")
        return None
    if lo >= floor:
        return p, r
    share = (hi - floor) / (hi - lo)
    imp.note(key, f"[{lo:g}, {hi:g}] imported as [{floor:g}, {hi:g}] with the probability × "
             f"{share:.3g}: the predecessor applied this stage only to draws of {what}")
    return round(p * share, DIGITS), (floor, hi)


def _blur(s: _Section) -> dict[str, Any] | None:
    p = s.probability("prob", 0.0)
    if p == 0:  # the predecessor never read the rest
        return None
    sigma = s.span("sigma_range", DEFAULT_BLUR_SIGMA)
    got = _above(s.imp, sub(s.key, "sigma_range"), p, sigma, MIN_BLUR_SIGMA, inclusive=True)
    if got is None:
        return None
    p, sigma = got
    s.within("sigma_range", sigma, BlurStage, "sigma")
    size = max(BLUR_KERNEL, 2 * math.ceil(2 * sigma[1]) + 1)
    top = int(_bounds(BlurStage, "kernel_size")[1])
    if size > top:
        s.imp.note(sub(s.key, "sigma_range"), f"σ up to {sigma[1]:g} wanted a {size}-pixel "
                   f"kernel; dsgen's largest, {top}, is used")
        size = top
    return {"kind": "blur", "probability": p, "kernels": {"iso": 1.0}, "sigma": list(sigma),
            "kernel_size": [size, size]}


def _jpeg(s: _Section) -> dict[str, Any] | None:
    p = s.probability("prob", 0.0)
    if p == 0:
        return None
    lo, hi = s.span("jpeg_quality_range", DEFAULT_JPEG_QUALITY, integer=True)
    q = (int(min(max(lo, JPEG_QUALITY[0]), JPEG_QUALITY[1])),
         int(min(max(hi, JPEG_QUALITY[0]), JPEG_QUALITY[1])))
    if q != (lo, hi):
        s.imp.note(sub(s.key, "jpeg_quality_range"), f"[{lo:g}, {hi:g}] imported as "
                   f"[{q[0]}, {q[1]}]: the qualities OpenCV and libjpeg really used (1–100)")
    return {"kind": "jpeg", "probability": p, "quality": list(q)}


def _noise(s: _Section) -> dict[str, Any] | None:
    p = s.probability("prob", 0.0)
    if p == 0:
        return None
    colour = s.probability("color_noise_prob", DEFAULT_COLOUR_NOISE)
    sigma = s.span("sigma_range", DEFAULT_NOISE_SIGMA)
    got = _above(s.imp, sub(s.key, "sigma_range"), p, sigma, 0.0, inclusive=False)
    if got is None:
        return None
    p, sigma = got
    s.within("sigma_range", sigma, NoiseStage, "gaussian_sigma")
    return {"kind": "noise", "probability": p, "gaussian_probability": 1.0,
            "gaussian_sigma": list(sigma), "grey_probability": round(1.0 - colour, DIGITS),
            "per": "clip"}


def _chroma(s: _Section) -> dict[str, Any] | None:
    sat = s.within("saturation_range", s.span("saturation_range", (1.0, 1.0)), ChromaStage,
                   "saturation")
    bleed_p = s.probability("chroma_bleed_prob", 0.0)
    strength = s.number("chroma_bleed_strength", 0.0)
    if strength <= 0 and bleed_p > 0:
        s.imp.note(sub(s.key, "chroma_bleed_strength"), f"{strength:g}: the predecessor bled "
                   "no colour at this strength; imported without bleed")
    strength = max(strength, 0.0)
    s.within("chroma_bleed_strength", (strength, strength), ChromaStage, "bleed_strength")
    if strength == 0:
        bleed_p = 0.0
    if sat == (1.0, 1.0) and bleed_p == 0:
        return None
    return {"kind": "chroma", "probability": 1.0, "saturation": list(sat),
            "bleed_probability": bleed_p, "bleed_strength": [strength, strength]}


def _colour(s: _Section) -> dict[str, Any] | None:
    contrast = s.within("contrast_range", s.span("contrast_range", (1.0, 1.0)), ColourStage,
                        "contrast")
    brightness = s.within("brightness_range", s.span("brightness_range", (0.0, 0.0)),
                          ColourStage, "brightness")
    lift = s.number("black_lift", 0.0)
    s.within("black_lift", (lift, lift), ColourStage, "black_lift")
    gamma = s.within("gamma_range", s.span("gamma_range", (1.0, 1.0)), ColourStage, "gamma")
    if (contrast, brightness, lift, gamma) == ((1.0, 1.0), (0.0, 0.0), 0.0, (1.0, 1.0)):
        return None
    return {"kind": "colour", "probability": 1.0, "contrast": list(contrast),
            "brightness": list(brightness), "black_lift": [lift, lift], "gamma": list(gamma)}


# Section → its stage, in the predecessor's order of application.
STAGES = {"blur": _blur, "noise": _noise, "compression": _jpeg, "chroma": _chroma,
          "color": _colour}


def template_stages(timp: Importer, name: str, parts: dict[str, Any]) -> list[dict[str, Any]]:
    """The dsgen stage tables of one templates.json template (empty: it never changes a
    pixel); a note for every section or key not carried over."""
    key = f"degradation_templates.{name}"
    timp.unknown(key, parts, SECTIONS)
    stages = []
    for part, convert in STAGES.items():
        raw = parts.get(part)
        pkey = sub(key, part)
        if part in parts and not raw:
            timp.note(pkey, f"{show(raw)}: empty, so the predecessor skipped it; nothing to "
                      "import")
            continue
        if raw is None:
            continue
        section = _Section(timp, pkey, timp.table(pkey, raw))
        section.known(part)
        stage = convert(section)
        if stage is None:
            timp.note(pkey, "never changes a pixel as written (no probability above 0, or "
                      "only neutral values), as in the predecessor: no stage")
        else:
            stages.append(stage)
    return stages


def carry(imp: Importer, timp: Importer, plan: Plan) -> None:
    """Write the templates the mixes draw as `plan.degradations` and each category's mixes
    (`timp` notes and errors are about templates.json)."""
    used = {n for mix in plan.degradation_mixes.values() for n, _ in mix}
    unused = [n for n in plan.degradation_templates if n not in used]
    if unused:
        timp.note(", ".join(f"degradation_templates.{n}" for n in unused),
                  "no format's degradation_mix draws it; not written (dsgen refuses a "
                  "template no category uses)")
    rename: dict[str, str] = {}  # templates.json name → its name in the TOML (or none)
    taken = set(plan.degradation_templates)
    for t in plan.degradation_templates.values():
        if t.name not in used:
            continue
        tkey = f"degradation_templates.{t.name}"
        stages = template_stages(timp, t.name, t.parts)
        if not stages:
            rename[t.name] = NONE
            timp.note(tkey, f"changes no pixel, so the mixes draw dsgen's {NONE!r} (the clean "
                      "LR) in its place")
            continue
        name = t.name
        if name == NONE:
            name, n = "none_predecessor", 2
            while name in taken:
                name, n = f"none_predecessor_{n}", n + 1
            taken.add(name)
            timp.note(tkey, f"{NONE!r} is dsgen's name for the clean LR; imported as "
                      f"[degradations.{name}]")
        rename[t.name] = name
        table = Degradation(name, t.description, tuple(stages), t.name)
        timp.note(tkey, f"imported as [degradations.{name}] ("
                  + " → ".join(s["kind"] for s in stages) + ")" + _builtin(imp.file, table))
        plan.degradations.append(table)
    if plan.degradations:
        timp.note("degradation_templates", SOURCE_NOTE)
    _mixes(imp, plan, rename)


def _builtin(source: str, table: Degradation) -> str:
    """What a template's note adds when it has a dsgen built-in's name (it replaces it)."""
    builtin = next((b for b in BUILTIN_TEMPLATES if b.name == table.name), None)
    if builtin is None:
        return ""
    own = next(t for t in load_templates(_Bug(source), {table.name: table.body()})
               if t.name == table.name)
    if own == builtin:
        return "; the same as dsgen's built-in template of that name"
    kinds = [s.KIND for s in own.stages]
    if kinds != [s.KIND for s in builtin.stages]:
        what = "its stages are " + ", ".join(s.KIND for s in builtin.stages)
    else:
        differ = [k for k, a, b in zip(kinds, own.stages, builtin.stages, strict=True)
                  if a != b]
        what = ("its " + ", ".join(differ) + " stage" + ("s differ" if len(differ) > 1
                                                         else " differs")
                if differ else "only its description differs")
    return (f"; it has the name of a dsgen built-in template and replaces it there (the "
            f"built-in differs: {what})")


def _normal(mix: Mix) -> dict[str, float]:
    total = sum(w for _, w in mix)
    return {n: round(w / total, 12) for n, w in mix}


def _mixes(imp: Importer, plan: Plan, rename: dict[str, str]) -> None:
    """Each category's degradation mix: one for the category when its formats draw the same
    mix, else one per format (`format_degradations`)."""
    out: list[Category] = []
    for c in plan.categories:
        per: list[tuple[str, Mix]] = []
        for fmt, _ in c.mix:
            merged: dict[str, float] = {}
            for n, w in plan.degradation_mixes.get((c.name, fmt), ()):
                merged[rename[n]] = merged.get(rename[n], 0.0) + w
            per.append((fmt, tuple(merged.items()) or ((NONE, 1.0),)))
        clean = all(m == ((NONE, 1.0),) or set(_normal(m)) == {NONE} for _, m in per)
        if clean:
            out.append(c)
            continue
        ckey = f"categories.{c.name}"
        if all(_normal(m) == _normal(per[0][1]) for _, m in per):
            out.append(dataclasses.replace(c, degradations=per[0][1]))
            imp.note(ckey, "every format draws the same degradation_mix: imported as the "
                     "category's degradations")
        else:
            out.append(dataclasses.replace(c, format_degradations=tuple(per)))
            imp.note(ckey, "its formats draw different degradation_mix: imported per format "
                     "as format_degradations (clean LR, none, where a format had no mix)")
    plan.categories = out
