#!/usr/bin/env python3
"""Off-policy estimates from real ``scxd run`` journals against a known truth, over many seeds.

Each seed runs the daemon (the torch network as an ε-greedy logging policy, ε = 0.3) against
the fake sched_ext kernel and the synthetic host of ``tests/fakes/synthetic_host.py``, whose
runqueue latency is caused by the arm that runs and the workload's phase with a known mean:
under v1's latency objective (``v1_latency``, recomputed by replay from the journaled raw
terms) a window's cost is μ[arm][phase] + ε exactly.  The journal is
then read by the same code as ``scxd replay evaluate --journal`` (reader, t/t+1 join, offline
costs, estimators), "always arm k" is estimated for every arm, and each estimator's 95 % CI is
checked against the truth (μ[k][phase] averaged over the evaluated windows).  The target of
the issue: every estimator's CI covers the truth in ≥ 90 % of the (seed, arm) cases.

    flock /tmp/scxd-heavy.lock env PYTHONPATH=$PWD python bench/replay_coverage.py \
        [--seeds 20] [--windows 400] [--window 1.0] [--parallel 5] [--json out.json]

Seeds run in parallel (each daemon mostly sleeps between its windows).  The fair scheduler's cost is
exactly 0 in this world (it is the reference), so its rows are reported apart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.synthetic_host import (
    ESTIMATORS,
    check_estimates,
    covers,
    daemon_journal,
)

TARGET = 0.90


def one_seed(seed: int, windows: int, bootstrap: int, keep: Path | None, warmup: int,
             window_s: float) -> dict:
    base = keep or Path(tempfile.mkdtemp(prefix="scxd-coverage-"))
    tmp = base / f"seed{seed}"
    tmp.mkdir(parents=True, exist_ok=True)
    run = daemon_journal(tmp, seed, windows, warmup=warmup, window_s=window_s)
    checks = check_estimates(run, bootstrap=bootstrap, seed=seed)
    (tmp / "truth.json").write_text(run.host.as_json())
    return {"seed": seed, "seconds": run.seconds, "windows": len(run.host.windows),
            "journal": str(run.journal),
            "arms": [{"arm": c.arm, "truth": c.truth, "matched": c.matched,
                      "estimates": c.estimates} for c in checks]}


def summarise(results: list[dict]) -> tuple[str, bool]:
    lines = []
    arms = [a["arm"] for a in results[0]["arms"]]
    header = f"{'arm':<18} " + " ".join(f"{e + ' covered':>14}" for e in ESTIMATORS) + \
        f" {'matched (mean)':>15} {'|error| dr':>11} {'CI width dr':>12}"
    lines += [header, "-" * len(header)]
    totals = {e: [0, 0] for e in ESTIMATORS}
    for arm in arms:
        rows = [a for r in results for a in r["arms"] if a["arm"] == arm]
        cells = []
        for e in ESTIMATORS:
            cov = sum(covers(a["estimates"][e], a["truth"]) for a in rows)
            cells.append(f"{cov:>7}/{len(rows):<6}")
            if arm != "fair":
                totals[e][0] += cov
                totals[e][1] += len(rows)
        dr = [a for a in rows if a["estimates"]["dr"][1] is not None]
        err = sum(abs(a["estimates"]["dr"][0] - a["truth"]) for a in dr) / max(1, len(dr))
        width = sum(a["estimates"]["dr"][2] - a["estimates"]["dr"][1] for a in dr) / max(
            1, len(dr))
        matched = sum(a["matched"] for a in rows) / len(rows)
        lines.append(f"{arm:<18} " + " ".join(cells) + f" {matched:>15.1f} {err:>11.3f} "
                     f"{width:>12.3f}")
    lines.append("")
    ok = True
    for e in ESTIMATORS:
        cov, n = totals[e]
        share = cov / n if n else math.nan
        ok &= share >= TARGET
        lines.append(f"{e:<6} covers the truth in {cov}/{n} = {100 * share:.1f} % of (seed, "
                     f"arm) cases without fair (target ≥ {100 * TARGET:.0f} %)")
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--windows", type=int, default=400, help="windows per daemon run")
    ap.add_argument("--parallel", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--window", type=float, default=1.0,
                    help="the daemons' window in seconds (default 1.0; at 0.5 with 5 daemons at "
                         "once a window's waits were once seen a window late)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="the guard's warmup_windows (≥ 1: the scored windows are selected "
                         "by the previous arm; see the README)")
    ap.add_argument("--keep", type=Path, help="keep journals and truths here")
    ap.add_argument("--json", type=Path, help="write every estimate here")
    args = ap.parse_args()
    t0 = time.monotonic()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results = []
    with ProcessPoolExecutor(args.parallel) as pool:
        futures = {pool.submit(one_seed, s, args.windows, args.bootstrap, args.keep,
                               args.warmup, args.window): s for s in seeds}
        for fut in as_completed(futures):
            r = fut.result()
            results.append(r)
            print(f"seed {r['seed']:>3}: {r['windows']} windows in {r['seconds']:.0f} s",
                  file=sys.stderr, flush=True)
    results.sort(key=lambda r: r["seed"])
    text, ok = summarise(results)
    print(f"{len(results)} seeds × {args.windows} windows of {args.window:g} s of `scxd run` "
          f"(network, ε = 0.3, "
          f"truth under v1_latency, warmup_windows {args.warmup}) on the synthetic host; "
          f"{args.bootstrap} bootstrap replicates; wall {time.monotonic() - t0:.0f} s\n")
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
