"""The executor seam: where pure worker functions run (a local process pool, or Dask).

The engine submits picklable work (`extract.run_task`, `extract.probe_task`) and polls for
`Done` items. A worker that dies or a lost connection is a `Done` with `lost=True`: the work
is simply redone (workers write nothing, so nothing is lost or duplicated). Every backend
speaks this one small protocol; the engine never sees a backend's own types.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import socket
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from dsgen.config import Config


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as metrics and dashboards show it."""

    name: str
    host: str
    busy: bool


@dataclass(frozen=True)
class Done:
    """A finished piece of work: its result, the exception it raised, or lost (redo it)."""

    key: int
    result: Any = None
    error: BaseException | None = None  # the work raised: a bug (or bad input) in a worker
    lost: bool = False  # the worker died or was lost before it answered


# Lanes of work: "cpu" (decoding: one worker per core) and "io" (reading: header checks and
# frame index scans, which mostly wait for the disk and must not hold a decoding worker).
LANES = ("cpu", "io")


class Executor(Protocol):
    """What the engine needs from a backend."""

    def submit(self, fn: Callable[[Any], Any], arg: Any, lane: str = "cpu") -> int:
        """Start `fn(arg)` somewhere (in `lane`); return its key."""

    def poll(self, timeout: float) -> list[Done]:
        """Wait up to `timeout` seconds; return what finished (possibly nothing)."""

    def capacity(self) -> int:
        """How many pieces of work can run at once."""

    def request_stop(self) -> None:
        """Ask running work to stop at its next attempt and return what is complete."""

    def workers(self) -> list[WorkerInfo]:
        """The workers and whether they are busy."""

    def healthy(self) -> bool:
        """Whether work can be submitted (for the systemd watchdog)."""

    def shutdown(self) -> None:
        """Stop every worker; unfinished work is dropped (it is pending in the state)."""


def warm_up(_: object) -> int:
    """A no-op whose submission makes a pool start one worker (and import the worker code)."""
    return 0


# Niceness of the io lane's process: its reading yields the cores to the decoding workers.
IO_NICE = 10


def _init_io(stop_event: Any, init: Callable[[Any], None]) -> None:
    """The io lane's initializer: the worker's, then a lower priority."""
    init(stop_event)
    with contextlib.suppress(OSError):
        os.nice(IO_NICE)


class LocalExecutor:
    """A `ProcessPoolExecutor` (spawn) whose workers die with the parent; rebuilt when broken."""

    def __init__(self, cfg: Config) -> None:
        from dsgen.extract import init_worker  # the worker side: PyAV, Pillow, scikit-image

        self._init = init_worker
        self._size = cfg.worker_count
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._keys = itertools.count(1)
        self._futures: dict[Future[Any], int] = {}
        self._lane_of: dict[Future[Any], str] = {}
        self._lost: list[Done] = []  # lost when a pool was found broken at submit
        self._host = socket.gethostname()
        self._pools: dict[str, ProcessPoolExecutor] = {lane: self._new_pool(lane)
                                                        for lane in LANES}

    def _new_pool(self, lane: str) -> ProcessPoolExecutor:
        size = self._size if lane == "cpu" else 1
        if lane == "cpu":
            init, args = self._init, (self._stop,)
        else:
            init, args = _init_io, (self._stop, self._init)  # type: ignore[assignment]
        pool = ProcessPoolExecutor(max_workers=size, mp_context=self._ctx, initializer=init,
                                   initargs=args)
        # Start every worker now (one per submission), so their imports overlap the
        # parent's start-up instead of delaying the first probe.
        for _ in range(size):
            pool.submit(warm_up, None)
        return pool

    def submit(self, fn: Callable[[Any], Any], arg: Any, lane: str = "cpu") -> int:
        """Queue `fn(arg)` in the lane's pool (rebuilt first if a worker died since the last
        poll: what it had in flight comes back lost at the next poll)."""
        key = next(self._keys)
        lane = lane if lane in self._pools else "cpu"
        try:
            fut = self._pools[lane].submit(fn, arg)
        except BrokenProcessPool:
            self._lost.extend(self._rebuild(lane))
            fut = self._pools[lane].submit(fn, arg)
        self._futures[fut] = key
        self._lane_of[fut] = lane
        return key

    def _rebuild(self, lane: str) -> list[Done]:
        """A new pool for `lane`; its old pool's work in flight, as lost."""
        gone = [f for f, ln in self._lane_of.items() if ln == lane]
        out = [Done(self._futures.pop(f), lost=True) for f in gone]
        for f in gone:
            del self._lane_of[f]
        self._pools[lane].shutdown(wait=False, cancel_futures=True)
        self._pools[lane] = self._new_pool(lane)
        return out

    def poll(self, timeout: float) -> list[Done]:
        """Results, errors, or — when a worker died — every in-flight item as lost."""
        out: list[Done] = self._lost
        self._lost = []
        if not self._futures:
            return out
        done, _ = wait(list(self._futures), timeout=0.0 if out else timeout,
                       return_when=FIRST_COMPLETED)
        broken: set[str] = set()
        for fut in done:
            key = self._futures.pop(fut)
            lane = self._lane_of.pop(fut)
            try:
                out.append(Done(key, result=fut.result()))
            except BrokenProcessPool:
                broken.add(lane)
                out.append(Done(key, lost=True))
            except Exception as e:  # raised inside the worker (or its result failed to load)
                out.append(Done(key, error=e))
        for lane in broken:
            out.extend(self._rebuild(lane))
        return out

    def capacity(self) -> int:
        """The pool size."""
        return self._size

    def request_stop(self) -> None:
        """Workers check this event between attempts."""
        self._stop.set()

    def workers(self) -> list[WorkerInfo]:
        """`local-1…N`, the first ones busy (a pool does not say which process runs what)."""
        busy = min(self._size, sum(1 for ln in self._lane_of.values() if ln == "cpu"))
        return [WorkerInfo(f"local-{i + 1}", self._host, i < busy) for i in range(self._size)]

    def healthy(self) -> bool:
        """A pool is always rebuilt after a death, so it can take work."""
        return True

    def shutdown(self) -> None:
        """Stop the workers and drop what is queued."""
        self._futures.clear()
        self._lane_of.clear()
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def make_executor(cfg: Config) -> Executor:
    """The executor the config asks for."""
    if cfg.executor == "dask":
        from dsgen.dask_executor import DaskExecutor  # optional: pip install 'dsgen[dask]'

        return DaskExecutor(cfg)
    return LocalExecutor(cfg)
