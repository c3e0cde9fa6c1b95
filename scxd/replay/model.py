"""The reward model behind the direct-method and doubly-robust estimators: q̂(x, arm) ≈ E[cost].

One ridge regression per arm on the standardised feature vector, shrunk towards a pooled
ridge fitted on every arm's rows (an arm with few windows borrows the shape of the others;
an arm with none gets the pooled prediction and is named in ``unseen``).  Cross-fitted: the
rows are split into ``folds`` folds and row i is predicted by the model fitted without its
fold, so the doubly-robust correction w·(y − q̂) is not fooled by a model that memorised y
(Chernozhukov et al. 2018; OBP's ``RegressionModel`` does the same with ``n_folds``).

Fitting needs only per-(fold, arm) Gram matrices XᵀX and Xᵀy, accumulated once in
O(n·F²); predicting is chunked, so neither an n × K matrix nor a copy of X per fold is ever
held for large logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Ridge penalty on the standardised features (the intercept is not penalised).
DEFAULT_RIDGE = 1.0
DEFAULT_FOLDS = 5
#: The model is fitted on at most this many rows (a random subset; the rest are out of sample
#: for every fold's model and are predicted by the subset's full model).
MAX_FIT_ROWS = 200_000
#: Pseudo-rows that pull a per-arm model's slopes towards the pooled ones (an arm's level,
#: the intercept, is pulled by one pseudo-row only: levels are what differ between arms).
SHRINK_ROWS = 20.0


@dataclass
class RewardModel:
    """Cross-fitted per-arm ridge.  ``coef[f]`` is the (F+1, K) weight matrix (intercept
    row first) used for rows of fold f; ``full`` (also ``coef[-1]``) is fitted on every
    training row and predicts new data and rows left out of the fit."""

    mean: np.ndarray          # (F,) feature means used for standardising
    scale: np.ndarray         # (F,) feature standard deviations (1 where constant)
    coef: np.ndarray          # (folds, F+1, K)
    full: np.ndarray          # (F+1, K)
    folds: np.ndarray         # (n,) fold of each row (the last index: not fitted on)
    unseen: tuple[int, ...]   # arms without a single training row

    def predict(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(m, K) predictions for the feature rows ``x``.  ``rows`` are those rows' indices
        in the training data (cross-fitted predictions); None → the full model."""
        z = (x - self.mean) / self.scale
        if rows is None:
            return z @ self.full[1:] + self.full[0]
        nfold, d, k = self.coef.shape
        # One product for every fold's weights, then each row keeps its own fold's column
        # block: cheaper than masking rows per fold.
        w = self.coef[:, 1:, :].transpose(1, 0, 2).reshape(d - 1, nfold * k)
        every = (z @ w).reshape(len(x), nfold, k) + self.coef[:, 0, :]
        return every[np.arange(len(x)), self.folds[rows]]


def fit(x: np.ndarray, actions: np.ndarray, y: np.ndarray, n_arms: int, *,
        ridge: float = DEFAULT_RIDGE, folds: int = DEFAULT_FOLDS, seed: int = 0
        ) -> RewardModel:
    """Fit the cross-fitted model on features ``x`` (n, F), logged arms and costs."""
    rng = np.random.default_rng(seed)
    total = len(x)
    if total > MAX_FIT_ROWS:
        fit_rows = np.sort(rng.choice(total, MAX_FIT_ROWS, replace=False))
        x, actions, y = x[fit_rows], actions[fit_rows], y[fit_rows]
    n, nf = x.shape
    mean = x.mean(axis=0) if n else np.zeros(nf)
    scale = x.std(axis=0) if n else np.ones(nf)
    scale = np.where(scale > 1e-12, scale, 1.0)
    folds = max(1, min(folds, n))
    fold_of = rng.permutation(n) % folds
    d = nf + 1
    gram = np.zeros((folds, n_arms, d, d))
    xty = np.zeros((folds, n_arms, d))
    # Rows grouped by (fold, arm) in one gather; each group's Gram matrix is then one
    # product over a contiguous slice.
    order = np.lexsort((actions, fold_of))
    z = np.empty((n, d))
    z[:, 0] = 1.0
    np.subtract(x[order], mean, out=z[:, 1:], dtype=np.float64)
    z[:, 1:] /= scale
    ys = y[order]
    keys = fold_of[order] * n_arms + actions[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if n else np.zeros(0, int)
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends, strict=True):
        f, k = divmod(int(keys[s]), n_arms)
        gram[f, k] = z[s:e].T @ z[s:e]
        xty[f, k] = z[s:e].T @ ys[s:e]
    counts = np.bincount(actions, minlength=n_arms)  # of the fitted rows
    unseen = tuple(int(k) for k in np.flatnonzero(counts == 0))
    penalty = np.eye(d) * ridge
    penalty[0, 0] = 1e-9  # the intercept is free

    def solve(g: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(F+1, K) weights from per-arm Gram matrices g (K, d, d) and b (K, d)."""
        pooled = np.linalg.solve(g.sum(0) + penalty, b.sum(0))
        # Per arm: ridge towards the pooled weights (standardised features: one pseudo-row
        # pulls a coefficient about as much as one real row).
        pull = penalty + np.diag([1.0] + [SHRINK_ROWS] * nf)
        out = np.empty((d, n_arms))
        for k in range(n_arms):
            out[:, k] = pooled + np.linalg.solve(g[k] + pull, b[k] - g[k] @ pooled)
        return out

    total_g, total_b = gram.sum(0), xty.sum(0)
    full = solve(total_g, total_b)
    coef = np.stack([solve(total_g - gram[f], total_b - xty[f]) if folds > 1 else full
                     for f in range(folds)] + [full])
    fold_of_row = fold_of
    if total > n:
        fold_of_row = np.full(total, folds)
        fold_of_row[fit_rows] = fold_of
    return RewardModel(mean, scale, coef, full, fold_of_row, unseen)
