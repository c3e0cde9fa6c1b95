"""Off-policy estimators: what a target policy's expected cost *would* be, from logged windows.

Pure, vectorised numpy.  The logged data are ``n`` rows of (context, logged arm ``a_i``, the
logging policy's probability of it ``p_i``, observed outcome ``y_i``); here ``y`` is a *cost*
(lower is better) but nothing below depends on the sign.  A target policy enters through three
per-row vectors (:class:`TargetTerms`), so a policy over thousands of arms never needs an
``n × K`` matrix in memory:

* ``prob`` — π(a_i | x_i), the target's probability of the arm that was logged;
* ``dm`` — Σ_k π(k | x_i) q̂(x_i, k), the reward model's value of the target at x_i;
* ``q_logged`` — q̂(x_i, a_i), the reward model's prediction for the logged arm.

Estimators (names as in Open Bandit Pipeline; w_i = π(a_i|x_i) / p_i, clipped to ``clip``):

* ``replay`` — Li, Chu, Langford & Wang (WSDM 2011): keep the rows where the target would have
  chosen the logged arm, average their outcomes (for a stochastic target: weight each row by
  π(a_i|x_i)).  Unbiased only when logging was uniformly random over the same arms; other
  logging is reported in the warnings.
* ``ips`` — inverse propensity scoring, (1/n) Σ w_i y_i (Horvitz–Thompson).
* ``snips`` — self-normalised IPS, Σ w_i y_i / Σ w_i (Swaminathan & Joachims 2015): a little
  bias, much less variance, and invariant to adding a constant to ``y``.
* ``dm`` — direct method, (1/n) Σ dm_i: only as good as the reward model.
* ``dr`` — doubly robust, (1/n) Σ [dm_i + w_i (y_i − q_logged_i)] (Dudík, Langford & Li
  2011): unbiased if either the propensities or the reward model are right.

Alongside: the effective sample size of the (clipped) weights, (Σw)² / Σw² (Kish), and the
share of weights the clip cut; percentile-bootstrap 95 % CIs with the reward model held fixed
(as OBP does: ``dm``'s interval therefore leaves out the model's own error and is too narrow
— 7 of 80 covered the truth in ``tests/test_replay_coverage.py``'s setting, against 77–78 of
80 for ips/snips/dr), *paired* across targets so a difference between two policies gets its own CI;
support warnings — arms the target wants that the logs never tried, missing or zero
propensities (those rows are dropped from every estimator, and counted).

Every estimator is a ratio of two column sums of a per-row matrix, so one bootstrap replicate
is a vector of multinomial counts times a matrix of block sums (:func:`bootstrap_sums`): a
million windows take well under a second for 200 replicates (``bench/replay_evaluate.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

ESTIMATORS = ("replay", "ips", "snips", "dm", "dr")
#: Default weight clip: a row may count for at most this many rows (OBP's ``lambda_``).
DEFAULT_CLIP = 100.0
DEFAULT_BOOTSTRAP = 200
#: Above this many rows the bootstrap resamples contiguous blocks (see bootstrap_sums).
MAX_BLOCKS = 20_000


class EstimatorError(ValueError):
    """Input arrays that cannot be evaluated (shapes, NaN outcomes, bad arm indices)."""


@dataclass(frozen=True)
class Logged:
    """The logged side: one row per scored window, columnar."""

    actions: np.ndarray       # int (n,): index of the logged arm in ``arms``
    propensities: np.ndarray  # float (n,): logging probability of that arm; NaN = not logged
    outcomes: np.ndarray      # float (n,): observed cost
    arms: tuple[str, ...]     # arm keys, index → key

    def __post_init__(self) -> None:
        n = len(self.actions)
        for name in ("propensities", "outcomes"):
            if getattr(self, name).shape != (n,):
                raise EstimatorError(f"{name} has shape {getattr(self, name).shape}, "
                                     f"expected ({n},) like actions")
        if n and (self.actions.min() < 0 or self.actions.max() >= len(self.arms)):
            raise EstimatorError(f"arm index out of range 0..{len(self.arms) - 1}")
        if not np.all(np.isfinite(self.outcomes)):
            raise EstimatorError("outcomes contain NaN or ±inf: drop those windows first")

    @property
    def n(self) -> int:
        return len(self.actions)

    def usable(self) -> np.ndarray:
        """Rows whose propensity is known and positive (the others cannot be re-weighted)."""
        p = self.propensities
        return np.isfinite(p) & (p > 0)


@dataclass(frozen=True)
class TargetTerms:
    """A target policy seen through the logged rows (see the module docstring)."""

    prob: np.ndarray                  # (n,) π(a_i | x_i)
    arm_mass: np.ndarray              # (K,) Σ_i π(k | x_i) / n: where the target puts its mass
    dm: np.ndarray | None = None      # (n,) Σ_k π(k|x_i) q̂(x_i, k); None: no reward model
    q_logged: np.ndarray | None = None  # (n,) q̂(x_i, a_i)


def deterministic_terms(actions: np.ndarray, target: np.ndarray, n_arms: int,
                        q: np.ndarray | None = None) -> TargetTerms:
    """Terms of a deterministic target that picks arm ``target[i]`` at row i.

    ``q`` is the reward model's (n, K) prediction matrix, or None."""
    target = np.asarray(target)
    prob = (target == actions).astype(np.float64)
    mass = np.bincount(target, minlength=n_arms) / max(len(target), 1)
    if q is None:
        return TargetTerms(prob, mass)
    rows = np.arange(len(actions))
    return TargetTerms(prob, mass, q[rows, target], q[rows, actions])


