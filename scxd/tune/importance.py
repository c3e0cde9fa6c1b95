"""Which parameters matter, and which show no effect at all.

Two views of the measured trials, because they answer different questions:

* **importance** — Optuna's fANOVA (a random forest over the trials, the share of the
  metric's variance each parameter explains; seeded).  Shares always add up to 1, so a
  parameter with *no* effect still gets some share when everything is noise.
* **effect test** — for each parameter, a permutation test of the association between its
  value and the trial means (η² between its values, or between rank quartiles of a
  many-valued number; scipy), with Benjamini–Hochberg q-values over all parameters.  A
  parameter whose association is indistinguishable from shuffled data is reported as having
  **no detectable effect**; one varied too little to judge says so.

Verdicts: ``matters`` (q < 0.05), ``no detectable effect``, ``not enough data``,
``not varied``.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from scipy import stats as sps

from scxd.tune.optimizer import quiet_optuna
from scxd.tune.space import Choice, FloatRange, IntRange, SearchSpace

Q_MATTERS = 0.05
N_RESAMPLES = 4999


@dataclass(frozen=True)
class ParamImportance:
    name: str
    importance: float | None          # fANOVA share, 0..1 (None: could not be computed)
    effect: float | None              # spread of the metric between its values, metric units
    effect_percent: float | None      # … in percent of the reference (defaults) mean
    p_value: float | None
    q_value: float | None
    levels: int                       # distinct values measured
    trials: int
    best_value: Any                   # the value with the best mean
    verdict: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _ordered(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _fanova_coordinates(space: SearchSpace) -> dict[str, tuple[BaseDistribution, Any]]:
    """Per dimension, the distribution fANOVA sees and a value → coordinate map.  fANOVA
    integrates over the volume of the space, so coordinates follow the scale the search
    uses: log ranges as log10, ordered ladders as their index (else a 100..1e6 range would
    give the decades that matter a thousandth of the volume)."""
    out: dict[str, tuple[BaseDistribution, Any]] = {}
    for name, dim in space.dims.items():
        if isinstance(dim, IntRange | FloatRange) and dim.log:
            out[name] = (FloatDistribution(math.log10(dim.low), math.log10(dim.high)),
                         lambda v: math.log10(v))
        elif isinstance(dim, Choice) and _ordered(dim.values) and len(dim.values) > 2:
            index = {repr(v): i for i, v in enumerate(sorted(dim.values))}
            out[name] = (IntDistribution(0, len(dim.values) - 1),
                         lambda v, index=index: index[repr(v)])
        else:
            out[name] = (dim.distribution(), lambda v: v)
    return out


def fanova(space: SearchSpace, points: Sequence[tuple[Mapping[str, Any], float]],
           direction: str, seed: int | None) -> tuple[dict[str, float], str]:
    """fANOVA shares for the searched parameters, or ({}, why not)."""
    if len(points) < 2:
        return {}, "fewer than two measured trials"
    coords = _fanova_coordinates(space)
    dists = {k: d for k, (d, _) in coords.items()}
    with quiet_optuna():
        study = optuna.create_study(direction=direction)
    for sampled, value in points:
        if not all(space.dims[k].contains(sampled[k]) for k in dists):
            continue
        params = {k: f(sampled[k]) for k, (_, f) in coords.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=value))
    if len(study.trials) < 2:
        return {}, "fewer than two measured trials inside the space"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shares = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError) as exc:
        return {}, f"fANOVA failed: {exc}"
    return {k: float(v) for k, v in shares.items()}, ""


def _eta2_stat(y: np.ndarray, n_groups: int):
    total = float(((y - y.mean()) ** 2).sum())

    def stat(codes: np.ndarray, axis: int = -1) -> np.ndarray:
        codes = np.moveaxis(np.asarray(codes), axis, -1)
        between = np.zeros(codes.shape[:-1])
        grand = y.mean()
        for g in range(n_groups):
            mask = codes == g
            cnt = mask.sum(-1)
            s = (mask * y).sum(-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                between += np.where(cnt > 0, cnt * (s / np.maximum(cnt, 1) - grand) ** 2, 0)
        return between / total if total > 0 else np.zeros_like(between)
    return stat


MAX_LEVELS = 6
BINS = 4


def _groups(xs: Sequence[Any]) -> list[int]:
    """Group index per trial: the exact value, or — for ordered values with many levels —
    its quartile by rank (so an optimum in the middle of a range shows too)."""
    keys = list(map(repr, xs))
    if _ordered(xs) and len(set(keys)) > MAX_LEVELS:
        ranks = sps.rankdata(np.asarray(xs, dtype=float), method="average")
        return [min(BINS - 1, int((r - 1) * BINS / len(xs))) for r in ranks]
    levels = list(dict.fromkeys(keys))
    return [levels.index(k) for k in keys]


def effect_test(xs: Sequence[Any], ys: Sequence[float], seed: int | None) -> float | None:
    """p-value of "the metric differs between this parameter's values" (η² permutation
    test), None when it cannot be tested."""
    y = np.asarray(ys, dtype=float)
    codes = np.asarray(_groups(xs))
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2 or len(y) < 3 or float(np.ptp(y)) == 0.0:
        return None
    res = sps.permutation_test((codes,), _eta2_stat(y, n_groups),
                               permutation_type="pairings", vectorized=True,
                               n_resamples=N_RESAMPLES, alternative="greater",
                               random_state=seed)
    return float(res.pvalue)


def _effect(xs: Sequence[Any], ys: Sequence[float], higher_is_better: bool
            ) -> tuple[float | None, Any]:
    """(spread between the best and worst group means, the exact value with the best
    mean)."""
    groups: dict[int, list[float]] = {}
    for g, y in zip(_groups(xs), ys, strict=True):
        groups.setdefault(g, []).append(y)
    exact: dict[str, list[float]] = {}
    for x, y in zip(xs, ys, strict=True):
        exact.setdefault(repr(x), []).append(y)
    means = {k: statistics.fmean(v) for k, v in exact.items()}
    best = (max if higher_is_better else min)(means, key=means.__getitem__)
    best_value = next(x for x in xs if repr(x) == best)
    if len(groups) < 2:
        return None, best_value
    group_means = [statistics.fmean(v) for v in groups.values()]
    return max(group_means) - min(group_means), best_value


def param_importance(space: SearchSpace, points: Sequence[tuple[Mapping[str, Any], float]],
                     higher_is_better: bool, reference: float | None = None,
                     seed: int | None = 0) -> tuple[list[ParamImportance], str]:
    """Importance and effect verdict for every searched parameter, most important first;
    the string says why fANOVA shares are missing, if they are."""
    direction = "maximize" if higher_is_better else "minimize"
    shares, why = fanova(space, points, direction, seed)
    ys = [v for _, v in points]
    raw: list[tuple[str, float | None, float | None, Any, int]] = []
    for name in space.dims:
        xs = [p[name] for p, _ in points]
        p = effect_test(xs, ys, seed)
        eff, best = _effect(xs, ys, higher_is_better) if xs else (None, None)
        raw.append((name, p, eff, best, len(set(map(repr, xs)))))
    ps = [p for _, p, _, _, _ in raw if p is not None]
    qs = list(sps.false_discovery_control(ps, method="bh")) if ps else []
    out = []
    for name, p, eff, best, levels in raw:
        q = float(qs.pop(0)) if p is not None else None
        xs = [pt[name] for pt, _ in points]
        smallest = min((xs.count(v) for v in set(xs)), default=0) if not _ordered(xs) \
            else len(xs)
        if levels < 2:
            verdict = "not varied"
        elif q is not None and q < Q_MATTERS:
            verdict = "matters"
        elif q is None or len(xs) < 5 or smallest < 2:
            verdict = "not enough data"
        else:
            verdict = "no detectable effect"
        pct = 100.0 * eff / abs(reference) if eff is not None and reference else None
        out.append(ParamImportance(name, shares.get(name) if shares else None, eff, pct, p,
                                   q, levels, len(xs), best, verdict))
    out.sort(key=lambda r: (-(r.importance if r.importance is not None else -1),
                            r.q_value if r.q_value is not None else math.inf))
    return out, why
