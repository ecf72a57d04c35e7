"""`dsgen monitor` and `dsgen status`: read-only views of a run (placeholder wiring)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `monitor` and `status` (implemented in this module)."""
    del sub