def stochastic_terms(actions: np.ndarray, dist: np.ndarray,
                     q: np.ndarray | None = None) -> TargetTerms:
    """Terms of a target given as an (n, K) matrix of action distributions (rows sum to 1)."""
    if dist.ndim != 2 or dist.shape[0] != len(actions):
        raise EstimatorError(f"target distribution has shape {dist.shape}, expected "
                             f"({len(actions)}, K)")
    sums = dist.sum(axis=1)
    if len(sums) and not np.allclose(sums, 1.0, atol=1e-6):
        bad = int(np.argmax(np.abs(sums - 1.0)))
        raise EstimatorError(f"target distribution row {bad} sums to {sums[bad]:.6g}, not 1")
    rows = np.arange(len(actions))
    prob = dist[rows, actions]
    mass = dist.mean(axis=0) if len(actions) else np.zeros(dist.shape[1])
    if q is None:
        return TargetTerms(prob, mass)
    return TargetTerms(prob, mass, np.einsum("ik,ik->i", dist, q), q[rows, actions])


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, object]:
        return {"value": _num(self.value), "ci95": [_num(self.lo), _num(self.hi)]}


def format_interval(d: Mapping[str, object], spec: str = "+.4f",
                    undefined: str = "undefined") -> str:
    """``{"value": v, "ci95": [lo, hi]}`` (as :meth:`Interval.as_dict` gives) for people."""
    v, (lo, hi) = d["value"], d["ci95"]
    if v is None:
        return undefined
    return f"{v:{spec}} [{lo:{spec}}, {hi:{spec}}]" if lo is not None else f"{v:{spec}}"


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class Estimate:
    """One target's estimates, with the diagnostics a reader needs to trust them."""

    estimates: dict[str, Interval]
    ess: float                      # effective sample size of the clipped weights
    n: int                          # rows used
    matched: int                    # rows where the target's prob of the logged arm > 0
    clipped_share: float            # share of rows whose weight was clipped
    max_weight: float               # largest unclipped weight
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"estimates": {k: v.as_dict() for k, v in self.estimates.items()},
                "ess": _num(self.ess), "n": self.n, "matched": self.matched,
                "clipped_share": self.clipped_share, "max_weight": _num(self.max_weight),
                "warnings": list(self.warnings)}


@dataclass
class Evaluation:
    """Estimates for several targets on the same rows and the same bootstrap replicates."""

    targets: dict[str, Estimate]
    differences: dict[tuple[str, str], dict[str, Interval]]  # (a, b) → estimate of a − b
    n_logged: int
    dropped: int                    # rows without a usable propensity
    clip: float
    n_bootstrap: int
    warnings: list[str] = field(default_factory=list)  # about the logs, not one target


