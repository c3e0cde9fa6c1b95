"""A synthetic contextual bandit with a known optimum, driven through the real policy API.

Two workload clusters in feature space; each arm's expected reward depends on the cluster;
rewards are noisy.  ``run`` drives a policy exactly as the daemon does — decide on a
FeatureVector, then update with a typed Transition built by the TransitionJoiner — and
returns per-step regret and whether the optimal arm was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scxd.catalog import build_catalog
from scxd.features import FEATURE_NAMES, SCHEMA_NAME, SCHEMA_VERSION, FeatureVector
from scxd.policy.arms import ArmSet
from scxd.probe import Availability, ProbedCatalog
from scxd.record import Choice, Context, TransitionJoiner, WindowRecord

CAT = build_catalog()
LABELS = ["fair", "scx_simple", "scx_simple -f", "scx_qmap", "scx_qmap -s 5000"]
ARMS = ArmSet.from_labels(CAT, LABELS)
PROBED = ProbedCatalog(CAT, {s.name: Availability(s.name, s.name in
                                                  {"fair", "scx_simple", "scx_qmap"})
                             for s in CAT})
# Expected reward (−cost) per cluster and arm: cluster 0 wants arm 2, cluster 1 wants arm 4.
MEANS = np.array([[0.0, 0.05, 0.25, -0.1, 0.0],
                  [0.0, -0.2, -0.3, 0.05, 0.3]])


@dataclass
class Result:
    regret: np.ndarray
    optimal: np.ndarray
    propensities: list[float]


#: Features that carry the synthetic workload (the rest read 0, as missing metrics do), so
#: the problem is as hard whatever the schema's size.
INFORMATIVE = 35


def context(rng: np.random.Generator, cluster: int) -> np.ndarray:
    n = min(INFORMATIVE, len(FEATURE_NAMES))
    x = np.zeros(len(FEATURE_NAMES))
    x[:n] = 0.2
    x[: n // 2] += 0.6 * cluster
    x[:n] += 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def run(policy, steps: int = 600, seed: int = 0, noise: float = 0.15,
        switch_every: int = 50) -> Result:
    rng = np.random.default_rng(seed)
    joiner = TransitionJoiner()
    eligible = ARMS.actions()
    regret, optimal, props = [], [], []
    cluster = 0
    running = ARMS[0]
    for t in range(steps + 1):
        if t % switch_every == 0:
            cluster = int(rng.integers(2))
        x = context(rng, cluster)
        # The window that just closed ran `running`: its reward is drawn for it.
        r = MEANS[cluster, running.index] + noise * rng.standard_normal()
        fv = FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, x, ())
        d = policy.decide(fv, eligible)
        arm = ARMS.find(d.action)
        rec = WindowRecord(at=float(t), context=Context(SCHEMA_NAME, SCHEMA_VERSION,
                                                        tuple(map(float, x))),
                           running=running.key, running_label=running.label, warmup=False,
                           cost=-r, choice=Choice(arm.key, arm.label, d.propensity,
                                                  d.distribution), id=t)
        tr = joiner.push(rec)
        if tr is not None:
            policy.update(tr)
        if t < steps:
            best = int(MEANS[cluster].argmax())
            regret.append(MEANS[cluster, best] - MEANS[cluster, arm.index])
            optimal.append(arm.index == best)
            props.append(d.propensity)
        running = arm
    return Result(np.array(regret), np.array(optimal), props)
