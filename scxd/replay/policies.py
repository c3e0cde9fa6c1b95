"""Registered policies (:mod:`scxd.policy.registry`) for offline replay: build one over a
table's arm set, load a checkpoint into it, train it from logged rows, and score it as a
:class:`~scxd.replay.offpolicy.Target`.

Only learners (:class:`scxd.policy.base.Learner`) can be scored offline: they expose their
action distribution for a context (``probabilities``).  ``fixed``/``rule`` hold state about
the running arm rather than a distribution over contexts (``fixed:ARM`` covers the first);
hindsight references need the evaluation data itself.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scxd.features import SCHEMA_NAME, SCHEMA_VERSION
from scxd.replay.table import Table, TableError

#: Offline training methods (see :func:`offline_data`).
METHODS = ("ips", "clipped", "dr")


def settings(args: argparse.Namespace) -> Any:
    """The effective settings: ``--config FILE`` (when given) over the defaults."""
    from scxd.config import ConfigError, load_config

    try:
        return load_config(getattr(args, "config", None) or None, environ={})
    except ConfigError as exc:
        raise TableError(str(exc)) from None


def arm_set(table: Table) -> Any:
    """The table's arms exactly as the logs recorded them (same keys, order and hash as the
    daemon that wrote them), whatever this machine's catalog says."""
    from scxd.policy.arms import ArmSet, ArmSetError

    try:
        return ArmSet.from_keys(table.arms, table.arm_labels)
    except ArmSetError as exc:
        raise TableError(f"the logs' arm set cannot be rebuilt: {exc}") from None


def build(name: str, table: Table, args: argparse.Namespace, seed: int = 0) -> Any:
    """A fresh learner ``name`` over the table's arms (``[policy.<name>]`` from --config)."""
    from scxd.policy.base import Learner, PolicyEnv
    from scxd.policy.registry import entry, make_policy

    e = entry(name)  # ValueError naming the known policies
    if e.hindsight:
        raise ValueError(f"policy {name} is a hindsight reference (it needs the evaluation "
                         "data): it cannot be scored offline")
    s = settings(args)
    cfg = s.policy.model_copy(update={"name": name})
    env = PolicyEnv(arm_set(table), seed=seed, feature_names=tuple(table.feature_names),
                    schema=table.meta.get("feature_schema") or SCHEMA_NAME,
                    schema_version=int(table.meta.get("feature_version") or SCHEMA_VERSION),
                    window_s=float(table.meta.get("window_s") or 5.0))
    policy = make_policy(cfg, env)
    if not isinstance(policy, Learner):
        raise ValueError(f"policy {name} has no action distribution over contexts (it "
                         "follows the running arm); use fixed:ARM for a constant arm")
    return policy


def load_checkpoint(policy: Any, path: Path) -> str:
    from scxd.policy.checkpoint import CheckpointError, check, load

    try:
        ckpt = load(path)
    except CheckpointError as exc:
        raise TableError(str(exc)) from None
    problem = check(ckpt, policy.name, policy.env.schema, policy.env.schema_version,
                    policy.version)
    if problem:
        raise TableError(f"{path}: {problem}")
    return policy.load_state(ckpt.meta, ckpt.arrays)


@dataclass
class PolicyTarget:
    """A learner's action distribution, context by context (frozen: nothing is learnt)."""

    name: str
    policy: Any

    def choose(self, x: np.ndarray) -> None:
        return None

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        mask = np.ones(self.policy.k, dtype=bool)
        out = np.empty((len(x), self.policy.k))
        for i, row in enumerate(x):
            # Each context on its own: rows may come from any run in any order, so nothing
            # a stateful policy carries (asa's held arm, its novelty verdict) may leak.
            self.policy.reset_runtime()
            probs, _ = self.policy.probabilities(self.policy.features(row), mask)
            out[i] = probs
        return out


def policy_target(spec: str, table: Table, args: argparse.Namespace) -> PolicyTarget:
    """``NAME`` (fresh) or ``NAME:CHECKPOINT`` (trained) → a scoreable target."""
    name, _, ckpt = spec.partition(":")
    policy = build(name, table, args, seed=getattr(args, "seed", 0))
    if ckpt:
        load_checkpoint(policy, Path(ckpt))
    return PolicyTarget(spec, policy)


def offline_scorable() -> list[str]:
    """Registered learners that can be built here and scored offline."""
    from scxd.policy.base import Learner
    from scxd.policy.registry import ENTRIES

    out = []
    for e in ENTRIES:
        if e.hindsight or e.available():
            continue
        try:
            if issubclass(e.factory(), Learner):
                out.append(e.name)
        except ImportError:
            continue
    return out


# -- training data ------------------------------------------------------------------------------

def offline_data(table: Table, rows: np.ndarray, x: np.ndarray, arms: np.ndarray,
                 cost: np.ndarray, prop: np.ndarray, method: str, clip: float,
                 q: np.ndarray | None = None) -> Any:
    """Logged rows as :class:`scxd.policy.base.OfflineData` for ``method``:

    * ``ips`` — rewards and logged propensities as they are (the learner importance-weights);
    * ``clipped`` — propensities floored at 1/clip, so no row weighs more than ``clip``;
    * ``dr`` — the doubly-robust reduction (Dudík, Langford & Li 2011): every row becomes K
      full-information rows, arm k with reward −[q̂(x,k) + 1{k=a}(y − q̂(x,a))/p] and
      propensity 1 — the weighting is already inside the pseudo-reward.
    """
    from scxd.policy.base import OfflineData

    groups = (table.columns["workload"][rows].astype(str) if "workload" in table.columns
              else np.full(len(rows), "all"))
    if method == "ips":
        return OfflineData(x, arms, -cost, prop, groups)
    if method == "clipped":
        return OfflineData(x, arms, -cost, np.maximum(prop, 1.0 / clip), groups)
    if method != "dr" or q is None:
        raise ValueError(f"unknown training method {method!r} (known: {', '.join(METHODS)})")
    n, k = q.shape
    pseudo = q.copy()
    r = np.arange(n)
    pseudo[r, arms] += np.minimum(1.0 / prop, clip) * (cost - q[r, arms])
    return OfflineData(np.repeat(x, k, axis=0), np.tile(np.arange(k), n), -pseudo.ravel(),
                       np.ones(n * k), np.repeat(groups, k))