# Columns of the per-row matrix, per target: estimator value = num.sum() / den.sum().
_COLS = ("replay_num", "replay_den", "ips_num", "snips_den", "dm_num", "dr_num")


def _columns(y: np.ndarray, p: np.ndarray, a: np.ndarray, t: TargetTerms, clip: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """The (n, 6) matrix whose column sums give every estimator, and the clipped weights."""
    w = np.minimum(t.prob / p, clip)
    cols = np.empty((len(y), len(_COLS)), dtype=np.float64)
    cols[:, 0] = t.prob * y
    cols[:, 1] = t.prob
    cols[:, 2] = w * y
    cols[:, 3] = w
    if t.dm is not None and t.q_logged is not None:
        cols[:, 4] = t.dm
        cols[:, 5] = t.dm + w * (y - t.q_logged)
    else:
        cols[:, 4:] = np.nan
    return cols, w


def _from_sums(s: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """Estimator values from column sums ``s[..., 6]`` over ``n`` rows → ``[..., 5]``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([s[..., 0] / s[..., 1], s[..., 2] / n, s[..., 2] / s[..., 3],
                         s[..., 4] / n, s[..., 5] / n], axis=-1)


def bootstrap_blocks(n: int, max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """Start row of each resampling block: single rows up to ``max_blocks`` rows, else
    ``max_blocks`` contiguous blocks of ⌈n / max_blocks⌉ rows (in log order)."""
    size = max(1, math.ceil(n / max_blocks))
    return np.arange(0, n, size)


def bootstrap_sums(mat: np.ndarray, n_boot: int, rng: np.random.Generator,
                   max_blocks: int = MAX_BLOCKS) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of ``mat`` (n, m) and row counts over ``n_boot`` resamples.

    Each resample draws G blocks with replacement (multinomial counts), so a replicate is one
    (G,) · (G, m) product over precomputed block sums: no n × B index array, and for large
    logs no per-row work at all.  Blocks of one row are the ordinary (Efron) bootstrap;
    contiguous blocks of a long log are the block bootstrap (Künsch 1989), which also keeps
    the short-range correlation of consecutive windows that an iid resample would hide."""
    n = len(mat)
    starts = bootstrap_blocks(n, max_blocks)
    block_sums = np.add.reduceat(mat, starts, axis=0) if n else np.zeros((0, mat.shape[1]))
    block_rows = np.diff(np.r_[starts, n]).astype(np.float64)
    g = len(starts)
    sums = np.empty((n_boot, mat.shape[1]))
    rows = np.empty(n_boot)
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, g, g), minlength=g).astype(np.float64)
        sums[b] = counts @ block_sums
        rows[b] = counts @ block_rows
    return sums, rows


