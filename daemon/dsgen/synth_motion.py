"""Camera-motion synthetic videos: fast pans, zoom, shake, moving objects, water, fades, and
cuts between similar shots, for measuring the scene-cut gate against real motion.

`dsgen.synth.render_planes` hands a spec with ``motion`` set to `render_motion`. A shot is a
camera looking at a *set* (a large textured plane, built with the texture-pan renderer's
layers) along a path sampled at sub-pixel positions, so:

* motion is continuous (bilinear sampling, no whole-pixel steps), blurred like a 180° shutter
  (BLUR_SAMPLES positions averaged) and overlaid with fresh sensor noise every frame;
* a cut either moves to another set of similar brightness (``similar_cuts=False``: the old
  dark/bright alternation is gone, so a cut differs by ~1.1 texture σ, not ~105), or keeps
  the set and moves the camera to another viewpoint (shift of 8–25% of the width, zoom
  ×1.1–1.35, a grade change of a few per cent: ``similar_cuts=True``);
* the picture stays within [CONTENT_MIN_Y8, CONTENT_MAX_Y8], bars and flat frames are exact
  black, as in `dsgen.synth`.

Everything is drawn from ``numpy.random.default_rng(spec.seed)``: same spec, same frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dsgen.synth import (
    BLACK_Y8,
    CONTENT_MAX_Y8,
    CONTENT_MIN_Y8,
    F32,
    FINE_NOISE_SIGMA,
    NEUTRAL_C8,
    U8,
    SynthSpec,
    _gratings,
    _shapes,
    _smooth_noise,
)

# Sub-frame camera positions averaged per frame, spread over SHUTTER of the frame interval:
# a 180° shutter's motion blur (fast pans smear as they do on film).
BLUR_SAMPLES = 3
SHUTTER = 0.5
# Fresh per-frame noise (8-bit codes): a real camera never repeats a frame exactly.
SENSOR_NOISE = 1.5
# Mean luma of a set: sets differ little in brightness, so a cut between sets is told by its
# content, not by a dark/bright jump (the texture-pan renderer alternates 84/190).
SET_MEAN_RANGE = (105.0, 150.0)
# Amplitudes (8-bit codes) of a set's layers: (smooth shading 96 px, smooth shading 24 px,
# hard-edged shapes, gratings, fine mottling 3 px). Most of the power is at low frequencies,
# as in natural images (~1/f² spectrum), for a luma std of ~35 like film frames; the texture-
# pan renderer's layers (std ~10) would make every pan look slow. SynthSpec.contrast scales them.
LAYERS = (38.0, 19.0, 38.0, 10.0, 10.0)
# Similar-shot cuts: the new viewpoint is shifted by this fraction of the width, zoomed by a
# factor in ZOOM_JUMP (in or out), and graded with gain × (1 ± GAIN_JUMP) and ± OFFSET_JUMP.
SHIFT_JUMP = (0.08, 0.25)
ZOOM_JUMP = (1.1, 1.35)
GAIN_JUMP = 0.04
OFFSET_JUMP = 3.0
# Moving object: a textured ellipse this fraction of the picture (height, width); the camera
# behind it pans at OBJECT_BACKGROUND × speed.
OBJECT_SIZE = (0.55, 0.4)
OBJECT_BACKGROUND = 0.1
# Fades: gain goes from 1 to FADE_FLOOR over a shot (out, then in on the next shot).
FADE_FLOOR = 0.35
# Hand-held shake: SHAKE_WAVES sines per axis at SHAKE_HZ frequencies (hand tremor and body
# sway are ~1–8 Hz); SynthSpec.speed is the shake's std as a fraction of the width.
SHAKE_WAVES = 3
SHAKE_HZ = (1.5, 6.0)
# Slow drift of "static" cameras (zoom, water, shake), fraction of the width per frame.
DRIFT = 0.002


@dataclass
class _Set:
    """A textured plane in world pixels (luma at full, chroma at half resolution)."""

    y: F32
    u: F32
    v: F32
    x0: float  # world coordinate of texture column 0
    y0: float
    mean: float
    contrast: float
    layers: tuple[tuple[F32, float, float], ...] = ()  # water: (layer, vx, vy) flowing fields


@dataclass
class _Shot:
    """One shot: its set, first frame, camera path and grade."""

    set_index: int
    start: int
    length: int
    path: Callable[[float], tuple[float, float, float]]  # t → (centre x, centre y, zoom)
    gain: float
    offset: float
    tint: tuple[float, float]
    fade_out: bool
    obj_dir: float  # object: +1 moves right, -1 left


def _texture(rng: np.random.Generator, h: int, w: int, mean: float, contrast: float) -> F32:
    """A set's luma: the texture-pan renderer's layers (shading, shapes, gratings, grain)."""
    coarse, medium, shapes, gratings, fine = (contrast * a for a in LAYERS)
    luma: F32 = (
        mean
        + coarse * _smooth_noise(rng, h, w, 96)
        + medium * _smooth_noise(rng, h, w, 24)
        + shapes * _shapes(rng, h, w, max(8, h * w // 6000))
        + gratings * _gratings(rng, h, w)
        + fine * _smooth_noise(rng, h, w, 3)
        + FINE_NOISE_SIGMA * rng.standard_normal((h, w)).astype(np.float32)
    ).astype(np.float32)
    return luma


def _linear_path(x: float, y: float, vx: float, vy: float, z0: float, zr: float
                 ) -> Callable[[float], tuple[float, float, float]]:
    """Centre moves at (vx, vy) per frame; zoom is z0 · zr^t."""
    return lambda t: (x + vx * t, y + vy * t, z0 * zr**t)


def _shake_path(x: float, y: float, vx: float, vy: float, z: float, amplitude: float,
                waves: np.ndarray) -> Callable[[float], tuple[float, float, float]]:
    """Slow drift plus hand-held shake: per axis, a sum of sines (rows of waves: axis,
    cycles per frame, phase) scaled so the shake's std is amplitude pixels."""
    norm = amplitude * math.sqrt(2 / (len(waves) / 2))

    def at(t: float) -> tuple[float, float, float]:
        offs = [0.0, 0.0]
        for axis, freq, phase in waves:
            offs[int(axis)] += norm * math.sin(2 * math.pi * freq * t + phase)
        return x + vx * t + offs[0], y + vy * t + offs[1], z
    return at


