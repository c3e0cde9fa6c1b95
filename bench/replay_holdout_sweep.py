#!/usr/bin/env python3
"""Held-out workloads, many times over: the replay benchmark with each of several workload
pairs left out of training and evaluated alone.

``bench/replay_bench.py --holdout-workloads a,b`` checks one pair.  One pair can flatter a
policy (or a guard rule): this runs ``--pairs`` (default: seven pairs that cover every
workload of the committed dataset, chosen by name before any result was seen, plus the
trained run) for ``--policies`` (default ``asa,fixed,network``), 10 seeds each, and prints
per pair and policy the outcome loss (mean over seeds) and the share of phases at least as
good as fair.  The mean over the held-out pairs is the figure that says how a policy does
on workloads it has never seen.  Writes ``replay_holdout_sweep.json`` and ``.md`` into
``--out``.  About 20 minutes on this 2-core VM with the torch network.

    .venv/bin/python bench/replay_holdout_sweep.py [--dataset DIR] [--policies a,b]
        [--pairs "mixed,hackbench;idle,pipe"] [--guard-json '{"quarantine": 0}']
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.config import GuardConfig  # noqa: E402
from scxd.replay.bench import run_bench  # noqa: E402

DEFAULT_PAIRS = ("mixed,hackbench;idle,pipe;build,io_cpu;memory,messaging;"
                 "fork_heavy,cpu_batch;interactive_build,mixed;hackbench,idle")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", action="append", default=None)
    p.add_argument("--policies", default="asa,fixed,network")
    p.add_argument("--pairs", default=DEFAULT_PAIRS,
                   help="';'-separated comma lists of held-out workloads")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--windows", type=int, default=1500, help="windows per run")
    p.add_argument("--guard-json", default="{}", help="guard settings to override")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args(argv)
    datasets = a.dataset or [str(REPO / "data" / "testbed")]
    policies = [x for x in a.policies.split(",") if x]
    guard = GuardConfig(**json.loads(a.guard_json))
    pairs = [[w for w in pair.split(",") if w] for pair in a.pairs.split(";") if pair]
    t0 = time.monotonic()
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for held in [[], *pairs]:
        name = ",".join(held) or "(trained workloads)"
        r = run_bench(datasets, policies=policies, seeds=a.seeds, windows=a.windows,
                      holdout=held, guard=guard)
        rows[name] = {pol: {"outcome_loss_pct": m["outcome_loss_pct"]["mean"],
                            "beats_fair_pct": m["beats_fair_pct"]["mean"]}
                      for pol, m in r["policies"].items()}
        print(f"{name}: " + ", ".join(f"{pol} {v['outcome_loss_pct']:.1f} %"
                                      for pol, v in rows[name].items()),
              file=sys.stderr, flush=True)
    held_rows = [v for k, v in rows.items() if not k.startswith("(")]
    mean = {pol: sum(v[pol]["outcome_loss_pct"] for v in held_rows) / len(held_rows)
            for pol in policies}
    lines = ["| held out | " + " | ".join(f"{pol} loss % (beats fair %)" for pol in policies)
             + " |", "|---" * (len(policies) + 1) + "|"]
    for name, v in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{v[pol]['outcome_loss_pct']:.1f} ({v[pol]['beats_fair_pct']:.0f})"
            for pol in policies) + " |")
    lines.append(f"| **mean over the {len(held_rows)} held-out pairs** | "
                 + " | ".join(f"**{mean[pol]:.1f}**" for pol in policies) + " |")
    elapsed = time.monotonic() - t0
    lines.append(f"\n{a.seeds} seeds per cell; objective balanced; guard "
                 f"{json.loads(a.guard_json) or 'defaults'}; {elapsed:.0f} s.")
    table = "\n".join(lines)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay_holdout_sweep.json").write_text(json.dumps(
        {"rows": rows, "mean_held_out": mean, "seeds": a.seeds, "datasets": datasets,
         "guard": guard.model_dump(), "elapsed_s": elapsed}, indent=2) + "\n")
    (out / "replay_holdout_sweep.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
