"""The executor seam: where pure worker functions run (a local process pool, or Dask).

The engine submits picklable work (`extract.run_task`, `extract.probe_task`) and polls for
`Done` items. A worker that dies or a lost connection is a `Done` with `lost=True`: the work
is simply redone (workers write nothing, so nothing is lost or duplicated). Every backend
speaks this one small protocol; the engine never sees a backend's own types.
"""

from __future__ import annotations

import itertools
import multiprocessing
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


class Executor(Protocol):
    """What the engine needs from a backend."""

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        """Start `fn(arg)` somewhere; return its key."""

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
        self._host = socket.gethostname()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=self._size, mp_context=self._ctx,
                                   initializer=self._init, initargs=(self._stop,))
        # Start every worker now (one per submission), so their imports overlap the
        # parent's start-up instead of delaying the first probe.
        for _ in range(self._size):
            pool.submit(warm_up, None)
        return pool

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        """Queue `fn(arg)` in the pool."""
        key = next(self._keys)
        self._futures[self._pool.submit(fn, arg)] = key
        return key

    def poll(self, timeout: float) -> list[Done]:
        """Results, errors, or — when a worker died — every in-flight item as lost."""
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[Done] = []
        broken = False
        for fut in done:
            key = self._futures.pop(fut)
            try:
                out.append(Done(key, result=fut.result()))
            except BrokenProcessPool:
                broken = True
                out.append(Done(key, lost=True))
            except Exception as e:  # raised inside the worker (or its result failed to load)
                out.append(Done(key, error=e))
        if broken:
            out.extend(Done(key, lost=True) for key in self._futures.values())
            self._futures.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return out

    def capacity(self) -> int:
        """The pool size."""
        return self._size

    def request_stop(self) -> None:
        """Workers check this event between attempts."""
        self._stop.set()

    def workers(self) -> list[WorkerInfo]:
        """`local-1…N`, the first ones busy (a pool does not say which process runs what)."""
        busy = min(self._size, len(self._futures))
        return [WorkerInfo(f"local-{i + 1}", self._host, i < busy) for i in range(self._size)]

    def healthy(self) -> bool:
        """A pool is always rebuilt after a death, so it can take work."""
        return True

    def shutdown(self) -> None:
        """Stop the workers and drop what is queued."""
        self._futures.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(cfg: Config) -> Executor:
    """The executor the config asks for."""
    if cfg.executor == "dask":
        from dsgen.dask_executor import DaskExecutor  # optional: pip install 'dsgen[dask]'

        return DaskExecutor(cfg)
    return LocalExecutor(cfg)
