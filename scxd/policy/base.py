"""What every learner shares: its environment, the decide/update plumbing, feature scaling,
and per-arm state that survives a change of arm set.

A learner subclasses :class:`Learner` and implements two verbs over arm *indices*:

* ``probabilities(x, mask) → (probs, info)`` — a distribution over the whole arm set, zero
  outside ``mask`` (the eligible arms), plus per-arm ``values``/``uncertainty`` and the
  exploration ``mode`` for ``scxctl explain``;
* ``learn(x, arm, reward, propensity, transition)`` — one usable transition.

The base turns features into ``x`` (running standardisation, then clipped, plus a bias), draws
the arm with the learner's own seeded generator, builds the :class:`~scxd.policy.Decision`,
filters transitions (warm-up, foreign arms) and saves/loads state: arrays listed in
``per_arm`` have the arm as their first axis and are carried over *by arm key* when a
checkpoint was made for another arm set; the rest must match in shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scxd.catalog import Action
from scxd.features import FEATURE_NAMES, SCHEMA_NAME, SCHEMA_VERSION, FeatureVector
from scxd.policy import Decision
from scxd.policy import explore as ex
from scxd.policy.arms import ArmSet, arm_key, resolve_key
from scxd.probe import ProbedCatalog

if TYPE_CHECKING:
    from scxd.config import PolicyConfig
    from scxd.record import Transition

#: Standardised features are clipped to ±this many standard deviations.
CLIP_SD = 5.0


@dataclass(frozen=True)
class PolicyEnv:
    """What a policy is built for: its arms, its inputs, its seed."""

    arms: ArmSet
    seed: int = 0
    probed: ProbedCatalog | None = None
    schema: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION
    feature_names: tuple[str, ...] = FEATURE_NAMES
    window_s: float = 5.0
    extras: dict[str, Any] = field(default_factory=dict)   # e.g. hindsight arm, training data

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


class Scaler:
    """Running mean/variance per feature; ``transform`` standardises and clips.

    The count saturates at ``horizon`` (an exponential window beyond it) so the scale keeps
    following slow drift; the standard deviation is floored at ``MIN_SD`` (features are
    fractions and logs, O(1): a nearly constant one must not amplify its noise)."""

    MIN_SD = 0.05

    def __init__(self, n: int, horizon: int = 2000):
        self.n = np.zeros(1)
        self.mean = np.zeros(n)
        self.var = np.ones(n)
        self.horizon = horizon

    def update(self, x: np.ndarray) -> None:
        self.n[0] = min(self.n[0] + 1, self.horizon)
        d = x - self.mean
        self.mean += d / self.n[0]
        self.var += (d * (x - self.mean) - self.var) / self.n[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        sd = np.maximum(np.sqrt(np.maximum(self.var, 0.0)), self.MIN_SD)
        return np.clip((x - self.mean) / sd, -CLIP_SD, CLIP_SD)

    def state(self) -> dict[str, np.ndarray]:
        return {"scaler_n": self.n, "scaler_mean": self.mean, "scaler_var": self.var}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        mean = arrays.get("scaler_mean")
        if mean is not None and mean.shape == self.mean.shape:
            self.n = arrays["scaler_n"].astype(float).copy()
            self.mean = mean.astype(float).copy()
            self.var = arrays["scaler_var"].astype(float).copy()


@dataclass
class OfflineData:
    """Logged transitions for offline training (arrays aligned on the first axis).

    ``groups`` names the workload (scenario) of each transition where the log knows it;
    ``outcome_best`` maps a group to the arm its own outcome ranks best, ``outcome_loss`` to
    each arm's outcome loss there as a fraction, NaN where not run (datasets only)."""

    contexts: np.ndarray            # (n, n_features) raw feature vectors
    arms: np.ndarray                # (n,) arm indices
    rewards: np.ndarray             # (n,)
    propensities: np.ndarray        # (n,) logging propensities
    groups: np.ndarray              # (n,) str
    swapped: np.ndarray | None = None
    context_arms: np.ndarray | None = None   # (n,) arm running when the context was measured
    outcome_best: dict[str, int] = field(default_factory=dict)
    outcome_loss: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arms)

    def mean_rewards(self, k: int) -> dict[str, np.ndarray]:
        """Each known group's mean logged reward per arm (NaN for arms never logged in it)."""
        out: dict[str, np.ndarray] = {}
        for g in np.unique(self.groups):
            if not g:
                continue
            sel = self.groups == g
            means = np.full(k, np.nan)
            for a in np.unique(self.arms[sel]):
                means[a] = self.rewards[sel & (self.arms == a)].mean()
            out[str(g)] = means
        return out

    def best_arm_by_reward(self, k: int) -> dict[str, int]:
        """Each known group's arm with the highest mean logged reward (arms never logged
        in the group, or whose mean is NaN, are not candidates): the label an offline
        classifier learns."""
        return {g: int(np.argmax(np.where(np.isnan(m), -np.inf, m)))
                for g, m in self.mean_rewards(k).items()}


