"""``asa``: an ASA-style offline classifier (arXiv 2511.11628; AutoSA's confidence rule).

Trained once on recorded windows — every window of a workload, whichever arm ran it, is an
example whose label is that workload's best arm (by mean reward under the objective, or by
the workload's own outcome where the dataset recorded it) — by ``members`` bagged
multinomial logistic regressions (numpy, L2, full-batch gradient descent).  At run time the
members vote; when the winning share is below ``min_confidence`` the arm chosen last is kept
(AutoSA's minimum confidence).  It does not learn online: that is the point of the peer.

**Risk check** (``risk_check``, scxd's addition).  A classifier of arms answers "which arm
is best for the training workload this window resembles" and nothing about what happens if
the resemblance is wrong — and on a workload it was not trained on, a pick that is best for
a throughput workload can make a latency test 19× slower.  So a second bagged classifier
gives p(w | x), the probability that the window belongs to each training workload w, and
the voted arm runs only when its expected outcome loss Σ_w p(w | x)·loss(w, arm) is no
larger than the fair scheduler's; otherwise fair runs.  loss(w, arm) is the dataset's own
outcome table (the workload's headline figure against its best arm, training repeats
only), or the mean-reward regret where a dataset recorded no outcomes.  No threshold is
tuned: the rule is the Bayes decision between the two arms.

**Novelty check** (``novelty_check``, scxd's addition).  The workload posterior is a softmax
over the training workloads: it has no "none of these" answer, so a window unlike all of
them is still called one of them, often with confidence (recorded fork storms and socket
ping-pong were called ``memory`` with 66–78 %).  Each training workload's windows therefore
also get a Gaussian (mean and a covariance shrunk ``novelty_shrinkage`` of the way to its
diagonal) over the features that varied in training; a window whose Mahalanobis distance
to *every* workload exceeds the ``novelty_quantile`` of cross-fitted distances (windows
measured against Gaussians fitted without them) resembles nothing asa was trained on.
After ``novelty_windows`` such windows in a row (one stray window among the known
workloads' must not cost two swaps) the fair scheduler — the default the daemon promises
never to lose to — runs, until as many windows in a row resemble one again.  The detector
was chosen on the committed dataset alone (``bench/novelty_detectors.py``): with one
workload left out at a time, it flags 35 % of the left-out workload's windows at 0.4 % of
the known workloads' evaluation windows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from scxd.policy import explore as ex
from scxd.policy.base import Learner, OfflineData, PolicyEnv

if TYPE_CHECKING:
    from scxd.config import PolicyConfig

log = logging.getLogger("scxd.policy")

EPOCHS = 300
#: Pooled spread (scaled units; the scaler's floor makes a feature that moved at all ~1)
#: below which a feature takes no part in the novelty check.
NOVELTY_MIN_SPREAD = 0.5
#: Blocks per training workload for the novelty threshold's cross-fitting.
NOVELTY_FOLDS = 5
MAX_LOSS = 1000.0
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


def mahalanobis(rows: np.ndarray, means: np.ndarray, precisions: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance per feature of each window (n, d) to each Gaussian
    (g means, g precisions): (n, g)."""
    diff = rows[:, None, :] - means[None]                                    # (n, g, d)
    return np.einsum("ngd,gde,nge->ng", diff, precisions, diff) / rows.shape[1]


