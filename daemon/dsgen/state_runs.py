"""The state's runs (start, heartbeat, end, the boot they ran in) and the repairs its
durability needs (quick check, slots made pending again, videos planned again)."""

from __future__ import annotations

import time
from pathlib import Path

from dsgen.errors import StateError
from dsgen.state_db import StateBase, damaged


class StateRuns(StateBase):
    """Runs, run time and durability repairs of `State` (docs/state.md)."""

    # -- runs ------------------------------------------------------------------------------

    def start_run(self) -> int:
        """Record a run start (with this boot's id); return its id."""
        with self.tx() as db:
            cur = db.execute("INSERT INTO runs (started, status, ended, boot) VALUES "
                             "(?, 'running', ?, ?)", (now := time.time(), now, boot_id()))
            return int(cur.lastrowid or 0)

    def touch_run(self, run_id: int) -> None:
        """The run is still alive now: a run killed later has ended about here."""
        with self.tx() as db:
            db.execute("UPDATE runs SET ended=? WHERE id=?", (time.time(), run_id))

    def running_seconds(self, now: float | None = None) -> float:
        """Time spent running over every run (idle time between runs left out): each run
        from its start to its end or last heartbeat, the current one to `now`."""
        now = time.time() if now is None else now
        rows = self.db.execute("SELECT id, started, ended, status FROM runs ORDER BY id"
                               ).fetchall()
        total = 0.0
        for i, (_, started, ended, status) in enumerate(rows):
            if ended is None:  # a run from before heartbeats: until its last sample
                nxt = rows[i + 1][1] if i + 1 < len(rows) else now
                last = self.db.execute("SELECT MAX(created) FROM samples WHERE created >= ? "
                                       "AND created < ?", (started, nxt)).fetchone()[0]
                ended = last or started
            elif status == "running" and i + 1 == len(rows):
                ended = max(ended, now)  # the run in progress
            total += max(0.0, float(ended) - float(started))
        return total

    def last_run(self) -> tuple[int, float, str, str | None] | None:
        """(id, started, status, boot id) of the newest run before this one, if any."""
        row = self.db.execute("SELECT id, started, status, boot FROM runs ORDER BY id DESC "
                              "LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), float(row[1]), str(row[2]), row[3])

    def end_run(self, run_id: int, status: str) -> None:
        """Record how a run ended."""
        with self.tx() as db:
            db.execute("UPDATE runs SET ended=?, status=? WHERE id=?",
                       (time.time(), status, run_id))

    def first_start(self) -> float | None:
        """When the first run started (for 'Total Time')."""
        row = self.db.execute("SELECT MIN(started) FROM runs").fetchone()
        return None if row[0] is None else float(row[0])

    def last_sample_time(self) -> float | None:
        """When the newest sample became durable."""
        row = self.db.execute("SELECT MAX(created) FROM samples").fetchone()
        return None if row[0] is None else float(row[0])

    # -- durability (docs/state.md) --------------------------------------------------------

    def check_quick(self) -> None:
        """StateDamaged when SQLite's quick_check finds damage (reads every page once)."""
        rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(5)")]
        if rows != ["ok"]:
            raise damaged(str(self.path), "; ".join(rows))

    def video_has_samples(self, video_id: int) -> bool:
        """Whether any sample of the video is recorded."""
        return self.db.execute("SELECT 1 FROM samples WHERE video_id=? LIMIT 1",
                               (video_id,)).fetchone() is not None

    def reset_video(self, video_id: int) -> None:
        """Forget a video's slots, attempts, exhaustion and probe (it has no sample): it is
        planned again from its header. Its quotas stay."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM samples WHERE video_id=? LIMIT 1",
                          (video_id,)).fetchone() is not None:
                raise StateError(f"{self.path}: video {video_id} has samples; not reset")
            for table in ("slots", "attempts", "slot_failures", "exhausted"):
                db.execute(f"DELETE FROM {table} WHERE video_id=?", (video_id,))
            db.execute("UPDATE videos SET probe=NULL, arrays=NULL, frames=NULL, size=NULL,"
                       " mtime_ns=NULL WHERE id=?", (video_id,))

    def samples_since(self, since: float) -> list[tuple[int, int, str]]:
        """(video, slot, files JSON) of samples recorded at or after `since`."""
        return [(int(r[0]), int(r[1]), str(r[2])) for r in self.db.execute(
            "SELECT video_id, slot_id, files FROM samples WHERE created >= ?", (since,))]

    def unrecord_slots(self, slots: list[tuple[int, int]]) -> None:
        """Make recorded slots pending again (their files are gone): they are redone, with
        the same bytes, and recorded again."""
        with self.tx() as db:
            for vid, slot in slots:
                for table in ("samples", "slot_failures", "attempts"):
                    db.execute(f"DELETE FROM {table} WHERE video_id=? AND slot_id=?",
                               (vid, slot))
                db.execute("UPDATE slots SET done=0 WHERE video_id=? AND slot_id=?", (vid, slot))


def boot_id() -> str | None:
    """This boot's id (Linux): a run that ended uncleanly in another boot saw an OS crash."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None

