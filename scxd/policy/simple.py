"""Context-free peers: ``uniform`` (the recording design), ``best_fixed`` (one arm always —
the hindsight reference in replay) and ``swucb`` (sliding-window UCB, Garivier & Moulines
2011, with a probability floor)."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from scxd.policy import explore as ex
from scxd.policy.arms import ArmSetError, action_from_key, action_from_label
from scxd.policy.base import Learner, PolicyEnv

if TYPE_CHECKING:
    from scxd.config import PolicyConfig
    from scxd.record import Transition


class UniformPolicy(Learner):
    name = "uniform"
    version = "uniform-1"
    mode = "uniform"

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        return ex.uniform(mask), {"mode": "uniform", "reason": "uniform over eligible arms"}

    def learn(self, x, arm, reward, propensity, transition) -> None:
        """Uniform learns nothing."""


class BestFixedPolicy(Learner):
    """Holds one arm: ``env.extras["hindsight_arm"]`` (the replay benchmark's hindsight-best
    arm), else ``[policy.best_fixed] arm``, else the fair scheduler."""

    name = "best_fixed"
    version = "best_fixed-1"

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        wanted = env.extras.get("hindsight_arm") or cfg.best_fixed.arm
        self.arm = env.arms.fair_index() or 0
        if wanted:
            self.arm = self._resolve(wanted)

    def _resolve(self, wanted: str) -> int:
        if wanted in self.arms:
            return self.arms.index(wanted)
        hit = self.arms.by_label(wanted)
        if hit is not None:
            return hit.index
        catalog = self.env.probed.catalog if self.env.probed else None
        if catalog is not None:
            try:
                action = (action_from_key if "=" in wanted else action_from_label)(catalog,
                                                                                   wanted)
                arm = self.arms.find(action)
                if arm is not None:
                    return arm.index
            except ArmSetError:
                pass
        raise ValueError(f"policy.best_fixed.arm {wanted!r} is not one of the "
                         f"{len(self.arms)} arms")

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        arm = self.arm if mask[self.arm] else int(np.flatnonzero(mask)[0])
        probs = np.zeros(self.k)
        probs[arm] = 1.0
        return probs, {"mode": "none",
                       "reason": f"always {self.arms[arm].label}"}

    def learn(self, x, arm, reward, propensity, transition) -> None:
        """A fixed arm learns nothing."""


class SlidingWindowUCBPolicy(Learner):
    name = "swucb"
    version = "swucb-1"
    mode = "ucb"

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        self.c = cfg.swucb
        self.window: deque[tuple[int, float]] = deque(maxlen=self.c.window)
        self.sums = np.zeros(self.k)
        self.counts = np.zeros(self.k)

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        n = max(len(self.window), 1)
        mean = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), 0.0)
        bonus = np.where(self.counts > 0,
                         self.c.c * np.sqrt(math.log(n + 1) / np.maximum(self.counts, 1)),
                         1e6)  # untried arms first
        probs = ex.ucb(mean, bonus, mask, self.c.p_min)
        return probs, {"values": mean, "uncertainty": np.minimum(bonus, 1e3), "mode": "ucb"}

    def learn(self, x: np.ndarray, arm: int, reward: float, propensity: float,
              transition: Transition) -> None:
        if len(self.window) == self.window.maxlen:
            old_arm, old_r = self.window[0]
            self.sums[old_arm] -= old_r
            self.counts[old_arm] -= 1
        self.window.append((arm, reward))
        self.sums[arm] += reward
        self.counts[arm] += 1

    def extra_state(self) -> dict[str, Any]:
        return {"window": [[self.arms[a].key, r] for a, r in self.window]}

    def load_extra_state(self, meta: dict[str, Any]) -> None:
        self.window.clear()
        self.sums[:] = 0
        self.counts[:] = 0
        for key, r in meta.get("window", []):
            if key in self.arms:
                a = self.arms.index(key)
                self.window.append((a, float(r)))
                self.sums[a] += float(r)
                self.counts[a] += 1
