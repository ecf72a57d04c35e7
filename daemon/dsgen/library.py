"""The video library: configured and watched videos, their states, and what comes and goes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dsgen import ledger
from dsgen.config import Config, VideoCfg
from dsgen.errors import VideoError
from dsgen.model import RETURNABLE, VideoRow
from dsgen.probe import QuickProbe, file_key, quick_probe
from dsgen.report import Reporter
from dsgen.runstate import RunState
from dsgen.state import State
from dsgen.watcher import FolderWatcher
from dsgen.writer import PathScheme, alias_paths, remove_files, sample_files

Headers = Callable[[list[Path]], list["QuickProbe | VideoError"]]


def read_headers(paths: list[Path]) -> list[QuickProbe | VideoError]:
    """Header checks in this process (what the workers run, for callers without any)."""
    out: list[QuickProbe | VideoError] = []
    for path in paths:
        try:
            out.append(quick_probe(path))
        except VideoError as e:
            out.append(e)
    return out


class Library:
    """Keeps `run.videos` true to the files: sync, watch folders, gone and back, rollback."""

    def __init__(self, run: RunState, ui: Reporter, changed: Callable[[], None],
                 headers: Headers = read_headers) -> None:
        self.run = run
        self.ui = ui
        self.changed = changed  # called when video states change (metrics)
        self.headers = headers  # reads headers (in the workers, when the engine runs)
        self.watcher: FolderWatcher | None = None

    # -- watched folders -------------------------------------------------------------------

    def start_watching(self, st: State) -> None:
        """Start (or restart, after a reload) the folder watchers and take a first scan."""
        self.stop_watching()
        self.run.watched.clear()
        if self.run.cfg.watch:
            self.watcher = FolderWatcher(self.run.cfg.watch, on_hint=self.run.wake.set)
            self.watcher.start()
            self.scan_watched(st, initial=True)

    def stop_watching(self) -> None:
        """Stop the observers."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def alive(self) -> bool:
        """Observer threads alive (for the systemd watchdog)."""
        return self.watcher is None or self.watcher.alive()

    def video_cfgs(self) -> list[VideoCfg]:
        """Configured videos, then those found in watched folders (a watched file that is
        also configured, by name or by path, is the configured video: never extracted twice)."""
        named = {v.name for v in self.run.cfg.videos}
        paths = {_real(v.path) for v in self.run.cfg.videos}
        return [*self.run.cfg.videos,
                *(v for v in self.run.watched.values()
                  if v.name not in named and _real(v.path) not in paths)]

    # -- sync ------------------------------------------------------------------------------

    def sync(self, st: State) -> None:
        """Check every video's header; record missing and unusable ones with why.

        A file whose size and mtime match what the state recorded is not opened again;
        the others are read in the workers (`headers`), in batches."""
        run = self.run
        known = {v.name: v for v in st.videos(probes=False)}
        todo: list[tuple[VideoCfg, VideoRow | None]] = []
        results: dict[str, QuickProbe | VideoError] = {}
        for vc in self.video_cfgs():
            row = known.get(vc.name)
            if row is not None and row.status in ("failed", "changed") and (
                    row.id in run.cfg_by_id):
                continue  # already reported in this run
            todo.append((vc, row))
            q = _unchanged(vc, row)
            if q is not None:
                results[vc.name] = q
        reads = [vc for vc, _ in todo if vc.name not in results]
        for vc, res in zip(reads, self.headers([v.path for v in reads]), strict=True):
            results[vc.name] = res
        for vc, row in todo:
            run.cfg_by_id[self._sync_one(st, vc, row, results[vc.name])] = vc
        run.videos = {v.id: v for v in st.videos(probes=False) if v.id in run.cfg_by_id}
        self.changed()

    def _sync_one(self, st: State, vc: VideoCfg, row: VideoRow | None,
                  header: QuickProbe | VideoError) -> int:
        """Record one video's current state from its header check; return its id."""
        path = str(vc.path)
        cfg = self.run.cfg
        try:
            if isinstance(header, VideoError):
                raise header
            q = header
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
                self.warn_unusable(vc.name, path, e.stage, e.reason, e.hint)
            return vid
        frames = round(q.duration_s * q.fps)
        if frames < cfg.extraction.frames_per_clip:
            reason = (f"only {frames} frame(s) ({q.duration_s:.2f} s); a clip needs "
                      f"{cfg.extraction.frames_per_clip}")
            self.warn_unusable(vc.name, path, "probe", reason, "use a longer video")
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
            ledger.mark_exhausted(self.run, st, vid, [c for c, _ in vc.categories],
                                  "the file changed")
            return vid
        if row is not None and row.status in RETURNABLE:
            ledger.clear_exhausted(self.run, st, row.id, RETURNABLE)
            self.ui.line(f"✓ Video is back: {vc.name}", event="video_back", video=vc.name)
            self.run.idle = False
            self.run.finished.discard(row.id)
        status = "ready" if row is not None and st.has_probe(row.id) else "new"
        return st.upsert_video(vc.name, path, status, size=q.size, mtime_ns=q.mtime_ns,
                               duration=q.duration_s, fps=q.fps)

    def warn_unusable(self, name: str, path: str, stage: str, reason: str,
                      hint: str | None) -> None:
        """The predecessor's "unusable video" warning block."""
        self.ui.warn("Video unusable", [f"Path: {path}", f"Video: {name}",
                                        f"Reason: {stage}: {reason}"],
                     [hint or "Check the file", "Skipping and continuing..."],
                     event="video_unusable", video=name, path=path, stage=stage, reason=reason)

    def set_status(self, st: State, vid: int, status: str, stage: str | None = None,
                   reason: str | None = None) -> None:
        """Record a video's new stored status (ready, failed, gone…); a video that can give
        no more is marked exhausted for its categories."""
        run = self.run
        v = run.videos[vid]
        st.upsert_video(v.name, v.path, status, stage=stage, reason=reason)
        if status != "ready":
            why = f"{stage}: {reason}" if status == "failed" else status
            ledger.mark_exhausted(run, st, vid, [c for c, _ in run.cfg_by_id[vid].categories],
                                  why)
        run.videos[vid] = st.videos(probes=False, video_id=vid)[0]
        self.changed()

    def set_unavailable(self, st: State, vid: int, status: str, reason: str) -> None:
        """A video left (gone) or its library is unmounted (unavailable): samples stay counted."""
        v = self.run.videos.get(vid)
        if v is None or v.status == status:
            return
        self.set_status(st, vid, status, "watch", reason)
        self.ui.line(f"→ Video {status}: {v.name} ({reason}); its samples stay counted",
                     event=f"video_{status}", video=v.name, reason=reason)
        self.run.idle = False

    def scan_watched(self, st: State, initial: bool = False) -> None:
        """Reconcile watched folders: queue complete new videos, mark vanished ones."""
        assert self.watcher is not None
        run = self.run
        run.wake.clear()
        run.last["scan"] = time.monotonic()
        found, present = self.watcher.scan()
        roots = self.watcher.roots_available()
        changed = False
        for vc in found:
            if vc.path not in run.watched:
                run.watched[vc.path] = vc
                changed = True
                if not initial:
                    self.ui.line(f"📥 New video in a watched folder: {vc.path}",
                                 event="video_found", video=vc.name, path=str(vc.path))
        for path, vc in list(run.watched.items()):
            if path in present:
                continue
            root = next((w.path for w in run.cfg.watch if path.is_relative_to(w.path)), None)
            # A root that is gone, or that lost every file at once, is an unmounted library.
            root_ok = root is not None and roots.get(root, False) and any(
                p.is_relative_to(root) for p in present)
            vid = next((i for i, c in run.cfg_by_id.items() if c.name == vc.name), None)
            if vid is not None:
                if root_ok:
                    self.set_unavailable(st, vid, "gone", "removed from the watched folder")
                else:
                    self.set_unavailable(st, vid, "unavailable", "the watched folder is gone "
                                         "(unmounted?)")
            del run.watched[path]
        if changed and not initial:
            self.sync(st)
            run.idle = False

    def rescan(self, st: State) -> None:
        """Daemon: reconcile watched folders; bring back videos whose file or mount returned."""
        self.run.last["scan"] = time.monotonic()
        self.run.wake.clear()
        if self.watcher is not None:
            self.scan_watched(st)
        if any(v.status in RETURNABLE and Path(v.path).exists()
               for v in self.run.videos.values()):
            self.sync(st)

    # -- files of unrecorded slots ---------------------------------------------------------

    def rollback_unrecorded(self, st: State) -> None:
        """Delete files of slots that were never recorded (a crash between write and commit)."""
        for vid, c in self.run.counts.items():
            if not c.pending or vid not in self.run.cfg_by_id:
                continue
            slug = self.run.cfg_by_id[vid].slug
            for slot in st.slots(vid, pending_only=True):
                remove_files(slot_paths(self.run.cfg, slug, slot.slot_id, slot.formats,
                                        slot.split))