class Learner:
    """Base of the registered learners (see the module docstring)."""

    name = "learner"
    version = "1"
    mode = "none"
    per_arm: tuple[str, ...] = ()     # attributes holding arrays with the arm as axis 0
    fits_online = True                # the feature scaler follows what the daemon sees
    shared: tuple[str, ...] = ()      # attributes holding other arrays

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig | None = None):
        self.env = env
        self.cfg = cfg
        self.arms = env.arms
        self.k = len(env.arms)
        self.rng = np.random.default_rng(env.seed)
        self.scaler = Scaler(env.n_features)
        self.updates = 0
        self.skipped = 0
        self.last_stats: dict[str, float] = {}
        self.current: int | None = None       # arm running at the decision, when known
        self._mask_cache: tuple[Sequence[Action], int, np.ndarray] | None = None

    # -- the two verbs a learner implements ------------------------------------------------------
    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def reset_runtime(self) -> None:
        """Forget what the windows decided so far carried into the next decision (not
        what was learnt): a policy whose choice depends only on the window needs nothing."""

    def learn(self, x: np.ndarray, arm: int, reward: float, propensity: float,
              transition: Transition) -> None:
        raise NotImplementedError

    # -- plumbing ------------------------------------------------------------------------------
    def features(self, values: np.ndarray, fit: bool = False) -> np.ndarray:
        raw = np.asarray(values, dtype=np.float64)
        if fit:
            self.scaler.update(raw)
        return np.append(self.scaler.transform(raw), 1.0)

    def mask(self, eligible: Sequence[Action]) -> np.ndarray:
        # The daemon passes the same list every window: remember the last answer.
        cached = self._mask_cache
        if cached is not None and cached[0] is eligible and cached[1] == len(eligible):
            return cached[2]
        m = np.zeros(self.k, dtype=bool)
        for a in eligible:
            arm = self.arms.find(a)
            if arm is not None:
                m[arm.index] = True
        self._mask_cache = (eligible, len(eligible), m)
        return m

    def decide(self, features: FeatureVector, eligible: Sequence[Action],
               current: Action | None = None) -> Decision:
        mask = self.mask(eligible)
        arm = self.arms.find(current) if current is not None else None
        self.current = arm.index if arm is not None else None
        if not mask.any():
            fallback = next((a for a in eligible if a.is_fair), eligible[0])
            return Decision(fallback, {arm_key(fallback): 1.0}, False, self.name,
                            self.version, f"none of the {len(eligible)} eligible arms is in "
                            f"this policy's arm set {self.arms.hash}: holding "
                            f"{fallback.label()}", mode="none")
        x = self.features(features.values, fit=self.fits_online)
        probs, info = self.probabilities(x, mask)
        i = ex.draw(self.rng, probs)
        if "greedy" in info:
            greedy = int(info["greedy"])
        elif (values := info.get("values")) is not None:
            greedy = int(np.argmax(np.where(mask, values, -np.inf)))
        else:
            greedy = i
        explore = i != greedy
        stats = {"entropy": ex.entropy(probs), "updates": float(self.updates),
                 **info.get("stats", {}), **self.last_stats}
        keys = [a.key for a in self.arms]
        per_arm = {n: {keys[j]: float(v[j]) for j in np.flatnonzero(mask)}
                   for n in ("values", "uncertainty") if (v := info.get(n)) is not None}
        reason = info.get("reason") or (
            f"{'explored' if explore else 'best estimate'} ({info.get('mode', self.mode)}): "
            f"p={probs[i]:.3f}")
        return Decision(self.arms[i].action,
                        {keys[j]: float(probs[j]) for j in np.flatnonzero(mask)}, explore,
                        self.name, self.version, reason, {}, per_arm.get("values", {}),
                        per_arm.get("uncertainty", {}), info.get("mode", self.mode), stats)

    def update(self, transition: Transition) -> None:
        if not transition.usable or transition.arm not in self.arms or \
                transition.reward is None or not math.isfinite(transition.reward):
            self.skipped += 1
            return
        x = self.features(transition.context)
        self.learn(x, self.arms.index(transition.arm), float(transition.reward),
                   max(float(transition.propensity), 1e-6), transition)
        self.updates += 1

    def pretrain(self, data: OfflineData, passes: int = 1) -> None:
        """Learn from logged transitions before going online: the scaler is fitted on every
        context, then each transition is learnt in a seeded shuffled order (importance
        weighting is the learner's business: most peers are regressions that need none)."""
        for x in data.contexts:
            self.scaler.update(np.asarray(x, dtype=np.float64))
        order = np.arange(len(data))
        for _ in range(passes):
            self.rng.shuffle(order)
            for i in order:
                x = self.features(data.contexts[i])
                self.learn(x, int(data.arms[i]), float(data.rewards[i]),
                           float(data.propensities[i]), None)  # type: ignore[arg-type]
                self.updates += 1

    # -- state ---------------------------------------------------------------------------------
    def forget_runtime(self) -> None:
        """Drop what this learner knows only since its process started: state a checkpoint
        does not keep and a restart rightly begins afresh.  None here; see the network."""
        return None

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, meta: dict[str, Any]) -> None:
        return None

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {n: np.asarray(getattr(self, n)) for n in (*self.per_arm, *self.shared)}
        arrays.update(self.scaler.state())
        meta = {"policy": self.name, "policy_version": self.version,
                "feature_schema": self.env.schema, "feature_version": self.env.schema_version,
                "arm_set": self.arms.hash, "arm_keys": self.arms.keys(),
                "updates": self.updates, "extra": self.extra_state()}
        return meta, arrays

    def carry_map(self, old_keys: list[str]) -> list[tuple[int, int]]:
        """(this arm set's index, the checkpoint's index) of every arm both know."""
        pos = {k: i for i, k in enumerate(old_keys)}
        carried = [(a.index, pos[a.key]) for a in self.arms if a.key in pos]
        # The fair scheduler at a machine's own defaults is one arm everywhere, but its key
        # spells that machine's tunable values (base_slice_ns scales with the CPU count):
        # the checkpoint's first fair arm stands for this machine's first.
        # (Even when that checkpoint arm also matched one of this machine's tuned fair arms
        # exactly: a row copied to two arms is harmless, a plain fair left out is not.)
        fair = self.arms.fair_index()
        old_fair = next((i for i, k in enumerate(old_keys) if k.split(" ", 1)[0] == "fair"),
                        None)
        if fair is not None and old_fair is not None and \
                all(new_i != fair for new_i, _ in carried):
            carried.append((fair, old_fair))
        # A key recorded on another machine may spell fewer parameters (its probe dropped
        # one): matched by the arm it names in this catalog.
        if self.env.probed is not None and len(carried) < len(old_keys):
            matched_new = {new_i for new_i, _ in carried}
            matched_old = {old_i for _, old_i in carried}
            for old_i, key in enumerate(old_keys):
                if old_i in matched_old:
                    continue
                action = resolve_key(self.env.probed.catalog, key)
                arm = self.arms.find(action) if action is not None else None
                if arm is not None and arm.index not in matched_new:
                    carried.append((arm.index, old_i))
                    matched_new.add(arm.index)
        return carried

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        """Adopt a checkpoint's state; per-arm arrays by arm key.  Returns what was kept."""
        carried = self.carry_map(list(meta.get("arm_keys") or []))
        for name in self.per_arm:
            if name not in arrays:
                continue
            cur = getattr(self, name)
            src = arrays[name]
            if src.shape[1:] != np.asarray(cur).shape[1:]:
                return f"kept nothing: {name} has shape {src.shape}, expected {cur.shape}"
            for new_i, old_i in carried:
                cur[new_i] = src[old_i]
        for name in self.shared:
            if name in arrays:
                cur = getattr(self, name)
                if np.asarray(cur).shape == arrays[name].shape:
                    setattr(self, name, arrays[name].astype(np.asarray(cur).dtype).copy())
        self.scaler.load(arrays)
        self.updates = int(meta.get("updates", 0))
        self.load_extra_state(meta.get("extra") or {})
        return f"{len(carried)} of {self.k} arms carried over"

    def explain(self) -> dict[str, Any]:
        return {"updates": self.updates, "skipped_transitions": self.skipped,
                "arm_set": self.arms.hash, **self.last_stats}
