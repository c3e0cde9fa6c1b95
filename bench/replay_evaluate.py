#!/usr/bin/env python3
"""``scxd replay evaluate`` on a million windows: wall time and peak memory vs the targets.

Generates N synthetic logged windows with a known truth (:mod:`scxd.replay.synthetic`:
ε-greedy logging with exact propensities over the test-bed arm set and the real feature
names), writes them as an export table (parquet), then runs the real command line

    python -m scxd.cli replay evaluate --table T.parquet --policy fixed:ARM --baseline fair --json

as a child process and measures its wall time and peak RSS (``wait4`` rusage).  Side by side
in the same run it times the textbook bootstrap (resampling n row indices per replicate and
recomputing every estimator) on the same rows, and prints the ratios: ours vs the targets
(10 s, 2 GiB) and vs the textbook way.  It also checks the estimates against the known truth.

    flock /tmp/scxd-heavy.lock env PYTHONPATH=$PWD python bench/replay_evaluate.py [--windows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_S = 10.0
TARGET_BYTES = 2 * 1024**3


def textbook_bootstrap_s(table, arm: str, n_boot: int, seed: int) -> float:
    """Seconds for the obvious numpy bootstrap of IPS/SNIPS over row indices."""
    from scxd.replay.offpolicy import Rows, arm_index

    rows = Rows.of(table, table.meta.get("objective", "balanced"))
    k = arm_index(table, arm)
    y, p, a = rows.logged.outcomes, rows.logged.propensities, rows.logged.actions
    w = (a == k) / p
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        wi, yi = w[i], y[i]
        _ = (wi * yi).mean(), (wi * yi).sum() / wi.sum()
    return time.perf_counter() - t0


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # ru_maxrss of the reaped child: getrusage(RUSAGE_CHILDREN) is the max over children.
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if proc.returncode not in (0, 1):
        sys.exit(f"evaluate failed ({proc.returncode}):\n{err}")
    return wall, rss, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=1_000_000)
    ap.add_argument("--arm", default="scx_qmap -s 5000")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the generated table here")
    args = ap.parse_args()

    from scxd.replay.synthetic import synthetic_table
    from scxd.replay.table import write

    t0 = time.perf_counter()
    table, truth = synthetic_table(args.windows, seed=args.seed)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="scxd-bench-") as tmp:
        path = args.keep or Path(tmp) / "windows.parquet"
        t0 = time.perf_counter()
        write(table, path)
        write_s = time.perf_counter() - t0
        size = path.stat().st_size
        cmd = [sys.executable, "-m", "scxd.cli", "replay", "evaluate", "--table", str(path),
               "--policy", f"fixed:{args.arm}", "--baseline", "fair", "--json",
               "--bootstrap", str(args.bootstrap), "--seed", str(args.seed)]
        wall, rss, out = run_child(cmd)
    textbook = textbook_bootstrap_s(table, args.arm, args.bootstrap, args.seed)
    res = json.loads(out)
    print(f"windows {args.windows:,}, arms {len(table.arms)}, features "
          f"{len(table.feature_names)}; generated in {gen_s:.1f} s, parquet {size / 1e6:.1f} MB "
          f"written in {write_s:.1f} s")
    print(f"command: {' '.join(cmd[2:])}")
    print(f"evaluate wall  {wall:6.2f} s   target {TARGET_S:.0f} s   ratio "
          f"{wall / TARGET_S:.2f}")
    print(f"evaluate RSS   {rss / 2**20:6.0f} MiB target {TARGET_BYTES / 2**20:.0f} MiB "
          f"ratio {rss / TARGET_BYTES:.2f}")
    print(f"textbook row bootstrap of ips+snips alone ({args.bootstrap} replicates): "
          f"{textbook:.2f} s = {textbook / wall:.1f}× the whole evaluate")
    print(f"truth for always '{args.arm}': {truth[args.arm]:+.4f}; truth of fair: "
          f"{truth['fair']:+.4f}")
    for name, est in res["estimates"].items():
        lo, hi = est["ci95"]
        inside = lo <= truth[args.arm] <= hi
        print(f"  {name:<6} {est['value']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
              f"{'covers' if inside else 'MISSES'} the truth")
    print(f"  ess {res['ess']:.0f}; warnings: {res['warnings']}")
    ok = wall <= TARGET_S and rss <= TARGET_BYTES
    print("PASS" if ok else "FAIL", "(≤ 10 s and ≤ 2 GiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
