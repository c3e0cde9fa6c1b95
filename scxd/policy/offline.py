"""``asa``: an ASA-style offline classifier (arXiv 2511.11628; AutoSA's confidence rule).

Trained once on recorded windows — every window of a workload, whichever arm ran it, is an
example whose label is that workload's best arm (by mean reward under the objective, or by
the workload's own outcome where the dataset recorded it) — by ``members`` bagged
multinomial logistic regressions (numpy, L2, full-batch gradient descent).  At run time the
members vote; when the winning share is below ``min_confidence`` the arm chosen last is kept
(AutoSA's minimum confidence).  It does not learn online: that is the point of the peer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scxd.policy import explore as ex
from scxd.policy.base import Learner, OfflineData, PolicyEnv

if TYPE_CHECKING:
    from scxd.config import PolicyConfig

EPOCHS = 300
LR = 0.5
L2 = 1e-3


def softmax_regression(x: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator
                       ) -> np.ndarray:
    """Weights (k, d) of a multinomial logistic regression (x already has a bias column)."""
    w = 0.01 * rng.standard_normal((k, x.shape[1]))
    onehot = np.eye(k)[y]
    for _ in range(EPOCHS):
        z = x @ w.T
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot).T @ x / len(x) + L2 * w
        w -= LR * grad
    return w


class ASAPolicy(Learner):
    name = "asa"
    version = "asa-2"
    mode = "vote"
    # Arm first, so a checkpoint made on another arm set (the dataset's arms, the daemon's
    # catalog) is carried over by arm key; ``known`` marks the arms a model was trained on:
    # an arm it never saw has no score and is never voted for.
    per_arm = ("weights", "known")

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        self.c = cfg.asa
        self.weights = np.zeros((self.k, self.c.members, env.n_features + 1))
        self.known = np.zeros(self.k, dtype=bool)
        self.trained = False
        self.last: int | None = None

    def pretrain(self, data: OfflineData, passes: int = 1) -> None:
        for x in data.contexts:
            self.scaler.update(np.asarray(x, dtype=np.float64))
        labels = self.labels(data)
        keep = np.array([g in labels for g in data.groups])
        x = np.stack([self.features(c) for c in data.contexts[keep]])
        y = np.array([labels[g] for g in data.groups[keep]])
        if len(y) == 0:
            raise ValueError("asa: no training window belongs to a known workload")
        for m in range(self.c.members):
            idx = self.rng.integers(0, len(y), len(y)) if self.c.members > 1 else \
                np.arange(len(y))
            self.weights[:, m] = softmax_regression(x[idx], y[idx], self.k, self.rng)
        self.known[:] = True
        self.trained = True
        self.updates += len(y)

    def labels(self, data: OfflineData) -> dict[str, int]:
        """Each workload's best arm: by the workload's outcome, or by mean reward."""
        if self.c.label == "outcome" and data.outcome_best:
            return dict(data.outcome_best)
        return data.best_arm_by_reward(self.k)

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        if not self.trained or not (mask & self.known).any():
            fair = self.arms.fair_index()
            fair = fair if fair is not None and mask[fair] else int(np.flatnonzero(mask)[0])
            probs = ex.with_floor(np.eye(self.k)[fair], mask, self.c.p_min)
            why = "none of its arms can run" if self.trained else "untrained"
            return probs, {"mode": "vote", "reason": f"{why}: holding {self.arms[fair].label}"}
        scores = np.where(mask & self.known, (self.weights @ x).T, -np.inf)  # (members, k)
        votes = np.bincount(scores.argmax(axis=1), minlength=self.k).astype(float)
        share = votes / votes.sum()
        best = int(np.argmax(share))
        chosen = best
        reason = f"{share[best]:.0%} of {self.c.members} votes"
        if share[best] < self.c.min_confidence and self.last is not None and mask[self.last]:
            chosen = self.last
            reason += f" < {self.c.min_confidence:.0%}: keeping {self.arms[chosen].label}"
        self.last = chosen
        probs = ex.with_floor(np.eye(self.k)[chosen], mask, self.c.p_min)
        return probs, {"values": share, "mode": "vote", "reason": reason}

    def learn(self, x, arm, reward, propensity, transition) -> None:
        """Offline only: online transitions are not learnt."""

    def extra_state(self) -> dict[str, Any]:
        return {"trained": self.trained}

    def load_extra_state(self, meta: dict[str, Any]) -> None:
        self.trained = bool(meta.get("trained", False))
