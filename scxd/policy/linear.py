"""Linear contextual bandits over the window features: LinUCB, linear Thompson sampling and
SquareCB, sharing one per-arm ridge regression with forgetting.

Each arm a keeps A_a = λI + Σ γ^age x xᵀ and b_a = Σ γ^age r x (x: standardised features plus
a bias).  Every update discounts *all* arms by γ (D-LinUCB, Russac et al. 2019): an arm not
tried for a while slowly regains its uncertainty and is explored again, which is how these
peers follow a changing workload.  Rewards are −cost (0 = as good as the fair scheduler), so
the ridge prior θ = 0 means "like the fair scheduler".

* ``linucb`` — the arm maximising x·θ_a + α·√(xᵀA_a⁻¹x), floored at ``p_min``;
* ``lints`` — θ_a drawn from N(θ̂_a, v²A_a⁻¹); the action distribution is estimated from
  ``draws`` posterior draws and the arm is drawn *from that estimate* (mixed with the floor),
  so the logged propensity is exact;
* ``squarecb`` — inverse-gap weighting: p(a) = 1/(K + γ(ŷ_best − ŷ_a)), γ = scale·√t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scxd.policy import explore as ex
from scxd.policy.base import Learner, PolicyEnv

if TYPE_CHECKING:
    from scxd.config import PolicyConfig
    from scxd.record import Transition


class RidgeLearner(Learner):
    """Per-arm discounted ridge regression (the statistics the three policies share); each
    subclass reads its own ``[policy.<name>]`` table (``ridge``, ``discount`` and its own
    exploration keys) as ``self.c``."""

    per_arm = ("A", "b")

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        self.c = c = getattr(cfg, self.name)
        d = env.n_features + 1
        self.ridge, self.discount = c.ridge, c.discount
        self.A = np.tile(np.eye(d) * c.ridge, (self.k, 1, 1))
        self.b = np.zeros((self.k, d))
        self._eye = np.eye(d)

    def estimates(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean reward, its standard deviation) per arm at context x."""
        rhs = np.stack([self.b, np.broadcast_to(x, self.b.shape)], axis=2)   # (K, d, 2)
        sol = np.linalg.solve(self.A, rhs)
        theta, ainv_x = sol[:, :, 0], sol[:, :, 1]
        return theta @ x, np.sqrt(np.maximum(ainv_x @ x, 0.0))

    def learn(self, x: np.ndarray, arm: int, reward: float, propensity: float,
              transition: Transition) -> None:
        g = self.discount
        if g < 1.0:
            self.A = g * self.A + (1.0 - g) * self.ridge * self._eye
            self.b *= g
        self.A[arm] += np.outer(x, x)
        self.b[arm] += reward * x


class LinUCBPolicy(RidgeLearner):
    name = "linucb"
    version = "linucb-1"
    mode = "ucb"

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        mean, sd = self.estimates(x)
        probs = ex.ucb(mean, self.c.alpha * sd, mask, self.c.p_min)
        return probs, {"values": mean, "uncertainty": sd, "mode": "ucb",
                       "stats": {"alpha": self.c.alpha, "p_min": self.c.p_min}}


class LinTSPolicy(RidgeLearner):
    name = "lints"
    version = "lints-1"
    mode = "thompson"

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        mean, sd = self.estimates(x)
        # x·θ with θ ~ N(θ̂, v²A⁻¹) is N(x·θ̂, v²·xᵀA⁻¹x): sample the per-arm scalars.
        draws = mean + self.c.scale * sd * self.rng.standard_normal((self.c.draws, self.k))
        draws = np.where(mask, draws, -np.inf)
        counts = np.bincount(draws.argmax(axis=1), minlength=self.k).astype(np.float64)
        probs = ex.with_floor(counts / counts.sum(), mask, self.c.p_min)
        return probs, {"values": mean, "uncertainty": sd, "mode": "thompson",
                       "stats": {"scale": self.c.scale, "p_min": self.c.p_min}}


class SquareCBPolicy(RidgeLearner):
    name = "squarecb"
    version = "squarecb-1"
    mode = "squarecb"

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        mean, sd = self.estimates(x)
        gamma = self.c.gamma_scale * np.sqrt(self.updates + 1.0)
        probs = inverse_gap(mean, mask, gamma)
        return probs, {"values": mean, "uncertainty": sd, "mode": "squarecb",
                       "stats": {"gamma": float(gamma)}}


def inverse_gap(values: np.ndarray, mask: np.ndarray, gamma: float) -> np.ndarray:
    """SquareCB's distribution over the eligible arms (rewards: higher is better)."""
    n = int(mask.sum())
    v = np.where(mask, values, -np.inf)
    best = int(np.argmax(v))
    probs = np.where(mask, 1.0 / (n + gamma * (v[best] - np.where(mask, v, v[best]))), 0.0)
    probs[best] = 0.0
    probs[best] = 1.0 - probs.sum()
    return probs
