"""Statistics of benchmark measurements: means with confidence intervals, improvements over a
baseline, reproduction intervals, drift and the early-stop chance (pure; scipy does the maths).

Every figure a tuning run reports goes through here, so they share one convention:
``higher_is_better`` says which way is "better" for the metric, and an *improvement* is
positive when the candidate is better than the baseline, in percent of the baseline's mean.
Intervals are two-sided at ``level`` (0.95 by default) and use Student's t, because a trial
has a handful of repeats, not hundreds.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

LEVEL = 0.95


def _t(level: float, df: float) -> float:
    """Two-sided Student-t quantile (∞ when there is no degree of freedom)."""
    return float(sps.t.ppf(0.5 + level / 2, df)) if df > 0 else math.inf


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` measurements with its confidence interval (``ci_low``..``ci_high``)."""

    n: int
    mean: float
    sd: float                      # sample standard deviation (0 when n == 1)
    ci_low: float
    ci_high: float
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    @property
    def sem(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n else math.nan

    def as_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "sem": self.sem,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "ci_level": self.level}


def summarize(values: Sequence[float], level: float = LEVEL) -> Summary:
    """Mean and t-interval; one value gives an unbounded interval (nothing is known of the
    noise), never a falsely narrow one."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("summarize: no values")
    n = len(vals)
    mean = statistics.fmean(vals)
    sd = statistics.stdev(vals) if n > 1 else 0.0
    half = _t(level, n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return Summary(n, mean, sd, mean - half, mean + half, level)


@dataclass(frozen=True)
class Improvement:
    """How much better a candidate is than a baseline (positive = better), in percent of the
    baseline mean, with the interval of that difference (Welch's t, unequal variances)."""

    baseline: str
    percent: float
    ci_low_percent: float
    ci_high_percent: float
    diff: float                    # candidate mean − baseline mean, metric units
    p_value: float
    level: float = LEVEL

    @property
    def verdict(self) -> str:
        if self.ci_low_percent > 0:
            return "better"
        if self.ci_high_percent < 0:
            return "worse"
        return "no significant difference"

    def as_dict(self) -> dict:
        return {"baseline": self.baseline, "percent": self.percent,
                "ci_low_percent": self.ci_low_percent, "ci_high_percent": self.ci_high_percent,
                "ci_level": self.level, "diff": self.diff, "p_value": self.p_value,
                "verdict": self.verdict}


def improvement(candidate: Sequence[float], baseline: Sequence[float], higher_is_better: bool,
                name: str = "baseline", level: float = LEVEL) -> Improvement:
    """Improvement of ``candidate`` over ``baseline``.  The interval is the Welch interval of
    the difference of means divided by the baseline mean (the baseline mean's own uncertainty
    in the denominator is second order at these noise levels)."""
    cand, base = [float(v) for v in candidate], [float(v) for v in baseline]
    if not cand or not base:
        raise ValueError("improvement: both samples need values")
    diff = statistics.fmean(cand) - statistics.fmean(base)
    base_mean = statistics.fmean(base)
    if len(cand) > 1 and len(base) > 1 and (statistics.stdev(cand) > 0
                                           or statistics.stdev(base) > 0):
        with warnings.catch_warnings():   # near-identical samples: scipy warns, the
            warnings.simplefilter("ignore", RuntimeWarning)   # interval is still right
            res = sps.ttest_ind(cand, base, equal_var=False)
        ci = res.confidence_interval(confidence_level=level)
        low, high, p = float(ci.low), float(ci.high), float(res.pvalue)
    elif len(cand) > 1 and len(base) > 1:      # both exactly constant: the difference is exact
        low = high = diff
        p = 0.0 if diff else 1.0
    else:
        low, high, p = -math.inf, math.inf, math.nan
    sign = 1.0 if higher_is_better else -1.0
    scale = 100.0 / abs(base_mean) if base_mean else math.nan
    lo_pct, hi_pct = sorted((sign * low * scale, sign * high * scale))
    return Improvement(name, sign * diff * scale, lo_pct, hi_pct, diff, p, level)


@dataclass(frozen=True)
class Noise:
    """Measurement noise pooled over many configurations: the within-trial standard deviation
    (repeats back to back) and the extra variance between rounds of the same configuration
    measured at different times (drift), from the interleaved baselines."""

    within_sd: float
    within_df: int
    between_var: float             # ≥ 0; variance of a round mean beyond the within noise

    def as_dict(self) -> dict:
        return {"within_sd": self.within_sd, "within_df": self.within_df,
                "between_sd": math.sqrt(self.between_var)}


def pooled_noise(groups: Sequence[Sequence[float]],
                 rounds: Sequence[Sequence[Sequence[float]]] = ()) -> Noise:
    """``groups``: repeats of each measured configuration; ``rounds``: for each repeatedly
    measured configuration (a baseline), its rounds' repeats in time order."""
    ss = 0.0
    df = 0
    for g in groups:
        if len(g) > 1:
            ss += statistics.variance(g) * (len(g) - 1)
            df += len(g) - 1
    within_var = ss / df if df else 0.0
    between = []
    for per_round in rounds:
        means = [statistics.fmean(r) for r in per_round if r]
        if len(means) > 1:
            reps = statistics.fmean(len(r) for r in per_round if r)
            between.append(max(0.0, statistics.variance(means) - within_var / reps))
    return Noise(math.sqrt(within_var), df, statistics.fmean(between) if between else 0.0)


def reproduce_interval(values: Sequence[float], repeats: int, noise: Noise,
                       level: float = LEVEL) -> tuple[float, float]:
    """Where the mean of a fresh run of ``repeats`` repeats of the same configuration should
    land (a prediction interval, not the mean's CI): the uncertainty of the estimate, the new
    run's own noise and the drift between rounds seen in the baselines."""
    vals = [float(v) for v in values]
    n = len(vals)
    mean = statistics.fmean(vals)
    own_df = n - 1
    if noise.within_df >= own_df and noise.within_df > 0:
        sd, df = noise.within_sd, noise.within_df   # pooled: more degrees of freedom
    elif n > 1:
        sd, df = statistics.stdev(vals), own_df
    else:
        return -math.inf, math.inf
    var = sd * sd * (1.0 / n + 1.0 / max(1, repeats)) + noise.between_var
    half = _t(level, df) * math.sqrt(var)
    return mean - half, mean + half


def chance_to_beat(recent_means: Sequence[float], best: float, remaining: int, margin: float,
                   higher_is_better: bool) -> float:
    """Chance that at least one of ``remaining`` further trials beats ``best`` by more than
    ``margin``, judged by a normal fit to the recent trials' means (what the sampler proposes
    now).  Used to stop a search that cannot plausibly improve within its budget."""
    if remaining <= 0:
        return 0.0
    vals = [float(v) for v in recent_means]
    if len(vals) < 2:
        return 1.0
    sign = 1.0 if higher_is_better else -1.0
    goodness = [sign * v for v in vals]
    mu, sd = statistics.fmean(goodness), statistics.stdev(goodness)
    target = sign * best + abs(margin)
    one = (1.0 if mu > target else 0.0) if sd == 0 else \
        float(sps.norm.sf(target, loc=mu, scale=sd))
    return 1.0 - (1.0 - one) ** remaining


def drift(round_means: Sequence[float]) -> float | None:
    """Relative change from the first to the last round of a baseline, in percent."""
    if len(round_means) < 2 or not round_means[0]:
        return None
    return 100.0 * (round_means[-1] - round_means[0]) / abs(round_means[0])
