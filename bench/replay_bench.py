#!/usr/bin/env python3
"""The full replay benchmark (every registered policy, 10 seeds) and its wall time.

Runs ``scxd replay bench`` with the protocol's defaults on ``--dataset`` (default: the
committed ``data/testbed``), writes ``replay_bench.json``, ``replay_bench.md`` and
``replay_bench.png`` into ``--out`` (default ``bench/results``), prints the markdown table
and the elapsed time against the target (the whole benchmark ≤ 10 min on this 2-core VM).
``--holdout-workloads`` adds the held-out-workload check (training without them, evaluating
on them alone) as a second run with its own files (``*_holdout.*``).

    .venv/bin/python bench/replay_bench.py [--dataset DIR] [--holdout-workloads a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.replay.bench import markdown, plot, run_bench  # noqa: E402

TARGET_S = 600.0


def one(datasets: list[str], out: Path, suffix: str, seeds: int, holdout: list[str],
        objective: str) -> float:
    t0 = time.monotonic()
    result = run_bench(datasets, seeds=seeds, objective=objective, holdout=holdout,
                       progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
    elapsed = time.monotonic() - t0
    table = markdown(result)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    (out / f"replay_bench{suffix}.json").write_text(json.dumps(public, indent=2,
                                                               default=float) + "\n")
    (out / f"replay_bench{suffix}.md").write_text(table + "\n")
    plot(result, out / f"replay_bench{suffix}.png")
    print(table)
    print(f"\nelapsed {elapsed:.0f} s for {len(result['policies'])} policies × {seeds} seeds "
          f"(target ≤ {TARGET_S:.0f} s: {'met' if elapsed <= TARGET_S else 'MISSED'}); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--objective", default="balanced")
    ap.add_argument("--holdout-workloads", default="")
    args = ap.parse_args()
    datasets = args.dataset or [str(REPO / "data" / "testbed")]
    args.out.mkdir(parents=True, exist_ok=True)
    one(datasets, args.out, "", args.seeds, [], args.objective)
    holdout = [w for w in args.holdout_workloads.split(",") if w]
    if holdout:
        one(datasets, args.out, "_holdout", args.seeds, holdout, args.objective)


if __name__ == "__main__":
    main()
