"""A window's cost under a configurable objective (pure).  Lower cost is better; reward = −cost.

The cost estimates **the fraction of progress the workload loses relative to the fair
scheduler**, summed over the two ways a scheduler can lose it (../shared/learning.md, "The
reward must agree with the workload"; checked with ``scxd replay validate-reward``):

* **Tasks waiting on the outside world** — periodic, interactive and IO-driven tasks are
  woken from interrupt context (an expiring timer, a device interrupt, a network or block
  softirq).  What they lose is the time they then wait for a CPU: the worst such task's
  share of the window spent waiting after external wakeups (``ext_wait_share``, 0…1; a
  periodic task that misses its periods approaches 1).  A task that waits a share s of its
  time progresses at 1 − s of its unhindered rate, so the share enters as the log of that
  slowdown against the fair reference's, −log(1 − s) + log(1 − s_fair) — the same units as
  the work term — above a slack of :data:`WAIT_SHARE_SLACK` (a periodic task may wait that
  much unfelt).  Wakeups of one task by another
  (pipes, sockets, futexes, a child's exit) are a pipeline's internal hand-offs: how long
  they wait shows in how much work the pipeline completes, so they are not charged twice —
  and throughput schedulers batch such hand-offs on purpose (longer waits, more work done).
* **Work completed** (``completed_per_s``) — tasks that finished per second (BPF exits):
  work done per second that does not depend on how much CPU it took, so a scheduler doing
  the same work with less CPU is not penalised (v1's user-CPU term did exactly that).  It
  enters as ``log((reference + k) / (rate + k))`` (≈ the fraction of work lost for small
  changes) with a pseudo-count k = :data:`COMPLETIONS_PSEUDO_PER_S`, and only when the
  fair reference completes at least :data:`MIN_COMPLETIONS_PER_S` (below, exits are
  background noise).
* **Preemptions** (``preempt_cost``) — each preemption costs the preempted task the switch
  and refilling its caches and TLB, estimated at :data:`PREEMPTION_COST_S` of CPU; the rate
  per CPU times that cost is the fraction of CPU time lost.  For CPU-bound work that
  completes nothing it is the one lever a scheduler has; next to a felt wait it is small.

* **Capacity left idle while tasks wait** (``idle_wait_share``) — a CPU that idles while a
  runnable task waits for one loses that task's progress outright (a scheduler that is not
  work-conserving, or slow to place a wakeup on an idle CPU).  Per window the overlap of the
  two is bounded by the smaller of the idle share of CPU time and the waiting tasks per CPU
  (runqueue wait per second per CPU): on a busy machine that is the idle share, on a mostly
  idle one the waits themselves.  It enters as a slowdown, −log(1 − share), against the fair
  reference's, like the external wait share but with no slack (an idle CPU is never needed).

Neither preemption waits of CPU hogs (time-sharing, expected under load) nor the runqueue
latency that mixes them with wakeups (v1) enters an objective.  The work done by CPU-bound
tasks that complete nothing is not observable without hardware counters (instructions
retired), which neither the development VM nor the emulated test bed has: preemptions stand
in for its scheduler-dependent part.

Terms are logged raw (``terms`` in the journal) so replay can recompute any objective.  A
term without a reference (none yet, zero, below its floor) or missing from the window
counts as 0 and is named in ``neutral``; log terms are clipped to ±``LOG_CLIP``.

Objectives (cost 0 = as good as the fair scheduler; +0.1 ≈ 10 % of progress lost):

* ``balanced`` (default) — ``ext_wait_share`` + ``completed_per_s`` + ``preempt_cost`` +
  ``idle_wait_share``;
* ``latency`` — ``ext_wait_share`` + the external wakeup latency p99 (log ratio): the
  tail a periodic task sees even when it does not miss periods;
* ``throughput`` — ``completed_per_s`` + ``preempt_cost`` + ``idle_wait_share``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from scxd.types import Window

#: A term's log-ratio is clipped to ±this (a factor of e^3 ≈ 20 either way).
LOG_CLIP = 3.0
#: Fewer wakeup waits than this in a window: its latency quantiles are not measured.
MIN_WAKEUPS = 20
#: Fewer new tasks than this in a window: its mean response is not measured.
MIN_RESPONSES = 1
#: Work completed counts when the fair reference completes at least this many tasks per
#: second (below, exits are background noise: a kworker retiring, a shell's `date`) …
MIN_COMPLETIONS_PER_S = 1.0
#: … and this pseudo-count is added to both rates before their ratio is taken, so a window
#: with a few exits more or less moves the cost little.
COMPLETIONS_PSEUDO_PER_S = 1.0


SCALES = ("log", "share", "slowdown")
#: A share of time waited is capped here before its slowdown is taken (log 20 ≈ LOG_CLIP).
MAX_WAIT_SHARE = 0.95
#: A periodic task may wait this share of its time after external wakeups before it is
#: felt (e.g. 0.8 ms of a 16.7 ms frame): the external wait share is charged above it.
WAIT_SHARE_SLACK = 0.05
#: CPU time a preemption costs the preempted task — the switch itself plus refilling its
#: caches and TLB (a few µs direct; tens to hundreds of µs indirect on memory-heavy work):
#: an estimate, used to express the preemption rate as a fraction of CPU time lost.
PREEMPTION_COST_S = 50e-6
#: The window metric behind ``idle_wait_share``, derived from two others when absent
#: (:func:`idle_while_waiting_share`): recordings made before it existed get it too.
IDLE_WHILE_WAITING = "idle_while_waiting_share"


@dataclass(frozen=True)
class Term:
    """One raw reward input: which window metric, its direction, how it compares with the
    fair reference (``log`` ratio, or ``share`` difference for fractions of time), and its
    materiality floors."""

    name: str
    metric: str
    higher_is_better: bool
    unit: str
    doc: str
    count_metric: str = ""        # events the figure rests on …
    min_count: float = 0.0        # … at least this many, else not measured
    min_reference: float = 0.0    # a fair reference below this makes the term neutral
    scale: str = "log"            # log: log ratio (with ``pseudo`` added to both sides);
    #                               share: per_unit × (v − ref), each above ``slack``;
    #                               slowdown: log(1 − ref') − log(1 − v') of shares of time
    #                               waited (v' = v − slack): a task waiting a share s of its
    #                               time progresses at 1 − s of its unhindered rate
    slack: float = 0.0            # share/slowdown: values up to this are free
    per_unit: float = 1.0         # share: progress lost per unit of the metric
    pseudo: float = 0.0           # log: pseudo-count added to value and reference

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"term {self.name}: scale must be one of {SCALES}")


TERM_SPECS: tuple[Term, ...] = (
    Term("ext_wait_share", "external_wait_share_max", False, "s/s",
         "the worst user task's share of time waiting for a CPU after external wakeups",
         scale="slowdown", slack=WAIT_SHARE_SLACK),
    Term("idle_wait_share", IDLE_WHILE_WAITING, False, "s/s",
         "share of CPU capacity idle while tasks waited for a CPU (upper bound of the "
         "overlap: min(idle share, waiting tasks per CPU))", scale="slowdown"),
    Term("preempt_cost", "preemptions_per_s_per_core", False, "1/s/CPU",
         "preemptions per second per CPU, charged PREEMPTION_COST_S of CPU time each",
         scale="share", per_unit=PREEMPTION_COST_S),
    Term("ext_wakeup_p99_s", "external_wakeup_latency_p99_s", False, "s",
         "external wakeup latency p99 (timer/IRQ/softirq wakeup → on a CPU)",
         "external_wakeup_waits_total_delta", MIN_WAKEUPS),
    Term("light_wakeup_s", "light_wakeup_latency_mean_s", False, "s",
         "mean wakeup latency of light tasks (logged)", "light_wakeups_total_delta",
         MIN_WAKEUPS),
    Term("wakeup_p99_s", "wakeup_latency_p99_s", False, "s",
         "wakeup latency p99 (woken from sleep → on a CPU)",
         "wakeup_waits_total_delta", MIN_WAKEUPS),
    Term("wakeup_mean_s", "wakeup_latency_mean_s", False, "s", "mean wakeup latency",
         "wakeup_waits_total_delta", MIN_WAKEUPS),
    Term("response_s", "response_avg_s", False, "s",
         "mean new-task response (creation → first run)", "responses_total_delta",
         MIN_RESPONSES),
    Term("completed_per_s", "tasks_completed_per_s", True, "1/s",
         "tasks completed per second", min_reference=MIN_COMPLETIONS_PER_S,
         pseudo=COMPLETIONS_PSEUDO_PER_S),
    Term("preempt_per_s", "preemptions_per_s_per_core", False, "1/s/CPU",
         "preemptions (switched out while runnable) per second per CPU"),
    Term("preempt_wait_s", "preempt_wait_mean_s", False, "s",
         "mean preemption wait (logged, in no objective)", "preempt_waits_total_delta",
         MIN_WAKEUPS),
    Term("turnaround_s", "turnaround_avg_s", False, "s",
         "mean turnaround of tasks born and exited in the window", "turnarounds_total_delta",
         1),
    Term("fairness_cv", "fairness_cv", False, "ratio", "CV of CPU time among tasks that "
         "waited"),
    Term("runq_p99_s", "runq_latency_p99_s", False, "s",
         "runqueue latency p99, every cause (v1)"),
    Term("user_cpu", "T_cpu_user_avg", True, "CPU s/s", "user CPU seconds per second (v1)"),
    Term("v1_completed_per_s", "tasks_completed_per_s", True, "1/s",
         "tasks completed per second, without a materiality floor (v1)"),
)
TERMS_BY_NAME: dict[str, Term] = {t.name: t for t in TERM_SPECS}
TERMS = tuple(TERMS_BY_NAME)
OBJECTIVE_TERMS: dict[str, tuple[str, ...]] = {
    "balanced": ("ext_wait_share", "completed_per_s", "preempt_cost", "idle_wait_share"),
    "latency": ("ext_wait_share", "ext_wakeup_p99_s"),
    "throughput": ("completed_per_s", "preempt_cost", "idle_wait_share"),
}
OBJECTIVES = tuple(OBJECTIVE_TERMS)
#: v1's objectives, for replay's comparison only (not configurable): their "throughput"
#: rewarded user CPU, their "latency" mixed preemption waits into the runqueue latency.
LEGACY_OBJECTIVE_TERMS: dict[str, tuple[str, ...]] = {
    "v1_balanced": ("turnaround_s", "response_s", "fairness_cv"),
    "v1_latency": ("runq_p99_s",),
    "v1_throughput": ("v1_completed_per_s", "user_cpu"),
}
ALL_OBJECTIVE_TERMS = {**OBJECTIVE_TERMS, **LEGACY_OBJECTIVE_TERMS}


def window_terms(window: Window) -> dict[str, float | None]:
    """Raw terms of one window; None where the window could not measure it."""
    return terms_from_metrics(window.metrics)


def idle_while_waiting_share(m: Mapping[str, float]) -> float | None:
    """The share of CPU capacity that sat idle while tasks waited for a CPU, bounded from
    above by per-window averages: min(idle share of CPU time, waiting tasks per CPU).  None
    without both (a window sampled without runqueue telemetry)."""
    busy_pct, waiting = m.get("T_cpu_busy_avg"), m.get("runq_wait_per_s_per_core")
    if busy_pct is None or waiting is None or not (math.isfinite(busy_pct)
                                                    and math.isfinite(waiting)):
        return None
    return min(max(0.0, 1.0 - busy_pct / 100.0), max(0.0, waiting))


def terms_from_metrics(m: Mapping[str, float]) -> dict[str, float | None]:
    """Raw terms from a window's metrics (a journal record's ``metrics``: offline replay
    recomputes terms with the current definitions rather than trusting recorded ones)."""
    if IDLE_WHILE_WAITING not in m:
        derived = idle_while_waiting_share(m)
        if derived is not None:
            m = {**m, IDLE_WHILE_WAITING: derived}
    terms: dict[str, float | None] = {}
    for t in TERM_SPECS:
        v = m.get(t.metric)
        if v is None or not math.isfinite(v):
            terms[t.name] = None
            continue
        if t.count_metric and m.get(t.count_metric, 0.0) < t.min_count:
            terms[t.name] = None
            continue
        terms[t.name] = float(v)
    if terms["runq_p99_s"] is None and "runq_latency_mean_s" in m:
        terms["runq_p99_s"] = float(m["runq_latency_mean_s"])  # schedstat mode (v1)
    if terms["user_cpu"] is not None:
        terms["user_cpu"] = terms["user_cpu"] / 100.0 * m.get("ncpus", 1.0)
    return terms


@dataclass(frozen=True)
class Cost:
    objective: str
    value: float                    # fraction of progress lost vs fair; lower is better
    ratios: dict[str, float]        # term / fair reference (1.0 where neutral)
    neutral: tuple[str, ...]        # terms that counted as 0

    @property
    def reward(self) -> float:
        return -self.value


def cost(terms: Mapping[str, float | None], objective: str,
         reference: Mapping[str, float], specs: Mapping[str, Term] | None = None) -> Cost:
    """The window's cost; ``specs`` overrides term definitions (replay's sensitivity
    analysis varies the constants this way)."""
    if objective not in ALL_OBJECTIVE_TERMS:
        raise ValueError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    ratios: dict[str, float] = {}
    parts: list[float] = []
    neutral: list[str] = []
    for name in ALL_OBJECTIVE_TERMS[objective]:
        spec = (specs or TERMS_BY_NAME)[name]
        v, ref = terms.get(name), reference.get(name)
        usable_ref = ref is not None and math.isfinite(ref) and ref >= spec.min_reference
        if spec.scale == "log":
            usable_ref = usable_ref and ref + spec.pseudo > 0
        if v is None or not usable_ref:
            ratios[name] = 1.0
            neutral.append(name)
            parts.append(0.0)
            continue
        ratios[name] = v / ref if ref else math.inf if v else 1.0
        sign = -1.0 if spec.higher_is_better else 1.0  # more work done = lower cost
        if spec.scale == "share":
            over = max(0.0, v - spec.slack) - max(0.0, ref - spec.slack)
            parts.append(sign * spec.per_unit * over)
            continue
        if spec.scale == "slowdown":
            def slowdown(share: float, slack: float = spec.slack) -> float:
                return -math.log(1.0 - min(MAX_WAIT_SHARE, max(0.0, share - slack)))
            parts.append(sign * (slowdown(v) - slowdown(ref)))
            continue
        v, ref = v + spec.pseudo, ref + spec.pseudo
        log_ratio = math.log(v / ref) if v > 0 else -math.inf
        parts.append(max(-LOG_CLIP, min(LOG_CLIP, sign * log_ratio)))
    legacy = objective in LEGACY_OBJECTIVE_TERMS
    value = sum(parts) / len(parts) if legacy else sum(parts)
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

    def costs(self, objective: str) -> list[float]:
        """The fair scheduler's recent window costs under ``objective``."""
        return list(self._costs.get(objective, ()))

    def windows(self) -> int:
        return max((len(v) for v in self._values.values()), default=0)

    def as_dict(self) -> dict:
        return {"terms": self.means(), "windows": self.windows(),
                "baseline_cost": {o: self.baseline_cost(o) for o in self._costs}}
