"""`scxd observe` end to end: real telemetry, windows printed as they close."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scxd.features import FEATURE_NAMES, SCHEMA_VERSION
from tests.conftest import skip_or_fail

SCXD = Path(sys.executable).with_name("scxd")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCXD), *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.bpf
def test_observe_json_lines():
    res = run("observe", "--count", "2", "--window", "1", "--interval", "0.5", "--json")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        w = json.loads(line)
        assert w["n_samples"] == 2 and w["end_wall"] > w["start_wall"]
        assert w["features"]["version"] == SCHEMA_VERSION
        assert list(w["features"]["values"]) == list(FEATURE_NAMES)
        assert all(math.isfinite(v) for v in w["features"]["values"].values())
        assert w["metrics"]["switches_total_delta"] > 0
        if w["sched_source"] != "bpf":
            skip_or_fail(f"observe ran degraded: {res.stderr.strip()}")
        assert len(w["rq_hist"]["counts"]) == 48


def test_observe_degraded_says_so(tmp_path):
    import os
    env = dict(os.environ, SCXD_TELEMETRY__BPF="off")
    res = run("observe", "--count", "1", "--window", "0.5", "--interval", "0.5", env=env)
    assert res.returncode == 0, res.stderr
    assert "DEGRADED" in res.stderr and "disabled by config" in res.stderr
    assert "[schedstat]" in res.stdout and "schedstat fallback (no BPF)" in res.stdout


def test_observe_rejects_bad_arguments():
    assert run("observe", "--count", "0").returncode == 2
    res = run("observe", "--interval", "0")
    assert res.returncode == 2 and "telemetry.sample_interval" in res.stderr
    assert run("observe", "--window", "soon").returncode == 2


def test_print_bpf_shows_source_and_flags():
    res = run("observe", "--print-bpf")
    assert res.returncode == 0
    assert "-DMAX_TASKS=65536" in res.stdout
    assert "TRACEPOINT_PROBE(sched, sched_switch)" in res.stdout
