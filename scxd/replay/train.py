r"""``scxd replay train``: train a registered policy from recorded windows, off-policy.

    scxd replay train --dataset data/testbed --policy linucb --out linucb.npz [--holdout]
    scxd replay train --journal /var/lib/scxd/journal --policy network --method dr \
        --config /etc/scxd/config.toml --out /var/lib/scxd/policy/network.npz

The learner (``[policy.<name>]`` from ``--config``, else the defaults) is built over the
logs' arm set and learns from every scored window with a decision context, by ``--method``
(:func:`scxd.replay.policies.offline_data`): ``ips`` (rewards with their logged propensities:
the learner importance-weights them), ``clipped`` (propensities floored at 1/``--clip``) or
``dr`` (doubly-robust full-information pseudo-rewards from a cross-fitted reward model).
Rewards are −cost under ``--objective``.

The checkpoint is the registry's own format (atomic write; feature schema, arm-set hash,
policy name and version inside): ``scxd run`` uses it unchanged — point ``policy.pretrained``
at it, or write it as ``<state_dir>/policy/<name>.npz``.  A summary follows: rows, method,
and the trained policy's off-policy value (SNIPS and DR with 95 % CIs) next to the logging
policy's mean cost — on the rows it learnt from (optimistic), or with ``--holdout`` on rows it
never saw: a dataset's evaluation repeats (the last 40 %, as ``scxd replay bench``), a
journal's last 40 % of windows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scxd.replay import estimators as est
from scxd.replay import offpolicy
from scxd.replay.inputs import (
    add_input_arguments,
    load_table,
    progress,
    single_threaded_blas,
)
from scxd.replay.policies import METHODS, PolicyTarget, build, offline_data
from scxd.replay.table import TableError

VERB = "train"
HELP = "train a registered policy off-policy from recorded windows into a checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--policy", required=True, metavar="NAME", help="a registered policy")
    p.add_argument("--config", metavar="FILE", help="TOML config for [policy.<name>]")
    p.add_argument("--out", type=Path, required=True, metavar="CHECKPOINT")
    p.add_argument("--method", choices=METHODS, default="clipped",
                   help="off-policy correction (default clipped)")
    p.add_argument("--clip", type=float, default=est.DEFAULT_CLIP, metavar="W",
                   help=f"largest importance weight (default {est.DEFAULT_CLIP:g})")
    p.add_argument("--passes", type=int, default=3, metavar="N",
                   help="passes over the data for learners that learn row by row (default 3)")
    p.add_argument("--holdout", action="store_true",
                   help="train on the training split only and evaluate on the rest "
                        "(datasets: the last 40 %% of repeats; journals: the last 40 %% of "
                        "windows)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="B",
                   help="bootstrap replicates of the summary's CIs (default 200)")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.add_argument("--seed", type=int, default=0)


def fit(policy: Any, rows: offpolicy.Rows, method: str, clip: float, passes: int,
        seed: int) -> dict[str, Any]:
    """Train ``policy`` off-policy on the usable ``rows`` by ``method``
    (:func:`scxd.replay.policies.offline_data`); a progress bar past 2 s."""
    from scxd.policy.base import Learner

    usable = rows.logged.usable()
    if not usable.any():
        raise TableError("no scored window with a propensity: nothing to learn from")
    q = None
    if method == "dr":
        model = offpolicy.fit_model(rows, seed)
        q = model.predict(rows.x, np.arange(rows.logged.n))[usable]
    data = offline_data(rows.table, rows.index[usable], rows.x[usable].astype(np.float64),
                        rows.logged.actions[usable].astype(np.int64),
                        rows.logged.outcomes[usable], rows.logged.propensities[usable],
                        method, clip, q)
    t0 = time.monotonic()
    # Learners with a pretrain of their own fit in one go; the others learn row by row.
    passes = passes if type(policy).pretrain is Learner.pretrain else 1
    with progress(passes * len(data), f"training {policy.name}", "row") as bar:
        for _ in range(passes):
            policy.pretrain(data, passes=1)
            bar.update(len(data))
    return {"rows": int(usable.sum()), "training_rows": len(data), "passes": passes,
            "seconds": round(time.monotonic() - t0, 2)}


def train(args: argparse.Namespace) -> dict[str, Any]:
    from scxd.policy.registry import save

    table = load_table(args)
    rows = offpolicy.Rows.of(table, args.objective)
    held, how = rows.holdout() if args.holdout else (np.zeros(rows.logged.n, bool), "")
    policy = build(args.policy, table, args, seed=args.seed)
    fitted = fit(policy, rows.subset(~held), args.method, args.clip, args.passes, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = save(policy, args.out.parent, args.out)
    if path is None:
        raise TableError(f"policy {args.policy} keeps no state: nothing to checkpoint")
    scored = rows.subset(held) if args.holdout else rows
    ev = offpolicy.evaluate_targets(scored, {"trained": PolicyTarget(args.policy, policy)},
                                    clip=args.clip, n_bootstrap=args.bootstrap,
                                    seed=args.seed)
    return {"policy": args.policy, "out": str(path), "method": args.method,
            "objective": args.objective, **fitted, "arm_set": policy.arms.hash,
            "evaluated_on": how or "the training windows (in sample: optimistic)",
            "logged_mean_cost": float(np.mean(scored.logged.outcomes)),
            "estimate": ev.targets["trained"].as_dict()}


def run(args: argparse.Namespace) -> int:
    try:
        with single_threaded_blas():
            out = train(args)
    except (TableError, est.EstimatorError, ValueError, OSError) as exc:
        print(f"scxd replay train: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    e = out["estimate"]["estimates"]

    def iv(name: str) -> str:
        return est.format_interval(e[name])

    print(f"{out['out']}: policy {out['policy']} trained on {out['rows']} windows "
          f"({out['training_rows']} training rows, method {out['method']}, {out['passes']} "
          f"pass(es), {out['seconds']} s), arm set {out['arm_set']}\n"
          f"objective {out['objective']}, evaluated on {out['evaluated_on']}: logged "
          f"policy's mean cost {out['logged_mean_cost']:+.4f}; trained policy: snips "
          f"{iv('snips')}, dr {iv('dr')} (ESS {out['estimate']['ess']:.0f})")
    return 0
