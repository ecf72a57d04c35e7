"""A dataset's file names over its life: the path scheme the state records, the check at
start-up, and `dsgen migrate`, which moves a written dataset to the scheme the config asks
for (flat folders or buckets, LR aliases) without losing, duplicating or orphaning a file.

Every step is idempotent and the state says a migration is under way until it finished, so
an interrupted `dsgen migrate` is simply run again (and `dsgen run` refuses until then).
"""

from __future__ import annotations

import filecmp
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from dsgen.config import Config, slugify
from dsgen.errors import StateError
from dsgen.state import State
from dsgen.writer import (
    LEGACY_SCHEME,
    PathScheme,
    alias_paths,
    bucket,
    clear_tmp,
    link_file,
    remove_files,
    tmp_dir,
    write_descriptions,
)

META_PATHS = "paths"  # the PathScheme the dataset's files are named with
META_MIGRATING = "migrating"  # the scheme a `dsgen migrate` under way moves them to
BATCH = 500  # samples moved per state transaction: a crash redoes at most this many moves


def identity(cfg: Config) -> str:
    """What must never change for a dataset: seed, layout, frame count and output root."""
    return json.dumps({"seed": cfg.seed, "layout": cfg.layout,
                       "frames": cfg.extraction.frames_per_clip,
                       "root": str(cfg.output_root.resolve())}, sort_keys=True)


def stored_scheme(cfg: Config, st: State) -> PathScheme | None:
    """The scheme the dataset's files are named with; None before anything was planned.

    A state from before schemes were recorded that planned slots used the old stacked
    naming: a folder per video (LEGACY_SCHEME).
    """
    text = st.get_meta(META_PATHS)
    if text is not None:
        return PathScheme.from_json(text)
    if not st.has_slots():
        return None
    return LEGACY_SCHEME if cfg.layout == "stacked" else PathScheme()


def _legacy_note(scheme: PathScheme) -> str:
    return " (a folder per video, as dsgen wrote it before)" if scheme == LEGACY_SCHEME else ""


def check_scheme(cfg: Config, st: State) -> None:
    """At start-up: the config's scheme must be the dataset's (stored the first time)."""
    if st.get_meta(META_MIGRATING) is not None:
        raise StateError(f"{st.path}: a `dsgen migrate` of this dataset was interrupted",
                         hint=f"run `dsgen migrate --config {cfg.source}` again to finish it")
    want, have = PathScheme.of(cfg), stored_scheme(cfg, st)
    if have is None or (have == want and st.get_meta(META_PATHS) is None):
        st.set_meta(META_PATHS, want.to_json())
        return
    if have != want:
        raise StateError(
            f"{cfg.output_root}: the dataset's files are named with {have.describe()}"
            f"{_legacy_note(have)}; the config asks for {want.describe()}",
            hint=f"run `dsgen migrate --config {cfg.source}` to move the files (nothing is "
                 f"lost), or set {have.describe()} in the config to keep the old names")


@dataclass
class MigrationReport:
    """What a migration did (or, dry, would do)."""

    old: PathScheme
    new: PathScheme
    samples: int = 0
    moved: int = 0  # files renamed to their new path
    aliases_made: int = 0
    alias_copies: int = 0  # of which copies (no hard links on the filesystem)
    aliases_removed: int = 0
    rolled_back: int = 0  # files of unrecorded slots deleted
    folders_removed: int = 0
    missing: list[str] = field(default_factory=list)  # recorded files that were not there
    vacated: set[Path] = field(default_factory=set)  # folders files were moved out of

    def lines(self, dry_run: bool) -> list[str]:
        """What to print."""
        verb = "would move" if dry_run else "moved"
        out = [f"{'dry run: ' if dry_run else ''}{self.old.describe()} → {self.new.describe()}",
               f"{self.samples} samples: {verb} {self.moved} files, aliases made "
               f"{self.aliases_made} (copies {self.alias_copies}), removed "
               f"{self.aliases_removed}; unrecorded files deleted {self.rolled_back}; empty "
               f"folders removed {self.folders_removed}"]
        out += [f"⚠ recorded but missing: {m}" for m in self.missing]
        return out


def relocate(rel: str, slug: str, slot_id: int, old: PathScheme, new: PathScheme) -> str:
    """A stacked sample file's path under `new`, from its path under `old`."""
    parts = Path(rel).parts
    folder = parts[:-2] if old.bucket_size else parts[:-1]
    expected = bucket(slug, slot_id, old.bucket_size) if old.bucket_size else ""
    if old.bucket_size and parts[-2] != expected:
        raise StateError(f"{rel}: not in its bucket folder {expected}",
                         hint="the state does not match the files; restore them or report it")
    sub = (bucket(slug, slot_id, new.bucket_size),) if new.bucket_size else ()
    return str(Path(*folder, *sub, parts[-1]))


