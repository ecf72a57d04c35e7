"""dsgen on a real Dask cluster (the `distributed` CLI on localhost): same bytes as a local run,
and a worker killed mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsgen.config import load_config
from dsgen.dask_executor import map_path
from helpers import free_port, samples_in, wait_for_samples
from test_engine import (
    KILL_CONFIG,
    KILL_TOTAL,
    clean_long,
    dataset_files,
    long_videos,
    run_engine,
)

distributed = pytest.importorskip("distributed", reason="pip install 'dsgen[dask]'")
__all__ = ["clean_long", "long_videos"]  # fixtures shared with test_engine

DASK = str(Path(sys.executable).parent / "dask")  # the CLI of this environment


class Cluster:
    """A scheduler and named workers, each its own process (workers without a nanny)."""

    def __init__(self, port: int) -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.procs["scheduler"] = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def add_worker(self, name: str) -> None:
        """Start `dask worker` with one thread, named `name`."""
        self.procs[name] = subprocess.Popen(
            [DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--name", name,
             "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for(self, n: int, timeout: float = 60) -> None:
        """Block until `n` workers are connected."""
        client = distributed.Client(self.address, timeout=timeout)
        try:
            client.wait_for_workers(n, timeout=timeout)
        finally:
            client.close()

    def close(self) -> None:
        """Stop everything."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A scheduler with two one-thread workers on localhost."""
    c = Cluster(free_port())
    try:
        c.add_worker("w1")
        c.add_worker("w2")
        c.wait_for(2)
        yield c
    finally:
        c.close()


def dask_config(tmp_path: Path, address: str, long_videos: tuple[Path, Path]) -> Path:
    """The kill test's config, run on the cluster."""
    text = KILL_CONFIG % long_videos
    text = text.replace('state_dir = "state"', 'state_dir = "state"\nexecutor = "dask"')
    text += f'\n[dask]\nscheduler = "{address}"\n'
    cfg = tmp_path / "dsgen.toml"
    cfg.write_text(text)
    return cfg


def test_path_map_rewrites_prefixes_both_ways() -> None:
    """A worker sees /net/nas/video/x.mkv for the parent's /mnt/video/x.mkv, and back."""
    pm = (("/mnt/video", "/net/nas/video"),)
    assert map_path("/mnt/video/a/x.mkv", pm) == "/net/nas/video/a/x.mkv"
    assert map_path("/mnt/videos/x.mkv", pm) == "/mnt/videos/x.mkv"  # not a prefix match
    assert map_path("/net/nas/video/a/x.mkv", pm, reverse=True) == "/mnt/video/a/x.mkv"


@pytest.mark.slow
def test_a_dask_run_is_byte_identical_to_a_local_run(
        tmp_path: Path, cluster: Cluster, long_videos: tuple[Path, Path],
        clean_long: dict[str, str]) -> None:
    """Same seed, two Dask workers: the dataset equals the local pool's, file for file."""
    code, cfg, out = run_engine(dask_config(tmp_path, cluster.address, long_videos))
    assert code == 0, out
    assert dataset_files(cfg.output_root) == clean_long
    assert samples_in(cfg.state_dir) == KILL_TOTAL
    # the status file (and so `dsgen status` / the dashboard) names the cluster's workers
    workers = json.loads(cfg.status_path.read_text())["dsgen"]["worker_list"]
    assert sorted(w["name"] for w in workers) == ["w1", "w2"]
    assert all(w["host"] == "127.0.0.1" for w in workers)


@pytest.mark.slow
def test_a_dask_worker_killed_mid_run_loses_and_duplicates_nothing(
        tmp_path: Path, cluster: Cluster, long_videos: tuple[Path, Path],
        clean_long: dict[str, str]) -> None:
    """kill -9 one of the two Dask workers after some samples: the run finishes on the other,
    the dataset is byte-identical, every sample is recorded once."""
    cfg_path = dask_config(tmp_path, cluster.address, long_videos)
    cfg = load_config(cfg_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "dsgen.cli", "run", "--config",
                             str(cfg_path), "--no-tui"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for_samples(proc, cfg.state_dir, 15)
        os.kill(cluster.procs["w1"].pid, signal.SIGKILL)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert time.monotonic() - t0 < 600
    assert dataset_files(cfg.output_root) == clean_long
    assert samples_in(cfg.state_dir) == KILL_TOTAL
