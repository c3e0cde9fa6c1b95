"""What recorded data says about configurations (pure numpy): per-workload means with CIs,
the best configuration and the ones indistinguishable from it, and parameter effects.

Units of analysis are *runs* (one arm held for one workload repeat), not windows: windows of
one run share its warm caches and its workload phase, so treating them as independent would
make every interval too narrow.  A run's cost is the mean cost of its scored windows; its
outcome is the workload's own headline figure.

* :func:`mean_ci` — Student-t 95 % interval of a mean (the small-sample interval: a dataset
  has ~5 repeats per cell).
* :func:`rank_cells` — per workload: the best arm, and every arm whose difference from the
  best has a Welch 95 % interval that includes 0 ("not distinguishable from the best").
* :func:`parameter_effects` — per scheduler, an OLS of the run's response on its parameters
  (booleans on vs off; a number seen at two values as that contrast, at more as an effect per
  doubling; choices against the default) with workload fixed
  effects, and a 95 % percentile interval from a cluster bootstrap over runs stratified by
  workload; an interval that includes 0 is reported as "no measurable effect".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scxd.catalog import format_value


def t975(df: float) -> float:
    """Two-sided 95 % Student-t quantile (∞ without a degree of freedom)."""
    # scipy.stats is imported here, not at the top: ``scxd run`` builds the whole command
    # line (this module included) and scipy.stats would add ~0.6 s of start-up on hardware,
    # a minute on an emulated guest.
    from scipy import stats as sps

    return float(sps.t.ppf(0.975, df)) if df >= 1 and math.isfinite(df) else (
        math.inf if df < 1 else 1.959964)


@dataclass(frozen=True)
class MeanCI:
    mean: float
    lo: float
    hi: float
    n: int
    sd: float

    def as_dict(self) -> dict[str, Any]:
        return {"mean": _num(self.mean), "ci95": [_num(self.lo), _num(self.hi)], "n": self.n,
                "sd": _num(self.sd)}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def mean_ci(values: Sequence[float]) -> MeanCI:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return MeanCI(math.nan, math.nan, math.nan, 0, math.nan)
    m = float(v.mean())
    if len(v) == 1:
        return MeanCI(m, math.nan, math.nan, 1, math.nan)
    sd = float(v.std(ddof=1))
    half = t975(len(v) - 1) * sd / math.sqrt(len(v))
    return MeanCI(m, m - half, m + half, len(v), sd)


def welch_diff(a: MeanCI, b: MeanCI) -> tuple[float, float, float]:
    """a − b and its Welch 95 % interval."""
    d = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return d, math.nan, math.nan
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / ((va**2 / (a.n - 1) if va else 0) + (vb**2 / (b.n - 1) if vb else 0))
    half = t975(df) * se
    return d, d - half, d + half


@dataclass
class Ranking:
    """One workload's arms ranked by a figure (higher ``goodness`` = better)."""

    workload: str
    figure: str                        # e.g. "hackbench_s_mean (lower is better)" or "cost"
    higher_is_better: bool
    cells: dict[str, MeanCI]           # arm → mean of its runs
    best: str
    tied_with_best: list[str]          # arms whose difference from the best includes 0
    gap_to_second: tuple[float, float, float] | None = None   # best − second, Welch CI

    def as_dict(self) -> dict[str, Any]:
        g = self.gap_to_second
        return {"workload": self.workload, "figure": self.figure,
                "higher_is_better": self.higher_is_better, "best": self.best,
                "best_mean": self.cells[self.best].as_dict(),
                "not_distinguishable_from_best": self.tied_with_best,
                "best_minus_second": None if g is None else
                {"value": _num(g[0]), "ci95": [_num(g[1]), _num(g[2])]},
                "arms": {a: c.as_dict() for a, c in self.cells.items()}}


def rank_cells(workload: str, figure: str, values: Mapping[str, Sequence[float]],
               higher_is_better: bool) -> Ranking | None:
    cells = {a: mean_ci(v) for a, v in values.items()}
    cells = {a: c for a, c in cells.items() if c.n}
    if not cells:
        return None
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(cells, key=lambda a: -sign * cells[a].mean)
    best = order[0]
    tied = []
    for a in order[1:]:
        _, lo, hi = welch_diff(cells[best], cells[a])
        if not math.isfinite(lo) or lo <= 0 <= hi:
            tied.append(a)
    gap = welch_diff(cells[best], cells[order[1]]) if len(order) > 1 else None
    return Ranking(workload, figure, higher_is_better, cells, best, tied, gap)


# -- parameter effects ---------------------------------------------------------------------------