def _running(cfg: Config) -> int | None:
    """The pid of a dsgen writing this dataset on this host right now, if any."""
    from dsgen.snapshot import pid_alive

    try:
        doc = json.loads(cfg.status_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    blk = doc.get("dsgen") if isinstance(doc, dict) else None
    if not isinstance(blk, dict) or doc.get("status") in ("finished", "interrupted"):
        return None
    pid = blk.get("pid")
    if isinstance(pid, int) and blk.get("host") in (None, socket.gethostname()) and pid_alive(
            pid, None):
        return pid
    return None


def migrate(cfg: Config, dry_run: bool = False) -> MigrationReport:
    """Move the dataset's files to the config's scheme; resumable, idempotent."""
    st = State(cfg.state_dir)
    try:
        return _migrate(cfg, st, dry_run)
    finally:
        st.close()


def _migrate(cfg: Config, st: State, dry_run: bool) -> MigrationReport:
    old_ident = st.get_meta("identity")
    if old_ident is not None and old_ident != identity(cfg):
        raise StateError(f"{st.path}: this state was made with {old_ident}, the config now "
                         f"says {identity(cfg)}", hint="migrate with the dataset's own config")
    new = PathScheme.of(cfg)
    pending = st.get_meta(META_MIGRATING)
    if pending is not None and PathScheme.from_json(pending) != new:
        raise StateError(f"{st.path}: an interrupted migration to "
                         f"{PathScheme.from_json(pending).describe()} must finish first",
                         hint="set those values in the config and run `dsgen migrate` again")
    old = stored_scheme(cfg, st) or new
    report = MigrationReport(old, new)
    if old == new and pending is None:
        if not dry_run and st.get_meta(META_PATHS) is None:
            st.set_meta(META_PATHS, new.to_json())
        return report
    pid = _running(cfg)
    if pid is not None:
        raise StateError(f"{cfg.output_root}: dsgen (pid {pid}) is writing this dataset",
                         hint="stop it first (Ctrl+C or systemctl stop dsgen), then migrate")
    if not dry_run:
        st.set_meta(META_MIGRATING, new.to_json())
        clear_tmp(cfg)
        report.rolled_back = _rollback(cfg, st, old, new)
    rows: list[tuple[int, int, str, str]] = []
    for vid, slot_id, cat, name, files_json in st.sample_files():
        report.samples += 1
        files = [(str(f), int(b)) for f, b in json.loads(files_json)]
        moved = [(relocate(f, slugify(name), slot_id, old, new), b) for f, b in files]
        for (src, _), (dst, _) in zip(files, moved, strict=True):
            _move(cfg.output_root, src, dst, report, dry_run)
        _aliases(cfg, [f for f, _ in files], [f for f, _ in moved], old, new, report, dry_run)
        if moved != files:
            rows.append((vid, slot_id, cat, json.dumps(moved)))
        if len(rows) >= BATCH and not dry_run:
            st.set_sample_files(rows)
            rows = []
    if not dry_run:
        st.set_sample_files(rows)
        report.folders_removed = _prune(cfg, report.vacated)
        st.set_meta(META_PATHS, new.to_json())
        st.del_meta(META_MIGRATING)
        write_descriptions(cfg)
    return report


def _rollback(cfg: Config, st: State, old: PathScheme, new: PathScheme) -> int:
    """Delete files of slots that were never recorded, under either scheme."""
    from dsgen.library import slot_paths

    n = 0
    for v in st.videos(probes=False):
        for slot in st.slots(v.id, pending_only=True):
            for scheme in (old, new):
                paths = [p for p in slot_paths(cfg, slugify(v.name), slot.slot_id, slot.formats,
                                               slot.split, scheme) if p.exists()]
                n += len(paths)
                remove_files(paths)
    return n


def _move(root: Path, src: str, dst: str, report: MigrationReport, dry_run: bool) -> None:
    """Rename one recorded file (already moved by an interrupted run: nothing to do)."""
    if src == dst:
        return
    a, b = root / src, root / dst
    if not a.exists():
        if not b.exists():
            report.missing.append(src)
        return
    report.moved += 1
    if dry_run:
        return
    report.vacated.add(a.parent)
    b.parent.mkdir(parents=True, exist_ok=True)
    if b.exists() and os.path.samefile(a, b):
        a.unlink()  # rename() between two names of one file would keep both
    else:
        os.replace(a, b)


def _aliases(cfg: Config, old_files: list[str], new_files: list[str], old: PathScheme,
             new: PathScheme, report: MigrationReport, dry_run: bool) -> None:
    """Remove the aliases `new` has not, make the ones it has (hard links, else copies)."""
    root = cfg.output_root
    want = alias_paths(new, new_files)
    keep = {a for a, _ in want}
    for a, _ in alias_paths(old, old_files):
        if a not in keep and (root / a).exists():
            report.aliases_removed += 1
            if not dry_run:
                (root / a).unlink()
                report.vacated.add((root / a).parent)
    for a, target in want:
        p, t = root / a, root / target
        if p.exists() and t.exists() and (os.path.samefile(p, t)
                                          or filecmp.cmp(p, t, shallow=False)):
            continue
        report.aliases_made += 1
        if not dry_run and t.exists():
            report.alias_copies += link_file(t, p, tmp_dir(cfg))


def _prune(cfg: Config, vacated: set[Path]) -> int:
    """Remove the folders the migration emptied (old buckets, dropped aliases) and their
    parents that became empty, up to the category folders."""
    tops = {cfg.output_root / c.path for c in cfg.categories}
    n = 0
    for d in sorted(vacated, key=lambda p: -len(p.parts)):
        while d not in tops and d != cfg.output_root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            n += 1
            d = d.parent
    return n
