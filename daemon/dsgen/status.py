"""The predecessor-compatible `.generator_status.json`, rewritten atomically every few seconds."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dsgen import __version__
from dsgen.config import Config
from dsgen.model import PREDECESSOR_STATE
from dsgen.runstate import VideoLine
from dsgen.writer import write_text_atomic

# Video states that count as completed in the predecessor's progress figures.
SETTLED = ("done", "failed", "missing", "changed", "gone", "unavailable")


def iso_time(ts: float) -> str:
    """A Unix time as ISO 8601 UTC (seconds), for dsgen's own fields."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def local_iso_time(ts: float) -> str:
    """A Unix time as the predecessor wrote its times: naive local ISO 8601.

    Its monitor subtracts these from `datetime.now()`, which fails on an aware time.
    """
    return datetime.fromtimestamp(ts).isoformat()


def status_document(cfg: Config, lines: Sequence[VideoLine], totals: Mapping[str, int],
                    total_bytes: Mapping[str, int], status: str, started: float,
                    state_db: str, live: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status as the predecessor's monitor and users' scripts read it (plus dsgen extras)."""
    checkpoints: dict[str, Any] = {}
    completed = 0
    current_index, current_path = 0, ""
    for line in lines:
        if line.state in SETTLED:
            completed += 1
        elif line.state == "in_progress" and not current_path:
            current_index, current_path = line.index, line.path
        checkpoints[str(line.index)] = {
            "name": line.name, "path": line.path, "status": PREDECESSOR_STATE[line.state],
            "last_frame_idx": line.slots - line.pending, "extractions_done": line.samples,
            "extractions_target": line.target, "reason": line.reason,
        }
    per_cat_videos: dict[str, int] = {}
    for line in lines:
        if line.state == "done":
            for cat, n in line.by_category:
                if n:
                    per_cat_videos[cat] = per_cat_videos.get(cat, 0) + 1
    now = time.time()
    return {
        "version": f"dsgen {__version__}",
        "started_at": local_iso_time(started),
        "last_update": local_iso_time(now),
        "workers": cfg.worker_count,
        "status": status,
        "progress": {
            "total_videos": len(lines),
            "completed_videos": completed,
            "current_video_index": current_index,
            "current_video_path": current_path,
        },
        "category_stats": {
            c.name: {
                "videos_processed": per_cat_videos.get(c.name, 0),
                "images_created": totals.get(c.name, 0),
                "target": c.target,
                "disk_usage_gb": round(total_bytes.get(c.name, 0) / 1e9, 3),
            } for c in cfg.categories
        },
        "video_checkpoints": checkpoints,
        "state_db": state_db,
        # dsgen's own block: exact Unix times, free of the local clock's DST ambiguity.
        "dsgen": {**(live or {}), "started": started, "last_update": now},
    }


def write_status(cfg: Config, lines: Sequence[VideoLine], totals: Mapping[str, int],
                 total_bytes: Mapping[str, int], status: str, started: float, state_db: str,
                 live: dict[str, Any] | None = None) -> None:
    """Write the status file atomically (readers never see a partial file)."""
    doc = status_document(cfg, lines, totals, total_bytes, status, started, state_db, live)
    write_text_atomic(cfg.status_path, json.dumps(doc, indent=2) + "\n")