def _plan_shots(spec: SynthSpec, rng: np.random.Generator, w: int) -> list[_Shot]:
    """Each shot's camera path and grade; similar cuts continue from the previous viewpoint."""
    bounds = [*spec.scene_starts, spec.n_frames]
    shots: list[_Shot] = []
    speed = spec.speed * w
    for k in range(len(bounds) - 1):
        start, length = bounds[k], bounds[k + 1] - bounds[k]
        x, y, z = 0.0, 0.0, 1.0
        gain, offset, tint = 1.0, 0.0, (0.0, 0.0)
        set_index = k
        if spec.similar_cuts and shots:
            prev = shots[-1]
            set_index = prev.set_index
            px, py, pz = prev.path(prev.length - 1)
            angle = float(rng.uniform(0, 2 * math.pi))
            jump = float(rng.uniform(*SHIFT_JUMP)) * w / pz
            x, y = px + jump * math.cos(angle), py + 0.5 * jump * math.sin(angle)
            zoom_jump = float(rng.uniform(*ZOOM_JUMP))
            z = pz * (zoom_jump if rng.random() < 0.5 else 1 / zoom_jump)
            z = min(max(z, 0.8), 3.0)
            gain = prev.gain * (1 + float(rng.uniform(-GAIN_JUMP, GAIN_JUMP)))
            offset = prev.offset + float(rng.uniform(-OFFSET_JUMP, OFFSET_JUMP))
            tint = (prev.tint[0] + float(rng.uniform(-4, 4)),
                    prev.tint[1] + float(rng.uniform(-4, 4)))
        # Mostly horizontal motion, direction changing from shot to shot.
        heading = float(rng.uniform(-0.35, 0.35)) + (math.pi if k % 2 else 0.0)
        vx, vy = math.cos(heading), math.sin(heading)
        path: Callable[[float], tuple[float, float, float]]
        if spec.motion in ("pan", "fade"):
            path = _linear_path(x, y, speed * vx, speed * vy, z, 1.0)
        elif spec.motion == "zoom":
            rate = 1 + spec.speed
            zr, z0 = (rate, z) if k % 2 == 0 else (1 / rate, z * rate ** (length - 1))
            path = _linear_path(x, y, DRIFT * w * vx, DRIFT * w * vy, z0, zr)
        elif spec.motion == "shake":
            # A camera has inertia: hand-held shake is band-limited (SHAKE_HZ), not a new
            # random position every frame (which would look like a cut every frame).
            fps = float(spec.fps)
            waves = np.array([(axis, rng.uniform(*SHAKE_HZ) / fps, rng.uniform(0, 2 * math.pi))
                              for axis in (0, 1) for _ in range(SHAKE_WAVES)])
            path = _shake_path(x, y, DRIFT * w * vx, DRIFT * w * vy, z, speed, waves)
        elif spec.motion == "object":
            path = _linear_path(x, y, OBJECT_BACKGROUND * speed * vx,
                                OBJECT_BACKGROUND * speed * vy, z, 1.0)
        else:  # water: the set itself flows; the camera drifts
            path = _linear_path(x, y, DRIFT * w * vx, DRIFT * w * vy, z, 1.0)
        shots.append(_Shot(set_index, start, length, path, gain, offset, tint,
                           fade_out=k % 2 == 0, obj_dir=1.0 if k % 2 == 0 else -1.0))
    return shots


