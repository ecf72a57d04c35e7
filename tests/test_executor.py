"""The local executor: results, a worker's exception, and a dying worker as lost work."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dsgen.config import config_from_dict
from dsgen.errors import VideoError
from dsgen.executor import Done, LocalExecutor


def _cfg(tmp_path: Path, workers: int = 2):  # type: ignore[no-untyped-def]
    return config_from_dict({
        "output_root": "out", "state_dir": "state", "workers": workers,
        "categories": {"c": {"target": 1, "formats": {"small_540": 1}}}},
        tmp_path / "dsgen.toml")


def square(x: int) -> int:
    """Work that succeeds."""
    return x * x


def fail(_: int) -> int:
    """Work that raises."""
    raise ValueError("bad input")


def video_error(path: str) -> VideoError:
    """Work that returns an error value (as the probe does)."""
    return VideoError(path, "probe", "no frame could be decoded", "re-copy it")


def die(_: int) -> int:
    """Work that kills its worker process."""
    os._exit(9)


def slow(x: int) -> int:
    """Work that is still running when another worker dies."""
    time.sleep(1.0)
    return x


def _wait_all(ex: LocalExecutor, n: int, timeout: float = 60) -> list[Done]:
    out: list[Done] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, f"only {len(out)} of {n} finished"
        out.extend(ex.poll(0.5))
    return out


def test_results_and_errors_come_back_by_key(tmp_path: Path) -> None:
    """Every submission comes back once: its result, or the exception it raised."""
    ex = LocalExecutor(_cfg(tmp_path))
    try:
        keys = {ex.submit(square, i): i for i in range(5)}
        bad = ex.submit(fail, 0)
        err = ex.submit(video_error, "/x.mkv")
        done = {d.key: d for d in _wait_all(ex, 7)}
        assert {k: done[k].result for k in keys} == {k: i * i for k, i in keys.items()}
        assert isinstance(done[bad].error, ValueError) and not done[bad].lost
        got = done[err].result
        assert isinstance(got, VideoError) and (got.stage, got.reason) == (
            "probe", "no frame could be decoded")
    finally:
        ex.shutdown()


def test_a_dying_worker_loses_what_was_in_flight_and_the_pool_goes_on(tmp_path: Path) -> None:
    """os._exit in a worker: every in-flight item is reported lost (never a result or an
    exception), and new work runs on the rebuilt pool."""
    ex = LocalExecutor(_cfg(tmp_path))
    try:
        other = ex.submit(slow, 1)
        killer = ex.submit(die, 0)
        done = {d.key: d for d in _wait_all(ex, 2)}
        assert done[killer].lost
        assert done[other].lost or done[other].result == 1
        again = ex.submit(square, 3)
        assert [d.result for d in _wait_all(ex, 1) if d.key == again] == [9]
    finally:
        ex.shutdown()


def test_workers_are_listed_with_their_host(tmp_path: Path) -> None:
    """One entry per worker, busy ones first."""
    ex = LocalExecutor(_cfg(tmp_path, workers=3))
    try:
        ex.submit(slow, 1)
        infos = ex.workers()
        assert [w.name for w in infos] == ["local-1", "local-2", "local-3"]
        assert [w.busy for w in infos] == [True, False, False]
        assert all(w.host for w in infos)
    finally:
        ex.shutdown()


def test_submitting_to_a_pool_broken_since_the_last_poll_loses_nothing(tmp_path: Path) -> None:
    """A worker dies between two polls and new work is submitted before the next poll: the
    submission works (the lane's pool is rebuilt), the dead pool's work comes back lost at the
    next poll, and the new work gives its result."""
    ex = LocalExecutor(_cfg(tmp_path))
    try:
        killer = ex.submit(die, 0)
        deadline = time.monotonic() + 60
        while not any(f.done() for f in ex._futures):  # the pool breaks; nobody polled yet
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = ex.submit(square, 4)
        done = {d.key: d for d in _wait_all(ex, 2)}
        assert done[killer].lost
        assert done[after].result == 16
    finally:
        ex.shutdown()


def wait_for(path: str) -> str:
    """Work that holds its worker until a file exists."""
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path


def test_io_lane_work_runs_beside_the_workers(tmp_path: Path) -> None:
    """Work in the io lane runs in its own process while every cpu worker is held busy, and
    the io process is not listed as a decoding worker."""
    gate = tmp_path / "gate"
    ex = LocalExecutor(_cfg(tmp_path, workers=1))
    try:
        busy = ex.submit(wait_for, str(gate))
        io = ex.submit(square, 5, lane="io")
        first = _wait_all(ex, 1)
        assert [(d.key, d.result) for d in first] == [(io, 25)]
        assert [w.name for w in ex.workers()] == ["local-1"]
        gate.touch()
        assert [d.key for d in _wait_all(ex, 1)] == [busy]
    finally:
        gate.touch()
        ex.shutdown()
