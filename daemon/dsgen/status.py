"""The predecessor-compatible `.generator_status.json`, rewritten atomically every few seconds."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from dsgen import __version__
from dsgen.config import Config
from dsgen.state import State
from dsgen.writer import write_text_atomic


def iso_time(ts: float) -> str:
    """A Unix time as ISO 8601 UTC (seconds)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def status_document(cfg: Config, st: State, status: str, started: float,
                    video_ids: list[int], live: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The status as the predecessor's monitor and users' scripts read it (plus dsgen extras)."""
    videos = {v.id: v for v in st.videos(probes=False)}
    achieved = st.achieved()
    quotas = st.quotas()
    totals = st.category_totals()
    checkpoints: dict[str, Any] = {}
    completed = 0
    current_index, current_path = 0, ""
    for i, vid in enumerate(video_ids):
        v = videos.get(vid)
        if v is None:
            continue
        total, pending, _, _ = st.slot_stats(vid)
        made = sum(n for (qv, _), n in achieved.items() if qv == vid)
        target = sum(n for (qv, _), n in quotas.items() if qv == vid)
        if v.status in ("failed", "missing", "changed"):
            state = v.status
        elif total and not pending:
            state = "completed"
        elif total:
            state = "in_progress"
        else:
            state = "pending"
        if state in ("completed", "failed", "missing", "changed"):
            completed += 1
        elif state == "in_progress" and not current_path:
            current_index, current_path = i, v.path
        checkpoints[str(i)] = {
            "name": v.name, "path": v.path, "status": state,
            "last_frame_idx": total - pending, "extractions_done": made,
            "extractions_target": target, "reason": v.reason,
        }
    finished = {vid for i, vid in enumerate(video_ids)
                if checkpoints.get(str(i), {}).get("status") == "completed"}
    per_cat_videos: dict[str, int] = {}
    for (vid, cat), n in achieved.items():
        if n and vid in finished:
            per_cat_videos[cat] = per_cat_videos.get(cat, 0) + 1
    return {
        "version": f"dsgen {__version__}",
        "started_at": iso_time(started),
        "last_update": iso_time(time.time()),
        "workers": cfg.worker_count,
        "status": status,
        "progress": {
            "total_videos": len(video_ids),
            "completed_videos": completed,
            "current_video_index": current_index,
            "current_video_path": current_path,
        },
        "category_stats": {
            c.name: {
                "videos_processed": per_cat_videos.get(c.name, 0),
                "images_created": totals.get(c.name, (0, 0))[0],
                "target": c.target,
                "disk_usage_gb": round(totals.get(c.name, (0, 0))[1] / 1e9, 3),
            } for c in cfg.categories
        },
        "video_checkpoints": checkpoints,
        "state_db": str(st.path),
        "dsgen": live or {},
    }


def write_status(cfg: Config, st: State, status: str, started: float, video_ids: list[int],
                 live: dict[str, Any] | None = None) -> None:
    """Write the status file atomically (readers never see a partial file)."""
    doc = status_document(cfg, st, status, started, video_ids, live)
    write_text_atomic(cfg.status_path, json.dumps(doc, indent=2) + "\n")