def _extent(shots: list[_Shot], h: int, w: int) -> tuple[float, float, float, float]:
    """World box (x_min, y_min, x_max, y_max) every view of these shots samples from."""
    xs: list[float] = []
    ys: list[float] = []
    for s in shots:
        for i in range(s.length * 4 + 1):
            cx, cy, z = s.path(i / 4 - 0.5)
            xs += [cx - w / (2 * z), cx + w / (2 * z)]
            ys += [cy - h / (2 * z), cy + h / (2 * z)]
    margin = 8.0
    return min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin


def _build_sets(spec: SynthSpec, rng: np.random.Generator, shots: list[_Shot], h: int, w: int
                ) -> dict[int, _Set]:
    """Render the texture of every set, large enough for all its shots' views."""
    sets: dict[int, _Set] = {}
    n = spec.n_frames
    for index in sorted({s.set_index for s in shots}):
        x0, y0, x1, y1 = _extent([s for s in shots if s.set_index == index], h, w)
        th, tw = math.ceil(y1 - y0) + 2, math.ceil(x1 - x0) + 2
        mean = float(rng.uniform(*SET_MEAN_RANGE))
        layers: tuple[tuple[F32, float, float], ...] = ()
        if spec.motion == "water":
            # Three flowing fields at different scales and headings: the surface changes shape
            # from frame to frame, no single shift explains it.
            flows = []
            for cell, gain in ((w / 12, 1.0), (w / 36, 0.7), (w / 90, 0.45)):
                angle = float(rng.uniform(0, 2 * math.pi))
                v = spec.speed * w * float(rng.uniform(0.6, 1.4))
                vx, vy = v * math.cos(angle), v * math.sin(angle)
                lh = th + math.ceil(abs(vy) * n) + 4
                lw = tw + math.ceil(abs(vx) * n) + 4
                flows.append((gain * _smooth_noise(rng, lh, lw, max(2, round(cell))), vx, vy))
            layers = tuple(flows)
            y = np.zeros((th, tw), dtype=np.float32)  # only its shape is used
        else:
            y = _texture(rng, th, tw, mean, spec.contrast)
        ch, cw = (th + 1) // 2, (tw + 1) // 2
        tint = rng.uniform(-24, 24, size=2)
        u = (NEUTRAL_C8 + tint[0] + 10.0 * _smooth_noise(rng, ch, cw, 40)).astype(np.float32)
        v = (NEUTRAL_C8 + tint[1] + 10.0 * _smooth_noise(rng, ch, cw, 40)).astype(np.float32)
        sets[index] = _Set(y, u, v, x0, y0, mean, spec.contrast, layers)
    return sets


