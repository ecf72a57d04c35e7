"""Watched folders: a file is complete once its identity (size, mtime, inode) stayed the same
for settle_seconds; names the state cannot hold are refused, not crashed on."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dsgen.config import WatchCfg
from dsgen.watcher import FolderWatcher, file_id


def watcher(folder: Path, settle: float = 0.2) -> FolderWatcher:
    return FolderWatcher((WatchCfg(folder, (("alpha", 1.0),), settle_seconds=settle),),
                         on_hint=lambda: None)


def test_a_file_is_ready_only_after_it_stayed_the_same_for_the_settle_time(
        tmp_path: Path) -> None:
    """New → not ready; unchanged past settle → ready; grown → not ready again until it
    settles; replaced by a rename (new inode, same size and mtime) → not ready either."""
    w = watcher(tmp_path)
    f = tmp_path / "a.mkv"
    f.write_bytes(b"x" * 100)
    ready, present = w.scan()
    assert not ready and set(present) == {f}
    time.sleep(0.3)
    ready, _ = w.scan()
    assert [v.path for v in ready] == [f] and ready[0].name == "a"
    with f.open("ab") as h:
        h.write(b"y")
    assert not w.scan()[0]
    time.sleep(0.3)
    assert w.scan()[0]
    other = tmp_path / ".b.tmp"
    other.write_bytes(f.read_bytes())
    st = f.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = file_id(f)
    os.replace(other, f)
    after = file_id(f)
    assert before and after and (before.size, before.mtime_ns) == (after.size, after.mtime_ns)
    assert before.ino != after.ino
    assert not w.scan()[0]  # a new inode is a new file: it settles again
    time.sleep(0.3)
    assert w.scan()[0]


def test_a_name_that_is_not_utf8_is_refused_with_a_reason(tmp_path: Path) -> None:
    """A file name with bytes that are not UTF-8 (an old Samba share) is not taken as a
    video (the state could not store it) and is listed with why; others still are."""
    w = watcher(tmp_path, settle=0.0)
    bad = os.fsencode(tmp_path) + b"/caf\xe9.mkv"
    with open(bad, "wb") as f:
        f.write(b"x" * 10)
    (tmp_path / "good.mkv").write_bytes(b"x" * 10)
    w.scan()
    ready, _ = w.scan()
    assert [v.name for v in ready] == ["good"]
    assert list(w.refused.values()) == ["its name is not valid UTF-8"]
    assert Path(os.fsdecode(bad)) in w.refused
