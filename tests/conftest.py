"""Shared fixtures: the checked-in host snapshot, and the real BPF source.

Tests that need root and a kernel that loads BPF use the ``bpf_source`` fixture.  Outside CI
they skip with the reason when BPF cannot load; under ``CI=true`` that is a failure, never a
silent skip (the brief's rule: CI is root on a BPF-capable kernel).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "host"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI=true (a capability CI must have is missing)."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def snapshot_root(tmp_path: Path) -> Path:
    """A writable copy of the captured /proc and /sys snapshot."""
    dest = tmp_path / "host"
    shutil.copytree(SNAPSHOT, dest)
    return dest


@pytest.fixture(scope="session")
def bpf_source():
    """One loaded BPF source for the whole session (compiling costs ≈1 s)."""
    from scxd.hostfs import HostFS
    from scxd.telemetry.bpf import BpfSchedSource, BpfUnavailable

    src = BpfSchedSource(HostFS("/"))
    try:
        src.load()
    except BpfUnavailable as exc:
        skip_or_fail(f"BPF telemetry cannot load: {exc}")
    yield src
    src.close()


@pytest.fixture(scope="session")
def testbed_artifacts():
    """The built sched_ext test bed (built now if missing; a cached build is only checked):
    the kernel, its tree's schedulers, and the scx schedulers when an upstream source tree
    is available."""
    from scxd.testbed import build as tb

    try:
        return tb.build(quiet=True)
    except (tb.BuildError, OSError) as exc:
        skip_or_fail(f"the sched_ext test bed is not built and cannot be built: {exc}")
