#!/usr/bin/env python3
"""Sampler cost: CPU % of one core and RSS of ``scxd observe`` at 1 s sampling.

Runs ``scxd observe --json`` as its own process for ``--seconds`` (after a warm-up that
excludes start-up and BPF compilation), once with BPF telemetry and once in the degraded
schedstat mode, side by side, and prints CPU % of one core, peak/steady RSS and the
process count the sampler had to scan.  Target: ≤ 1 % of one core.

    .venv/bin/python bench/sampler_cost.py [--seconds 60] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

SCXD = Path(sys.executable).with_name("scxd")


def measure(mode: str, seconds: float, warmup: float) -> dict[str, float]:
    env = dict(os.environ, SCXD_TELEMETRY__BPF=mode)
    proc = subprocess.Popen([str(SCXD), "observe", "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(warmup)
        t0 = ps.cpu_times()
        rss_start = ps.memory_info().rss
        start = time.monotonic()
        peak = rss_start
        while time.monotonic() - start < seconds:
            time.sleep(1.0)
            peak = max(peak, ps.memory_info().rss)
        t1 = ps.cpu_times()
        elapsed = time.monotonic() - start
        rss_end = ps.memory_info().rss
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    return {"cpu_pct": 100.0 * cpu / elapsed, "rss_start_mb": rss_start / 2**20,
            "rss_end_mb": rss_end / 2**20, "rss_peak_mb": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    args = ap.parse_args()
    procs = len(psutil.pids())
    print(f"sampling 1 s, window 5 s, {args.seconds:.0f} s measured, {procs} processes on the "
          f"host, {os.cpu_count()} CPUs")
    for mode in ("required", "off"):
        r = measure(mode, args.seconds, args.warmup)
        label = "BPF" if mode == "required" else "schedstat (degraded)"
        print(f"{label:22s} CPU {r['cpu_pct']:6.3f} % of one core (target ≤ 1 %)   "
              f"RSS start {r['rss_start_mb']:.1f} MB end {r['rss_end_mb']:.1f} MB "
              f"peak {r['rss_peak_mb']:.1f} MB")


if __name__ == "__main__":
    main()
