#!/usr/bin/env python3
"""Sampler cost: CPU % of one core and RSS of ``scxd observe`` at 1 s sampling.

Runs ``scxd observe --json`` as its own process for ``--seconds`` (after a warm-up that
excludes start-up and BPF compilation), once with BPF telemetry and once in the degraded
schedstat mode, side by side, and prints CPU % of one core, peak/steady RSS and the
process count the sampler had to scan.  Target: ≤ 1 % of one core.

``--baseline REF`` compares with another revision in the same run: REF is exported from
git into a temporary tree and both trees are measured alternately (``--rounds`` times,
medians reported), plus the system source alone — ``SystemSource.read()`` per call, the
part psutil took over — so a change to the sampler shows as before/after figures.

    .venv/bin/python bench/sampler_cost.py [--seconds 60] [--warmup 10]
    .venv/bin/python bench/sampler_cost.py --baseline main~3 --seconds 30 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
READS = 300
READ_COST = f"""
import time
from scxd.hostfs import HostFS
from scxd.telemetry.system import SystemSource
src = SystemSource(HostFS("/"))
src.read(time.monotonic())
t = time.process_time()
for _ in range({READS}):
    src.read(time.monotonic())
print((time.process_time() - t) / {READS} * 1e6)
"""


def measure(mode: str, seconds: float, warmup: float, tree: Path = REPO) -> dict[str, float]:
    env = dict(os.environ, SCXD_TELEMETRY__BPF=mode, PYTHONPATH=str(tree))
    proc = subprocess.Popen([sys.executable, "-m", "scxd.cli", "observe", "--json"], env=env,
                            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def read_cost_us(tree: Path) -> float:
    """CPU µs of one SystemSource.read() (this host, per-process scan on)."""
    out = subprocess.run([sys.executable, "-c", READ_COST], cwd=tree, capture_output=True,
                         text=True, check=True, env=dict(os.environ, PYTHONPATH=str(tree)))
    return float(out.stdout.strip())


def export(ref: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def compare(ref: str, seconds: float, warmup: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = export(ref, Path(tmp))
        trees = {f"baseline {ref}": base, "this tree": REPO}
        reads: dict[str, list[float]] = {k: [] for k in trees}
        cpu: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            for label, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                reads[label].append(read_cost_us(tree))
                for mode in ("required", "off"):
                    cpu.setdefault((label, mode), []).append(
                        measure(mode, seconds, warmup, tree)["cpu_pct"])
        print(f"{rounds} alternating rounds, medians; {len(psutil.pids())} processes, "
              f"{os.cpu_count()} CPUs")
        for label in trees:
            print(f"{label:22s} SystemSource.read() {statistics.median(reads[label]):7.0f} µs"
                  f"   observe CPU: BPF {statistics.median(cpu[(label, 'required')]):.3f} %"
                  f", schedstat {statistics.median(cpu[(label, 'off')]):.3f} % of one core"
                  f"   (reads {', '.join(f'{x:.0f}' for x in reads[label])} µs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--baseline", metavar="REF", help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.baseline:
        compare(args.baseline, args.seconds, args.warmup, args.rounds)
        return
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
