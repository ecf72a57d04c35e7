"""Damage as data: what is damaged in a video and where, said once, kept in the state.

Damage is found by the windows a worker decodes (a decode error or a hole in the packets in
a window's chain, unreadable data, the end of a truncated file: the attempt's outcome is
`damaged`, never a scene cut), by the frame index scans (corrupt packets, holes, a short end)
and by the probe (an MP4 whose every frame fails to decode). Each video's damage is a short
list of ranges in seconds from its first frame, merged as it grows; the first damage of each
kind is warned about, the run summary, status file, metrics and `dsgen status` list it.
Planning avoids damaged ranges only as the video's recorded attempts found them (so a plan
never depends on when an index scan finished).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Any

from dsgen.report import Reporter, human_time
from dsgen.runstate import RunState
from dsgen.state import State

# Ranges of the same kind closer than this are one range (a damaged stretch shows up as many
# windows' and chunks' findings).
MERGE_SECONDS = 1.0
# Ranges kept per video: a file damaged all over is described by its first ones.
MAX_RANGES = 50
# What each kind of damage is called in messages.
KINDS = {"decode": "decode errors", "gap": "frames missing", "unreadable": "unreadable data",
         "truncated": "truncated", "corrupt": "corrupt packets",
         "undecodable": "no frame decodes"}


def entry(what: str, first: int, last: int, first_pts: int, time_base: Fraction,
          detail: str = "", source: str = "window") -> dict[str, Any]:
    """One damaged range, in pts and in seconds from the video's first frame."""
    def secs(p: int) -> float:
        return round(max(0.0, float((p - first_pts) * time_base)), 3)
    return {"what": what, "first_pts": int(first), "last_pts": int(last),
            "first_s": secs(first), "last_s": secs(last), "detail": detail, "source": source}


def entry_seconds(what: str, first_s: float, last_s: float, detail: str = "",
                  source: str = "probe") -> dict[str, Any]:
    """One damaged range known only in seconds (a probe that decoded nothing)."""
    return {"what": what, "first_pts": None, "last_pts": None, "first_s": round(first_s, 3),
            "last_s": round(last_s, 3), "detail": detail, "source": source}


def describe(d: dict[str, Any]) -> str:
    """`decode errors 5.96–6.00 s` (truncated: `truncated at 5.9 s of 12.0 s`)."""
    kind = KINDS.get(d["what"], d["what"])
    if d["what"] == "truncated":
        return f"truncated: the video ends at {d['first_s']:.1f} s, its header says " \
               f"{d['last_s']:.1f} s"
    return f"{kind} {d['first_s']:.2f}–{d['last_s']:.2f} s"


def merge(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranges of the same kind that overlap or nearly touch become one; sorted by time."""
    out: list[dict[str, Any]] = []
    for d in sorted([*old, *new], key=lambda d: (d["what"], d["first_s"], d["last_s"])):
        if out and out[-1]["what"] == d["what"] and \
                d["first_s"] <= out[-1]["last_s"] + MERGE_SECONDS:
            last = out[-1]
            if d["last_s"] > last["last_s"]:
                last["last_s"], last["last_pts"] = d["last_s"], d["last_pts"]
            continue
        out.append(dict(d))
    out.sort(key=lambda d: (d["first_s"], d["what"]))
    return out[:MAX_RANGES]


class DamageLog:
    """Records damage for the run's videos: state, the run's rows, warnings once."""

    def __init__(self, run: RunState, ui: Reporter, changed: Callable[[], None]) -> None:
        self.run = run
        self.ui = ui
        self.changed = changed  # called when a video's damage changes (metrics)
        self._warned: set[tuple[int, str]] = set()

    def record(self, st: State, vid: int, found: list[dict[str, Any]]) -> None:
        """Merge `found` into the video's damage; warn about the first of each kind."""
        if not found:
            return
        v = self.run.videos.get(vid)
        old = (v.damage if v is not None else None) or []
        now = merge(old, found)
        if now == old:
            return
        st.set_damage(vid, now)
        if v is not None:
            self.run.videos[vid] = replace(v, damage=now)
        name = v.name if v is not None else str(vid)
        for d in found:
            if (vid, d["what"]) in self._warned:
                continue
            self._warned.add((vid, d["what"]))
            self._warn(name, v.path if v is not None else "", d)
        self.changed()

    def _warn(self, name: str, path: str, d: dict[str, Any]) -> None:
        if d["what"] == "truncated":
            self.ui.warn("Video truncated", [
                f"Path: {path}", f"Video: {name}",
                f"Its header says {human_time(d['last_s'])} ({d['last_s']:.1f} s); the file "
                f"ends at {human_time(d['first_s'])} ({d['first_s']:.1f} s)"],
                ["Using the part that is there; re-copy the file to get all of it"],
                event="video_truncated", video=name, header_s=d["last_s"],
                readable_s=d["first_s"])
            return
        self.ui.warn("Video damaged", [
            f"Path: {path}", f"Video: {name}", f"Damage: {describe(d)}",
            *([f"Detail: {d['detail']}"] if d.get("detail") else [])],
            ["Windows touching the damage are rejected (reason: damaged); the rest of the "
             "video is used"], event="video_damaged", video=name, what=d["what"],
            first_s=d["first_s"], last_s=d["last_s"])
