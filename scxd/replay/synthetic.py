"""Synthetic logged windows with a known truth, in the export :class:`Table` format.

For benchmarks (``bench/replay_evaluate.py``: a million windows) and estimator tests: contexts
x ~ N(0, I) over the real feature names, cost(x, k) = x·β_k + c_k + N(0, σ²), logged by
ε-greedy around an imperfect logging model, with exact propensities.  Since E[x] = 0, the
true expected cost of "always arm k" is exactly ``c_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scxd.features import FEATURE_NAMES
from scxd.replay.table import Table
from scxd.reward import OBJECTIVES

DEFAULT_ARMS = ("fair", "scx_simple", "scx_simple -f", "scx_qmap", "scx_qmap -s 5000",
                "scx_qmap -b 8", "scx_flatcg", "scx_flatcg -f", "scx_flatcg -s 5000")


def synthetic_table(n: int, *, arms: Sequence[str] = DEFAULT_ARMS, epsilon: float = 0.3,
                    noise: float = 0.5, seed: int = 0) -> tuple[Table, dict[str, float]]:
    """(table, truth): ``truth[arm]`` is the exact expected cost of always choosing it."""
    rng = np.random.default_rng(seed)
    k, f = len(arms), len(FEATURE_NAMES)
    offsets = np.linspace(-0.2, 0.2, k)
    rng.shuffle(offsets)
    beta = rng.normal(0, 0.1, (f, k))
    x = rng.standard_normal((n, f), dtype=np.float32)
    # The logging policy prefers the arm its own (noisy) model calls cheapest.
    guess = x @ (beta + rng.normal(0, 0.1, (f, k))).astype(np.float32) + offsets
    greedy = guess.argmin(axis=1)
    explore = rng.random(n) < epsilon
    action = np.where(explore, rng.integers(0, k, n), greedy)
    prop = np.where(action == greedy, 1 - epsilon + epsilon / k, epsilon / k)
    mean = np.einsum("nf,nf->n", x, beta.T[action].astype(np.float32)) + offsets[action]
    y = mean + rng.normal(0, noise, n)
    labels = np.asarray(arms, dtype=object)
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(FEATURE_NAMES):
        cols[name] = x[:, j]
        cols[f"ctx_{name}"] = x[:, j]
    cols["arm"] = labels[action]
    cols["arm_label"] = labels[action]
    for obj in OBJECTIVES:
        cols[f"cost_{obj}"] = y
    cols["cost"] = y
    cols["reward"] = -y
    cols["propensity"] = prop
    cols["explore"] = explore
    cols["warmup"] = np.zeros(n, dtype=bool)
    cols["window_id"] = np.arange(n, dtype=np.int64)
    meta = {"feature_schema": "scxd-window-features", "feature_names": list(FEATURE_NAMES),
            "context_columns": [f"ctx_{c}" for c in FEATURE_NAMES], "arms": list(arms),
            "arm_labels": list(arms), "arm_set": "synthetic", "objectives": list(OBJECTIVES),
            "sources": [f"synthetic(n={n}, epsilon={epsilon}, seed={seed})"]}
    return Table(cols, meta), {a: float(c) for a, c in zip(arms, offsets, strict=True)}
