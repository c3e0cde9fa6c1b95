#!/usr/bin/env python3
"""Daemon cost at 1 s sampling, decision-path latency, and sampling jitter under load.

Runs ``scxd run`` (this host: advisory mode, real BPF telemetry, journal + metrics on) for
``--minutes`` idle, sampling its CPU time and RSS every 10 s, then ``--stress-minutes`` under
``stress-ng -c 4`` (twice as many CPU hogs as CPUs here).  Prints, side by side:

* CPU % of one core over the steady idle phase (after a 30 s warm-up) and under stress;
* RSS at start / end / max and its growth slope (MB per hour, least squares);
* decision path p50/p99: window closed → guard verdict (features, reward, policy, guard),
  from every window's ``decision_seconds`` in the journal;
* sampling jitter p50/p99/max: |interval − 1 s| of every sample, from the journal.

Targets: ≤ 1 % CPU, ≤ 300 MB, no growth; report the latencies and jitter.

    .venv/bin/python bench/daemon_cost.py [--minutes 10] [--stress-minutes 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.journal import JournalReader  # noqa: E402

SCXD = Path(sys.executable).with_name("scxd")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def watch(ps: psutil.Process, seconds: float, step: float = 10.0
          ) -> tuple[float, list[tuple[float, float]]]:
    """CPU % of one core over ``seconds``, and (t, RSS MB) points every ``step``."""
    t0, c0 = time.monotonic(), sum(ps.cpu_times()[:2])
    rss = []
    while time.monotonic() - t0 < seconds:
        time.sleep(min(step, seconds - (time.monotonic() - t0)))
        rss.append((time.monotonic(), ps.memory_info().rss / 2**20))
    cpu = sum(ps.cpu_times()[:2]) - c0
    return 100.0 * cpu / (time.monotonic() - t0), rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--stress-minutes", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = tmp / "scxd.toml"
        cfg.write_text(f'state_dir = "{tmp}/state"\n[control]\nsocket = "{tmp}/scxd.sock"\n'
                       f'[metrics]\naddress = "127.0.0.1:{port}"\n')
        proc = subprocess.Popen([str(SCXD), "run", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ps = psutil.Process(proc.pid)
        try:
            time.sleep(30)  # start-up, BPF compile, first windows
            rss_start = ps.memory_info().rss / 2**20
            idle_from = time.time()
            cpu_idle, rss_points = watch(ps, args.minutes * 60)
            idle_to = time.time()
            stress = subprocess.Popen(["stress-ng", "-c", "4", "-t",
                                       f"{int(args.stress_minutes * 60)}s"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu_stress, rss_stress = watch(ps, args.stress_minutes * 60)
            stress.wait()
            stress_to = time.time()
            rss_end = ps.memory_info().rss / 2**20
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        windows = list(JournalReader(tmp / "state" / "journal").windows())

    def phase(lo: float, hi: float) -> list[dict]:
        return [w for w in windows if lo <= w["at"] <= hi]

    decisions = [w["decision_seconds"] for w in windows]
    jitter_idle = [abs(i - 1.0) for w in phase(idle_from, idle_to)
                   for i in w["sample_intervals_s"][1:]]
    jitter_stress = [abs(i - 1.0) for w in phase(idle_to, stress_to)
                     for i in w["sample_intervals_s"][1:]]
    rss_max = max(p[1] for p in rss_points + rss_stress)
    print(f"scxd run, advisory on {os.uname().release}, 1 s samples / 5 s windows, "
          f"{os.cpu_count()} CPUs, {len(windows)} windows")
    print(f"CPU, idle {args.minutes:.0f} min        {cpu_idle:6.3f} % of one core   "
          "(target ≤ 1 %)")
    print(f"CPU, stress-ng -c 4 {args.stress_minutes:.0f} min {cpu_stress:6.3f} % of one core")
    print(f"RSS start / end / max           {rss_start:.1f} / {rss_end:.1f} / {rss_max:.1f} MB"
          "   (target ≤ 300 MB)")
    print(f"RSS growth (idle phase)         {slope_per_hour(rss_points):+.2f} MB/hour")
    print(f"decision path p50 / p99 / max   {1e3 * pct(decisions, 0.5):.3f} / "
          f"{1e3 * pct(decisions, 0.99):.3f} / {1e3 * max(decisions):.3f} ms")
    print(f"sampling jitter idle p50/p99/max   {1e3 * pct(jitter_idle, 0.5):.2f} / "
          f"{1e3 * pct(jitter_idle, 0.99):.2f} / {1e3 * max(jitter_idle):.2f} ms "
          f"({len(jitter_idle)} samples)")
    print(f"sampling jitter stress p50/p99/max {1e3 * pct(jitter_stress, 0.5):.2f} / "
          f"{1e3 * pct(jitter_stress, 0.99):.2f} / {1e3 * max(jitter_stress):.2f} ms "
          f"({len(jitter_stress)} samples)")


if __name__ == "__main__":
    main()
