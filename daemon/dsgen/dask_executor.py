"""The Dask backend of the executor seam: workers on many machines (docs/scaling.md).

The same pure worker functions run on `dask worker` processes: they read the video (through
`[dask] path_map` when the workers mount it elsewhere) and return results with the encoded
PNG bytes; the parent alone writes and records, so the output storage is never shared and
a worker lost mid-task only costs its work again (Dask reruns it; we never see a partial).
Needs the optional extra: `pip install 'dsgen[dask]'`.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from distributed import Client, Event, Future, KilledWorker, get_client, wait
from distributed.comm.core import CommClosedError

from dsgen.config import Config
from dsgen.executor import Done, WorkerInfo
from dsgen.extract import HeaderRequest, IndexRequest, ProbeRequest, Task
from dsgen.model import VideoProbe
from dsgen.probe import QuickProbe

# A worker asks the parent's stop event at most this often (it is a network round trip).
STOP_CHECK_SECONDS = 0.5
# The cluster's workers and threads are asked of the scheduler at most this often (each is
# a round trip of ~0.1 s on a busy scheduler; the loop would otherwise ask every second).
CLUSTER_INFO_SECONDS = 5.0

PathMap = tuple[tuple[str, str], ...]


def map_path(path: str, path_map: PathMap, reverse: bool = False) -> str:
    """`path` with the first matching prefix replaced (parent's view → the worker's)."""
    for ours, theirs in path_map:
        src, dst = (theirs, ours) if reverse else (ours, theirs)
        if path == src or path.startswith(src.rstrip("/") + "/"):
            return dst + path[len(src):]
    return path


def _stop_checker(name: str) -> Callable[[], bool]:
    """Whether the parent asked to stop, asked of the scheduler at most every 0.5 s."""
    event: list[Event] = []
    last = [time.monotonic(), False]

    def check() -> bool:
        now = time.monotonic()
        if not last[1] and now - last[0] >= STOP_CHECK_SECONDS:
            last[0] = now
            if not event:  # the worker's own client, made on first use
                event.append(Event(name, client=get_client()))
            last[1] = bool(event[0].is_set())
        return bool(last[1])
    return check


def run_remote(fn: Callable[[Any], Any], arg: Any, path_map: PathMap, stop_event: str) -> Any:
    """On a Dask worker: map the video path, run the worker function, map it back."""
    from dsgen import extract

    extract.set_stop_check(_stop_checker(stop_event))
    if isinstance(arg, Task | IndexRequest):
        arg = replace(arg, probe=replace(arg.probe, path=map_path(arg.probe.path, path_map)))
    elif isinstance(arg, ProbeRequest):
        original = arg.path
        arg = replace(arg, path=map_path(arg.path, path_map))
        result = fn(arg)
        return replace(result, path=original) if isinstance(result, VideoProbe) else result
    elif isinstance(arg, HeaderRequest):
        originals = arg.paths
        arg = replace(arg, paths=tuple(map_path(q, path_map) for q in arg.paths))
        out = fn(arg)
        return [replace(h, path=o) if isinstance(h, QuickProbe) else h
                for h, o in zip(out, originals, strict=True)]
    return fn(arg)


class DaskExecutor:
    """Work on a Dask cluster through a `distributed.Client`."""

    def __init__(self, cfg: Config) -> None:
        self._client = Client(cfg.dask.scheduler, timeout=cfg.dask.connect_seconds,
                              set_as_default=False)
        self._path_map = cfg.dask.path_map
        self._event_name = f"dsgen-stop-{uuid.uuid4().hex}"
        self._event = Event(self._event_name, client=self._client)
        self._keys = itertools.count(1)
        self._futures: dict[Future[Any], int] = {}
        self._info: tuple[float, int, list[WorkerInfo]] = (-CLUSTER_INFO_SECONDS, 1, [])

    def _cluster(self) -> tuple[int, list[WorkerInfo]]:
        """(threads, workers) of the cluster, refreshed every CLUSTER_INFO_SECONDS."""
        now = time.monotonic()
        if now - self._info[0] < CLUSTER_INFO_SECONDS:
            return self._info[1], self._info[2]
        try:
            info = self._client.scheduler_info(n_workers=-1)["workers"]
            busy = self._client.processing()
        except (CommClosedError, OSError, TimeoutError, KeyError):
            return self._info[1], self._info[2]
        workers = [WorkerInfo(str(w.get("name", addr)), str(w.get("host", "")),
                              bool(busy.get(addr))) for addr, w in sorted(info.items())]
        threads = max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))
        self._info = (now, threads, workers)
        return threads, workers

    def submit(self, fn: Callable[[Any], Any], arg: Any, lane: str = "cpu") -> int:
        """Queue `fn(arg)` on the cluster (never cached: `pure=False`); the cluster's workers
        take every lane's work (the `io` lane is a local-pool refinement)."""
        key = next(self._keys)
        fut = self._client.submit(run_remote, fn, arg, self._path_map, self._event_name,
                                  pure=False, key=f"dsgen-{self._event_name[-8:]}-{key}")
        self._futures[fut] = key
        return key

    def poll(self, timeout: float) -> list[Done]:
        """What finished; a task whose workers kept dying (KilledWorker) or whose connection
        broke comes back lost."""
        if not self._futures:
            time.sleep(min(timeout, 0.05))
            return []
        try:
            with self._client.as_current():  # `wait` looks for the current client
                done, _ = wait(list(self._futures), timeout=timeout,
                               return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        out: list[Done] = []
        for fut in done:
            key = self._futures.pop(fut)
            if fut.status == "finished":
                try:
                    out.append(Done(key, result=fut.result()))
                except (CommClosedError, OSError):
                    out.append(Done(key, lost=True))
                continue
            err = fut.exception() if fut.status == "error" else None
            if err is None or isinstance(err, KilledWorker | CommClosedError | OSError):
                out.append(Done(key, lost=True))
            else:
                out.append(Done(key, error=err))
        return out

    def capacity(self) -> int:
        """Threads over every worker of the cluster (at least 1)."""
        return self._cluster()[0]

    def request_stop(self) -> None:
        """Set the run's stop event; workers see it within STOP_CHECK_SECONDS."""
        self._event.set()

    def workers(self) -> list[WorkerInfo]:
        """The cluster's workers (name, host) and whether they run something of ours."""
        return self._cluster()[1]

    def healthy(self) -> bool:
        """The client is connected."""
        return self._client.status == "running"

    def shutdown(self) -> None:
        """Cancel what is queued and disconnect (the cluster keeps running)."""
        futures = list(self._futures)
        self._futures.clear()
        try:
            if futures:
                self._client.cancel(futures)
            self._client.close()
        except (CommClosedError, OSError, TimeoutError):
            pass
