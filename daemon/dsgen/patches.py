"""Patch geometry and building: where a crop lies in source pixels, GT normalisation, LR stacks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from dsgen.colour import crop_rgb, crop_rgb_scaled
from dsgen.config import FormatCfg, LrFilter
from dsgen.model import ColourInfo, VideoProbe

# LR filters. area = box averaging (exact for integer factors); bicubic = Pillow's
# antialiased cubic (a = -0.5), which matches MATLAB imresize, the "BI" degradation of
# Vimeo-90K/REDS benchmarks; lanczos = the predecessor's choice (sharper, rings).
LR_FILTERS: dict[str, Image.Resampling] = {
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Geometry:
    """How source pixels map to the normalised (square-pixel, reference-height) picture."""

    sx: float  # source px → normalised px, horizontally (≤ 1: never upscaled)
    sy: float
    x0: int  # picture rectangle inside the bars, source coded pixels
    y0: int
    x1: int
    y1: int
    sar: float

    @property
    def width(self) -> int:
        """Picture width in source pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Picture height in source pixels."""
        return self.y1 - self.y0


def geometry(probe: VideoProbe, reference_height: int) -> Geometry:
    """Scale factors that square the pixels (SAR) and bring frames to reference height, never up."""
    sar = float(probe.sar)
    sy = min(reference_height / probe.height, 1.0, 1.0 / sar)
    x0, y0, x1, y1 = probe.content
    return Geometry(sx=sar * sy, sy=sy, x0=x0, y0=y0, x1=x1, y1=y1, sar=sar)


def source_size(geo: Geometry, fmt: FormatCfg) -> tuple[int, int]:
    """Size in source pixels of the region that becomes one GT patch of `fmt`."""
    if fmt.mode == "crop":
        return round(fmt.width / geo.sx), round(fmt.height / geo.sy)
    aspect = fmt.width / fmt.height
    if geo.width * geo.sar / geo.height > aspect:
        return round(geo.height * aspect / geo.sar), geo.height
    return geo.width, round(geo.width * geo.sar / aspect)


def fits(geo: Geometry, fmt: FormatCfg) -> bool:
    """Whether `fmt` can be cut from this picture without upscaling or leaving it."""
    w, h = source_size(geo, fmt)
    if fmt.mode == "crop":
        return w <= geo.width and h <= geo.height
    return w >= fmt.width and h >= fmt.height


def pick_box(geo: Geometry, fmt: FormatCfg, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A source box (x, y, w, h) for one patch: random for crop, centred for resize.

    Positions are even (on the 4:2:0 chroma grid, the cheapest conversion) wherever the
    picture leaves room; a picture starting at an odd row/column that the box fills exactly
    gives that odd position, so an exact fit is never lost.
    """
    w, h = source_size(geo, fmt)
    x = _position(geo.x0, geo.width - w, fmt.mode, rng)
    y = _position(geo.y0, geo.height - h, fmt.mode, rng)
    return x, y, w, h


def _position(start: int, room: int, mode: str, rng: np.random.Generator) -> int:
    """An even coordinate in [start, start + room] (random for crop, central for resize), or
    `start` itself when no even one lies in that range."""
    first = start + (start & 1)
    if first > start + room:
        return start
    span = start + room - first
    if mode == "crop":
        return first + 2 * int(rng.integers(0, span // 2 + 1))
    return first + (span // 4) * 2


def gt_patch(frame: Any, box: tuple[int, int, int, int], fmt: FormatCfg, info: ColourInfo
             ) -> np.ndarray:
    """The GT-size RGB patch of one frame: crop in the source, then downscale only the crop."""
    if (box[2], box[3]) == (fmt.width, fmt.height):
        return crop_rgb(frame, box, info)
    return crop_rgb_scaled(frame, box, info, (fmt.width, fmt.height))


def lr_frame(gt: np.ndarray, fmt: FormatCfg, lr_filter: LrFilter) -> np.ndarray:
    """The documented LR of a GT patch: resize by 1/scale with the configured filter."""
    img = Image.fromarray(gt).resize(fmt.lr_size, LR_FILTERS[lr_filter])
    return np.asarray(img)


def lr_stack(lrs: list[np.ndarray], k: int) -> np.ndarray:
    """The centred `k` LR frames stacked vertically: ((k·lr_h) × lr_w × 3)."""
    n = len(lrs)
    first = (n - k) // 2
    return np.concatenate(lrs[first:first + k], axis=0)


def grey(rgb: np.ndarray) -> np.ndarray:
    """BT.709 luma of an RGB uint8 image as float32 on 0–255."""
    f = rgb.astype(np.float32)
    return np.asarray(0.2126 * f[..., 0] + 0.7152 * f[..., 1] + 0.0722 * f[..., 2],
                      dtype=np.float32)


def scale_note(geo: Geometry) -> str:
    """How the source is normalised, for logs."""
    if math.isclose(geo.sx, 1.0) and math.isclose(geo.sy, 1.0):
        return "native scale"
    return f"normalised ×{geo.sx:.3f} horizontally, ×{geo.sy:.3f} vertically"
