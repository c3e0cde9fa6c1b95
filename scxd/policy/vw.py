"""Vowpal Wabbit peers: ``--cb_explore_adf`` with SquareCB (``vw_squarecb``) or ε-greedy
(``vw_epsilon``), through the optional ``vowpalwabbit`` package (``pip install
vowpalwabbit``; 9.x ships wheels for CPython 3.11).

Each decision is a multiline ADF example: the shared context (standardised window features)
and one line per eligible arm describing it (its scheduler and each parameter value), with
``-q sa`` interactions so VW learns per-context, per-arm-attribute costs.  VW returns the
probability mass function; the arm is drawn from it with this policy's own seeded generator,
so the logged propensity is exactly VW's.  Learning labels the executed arm with
``cost:probability`` (VW minimises cost; cost = −reward).  State is VW's own binary model,
stored inside the scxd checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from scxd.catalog import format_value
from scxd.policy.base import Learner, PolicyEnv

if TYPE_CHECKING:
    from scxd.config import PolicyConfig
    from scxd.record import Transition


class VWPolicy(Learner):
    name = "vw"
    version = "vw-1"

    @staticmethod
    def exploration(cfg: PolicyConfig) -> str:
        """VW's exploration arguments for this peer."""
        raise NotImplementedError

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        import vowpalwabbit

        super().__init__(env, cfg)
        self.c = cfg.vw
        self.explore_args = self.exploration(cfg)
        self._vw_mod = vowpalwabbit
        self.args = (f"--cb_explore_adf {self.explore_args} -q sa --quiet "
                     f"--random_seed {env.seed % 2**31} {self.c.extra_args}").strip()
        self.vw = vowpalwabbit.Workspace(self.args)
        self.arm_lines = [self._describe(i) for i in range(self.k)]
        self._last_eligible: list[int] = []

    def _describe(self, i: int) -> str:
        a = self.arms[i].action
        feats = [f"s={a.scheduler}"] + [f"{a.scheduler}_{k}={format_value(v)}"
                                        for k, v in a.params]
        return "|a " + " ".join(f.replace(" ", "_").replace(":", "_") for f in feats)

    def _shared(self, x: np.ndarray) -> str:
        return "shared |s " + " ".join(f"f{j}:{v:.5f}" for j, v in enumerate(x))

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        idx = np.flatnonzero(mask)
        pmf = self.vw.predict([self._shared(x), *(self.arm_lines[i] for i in idx)])
        probs = np.zeros(self.k)
        probs[idx] = np.asarray(pmf, dtype=np.float64)
        probs /= probs.sum()
        return probs, {"values": probs.copy(), "mode": self.mode}

    def learn(self, x: np.ndarray, arm: int, reward: float, propensity: float,
              transition: Transition | None) -> None:
        lines = [self._shared(x)]
        # Learn on the whole arm set (VW conditions on the listed actions only).
        for i in range(self.k):
            label = f"0:{-reward:.6f}:{propensity:.6f} " if i == arm else ""
            lines.append(label + self.arm_lines[i])
        self.vw.learn(lines)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = super().state()
        fd, path = tempfile.mkstemp(suffix=".vw")
        os.close(fd)
        try:
            self.vw.save(path)
            with open(path, "rb") as fh:
                arrays["vw_model"] = np.frombuffer(fh.read(), dtype=np.uint8)
        finally:
            os.unlink(path)
        meta["extra"]["vw_args"] = self.args
        return meta, arrays

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        kept = super().load_state(meta, arrays)
        if "vw_model" not in arrays or meta.get("arm_keys") != self.arms.keys():
            return kept + "; VW model not reused (other arms)"
        fd, path = tempfile.mkstemp(suffix=".vw")
        with os.fdopen(fd, "wb") as fh:
            fh.write(arrays["vw_model"].tobytes())
        try:
            self.vw.finish()
            self.vw = self._vw_mod.Workspace(f"-i {path} --quiet")
        finally:
            os.unlink(path)
        return kept


class VWSquareCBPolicy(VWPolicy):
    name = "vw_squarecb"
    version = "vw_squarecb-1"
    mode = "squarecb"

    @staticmethod
    def exploration(cfg: PolicyConfig) -> str:
        return f"--squarecb --gamma_scale {cfg.vw.gamma_scale}"


class VWEpsilonPolicy(VWPolicy):
    name = "vw_epsilon"
    version = "vw_epsilon-1"
    mode = "epsilon"

    @staticmethod
    def exploration(cfg: PolicyConfig) -> str:
        return f"--epsilon {cfg.vw.epsilon}"