@dataclass
class Effect:
    """One regressor's effect on a response, with its bootstrap interval."""

    scheduler: str
    term: str                  # "slice_us (per doubling)", "fifo (on vs off)", "scheduler"
    response: str              # "outcome" or "cost"
    workload: str              # a workload's name, or "all" (workload fixed effects)
    value: float
    lo: float
    hi: float
    runs: int
    values_seen: list[Any] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return "not estimable"
        if self.lo <= 0 <= self.hi:
            return "no measurable effect"
        better = self.value > 0 if self.response == "outcome" else self.value < 0
        return "better" if better else "worse"

    def as_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "term": self.term, "response": self.response,
                "workload": self.workload, "value": _num(self.value),
                "ci95": [_num(self.lo), _num(self.hi)], "runs": self.runs,
                "verdict": self.verdict, "values_seen": self.values_seen}


@dataclass(frozen=True)
class RunRow:
    """One run: its workload, arm, scheduler, parameters and responses."""

    workload: str
    arm: str
    scheduler: str
    params: Mapping[str, Any]
    defaults: Mapping[str, Any]
    responses: Mapping[str, float]     # "outcome" (% better than fair), "cost"


def _regressors(rows: Sequence[RunRow]) -> list[tuple[str, Any, list[Any]]]:
    """(term name, encoder, values seen) for every parameter that varies among ``rows``."""
    out = []
    names = sorted({p for r in rows for p in r.params})
    for p in names:
        seen = sorted({r.params.get(p) for r in rows if p in r.params}, key=str)
        if len(seen) < 2:
            continue
        default = rows[0].defaults.get(p)
        if all(isinstance(v, bool) for v in seen):
            out.append((f"{p} (on vs off)", lambda r, p=p: float(bool(r.params.get(p))), seen))
        elif len(seen) > 2 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                   and v > 0 for v in seen):
            base = float(default) if isinstance(default, int | float) and default else 1.0
            out.append((f"{p} (per doubling)",
                        lambda r, p=p, b=base: math.log2(float(r.params.get(p, b)) / b), seen))
        else:
            ref = default if default in seen else seen[0]
            for v in seen:
                if v == ref:
                    continue
                out.append((f"{p}={format_value(v)} (vs {format_value(ref)})",
                            lambda r, p=p, v=v: float(r.params.get(p) == v), seen))
    return out


def parameter_effects(rows: Sequence[RunRow], response: str, *, n_boot: int = 400,
                      seed: int = 0, per_workload: bool = True) -> list[Effect]:
    """Effects of each scheduler's parameters on ``response`` (see the module docstring)."""
    by_sched: dict[str, list[RunRow]] = defaultdict(list)
    for r in rows:
        if math.isfinite(r.responses.get(response, math.nan)):
            by_sched[r.scheduler].append(r)
    effects: list[Effect] = []
    rng = np.random.default_rng(seed)
    for sched, srows in sorted(by_sched.items()):
        regs = _regressors(srows)
        if not regs:
            continue
        scopes: list[tuple[str, list[RunRow]]] = [("all", srows)]
        if per_workload:
            wls = sorted({r.workload for r in srows})
            if len(wls) > 1:
                scopes += [(w, [r for r in srows if r.workload == w]) for w in wls]
        for scope, sub in scopes:
            effects += _fit_scope(sched, scope, sub, regs, response, n_boot, rng)
    return effects


def _fit_scope(sched: str, scope: str, rows: Sequence[RunRow], regs, response: str,
               n_boot: int, rng: np.random.Generator) -> list[Effect]:
    wls = sorted({r.workload for r in rows})
    x_par = np.array([[enc(r) for _, enc, _ in regs] for r in rows])
    fixed = np.array([[float(r.workload == w) for w in wls] for r in rows])
    x = np.hstack([x_par, fixed])
    y = np.array([r.responses[response] for r in rows])
    live = x_par.std(axis=0) > 0
    if not live.any() or len(rows) <= x.shape[1]:
        return []
    coef = np.linalg.lstsq(x, y, rcond=None)[0][: len(regs)]
    strata = [np.flatnonzero([r.workload == w for r in rows]) for w in wls]
    boots = np.full((n_boot, len(regs)), np.nan)
    for b in range(n_boot):
        idx = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])
        xb = x[idx]
        # A replicate that lost all variation of a regressor cannot estimate it.
        if np.any(xb[:, : len(regs)][:, live].std(axis=0) == 0):
            continue
        boots[b] = np.linalg.lstsq(xb, y[idx], rcond=None)[0][: len(regs)]
    out = []
    for j, (term, _, seen) in enumerate(regs):
        if not live[j]:
            continue
        col = boots[:, j][np.isfinite(boots[:, j])]
        lo, hi = (np.percentile(col, [2.5, 97.5]) if len(col) >= 0.8 * n_boot
                  else (math.nan, math.nan))
        out.append(Effect(sched, term, response, scope, float(coef[j]), float(lo), float(hi),
                          len(rows), [format_value(v) for v in seen]))
    return out
