"""The video library: configured and watched videos, their states, and what comes and goes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dsgen.config import Config, VideoCfg
from dsgen.errors import VideoError
from dsgen.model import VideoRow
from dsgen.probe import quick_probe
from dsgen.report import Reporter
from dsgen.state import State
from dsgen.watcher import FolderWatcher
from dsgen.writer import remove_files, sample_files

if TYPE_CHECKING:
    from dsgen.progress import Progress

# Video states that come back by themselves when the file or the mount returns.
RETURNABLE = ("missing", "gone", "unavailable")


class Library:
    """The engine's view of its videos (a mixin: the engine owns the attributes below)."""

    cfg: Config
    ui: Reporter
    videos: dict[int, VideoRow]
    cfg_by_id: dict[int, VideoCfg]
    watched: dict[Path, VideoCfg]
    watcher: FolderWatcher | None
    wake: threading.Event
    idle: bool
    progress: Progress
    _last: dict[str, float]

    def video_cfgs(self) -> list[VideoCfg]:
        """Configured videos, then those found in watched folders."""
        named = {v.name for v in self.cfg.videos}
        return [*self.cfg.videos, *(v for v in self.watched.values() if v.name not in named)]

    def _sync_videos(self, st: State) -> None:
        """Read every video's header; record missing and unusable ones with why."""
        known = {v.name: v for v in st.videos(probes=False)}
        for vc in self.video_cfgs():
            row = known.get(vc.name)
            if row is not None and row.status in ("failed", "changed") and (
                    row.id in self.cfg_by_id):
                continue  # already reported in this run
            self.cfg_by_id[self._sync_one(st, vc, row)] = vc
        self.videos = {v.id: v for v in st.videos() if v.id in self.cfg_by_id}
        self.progress.video_metrics()

    def _sync_one(self, st: State, vc: VideoCfg, row: VideoRow | None) -> int:
        """Record one video's current state; return its id."""
        path = str(vc.path)
        try:
            q = quick_probe(vc.path)
        except VideoError as e:
            status = "missing" if e.reason == "file not found" else "failed"
            if row is not None and row.status == status:
                return row.id
            vid = st.upsert_video(vc.name, path, status, stage=e.stage, reason=e.reason)
            if status == "missing":
                self.ui.warn("Video file not found", [f"Path: {path}", f"Video: {vc.name}"],
                             ["Skipping and continuing..."], event="video_missing",
                             video=vc.name, path=path)
            else:
                self._warn_unusable(vc.name, path, e.stage, e.reason, e.hint)
            return vid
        frames = round(q.duration_s * q.fps)
        if frames < self.cfg.extraction.frames_per_clip:
            reason = (f"only {frames} frame(s) ({q.duration_s:.2f} s); a clip needs "
                      f"{self.cfg.extraction.frames_per_clip}")
            self._warn_unusable(vc.name, path, "probe", reason, "use a longer video")
            return st.upsert_video(vc.name, path, "failed", stage="probe", reason=reason)
        if row is not None and row.size is not None and (row.size, row.mtime_ns) != (
                q.size, q.mtime_ns) and row.status not in ("missing", "failed"):
            self.ui.warn("Video changed since it was planned", [f"Path: {path}",
                                                                f"Video: {vc.name}"],
                         ["Its samples so far are kept; it is not extracted further",
                          "Give it a new name to extract it as a new video"],
                         event="video_changed", video=vc.name, path=path)
            vid = st.upsert_video(vc.name, path, "changed", stage="open",
                                  reason="size or mtime changed")
            st.mark_exhausted(vid, [c for c, _ in vc.categories], "the file changed")
            return vid
        if row is not None and row.status in RETURNABLE:
            st.clear_exhausted(row.id, RETURNABLE)
            self.ui.line(f"✓ Video is back: {vc.name}", event="video_back", video=vc.name)
            self.idle = False
        status = "ready" if row is not None and st.has_probe(row.id) else "new"
        return st.upsert_video(vc.name, path, status, size=q.size, mtime_ns=q.mtime_ns,
                               duration=q.duration_s, fps=q.fps)

    def _warn_unusable(self, name: str, path: str, stage: str, reason: str,
                       hint: str | None) -> None:
        self.ui.warn("Video unusable", [f"Path: {path}", f"Video: {name}",
                                        f"Reason: {stage}: {reason}"],
                     [hint or "Check the file", "Skipping and continuing..."],
                     event="video_unusable", video=name, path=path, stage=stage, reason=reason)

    def _set_unavailable(self, st: State, vid: int, status: str, reason: str) -> None:
        """A video left (gone) or its library is unmounted (unavailable): samples stay counted."""
        v = self.videos.get(vid)
        if v is None or v.status == status:
            return
        st.upsert_video(v.name, v.path, status, stage="watch", reason=reason)
        st.mark_exhausted(vid, [c for c, _ in self.cfg_by_id[vid].categories], status)
        self.ui.line(f"→ Video {status}: {v.name} ({reason}); its samples stay counted",
                     event=f"video_{status}", video=v.name, reason=reason)
        self.videos[vid] = st.video(vid)
        self.idle = False

    def _scan_watched(self, st: State, initial: bool = False) -> None:
        """Reconcile watched folders: queue complete new videos, mark vanished ones."""
        assert self.watcher is not None
        self.wake.clear()
        self._last["scan"] = time.monotonic()
        found, present = self.watcher.scan()
        roots = self.watcher.roots_available()
        changed = False
        for vc in found:
            if vc.path not in self.watched:
                self.watched[vc.path] = vc
                changed = True
                if not initial:
                    self.ui.line(f"📥 New video in a watched folder: {vc.path}",
                                 event="video_found", video=vc.name, path=str(vc.path))
        for path, vc in list(self.watched.items()):
            if path in present:
                continue
            root = next((w.path for w in self.cfg.watch if path.is_relative_to(w.path)), None)
            # A root that is gone, or that lost every file at once, is an unmounted library.
            root_ok = root is not None and roots.get(root, False) and any(
                p.is_relative_to(root) for p in present)
            vid = next((i for i, c in self.cfg_by_id.items() if c.name == vc.name), None)
            if vid is not None:
                if root_ok:
                    self._set_unavailable(st, vid, "gone", "removed from the watched folder")
                else:
                    self._set_unavailable(st, vid, "unavailable", "the watched folder is gone "
                                          "(unmounted?)")
            del self.watched[path]
        if changed and not initial:
            self._sync_videos(st)
            self.idle = False

    def _rescan(self, st: State) -> None:
        """Daemon: reconcile watched folders; bring back videos whose file or mount returned."""
        self._last["scan"] = time.monotonic()
        self.wake.clear()
        if self.watcher is not None:
            self._scan_watched(st)
        if any(v.status in RETURNABLE and Path(v.path).exists() for v in self.videos.values()):
            self._sync_videos(st)

    def _rollback_unrecorded(self, st: State) -> None:
        """Delete files of slots that were never recorded (a crash between write and commit)."""
        for vid in self.videos:
            slug = self.cfg_by_id[vid].slug
            for slot in st.slots(vid, pending_only=True):
                remove_files(self._slot_paths(slug, slot.slot_id, slot.formats))

    def _slot_paths(self, slug: str, slot_id: int, formats: tuple[tuple[str, str], ...]
                    ) -> list[Path]:
        out: list[Path] = []
        cats = {c.name: c for c in self.cfg.categories}
        fmts = {f.name: f for f in self.cfg.formats}
        for cat, fmt in formats:
            if cat in cats and fmt in fmts:
                out.extend(sample_files(self.cfg, cats[cat], fmts[fmt], slug, slot_id))
        return out

