"""Provenance export: one JSON line per sample, mapping it back to its source frames and region."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from dsgen.config import Config, file_slug
from dsgen.degrade_config import NONE
from dsgen.migrate import stored_scheme
from dsgen.state import State
from dsgen.writer import PathScheme, alias_paths, sample_name

# Bump when a field changes meaning; documented in docs/manifest.md.
MANIFEST_VERSION = 1


def manifest_records(cfg: Config, st: State) -> Iterator[dict[str, Any]]:
    """Every durable sample as a provenance record (fields documented in docs/manifest.md)."""
    probes = {v.id: v.probe for v in st.videos()}
    n = cfg.extraction.frames_per_clip
    scheme = stored_scheme(cfg, st) or PathScheme.of(cfg)  # how the files were named
    for (name, path, slot_id, category, fmt, files, start, frame_pts, box, metrics, _,
         video_id, degradation, split) in st.sample_rows():
        probe = probes.get(video_id)
        pts = json.loads(frame_pts)
        rels = [f for f, _ in json.loads(files)]
        rec: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "sample": sample_name(file_slug(name), slot_id),
            "category": category,
            "format": fmt,
            "video": name,
            "video_path": path,
            "slot": slot_id,
            "frame_indices": list(range(start, start + n)),
            "gt_frame_index": start + n // 2,
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


def gt_frames(cfg: Config, st: State, record: dict[str, Any]) -> list[np.ndarray]:
    """All GT-size frames of a sample, decoded again from its source video exactly as the
    worker built them (the stacked layout stores only the centre GT frame)."""
    from dsgen.decode import ClipReader
    from dsgen.patches import gt_patch

    row = next((v for v in st.videos() if v.name == record["video"]), None)
    if row is None or row.probe is None:
        raise ValueError(f"{record['video']!r}: no frame index in the state")
    fmt = cfg.format(record["format"])
    box = tuple(record["crop_box"][k] for k in ("x", "y", "w", "h"))
    reader = ClipReader(row.probe)
    try:
        frames = reader.clip(record["frame_indices"][0], len(record["frame_indices"]))
        return [gt_patch(f, box, fmt, row.probe.colour) for f in frames]  # type: ignore[arg-type]
    finally:
        reader.close()