class ASAPolicy(Learner):
    name = "asa"
    version = "asa-4"
    mode = "vote"
    # Arm first, so a checkpoint made on another arm set (the dataset's arms, the daemon's
    # catalog) is carried over by arm key; ``known`` marks the arms a model was trained on:
    # an arm it never saw has no score and is never voted for.
    # ``risk``: each arm's outcome loss on each training workload (arms × workloads);
    # ``workload_weights``: the workload classifier (workloads × members × features);
    # ``novelty_mean``/``novelty_precision``: each training workload's Gaussian (workloads ×
    # features, workloads × features × features, without the bias column).
    per_arm = ("weights", "known", "risk")
    shared = ("workload_weights", "novelty_mean", "novelty_precision")
    # The classifiers were fitted on features scaled as in training: a scaler that
    # followed this machine would move their inputs.
    fits_online = False

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        self.c = cfg.asa
        self.weights = np.zeros((self.k, self.c.members, env.n_features + 1))
        self.known = np.zeros(self.k, dtype=bool)
        self.risk = np.zeros((self.k, 0))
        self.workload_weights = np.zeros((0, self.c.members, env.n_features + 1))
        self.risk_workloads: list[str] = []
        d = env.n_features
        self.novelty_mean = np.zeros((0, d))
        self.novelty_precision = np.zeros((0, d, d))
        self.novelty_threshold = float("inf")
        self.novel: bool | None = None    # the novelty check's verdict (None: no window yet)
        self.novel_streak = 0             # windows in a row that disagreed with it
        self.novelty_ratio: float | None = None   # the last window's distance / threshold
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
        self.weights = self.bagged(x, y, self.k)
        self.known[:] = True
        self.trained = True
        self.updates += len(y)
        self.fit_risk(data, x, data.groups[keep])
        self.fit_novelty(x[:, :-1], data.groups[keep])

    def bagged(self, x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        """``members`` softmax regressions over k classes, each on a bootstrap sample (all
        of it when there is one member): weights (k, members, d)."""
        out = np.zeros((k, self.c.members, x.shape[1]))
        for m in range(self.c.members):
            idx = self.rng.integers(0, len(y), len(y)) if self.c.members > 1 else \
                np.arange(len(y))
            out[:, m] = softmax_regression(x[idx], y[idx], k, self.rng)
        return out

    def fit_risk(self, data: OfflineData, x: np.ndarray, groups: np.ndarray) -> None:
        """The risk check's model: the workload classifier and the loss table."""
        names = sorted({str(g) for g in groups})
        index = {g: i for i, g in enumerate(names)}
        y = np.array([index[str(g)] for g in groups])
        self.workload_weights = self.bagged(x, y, len(names))
        if all(g in data.outcome_loss for g in names):
            loss = np.stack([np.asarray(data.outcome_loss[g], dtype=float) for g in names])
        else:   # no outcomes recorded: the regret of each arm's mean reward
            if data.outcome_loss:
                log.warning("asa: outcome losses of %s missing: the risk check uses mean-"
                            "reward regret", ", ".join(g for g in names
                                                       if g not in data.outcome_loss))
            means = data.mean_rewards(self.k)
            loss = -np.stack([means[g] for g in names])
            loss -= np.nanmin(loss, axis=1, keepdims=True)
        # A best figure of 0 makes a loss infinite, and an infinite loss times a posterior
        # that underflowed to 0 is NaN: capped at 1000 (100 000 %).
        loss = np.minimum(loss, MAX_LOSS)
        # An arm never run on a workload is assumed as bad there as its worst arm.
        worst = np.nanmax(loss, axis=1, keepdims=True)
        self.risk = np.where(np.isnan(loss), worst, loss).T.copy()
        self.risk_workloads = names

    def fit_novelty(self, x: np.ndarray, groups: np.ndarray) -> None:
        """The novelty check's model: a shrunk Gaussian per training workload, and the
        distance that ``novelty_quantile`` of windows *not fitted on* stay within.

        Only features that varied across the training windows take part (pooled spread
        ≥ NOVELTY_MIN_SPREAD scaled units); the others get zero precision.  A feature that
        barely moved under every training workload (the recording VM's free memory, its
        absent disk and swap traffic, its iowait) says nothing about which workload a
        window is, only about the machine: with a ridge-sized precision, any other host's
        free memory or background disk traffic would make every window "novel".

        The threshold comes from cross-fitting: each workload's windows are cut into
        NOVELTY_FOLDS consecutive blocks, and each block is measured against Gaussians
        fitted without it.  A Gaussian is closer to the windows it was fitted on (with
        ~140 windows in ~30 dimensions, markedly so): an in-sample quantile would flag
        fresh windows of a known workload far more often than the quantile promises."""
        names = sorted({str(g) for g in groups})
        used = np.flatnonzero(x.std(axis=0) >= NOVELTY_MIN_SPREAD)
        folds = np.zeros(len(x), dtype=int)
        for g in names:
            own = np.flatnonzero(groups == g)
            for k, block in enumerate(np.array_split(own, NOVELTY_FOLDS)):
                folds[block] = k
        held_out = np.full(len(x), np.nan)
        for k in range(NOVELTY_FOLDS):
            fit = folds != k
            if fit.all():             # fewer windows than folds: no block was cut out
                continue
            model = self._gaussians(x[fit], groups[fit], sorted({str(g) for g in groups[fit]}),
                                    used)
            held_out[~fit] = mahalanobis(x[~fit], *model).min(axis=1)
        self.novelty_mean, self.novelty_precision = self._gaussians(x, groups, names, used)
        # Floored: a training set of identical windows must not make every ratio infinite.
        held_out = held_out[np.isfinite(held_out)]
        self.novelty_threshold = max(float(np.quantile(held_out, self.c.novelty_quantile))
                                     if len(held_out) else 0.0, 1e-6)

    def _gaussians(self, x: np.ndarray, groups: np.ndarray, names: list[str],
                   used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each workload's mean (all features) and precision (zero outside ``used``)."""
        d = x.shape[1]
        means = np.zeros((len(names), d))
        precisions = np.zeros((len(names), d, d))
        for i, g in enumerate(names):
            own = x[groups == g]
            sub = own[:, used]
            cov = np.cov(sub.T).reshape(len(used), len(used)) if len(own) > 1 else \
                np.zeros((len(used), len(used)))
            shrink = self.c.novelty_shrinkage
            # The ridge keeps a feature constant in one workload (idle's zero load) from
            # making its precision infinite.
            cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov)) + 1e-2 * np.eye(len(used))
            means[i] = own.mean(axis=0)
            precisions[i][np.ix_(used, used)] = np.linalg.inv(cov)
        return means, precisions

    def novelty(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each window's smallest distance to a training workload, that workload's index)
        for windows (n, d) or one window (d,) — squared Mahalanobis per feature."""
        dist = mahalanobis(np.atleast_2d(x), self.novelty_mean, self.novelty_precision)
        return dist.min(axis=1), dist.argmin(axis=1)

    def novelty_veto(self, x: np.ndarray, chosen: int, mask: np.ndarray) -> str:
        """Why a window unlike every training workload must run fair ('' = it need not).

        Hysteresis both ways: the verdict flips after ``novelty_windows`` windows in a row
        that disagree with it, so neither a stray window among known workloads nor one that
        looks familiar amid an unknown workload makes two swaps.  The first window after
        :meth:`reset_runtime` sets the verdict directly."""
        if not self.c.novelty_check or len(self.novelty_mean) == 0:
            return ""
        dist, nearest = self.novelty(x[:-1])
        self.novelty_ratio = float(dist[0] / self.novelty_threshold)
        if self.novel is None:           # the first window: nothing to be stable against
            self.novel = bool(dist[0] > self.novelty_threshold)
        elif (dist[0] > self.novelty_threshold) != self.novel:
            self.novel_streak += 1
            if self.novel_streak >= self.c.novelty_windows:
                self.novel, self.novel_streak = not self.novel, 0
        else:
            self.novel_streak = 0
        fair = self.arms.fair_index()
        if not self.novel or fair is None or chosen == fair or not mask[fair]:
            return ""
        near = self.risk_workloads[nearest[0]] if nearest[0] < len(self.risk_workloads) \
            else "?"
        return (f"novelty check: windows resemble no training workload (distance "
                f"{dist[0]:.2f}, threshold {self.novelty_threshold:.2f}; nearest {near})")

    def expected_loss(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p(training workload | x), expected outcome loss of every arm)."""
        z = np.einsum("gmd,d->mg", self.workload_weights, x)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        posterior = p.mean(axis=0)
        return posterior, self.risk @ posterior

    def risk_veto(self, x: np.ndarray, chosen: int, mask: np.ndarray) -> str:
        """Why the voted arm must give way to the fair scheduler ('' = it need not)."""
        fair = self.arms.fair_index()
        if (not self.c.risk_check or self.risk.shape[1] == 0 or fair is None or
                chosen == fair or not mask[fair] or not self.known[fair]):
            return ""
        posterior, expected = self.expected_loss(x)
        if expected[chosen] <= expected[fair]:
            return ""
        like = ", ".join(f"{self.risk_workloads[g]} {posterior[g]:.0%}"
                         for g in np.argsort(posterior)[::-1][:3]
                         if g < len(self.risk_workloads))
        return (f"risk check: {self.arms[chosen].label} expects outcome loss "
                f"{expected[chosen]:.0%} vs fair's {expected[fair]:.0%} (window resembles "
                f"{like})")

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
        veto = self.novelty_veto(x, chosen, mask) or self.risk_veto(x, chosen, mask)
        if veto:
            chosen = self.arms.fair_index()  # type: ignore[assignment]  (risk_veto checked)
            reason += f"; {veto}"
        self.last = chosen
        probs = ex.with_floor(np.eye(self.k)[chosen], mask, self.c.p_min)
        stats = {} if self.novelty_ratio is None else {
            "novelty_ratio": self.novelty_ratio, "novel": float(self.novel)}
        # "greedy": what asa means to run (a veto or a kept arm is not exploration).
        return probs, {"values": share, "mode": "vote", "reason": reason, "greedy": chosen,
                       "stats": stats}

    def learn(self, x, arm, reward, propensity, transition) -> None:
        """Offline only: online transitions are not learnt."""

    def reset_runtime(self) -> None:
        """Forget the windows seen so far (the arm held last, the novelty verdict)."""
        self.last = None
        self.novel, self.novel_streak, self.novelty_ratio = None, 0, None

    def extra_state(self) -> dict[str, Any]:
        return {"trained": self.trained, "risk_workloads": self.risk_workloads,
                # JSON has no infinity: None is "no threshold" (no novelty model).
                "novelty_threshold": (self.novelty_threshold
                                      if np.isfinite(self.novelty_threshold) else None)}

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        # The risk and novelty models are as wide as the checkpoint's training workloads:
        # sized to it before the arrays are carried over (an older model has none of them).
        n = len((meta.get("extra") or {}).get("risk_workloads") or [])
        self.risk = np.zeros((self.k, n))
        for name in self.shared:
            cur = getattr(self, name)
            setattr(self, name, np.zeros((n, *cur.shape[1:])))
        self.reset_runtime()
        return super().load_state(meta, arrays)

    def load_extra_state(self, meta: dict[str, Any]) -> None:
        self.trained = bool(meta.get("trained", False))
        self.risk_workloads = [str(w) for w in meta.get("risk_workloads") or []]
        threshold = meta.get("novelty_threshold")
        self.novelty_threshold = float("inf") if threshold is None else float(threshold)
        # A model array the checkpoint lacked (or of another shape) was left zero-sized or
        # zero: that model is off rather than misread.
        if not self.risk_workloads or not self.workload_weights.any():
            self.risk = np.zeros((self.k, 0))
            self.workload_weights = self.workload_weights[:0]
            self.risk_workloads = []
        if not self.risk_workloads or not self.novelty_precision.any():
            self.novelty_mean = self.novelty_mean[:0]
            self.novelty_precision = self.novelty_precision[:0]
