"""Pretrain a learner on a dataset's *training* repeats and write its checkpoint.

    python -m scxd.replay.pretrain --dataset data/testbed [--policy network]
        [--objective balanced] [--out scxd/policy/pretrained/network.npz]

The training repeats are the dataset's repeats minus the replay benchmark's default
evaluation repeats (the last 40 %), so the benchmark never evaluates a policy on windows its
prior was made from.  Transitions are built as the benchmark builds them
(:func:`scxd.replay.simulate.offline_data`: each scored window's cost against the fair
reference of its workload and repeat, paired with contexts measured under any arm of the
same workload and repeat).  The checkpoint is what ``policy.pretrained = "builtin"`` loads
when ``scxd run`` has no state of its own: prior knowledge for a fresh install.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scxd.config import PolicyConfig
from scxd.policy import registry
from scxd.policy.base import PolicyEnv
from scxd.replay.bench import default_eval_repeats, probed_for
from scxd.replay.logs import LogError, load_logs
from scxd.replay.simulate import manifest_of, offline_data, outcome_losses
from scxd.reward import OBJECTIVES


def pretrain(datasets: list[str], policy: str, objective: str, out: Path,
             seed: int = 0) -> str:
    log = load_logs(datasets=datasets)
    repeats = log.repeats()
    train = [r for r in repeats if r not in default_eval_repeats(repeats)]
    if not train:
        raise ValueError(f"{datasets}: only {len(repeats)} repeat(s): none left to train on")
    manifest = manifest_of(datasets)
    data = offline_data(log, train, objective, log.arms, log.workloads(), 4, seed,
                        outcome_loss=outcome_losses(log, train, log.arms, log.workloads(),
                                                    manifest))
    cfg = PolicyConfig(name=policy, pretrained="none", objective=objective)
    env = PolicyEnv(log.arms, seed=seed, probed=probed_for(log.arms),
                    schema=log.schema, schema_version=log.feature_version,
                    feature_names=tuple(log.feature_names))
    pol = registry.make_policy(cfg, env)
    t0 = time.monotonic()
    pol.pretrain(data)  # type: ignore[attr-defined]
    registry.save(pol, out.parent, out)
    return (f"{policy}: {len(data)} transitions from repeats {train} of {', '.join(datasets)} "
            f"({log.schema} v{log.feature_version}, {len(log.arms)} arms, objective "
            f"{objective}) in {time.monotonic() - t0:.1f} s → {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scxd.replay.pretrain",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True)
    ap.add_argument("--policy", default="network")
    ap.add_argument("--objective", choices=OBJECTIVES, default="balanced")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.out or registry.PRETRAINED_DIR / f"{args.policy}.npz"
    try:
        print(pretrain(args.dataset, args.policy, args.objective, out, args.seed))
    except (ValueError, LogError) as exc:
        print(f"pretrain: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