def evaluate(logged: Logged, targets: Mapping[str, TargetTerms], *, clip: float = DEFAULT_CLIP,
             n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, alpha: float = 0.05,
             pairs: list[tuple[str, str]] | None = None) -> Evaluation:
    """Every estimator for every target, with paired percentile-bootstrap CIs.

    ``pairs`` lists (a, b) whose difference a − b gets estimates and CIs from the same
    replicates (what a "beats the baseline" gate needs)."""
    if clip <= 0:
        raise EstimatorError(f"clip must be > 0, got {clip}")
    if not 0 < alpha < 1:
        raise EstimatorError(f"alpha must be in (0, 1), got {alpha}")
    usable = logged.usable()
    dropped = int((~usable).sum())
    warnings: list[str] = []
    if dropped:
        missing = int((~np.isfinite(logged.propensities)).sum())
        warnings.append(f"{dropped} of {logged.n} windows dropped: propensity missing "
                        f"({missing}) or zero ({dropped - missing}); they cannot be re-weighted")
    y, p, a = logged.outcomes[usable], logged.propensities[usable], logged.actions[usable]
    n = len(y)
    if n == 0:
        raise EstimatorError("no window with a usable propensity: nothing to evaluate")
    logged_counts = np.bincount(a, minlength=len(logged.arms))
    warnings += _logging_warnings(p, a, logged.arms)
    names = list(targets)
    blocks, estimates = [], {}
    for name in names:
        t = _subset(targets[name], usable)
        cols, w = _columns(y, p, a, t, clip)
        blocks.append(cols)
        raw = t.prob / p
        est = Estimate({}, ess=_ess(w), n=n, matched=int((t.prob > 0).sum()),
                       clipped_share=float((raw > clip).mean()),
                       max_weight=float(raw.max()) if n else math.nan)
        est.warnings = _support_warnings(t, logged_counts, logged.arms, est)
        estimates[name] = est
    mat = np.concatenate(blocks, axis=1)  # (n, 6 × targets)
    point = _from_sums(mat.sum(axis=0).reshape(len(names), len(_COLS)), n)
    sums, rows = bootstrap_sums(mat, n_bootstrap, np.random.default_rng(seed))
    boot = _from_sums(sums.reshape(n_bootstrap, len(names), len(_COLS)), rows[:, None])
    q = (100 * alpha / 2, 100 * (1 - alpha / 2))
    for i, name in enumerate(names):
        estimates[name].estimates = {
            e: _interval(point[i, j], boot[:, i, j], q) for j, e in enumerate(ESTIMATORS)}
    diffs: dict[tuple[str, str], dict[str, Interval]] = {}
    for pa, pb in pairs or []:
        ia, ib = names.index(pa), names.index(pb)
        diffs[(pa, pb)] = {e: _interval(point[ia, j] - point[ib, j],
                                        boot[:, ia, j] - boot[:, ib, j], q)
                           for j, e in enumerate(ESTIMATORS)}
    return Evaluation(estimates, diffs, logged.n, dropped, clip, n_bootstrap, warnings)


def _subset(t: TargetTerms, rows: np.ndarray) -> TargetTerms:
    if rows.all():
        return t
    return TargetTerms(t.prob[rows], t.arm_mass,
                       None if t.dm is None else t.dm[rows],
                       None if t.q_logged is None else t.q_logged[rows])


def _interval(point: float, reps: np.ndarray, q: tuple[float, float]) -> Interval:
    finite = reps[np.isfinite(reps)]
    if not math.isfinite(point) or len(finite) < 0.9 * len(reps) or not len(finite):
        return Interval(point, math.nan, math.nan)
    lo, hi = np.percentile(finite, q)
    return Interval(float(point), float(lo), float(hi))


def _ess(w: np.ndarray) -> float:
    """Kish's effective sample size: n for equal weights, 1 when one row carries all."""
    s2 = float(np.dot(w, w))
    return float(w.sum()) ** 2 / s2 if s2 > 0 else 0.0


def _logging_warnings(p: np.ndarray, a: np.ndarray, arms: tuple[str, ...]) -> list[str]:
    out = []
    if len(p) and float(p.max() - p.min()) > 1e-9:
        out.append("logging was not uniform (propensities "
                   f"{p.min():.3g}..{p.max():.3g}): the replay estimator is biased here; "
                   "prefer snips/dr")
    tiny = int((p < 1e-3).sum())
    if tiny:
        out.append(f"{tiny} windows have propensity < 0.001: weights up to "
                   f"{1 / p.min():.3g} (clipped)")
    return out


def _support_warnings(t: TargetTerms, logged_counts: np.ndarray, arms: tuple[str, ...],
                      est: Estimate) -> list[str]:
    out = []
    never = [k for k in np.flatnonzero(t.arm_mass > 0) if logged_counts[k] == 0]
    if never:
        share = float(t.arm_mass[never].sum())
        names = ", ".join(arms[k] for k in never[:5]) + (" …" if len(never) > 5 else "")
        out.append(f"the target puts {100 * share:.1f} % of its choices on arms the logs "
                   f"never tried ({names}): importance-weighted estimates cannot see them; "
                   "dm/dr rely on the reward model's extrapolation there")
    if est.matched == 0:
        out.append("no logged window matches the target's choices: replay/ips/snips are "
                   "undefined or 0")
    elif est.ess < 30:
        out.append(f"effective sample size {est.ess:.1f} < 30: CIs are unreliable")
    if est.clipped_share > 0:
        out.append(f"{100 * est.clipped_share:.2f} % of weights exceed the clip (largest "
                   f"{est.max_weight:.3g}): ips/snips/dr are biased towards the logging policy")
    return out
