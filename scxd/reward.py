"""A window's cost under a configurable objective (pure).  Lower cost is better; reward = −cost.

Terms (raw, in base units, logged separately in the journal so offline replay can recompute
any objective):

* ``turnaround_s`` — mean turnaround of tasks born and exited in the window (BPF);
* ``response_s`` — mean creation → first-run time of new tasks (BPF);
* ``fairness_cv`` — CV of CPU time among tasks that waited;
* ``runq_p99_s`` — runqueue latency p99 (BPF histogram; the mean in schedstat mode);
* ``completed_per_s`` — tasks completed per second;
* ``user_cpu`` — user CPU seconds per second (all CPUs).

Each term is divided by the *fair scheduler's recent reference* — the median of that term
over the fair scheduler's last scored windows — so no unit dominates and a ratio of 1 means
"as good as the fair scheduler".  The cost is the mean of the ratios' natural logarithms,
each clipped to ±``LOG_CLIP``: per-window ratios are heavy-tailed (one window's turnaround
can be 100× the reference), and a plain mean of ratios let single outliers dominate (seen in
the daemon tests: the fair scheduler's own mean ratio-cost was 12.8, not 3).  A term without
a reference (none yet, or zero) or missing from the window counts as ratio 1 (log 0,
neutral) and is named in ``neutral``.

Objectives (cost 0 = as good as the fair scheduler; +0.1 ≈ 10 % worse):

* ``balanced`` — mean log of turnaround/ref, response/ref, fairness/ref (the earlier study's
  L = T + R + CV, each term normalised);
* ``latency`` — log of runq_p99/ref;
* ``throughput`` — −mean log of completed/ref and user_cpu/ref (work done per second:
  higher is better, hence the sign).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from scxd.types import Window

OBJECTIVES = ("balanced", "latency", "throughput")
#: term name → window metric it is read from.
TERM_METRICS = {
    "turnaround_s": "turnaround_avg_s", "response_s": "response_avg_s",
    "fairness_cv": "fairness_cv", "runq_p99_s": "runq_latency_p99_s",
    "completed_per_s": "tasks_completed_per_s",
}
TERMS = (*TERM_METRICS, "user_cpu")
#: A term's log-ratio is clipped to ±this (a factor of e^3 ≈ 20 either way).
LOG_CLIP = 3.0
OBJECTIVE_TERMS = {
    "balanced": ("turnaround_s", "response_s", "fairness_cv"),
    "latency": ("runq_p99_s",),
    "throughput": ("completed_per_s", "user_cpu"),
}


def window_terms(window: Window) -> dict[str, float | None]:
    """Raw terms of one window; None where the window could not measure it."""
    return terms_from_metrics(window.metrics)


def terms_from_metrics(m: Mapping[str, float]) -> dict[str, float | None]:
    """Raw terms from a window's metrics (a journal record's ``metrics``: offline replay
    recomputes terms with the current definitions rather than trusting recorded ones)."""
    terms: dict[str, float | None] = {}
    for term, metric in TERM_METRICS.items():
        v = m.get(metric)
        terms[term] = float(v) if v is not None and math.isfinite(v) else None
    if terms["runq_p99_s"] is None and "runq_latency_mean_s" in m:
        terms["runq_p99_s"] = float(m["runq_latency_mean_s"])  # schedstat mode
    # A window in which no task was born and exited has no turnaround/response to judge.
    if not m.get("turnarounds_total_delta"):
        terms["turnaround_s"] = None
    if not m.get("responses_total_delta"):
        terms["response_s"] = None
    user = m.get("T_cpu_user_avg")
    ncpus = m.get("ncpus", 1.0)
    terms["user_cpu"] = user / 100.0 * ncpus if user is not None else None
    return terms


@dataclass(frozen=True)
class Cost:
    objective: str
    value: float                    # mean clipped log-ratio; lower is better, 0 = fair
    ratios: dict[str, float]        # term / fair reference (1.0 where neutral)
    neutral: tuple[str, ...]        # terms that counted as ratio 1

    @property
    def reward(self) -> float:
        return -self.value


def cost(terms: Mapping[str, float | None], objective: str,
         reference: Mapping[str, float]) -> Cost:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    ratios: dict[str, float] = {}
    logs: list[float] = []
    neutral: list[str] = []
    for term in OBJECTIVE_TERMS[objective]:
        v, ref = terms.get(term), reference.get(term)
        if v is None or ref is None or ref <= 0 or not math.isfinite(ref):
            ratios[term] = 1.0
            neutral.append(term)
            logs.append(0.0)
            continue
        ratios[term] = v / ref
        log_ratio = math.log(v / ref) if v > 0 else -LOG_CLIP
        logs.append(max(-LOG_CLIP, min(LOG_CLIP, log_ratio)))
    value = sum(logs) / len(logs)
    if objective == "throughput":
        value = -value
    return Cost(objective, value, ratios, tuple(neutral))


@dataclass
class FairReference:
    """Median of each term, and mean of the cost, over the fair scheduler's last ``size``
    scored windows."""

    size: int = 12
    _values: dict[str, deque] = field(default_factory=dict)
    _costs: dict[str, deque] = field(default_factory=dict)

    def add(self, terms: Mapping[str, float | None]) -> None:
        for term, v in terms.items():
            if v is not None and math.isfinite(v):
                self._values.setdefault(term, deque(maxlen=self.size)).append(v)

    def add_cost(self, objective: str, value: float) -> None:
        self._costs.setdefault(objective, deque(maxlen=self.size)).append(value)

    def means(self) -> dict[str, float]:
        """The reference per term (medians: robust to one wild window)."""
        return {t: statistics.median(v) for t, v in self._values.items() if v}

    def baseline_cost(self, objective: str) -> float | None:
        """The fair scheduler's own recent mean cost (what "as good as fair" scores)."""
        costs = self._costs.get(objective)
        return sum(costs) / len(costs) if costs else None

    def windows(self) -> int:
        return max((len(v) for v in self._values.values()), default=0)

    def as_dict(self) -> dict:
        return {"terms": self.means(), "windows": self.windows(),
                "baseline_cost": {o: self.baseline_cost(o) for o in self._costs}}
