"""Provenance export: one JSON line per sample, mapping it back to its source frames and region."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from dsgen.config import Config, file_slug
from dsgen.degrade_config import NONE
from dsgen.migrate import stored_scheme
from dsgen.model import VideoProbe
from dsgen.state import State
from dsgen.writer import PathScheme, alias_paths, sample_name

# Bump when a field changes meaning; documented in docs/manifest.md.
MANIFEST_VERSION = 2


def manifest_records(cfg: Config, st: State) -> Iterator[dict[str, Any]]:
    """Every durable sample as a provenance record (fields documented in docs/manifest.md).

    Frame indices come from a video's complete frame index (one video's index in memory at
    a time); before it is complete they are null — the pts identify the frames exactly."""
    n = cfg.extraction.frames_per_clip
    as_pts = st.positions_are_pts()
    scheme = stored_scheme(cfg, st) or PathScheme.of(cfg)  # how the files were named
    probe: VideoProbe | None = None
    current = None
    for (name, path, slot_id, category, fmt, files, start, frame_pts, box, metrics, _,
         video_id, degradation, split, window) in st.sample_rows():
        if video_id != current:
            current, probe = video_id, st.probe(video_id)
        pts = json.loads(frame_pts)
        first = _frame_index(probe, pts) if as_pts else start
        rels = [f for f, _ in json.loads(files)]
        rec: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "sample": sample_name(file_slug(name), slot_id),
            "category": category,
            "format": fmt,
            "video": name,
            "video_path": path,
            "slot": slot_id,
            "frame_indices": None if first is None else list(range(first, first + n)),
            "gt_frame_index": None if first is None else first + n // 2,
            "index_complete": first is not None,
            "window": json.loads(window) if window else {"origin": "position"},
            "frame_pts": pts,
            "crop_box": dict(zip(("x", "y", "w", "h"), json.loads(box), strict=True)),
            "split": split,
            "files": rels,
            "aliases": dict(alias_paths(scheme, rels)),
            "metrics": json.loads(metrics),
            "degradation": json.loads(degradation) if degradation else {"template": NONE},
        }
        f = next((x for x in cfg.formats if x.name == fmt), None)
        if f is not None:
            rec["gt_size"], rec["lr_size"] = [f.width, f.height], list(f.lr_size)
            rec["lr_filter"] = cfg.extraction.lr_filter
        if probe is not None:
            tb = probe.time_base
            rec["time_base"] = f"{tb.numerator}/{tb.denominator}"
            rec["start_seconds"] = round(float(pts[0] * tb), 6)
            rec["source_size"] = [probe.width, probe.height]
            rec["sar"] = f"{probe.sar.numerator}:{probe.sar.denominator}"
            rec["picture_box"] = list(probe.content)
            rec["colour"] = probe.colour.describe()
        yield rec


def _frame_index(probe: VideoProbe | None, pts: list[int]) -> int | None:
    """The index of the clip's first frame in the video's complete frame index, if it is
    complete and holds the clip's frames consecutively (else None)."""
    if probe is None or not probe.index_complete or not pts:
        return None
    i = int(np.searchsorted(probe.frame_pts, pts[0]))
    if probe.frame_pts[i:i + len(pts)].tolist() != pts:
        return None
    return i


def gt_frames(cfg: Config, st: State, record: dict[str, Any]) -> list[np.ndarray]:
    """All GT-size frames of a sample, decoded again from its source video exactly as the
    worker built them (the stacked layout stores only the centre GT frame): the window its
    frame pts name, verified frame for frame."""
    from dsgen.decode import ClipReader, WindowPlan
    from dsgen.patches import gt_patch

    row = next((v for v in st.videos(probes=False) if v.name == record["video"]), None)
    probe = st.probe(row.id) if row is not None else None
    if row is None or probe is None:
        raise ValueError(f"{record['video']!r}: not probed in the state")
    fmt = cfg.format(record["format"])
    box = tuple(record["crop_box"][k] for k in ("x", "y", "w", "h"))
    pts = [int(p) for p in record["frame_pts"]]
    reader = ClipReader(probe.light())
    try:
        window = reader.window(WindowPlan(pts[0]), len(pts))
        if list(window.pts) != pts:
            raise ValueError(f"{record['sample']}: its frames are no longer at pts {pts}")
        return [gt_patch(f, box, fmt, probe.colour) for f in window.frames]  # type: ignore[arg-type]
    finally:
        reader.close()