def _real(path: Path) -> str:
    """A path with symlinks and `..` resolved (the same file seen through two names)."""
    try:
        return str(path.resolve())
    except OSError:
        return str(path)


def slot_paths(cfg: Config, slug: str, slot_id: int, formats: tuple[tuple[str, str], ...],
               split: str, scheme: PathScheme | None = None) -> list[Path]:
    """Every final path a slot's samples may have, LR aliases included (for rollback)."""
    out: list[Path] = []
    cats = {c.name: c for c in cfg.categories}
    fmts = {f.name: f for f in cfg.formats}
    scheme = scheme or PathScheme.of(cfg)
    for cat, fmt in formats:
        if cat in cats and fmt in fmts:
            files = sample_files(cfg, cats[cat], fmts[fmt], slug, slot_id, split, scheme)
            out.extend(files)
            rel = [str(p.relative_to(cfg.output_root)) for p in files]
            out.extend(cfg.output_root / a for a, _ in alias_paths(scheme, rel))
    return out


def _unchanged(vc: VideoCfg, row: VideoRow | None) -> QuickProbe | None:
    """The header as recorded, if the file is the one the state knows (same path, size and
    mtime, usable, with its duration and rate): no need to open it again."""
    if row is None or row.status not in ("new", "ready") or row.path != str(vc.path):
        return None
    if row.duration is None or row.fps is None or row.size is None or row.mtime_ns is None:
        return None
    try:
        size, mtime_ns = file_key(vc.path)
    except OSError:
        return None
    if (size, mtime_ns) != (row.size, row.mtime_ns):
        return None
    return QuickProbe(str(vc.path), size, mtime_ns, row.duration, row.fps, 0, 0, "")
