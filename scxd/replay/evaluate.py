r"""``scxd replay evaluate``: how a policy *would* do on recorded windows, before it runs.

    scxd replay evaluate --dataset data/testbed --policy fixed:scx_simple
    scxd replay evaluate --journal /var/lib/scxd/journal \
        --policy network:/var/lib/scxd/policy/network.npz --baseline fair --json --require-better

Estimates the target's expected cost per window under ``--objective`` with replay (Li et al.),
IPS, SNIPS, the direct method and doubly robust (:mod:`scxd.replay.estimators`), weights
clipped at ``--clip``, the effective sample size, percentile-bootstrap 95 % CIs; the baseline
(``--baseline``, default the fair scheduler) on the same bootstrap replicates, and the paired
difference candidate − baseline (negative: the candidate costs less).

``--require-better`` is a deployment gate: exit 1 unless the ``--gate`` estimator's 95 % CI
of the difference lies entirely below 0 *and* the candidate's effective sample size is at least
``--min-ess``; the reason is printed either way.

``--json`` prints one object: ``{"objective", "policy", "estimates": {name: {"value",
"ci95"}}, "ess", "n", "matched", "clipped_share", "warnings", "baseline": {same keys},
"difference": {name: {"value", "ci95"}}, "gate": {...}, "data": {...}}``.

Exit codes: 0 evaluated (and the gate passed, when asked); 1 the gate failed; 2 bad usage or
unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from scxd.replay import estimators as est
from scxd.replay import offpolicy
from scxd.replay.inputs import (
    add_input_arguments,
    load_table,
    progress,
    resolve_target,
    single_threaded_blas,
)
from scxd.replay.table import TableError

VERB = "evaluate"
HELP = "estimate a policy's expected cost from recorded windows (OPE), with a deployment gate"

def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--policy", required=True, metavar="SPEC",
                   help="fixed:ARM (always that arm, by label or key), or a registered "
                        "policy NAME[:CHECKPOINT]")
    p.add_argument("--baseline", default="fair", metavar="SPEC",
                   help="what the candidate is compared with (default: fair = always the "
                        "fair scheduler; same forms as --policy)")
    p.add_argument("--clip", type=float, default=est.DEFAULT_CLIP, metavar="W",
                   help=f"importance-weight clip (default {est.DEFAULT_CLIP:g})")
    p.add_argument("--bootstrap", type=int, default=est.DEFAULT_BOOTSTRAP, metavar="B",
                   help=f"bootstrap replicates (default {est.DEFAULT_BOOTSTRAP})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and cross-fitting seed")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--require-better", action="store_true",
                   help="exit 1 unless the candidate beats the baseline with confidence")
    p.add_argument("--gate", choices=est.ESTIMATORS, default="dr",
                   help="estimator the gate trusts (default dr)")
    p.add_argument("--min-ess", type=float, default=30.0, metavar="N",
                   help="the gate also needs this effective sample size (default 30)")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    table = load_table(args, offpolicy.evaluation_columns(args.objective))
    rows = offpolicy.Rows.of(table, args.objective)
    cand = resolve_target(args.policy, table, args)
    base = resolve_target(args.baseline, table, args)
    same = cand.name == base.name
    targets = {cand.name: cand} if same else {cand.name: cand, base.name: base}
    with progress(total=rows.logged.n * len(targets), unit="window",
                  desc="scoring targets") as bar:
        ev = offpolicy.evaluate_targets(
            rows, targets, pairs=None if same else [(cand.name, base.name)], clip=args.clip,
            n_bootstrap=args.bootstrap, seed=args.seed, on_chunk=bar.update)
    c = ev.targets[cand.name]
    out: dict[str, Any] = {"objective": args.objective, "policy": cand.name,
                           **c.as_dict(), "warnings": ev.warnings + c.warnings}
    b = ev.targets[base.name]
    out["baseline"] = {"policy": base.name, **b.as_dict()}
    if same:
        zero = {e: {"value": 0.0, "ci95": [0.0, 0.0]} for e in est.ESTIMATORS}
        out["difference"] = zero
    else:
        out["difference"] = {e: iv.as_dict()
                             for e, iv in ev.differences[(cand.name, base.name)].items()}
    out["gate"] = gate(out, args.gate, args.min_ess)
    out["data"] = {"sources": table.meta.get("sources", []), "windows": table.n,
                   "scored": rows.logged.n, "dropped_no_propensity": ev.dropped,
                   "arms": len(table.arms), "arm_set": table.meta.get("arm_set"),
                   "clip": args.clip, "bootstrap": args.bootstrap, "seed": args.seed}
    return out


def gate(out: dict[str, Any], estimator: str, min_ess: float) -> dict[str, Any]:
    diff = out["difference"][estimator]
    hi = diff["ci95"][1]
    ess = out["ess"] or 0.0
    if hi is None:
        passed, why = False, f"{estimator}: the difference has no CI (too little support)"
    elif hi >= 0:
        passed, why = False, (f"{estimator}: candidate − baseline = {diff['value']:+.4f}, "
                              f"95 % CI upper bound {hi:+.4f} ≥ 0: not confidently better")
    elif ess < min_ess:
        passed, why = False, f"effective sample size {ess:.1f} < {min_ess:g}"
    else:
        passed, why = True, (f"{estimator}: candidate − baseline = {diff['value']:+.4f}, "
                             f"95 % CI [{diff['ci95'][0]:+.4f}, {hi:+.4f}] < 0, "
                             f"ESS {ess:.0f}")
    return {"estimator": estimator, "min_ess": min_ess, "passed": passed, "reason": why}


def render(out: dict[str, Any]) -> str:
    fmt = est.format_interval

    lines = [f"objective {out['objective']}: expected cost per window (lower is better; "
             "95 % bootstrap CIs)", "",
             f"{'estimator':<9} {out['policy'][:30]:>34} {out['baseline']['policy'][:30]:>34} "
             f"{'difference':>34}"]
    for e in est.ESTIMATORS:
        lines.append(f"{e:<9} {fmt(out['estimates'][e]):>34} "
                     f"{fmt(out['baseline']['estimates'][e]):>34} "
                     f"{fmt(out['difference'][e]):>34}")
    d = out["data"]
    lines += ["", f"windows {d['windows']}, scored {d['scored']}, dropped (no propensity) "
              f"{d['dropped_no_propensity']}; candidate ESS {out['ess']:.1f}, matched "
              f"{out['matched']}, clipped {100 * out['clipped_share']:.2f} %; baseline ESS "
              f"{out['baseline']['ess']:.1f}"]
    for w in dict.fromkeys(out["warnings"] + out["baseline"]["warnings"]):
        lines.append(f"warning: {w}")
    g = out["gate"]
    lines.append(f"gate ({g['estimator']}): {'PASS' if g['passed'] else 'FAIL'} — "
                 f"{g['reason']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        with single_threaded_blas():
            out = evaluate(args)
    except (TableError, est.EstimatorError, ValueError) as exc:
        print(f"scxd replay evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1) if args.json else render(out))
    if args.require_better and not out["gate"]["passed"]:
        if args.json:
            print(f"gate failed: {out['gate']['reason']}", file=sys.stderr)
        return 1
    return 0