def _sample(img: F32, size: tuple[int, int], scale: float, left: float, top: float) -> F32:
    """img sampled on a grid: output (c, r) reads img at (left + c·scale, top + r·scale)."""
    pil = Image.fromarray(img, mode="F")
    out = pil.transform(size, Image.Transform.AFFINE, (scale, 0, left, 0, scale, top),
                        resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def _view_luma(st: _Set, shot: _Shot, t: float, h: int, w: int) -> F32:
    """The set's luma as the shot's camera sees it at (fractional) shot time t."""
    cx, cy, z = shot.path(t)
    left, top = cx - w / (2 * z) - st.x0, cy - h / (2 * z) - st.y0
    if not st.layers:
        return _sample(st.y, (w, h), 1 / z, left, top)
    total = np.zeros((h, w), dtype=np.float32)
    clock = shot.start + t  # the surface flows on across cuts
    for layer, vx, vy in st.layers:
        # The view slides over the layer against the flow; the layer is wider and taller than
        # the set by the whole flow (_build_sets), so the view stays inside it.
        lx = left + 2 + (layer.shape[1] - st.y.shape[1] - 4 if vx > 0 else 0) - vx * clock
        ly = top + 2 + (layer.shape[0] - st.y.shape[0] - 4 if vy > 0 else 0) - vy * clock
        total += _sample(layer, (w, h), 1 / z, lx, ly)
    # A soft-clipped sum with sharp crests: a churning surface with glints.
    surface = 42.0 * np.tanh(0.9 * total) - 10.0 * np.abs(np.sin(3.0 * total))
    out: F32 = (st.mean + st.contrast * surface).astype(np.float32)
    return out


def _object(rng: np.random.Generator, h: int, w: int, contrast: float) -> tuple[F32, F32]:
    """A moving object's luma texture and soft elliptical alpha mask."""
    oh, ow = round(OBJECT_SIZE[0] * h), round(OBJECT_SIZE[1] * w)
    mean = float(rng.uniform(*SET_MEAN_RANGE)) + float(rng.choice([-40.0, 40.0]))
    tex = _texture(rng, oh, ow, mean, contrast)
    yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
    r = np.hypot((yy - (oh - 1) / 2) / (oh / 2), (xx - (ow - 1) / 2) / (ow / 2))
    alpha = np.clip((1.0 - r) * min(oh, ow) / 3.0, 0.0, 1.0).astype(np.float32)
    return tex, alpha


def _object_left(shot: _Shot, t: float, speed: float, w: int, ow: int) -> float:
    """Object's left edge: crosses the picture and bounces off its sides."""
    span = w - ow
    pos = (0.1 * span + shot.obj_dir * speed * t) % (2 * span)
    return pos if pos <= span else 2 * span - pos


def render_motion(spec: SynthSpec) -> Iterator[tuple[U8, U8, U8]]:
    """Yield every frame's full-size 8-bit (Y, U, V) planes for a camera-renderer spec."""
    top, left, bottom, right = spec.picture_box
    h, w = bottom - top, right - left
    rng = np.random.default_rng(spec.seed)
    shots = _plan_shots(spec, rng, w)
    sets = _build_sets(spec, rng, shots, h, w)
    obj = _object(rng, h, w, spec.contrast) if spec.motion == "object" else None
    noise_rng = np.random.default_rng([spec.seed, 1])
    y = np.full((spec.height, spec.width), BLACK_Y8, dtype=np.uint8)
    u = np.full((spec.height // 2, spec.width // 2), NEUTRAL_C8, dtype=np.uint8)
    v = u.copy()
    # Content stays above the bars' black where there are bars or flat frames to tell apart;
    # otherwise fades may go darker (clipping them at CONTENT_MIN_Y8 would flatten them).
    bars = spec.letterbox != (0, 0) or bool(spec.flat_ranges)
    floor = CONTENT_MIN_Y8 if bars else BLACK_Y8 + 1
    offsets = [SHUTTER * (s / (BLUR_SAMPLES - 1) - 0.5) for s in range(BLUR_SAMPLES)]
    for i in range(spec.n_frames):
        if spec.is_flat(i):
            y.fill(BLACK_Y8)
            u.fill(NEUTRAL_C8)
            v.fill(NEUTRAL_C8)
            yield y, u, v
            continue
        shot = shots[spec.scene_of(i)]
        st = sets[shot.set_index]
        t = i - shot.start
        luma = np.zeros((h, w), dtype=np.float32)
        for dt in offsets:
            sample = _view_luma(st, shot, t + dt, h, w)
            if obj is not None:
                tex, alpha = obj
                ox = _object_left(shot, t + dt, spec.speed * w, w, tex.shape[1])
                oy = (h - tex.shape[0]) / 2
                # Paste the object at a sub-pixel position: sample it on the picture grid.
                grid = (w, h)
                a = _sample(np.pad(alpha, 2), grid, 1.0, 2 - ox, 2 - oy)
                o = _sample(np.pad(tex, 2, mode="edge"), grid, 1.0, 2 - ox, 2 - oy)
                sample = (1 - a) * sample + a * o
            luma += sample
        luma /= BLUR_SAMPLES
        gain = shot.gain
        if spec.motion == "fade":
            f = t / max(1, shot.length - 1)
            gain *= 1 - (1 - FADE_FLOOR) * (f if shot.fade_out else 1 - f)
        luma = BLACK_Y8 + gain * (luma - BLACK_Y8) + shot.offset
        luma += SENSOR_NOISE * noise_rng.standard_normal((h, w)).astype(np.float32)
        y[top:bottom, left:right] = np.clip(np.rint(luma), floor, CONTENT_MAX_Y8)
        cx, cy, z = shot.path(t)
        cl, ct = (cx - w / (2 * z) - st.x0) / 2, (cy - h / (2 * z) - st.y0) / 2
        for plane, world, tint in ((u, st.u, shot.tint[0]), (v, st.v, shot.tint[1])):
            c = _sample(world, (w // 2, h // 2), 1 / z, cl, ct) + tint
            plane[top // 2 : bottom // 2, left // 2 : right // 2] = np.clip(np.rint(c), 16, 240)
        yield y, u, v
