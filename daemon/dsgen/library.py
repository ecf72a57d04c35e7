"""The video library: configured and watched videos, their states, and what comes and goes."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from dsgen import ledger
from dsgen.config import Config, VideoCfg, file_slug
from dsgen.errors import VideoError
from dsgen.headers import Header, read_headers
from dsgen.model import RETURNABLE, USABLE, VideoRow
from dsgen.probe import QuickProbe, file_key
from dsgen.report import Reporter
from dsgen.runstate import RunState
from dsgen.state import State
from dsgen.watcher import FileId, FolderWatcher, file_id
from dsgen.writer import PathScheme, alias_paths, sample_files

Headers = Callable[[list[Path]], list[Header]]


class Library:
    """Keeps `run.videos` true to the files: sync, watch folders, gone and back, rollback."""

    def __init__(self, run: RunState, ui: Reporter, changed: Callable[[], None],
                 headers: Headers = read_headers) -> None:
        self.run = run
        self.ui = ui
        self.changed = changed  # called when video states change (metrics)
        self.headers = headers  # reads headers (in the workers, when the engine runs)
        self.watcher: FolderWatcher | None = None
        # Each file's identity when it was last synced, to notice it change while running.
        self.synced: dict[Path, FileId] = {}
        self.forget_probe: Callable[[int], None] = lambda _vid: None  # the dispatch cache
        self._refused: set[tuple[Path | str, str]] = set()  # warned about once
        self._last_rescan: dict[Path, FileId] = {}  # configured files at the last rescan
        self._unread_from: tuple[float, int] | None = None  # (when, how many) queued at start

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

    def sync(self, st: State, later: Callable[[VideoCfg], bool] | None = None) -> None:
        """Check every video's header; record missing and unusable ones with why.

        A file whose size and mtime match what the state recorded is not opened again;
        the others are read in the workers (`headers`), in batches, waited for here. With
        `later` (the start of a run), videos never checked before for which it says so are
        recorded at once, unchecked, and queued in `run.unread`: the loop reads their headers
        as work proceeds (`apply_headers`), so a large new library does not delay the first
        sample. Videos still queued are left to the loop by every sync."""
        run = self.run
        self._prune_unread()
        known = {v.name: v for v in st.videos(probes=False)}
        todo: list[tuple[VideoCfg, VideoRow | None]] = []
        results: dict[str, QuickProbe | VideoError] = {}
        # Two names with one slug would write the same files: the first one keeps it.
        slugs = {file_slug(name): name for name in known}
        for vc in self.video_cfgs():
            if vc.name in run.unread:
                continue  # its header is read as work proceeds
            row = known.get(vc.name)
            other = slugs.setdefault(vc.slug, vc.name)
            if other != vc.name:
                self._refuse(vc, f"its file names ({vc.slug}) are those of video {other!r}",
                             "rename the file (or the video) so the names differ in a letter "
                             "or digit")
                continue
            if row is not None and row.status in ("failed", "changed") and (
                    row.id in run.cfg_by_id):
                continue  # already reported in this run
            todo.append((vc, row))
            q = unchanged_header(vc, row)
            if q is not None:
                results[vc.name] = q
                continue
            try:  # a stat here: only regular files are opened (in the workers)
                check_regular_file(vc.path)
            except VideoError as e:
                results[vc.name] = e
        if later is not None:
            todo = self._defer(st, todo, results, later)
        reads = [vc for vc, _ in todo if vc.name not in results]
        for vc, res in zip(reads, self.headers([v.path for v in reads]), strict=True):
            results[vc.name] = res
        for vc, row in todo:
            run.cfg_by_id[self._sync_one(st, vc, row, results[vc.name])] = vc
        run.videos = {v.id: v for v in st.videos(probes=False) if v.id in run.cfg_by_id}
        self.changed()

    def _defer(self, st: State, todo: list[tuple[VideoCfg, VideoRow | None]],
               results: dict[str, QuickProbe | VideoError],
               later: Callable[[VideoCfg], bool]) -> list[tuple[VideoCfg, VideoRow | None]]:
        """Record every new video of `todo` (one transaction, ids in config order) and queue
        the never-checked ones `later` picks in `run.unread`; the rest of `todo`."""
        run = self.run
        new = [vc for vc, row in todo if row is None]
        if new:
            ids = st.add_videos([(vc.name, str(vc.path)) for vc in new])
            rows = {r.id: r for r in st.videos(probes=False) if r.id in ids.values()}
            todo = [(vc, rows[ids[vc.name]] if row is None else row) for vc, row in todo]
        keep = []
        for vc, row in todo:
            if (row is not None and row.size is None and vc.name not in results
                    and later(vc)):
                run.unread[vc.name] = (row.id, vc)
                run.cfg_by_id[row.id] = vc
            else:
                keep.append((vc, row))
        if run.unread:
            self._unread_from = (time.monotonic(), len(run.unread))
        return keep

    def apply_headers(self, st: State, names: tuple[str, ...],
                      results: list[QuickProbe | VideoError]) -> None:
        """Record headers the loop had read (of videos still queued: a sync since may have
        taken some)."""
        run = self.run
        for name, res in zip(names, results, strict=True):
            hit = run.unread.pop(name, None)
            if hit is None:
                continue
            vid, vc = hit
            row = st.videos(probes=False, video_id=vid)
            got = self._sync_one(st, vc, row[0] if row else None, res)
            run.cfg_by_id[got] = vc
            run.videos[got] = st.videos(probes=False, video_id=got)[0]
        self.changed()
        if not run.unread and self._unread_from is not None:
            since, n = self._unread_from
            self._unread_from = None
            secs = time.monotonic() - since
            self.ui.line(f"✓ Headers checked: {n} new videos in {secs:.1f} s, while extracting",
                         event="headers_checked", videos=n, seconds=round(secs, 1))

    def _prune_unread(self) -> None:
        """Queued videos a reload removed or moved: no longer queued (a sync takes them)."""
        run = self.run
        if not run.unread:
            return
        current = {vc.name: vc.path for vc in self.video_cfgs()}
        for name, (vid, vc) in list(run.unread.items()):
            if current.get(name) != vc.path:
                del run.unread[name]
                if name not in current:
                    run.cfg_by_id.pop(vid, None)

    def _refuse(self, vc: VideoCfg, why: str, hint: str) -> None:
        """A video that cannot be taken at all (warned once per run)."""
        if (vc.path, why) in self._refused:
            return
        self._refused.add((vc.path, why))
        self.warn_unusable(vc.name, str(vc.path), "name", why, hint)

    def _sync_one(self, st: State, vc: VideoCfg, row: VideoRow | None,
                  header: QuickProbe | VideoError) -> int:
        """Record one video's current state from its header check; return its id."""
        path = str(vc.path)
        cfg = self.run.cfg
        fid = file_id(vc.path)
        if fid is not None:
            self.synced[vc.path] = fid
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
        same_file = row is not None and (row.size, row.mtime_ns) == (q.size, q.mtime_ns)
        frames = round(q.duration_s * q.fps)
        if frames < cfg.extraction.frames_per_clip:
            reason = (f"only {frames} frame(s) ({q.duration_s:.2f} s); a clip needs "
                      f"{cfg.extraction.frames_per_clip}")
            if row is not None and row.status == "failed" and same_file:
                return row.id  # reported when it failed
            self.warn_unusable(vc.name, path, "probe", reason, "use a longer video")
            return st.upsert_video(vc.name, path, "failed", stage="probe", reason=reason,
                                   size=q.size, mtime_ns=q.mtime_ns)
        if row is not None and row.status == "failed":
            if same_file:
                return row.id  # the file that failed, unchanged: still failed, said before
            if not self.can_reset(st, row.id):
                return self._mark_changed(st, vc, row.id)
            # The file changed since it failed (a copy completed, a file was replaced) and
            # nothing of it was recorded: it starts over, and nothing is lost.
            self._start_over(st, row.id)
            self.ui.line(f"↻ Video changed since it failed, taken from the start: {vc.name}",
                         event="video_retried", video=vc.name, path=path)
        elif row is not None and row.size is not None and not same_file and (
                row.status != "missing"):
            self.ui.warn("Video changed since it was planned", [f"Path: {path}",
                                                                f"Video: {vc.name}"],
                         ["Its samples so far are kept; it is not extracted further",
                          "Give it a new name to extract it as a new video"],
                         event="video_changed", video=vc.name, path=path)
            return self._mark_changed(st, vc, row.id)
        if row is not None and row.status in RETURNABLE:
            ledger.clear_exhausted(self.run, st, row.id, RETURNABLE)
            self.ui.line(f"✓ Video is back: {vc.name}", event="video_back", video=vc.name)
            self.run.idle = False
            self.run.finished.discard(row.id)
        status = "ready" if row is not None and st.has_probe(row.id) else "new"
        if row is not None and (row.path, row.status, row.size, row.mtime_ns, row.duration,
                                row.fps) == (path, status, q.size, q.mtime_ns, q.duration_s,
                                             q.fps):
            return row.id  # nothing to record: a start costs no write per known video
        return st.upsert_video(vc.name, path, status, size=q.size, mtime_ns=q.mtime_ns,
                               duration=q.duration_s, fps=q.fps)

    def _drop_queued(self, vid: int) -> None:
        """Tasks of a video made but not yet sent: never sent (their slots stay pending)."""
        run = self.run
        for task in [t for t in run.ready if t.video_id == vid]:
            run.ready.remove(task)
            run.busy.difference_update((vid, s.slot_id) for s in task.slots)

    def _mark_changed(self, st: State, vc: VideoCfg, vid: int) -> int:
        """The file is not the one planned: its samples stay, it gives no more."""
        vid = st.upsert_video(vc.name, str(vc.path), "changed", stage="open",
                              reason="size or mtime changed")
        ledger.mark_exhausted(self.run, st, vid, [c for c, _ in vc.categories],
                              "the file changed")
        return vid

    def _start_over(self, st: State, vid: int) -> None:
        """Forget a video's plan, probe and exhaustion (it has no recorded sample)."""
        ledger.reset_video(self.run, st, vid)
        self.forget_probe(vid)
        self.run.finished.discard(vid)
        self.run.suspects = {k for k in self.run.suspects if k[0] != vid}
        self.run.idle = False

    def can_reset(self, st: State, vid: int) -> bool:
        """A video may start over when none of its samples is recorded and none of its work
        runs (a result of the old file must never be recorded against the new one)."""
        return not self.run.in_flight(vid) and not st.video_has_samples(vid)

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
        for path, why in self.watcher.refused.items():
            if (path, why) not in self._refused:
                self._refused.add((path, why))
                shown = os.fsencode(path).decode("utf-8", "backslashreplace")  # printable
                self.warn_unusable(shown, shown, "name", why, "rename the file with a UTF-8 name")
        for vc in found:
            if vc.path not in run.watched:
                run.watched[vc.path] = vc
                changed = True
                if not initial:
                    self.ui.line(f"📥 New video in a watched folder: {vc.path}",
                                 event="video_found", video=vc.name, path=str(vc.path))
        if not initial:
            self.check_changes(st, present, {vc.path for vc in found})
        for path, vc in list(run.watched.items()):
            if path in present:
                continue
            self.synced.pop(path, None)
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
        """Daemon: reconcile watched folders; bring back videos whose file or mount returned;
        notice configured files that changed (stable = the same identity as last rescan)."""
        self.run.last["scan"] = time.monotonic()
        self.run.wake.clear()
        if self.watcher is not None:
            self.scan_watched(st)
        configured: dict[Path, FileId] = {}
        stable = set()
        for vc in self.run.cfg.videos:
            fid = file_id(vc.path)
            if fid is not None:
                configured[vc.path] = fid
                if self._last_rescan.get(vc.path) == fid:
                    stable.add(vc.path)
        self._last_rescan = configured
        self.check_changes(st, configured, stable)
        if any(v.status in RETURNABLE and Path(v.path).exists()
               for v in self.run.videos.values()):
            self.sync(st)

    def check_changes(self, st: State, present: dict[Path, FileId], stable: set[Path]
                      ) -> None:
        """Files that differ from what was synced: a video being extracted stops at once
        (its samples so far are kept); once the file is stable again, a video with nothing
        recorded (a failed copy, a replaced file) is read again from the start."""
        run = self.run
        by_path = {Path(run.videos[vid].path): vid for vid in run.cfg_by_id if vid in run.videos}
        for path, fid in present.items():
            old = self.synced.get(path)
            vid = by_path.get(path)
            if old is None or old == fid or vid is None:
                continue
            v = run.videos[vid]
            if v.status in USABLE:
                self.ui.warn("Video changed while it was being extracted",
                             [f"Path: {path}", f"Video: {v.name}"],
                             ["Its recorded samples are kept; results of the old file are "
                              "dropped",
                              "It is read again from the start if none of its samples was "
                              "recorded; otherwise give it a new name"],
                             event="video_changed", video=v.name, path=str(path))
                self.set_status(st, vid, "changed", "watch", "the file changed while in use")
                self._drop_queued(vid)
                run.idle = False
            if path not in stable or not self.can_reset(st, vid):
                continue
            vc = run.cfg_by_id[vid]
            row = st.videos(probes=False, video_id=vid)[0]
            if row.status == "changed":
                if st.video_has_samples(vid):
                    self.synced[path] = fid  # settled: kept as changed, warned once
                    continue
                self._start_over(st, vid)
                row = st.videos(probes=False, video_id=vid)[0]
            run.cfg_by_id[self._sync_one(st, vc, row, _read_one(vc.path))] = vc
            run.videos[vid] = st.videos(probes=False, video_id=vid)[0]
            self.changed()

    # -- files of unrecorded slots ---------------------------------------------------------

    def rollback_unrecorded(self, st: State) -> None:
        """Delete files of slots that were never recorded (a crash between write and commit).

        It never stops a start: a file that cannot be removed is reported (the redo of its
        slot replaces it), and the run goes on.
        """
        failed: list[str] = []
        for vid, c in self.run.counts.items():
            if not c.pending or vid not in self.run.cfg_by_id:
                continue
            slug = self.run.cfg_by_id[vid].slug
            for slot in st.slots(vid, pending_only=True):
                for p in slot_paths(self.run.cfg, slug, slot.slot_id, slot.formats,
                                    slot.split):
                    try:
                        p.unlink(missing_ok=True)
                    except OSError as e:
                        failed.append(f"{p}: {e.strerror or e}")
        if failed:
            self.ui.warn("Files of unrecorded samples could not be removed",
                         [f"{len(failed)} file(s), e.g. {failed[0]}"],
                         ["They are replaced when their slots are redone; check the output "
                          "folder's permissions"], event="rollback_failed", files=len(failed),
                         error=failed[0])


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


def unchanged_header(vc: VideoCfg, row: VideoRow | None) -> QuickProbe | None:
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


def _read_one(path: Path) -> QuickProbe | VideoError:
    """One file's header check, here (a file that just settled: one, not a library)."""
    try:
        check_regular_file(path)
    except VideoError as e:
        return e
    return read_headers([path])[0]


def check_regular_file(path: Path) -> None:
    """Only a regular file can be a video: a FIFO or device would block or never end."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # quick_probe names it missing
    except (OSError, ValueError) as e:
        raise VideoError(str(path), "open", f"cannot stat: {e}",
                         "check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        raise VideoError(str(path), "open", "not a regular file (a folder, FIFO or device)",
                         "point the path at a video file")
