"""``scxd replay train``: train a registered policy from recorded windows, off-policy.

    scxd replay train --dataset data/testbed --policy linucb --out linucb.npz
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
reward, and the trained policy's off-policy value on the same rows (optimistic: the rows it
learnt from) next to the logging policy's.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--seed", type=int, default=0)


def train(args: argparse.Namespace) -> dict[str, Any]:
    from scxd.policy.base import Learner
    from scxd.policy.registry import save

    table = load_table(args)
    rows = offpolicy.Rows.of(table, args.objective)
    usable = rows.logged.usable()
    if not usable.any():
        raise TableError("no scored window with a propensity: nothing to learn from")
    policy = build(args.policy, table, args, seed=args.seed)
    x = rows.x[usable].astype(np.float64)
    arms = rows.logged.actions[usable].astype(np.int64)
    cost = rows.logged.outcomes[usable]
    prop = rows.logged.propensities[usable]
    q = None
    if args.method == "dr":
        model = offpolicy.fit_model(rows, args.seed)
        q = model.predict(rows.x[:, :len(model.mean)], np.arange(rows.logged.n))[usable]
    data = offline_data(table, rows.index[usable], x, arms, cost, prop, args.method,
                        args.clip, q)
    t0 = time.monotonic()
    row_by_row = type(policy).pretrain is Learner.pretrain
    passes = args.passes if row_by_row else 1
    with progress(passes * len(data), f"training {args.policy}", "row") as bar:
        for _ in range(passes):
            policy.pretrain(data, passes=1)
            bar.update(len(data))
    took = time.monotonic() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = save(policy, args.out.parent, args.out)
    if path is None:
        raise TableError(f"policy {args.policy} keeps no state: nothing to checkpoint")
    target = PolicyTarget(args.policy, policy)
    ev = offpolicy.evaluate_targets(rows, {"trained": target}, clip=args.clip,
                                    n_bootstrap=100, seed=args.seed)
    logging_value = float(np.mean(rows.logged.outcomes))
    return {"policy": args.policy, "out": str(path), "method": args.method,
            "objective": args.objective, "rows": int(usable.sum()),
            "training_rows": len(data), "passes": passes, "seconds": round(took, 2),
            "arm_set": policy.arms.hash, "logged_mean_cost": logging_value,
            "in_sample": ev.targets["trained"].as_dict()}


def run(args: argparse.Namespace) -> int:
    try:
        with single_threaded_blas():
            out = train(args)
    except (TableError, est.EstimatorError, ValueError, OSError) as exc:
        print(f"scxd replay train: {exc}", file=sys.stderr)
        return 2
    e = out["in_sample"]["estimates"]

    def iv(name: str) -> str:
        return est.format_interval(e[name])

    print(f"{out['out']}: policy {out['policy']} trained on {out['rows']} windows "
          f"({out['training_rows']} training rows, method {out['method']}, {out['passes']} "
          f"pass(es), {out['seconds']} s), arm set {out['arm_set']}\n"
          f"objective {out['objective']}: logged policy's mean cost "
          f"{out['logged_mean_cost']:+.4f}; trained policy, in sample: snips {iv('snips')}, "
          f"dr {iv('dr')} (ESS {out['in_sample']['ess']:.0f}) — optimistic: evaluate on "
          "windows it did not learn from (scxd replay evaluate)")
    return 0
