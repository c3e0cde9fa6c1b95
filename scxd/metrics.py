"""Prometheus exposition: a collector over immutable snapshots the daemon hands over.

Concurrency, in one sentence: the daemon's loop thread is the only owner of the live
:class:`MetricsState` (no lock, nobody else touches it); after each tick or control command
it *publishes* a private deep copy to a :class:`MetricsBoard`, and the scrape thread only
ever reads the latest published copy, which nobody mutates.  The one figure produced on
other threads — control-request counts, counted by the control server's connection threads —
is a counter inside the board under the board's own lock, which is held only for a few
dictionary operations and never across foreign code.  Each scrape builds metric families
fresh from one snapshot; no global registry is used.  Names: ``scxd_`` prefix, base units
(seconds, bytes), ``_total`` for counters, ``_info`` for metadata.  The BPF log2
histograms are exported as real histograms with inclusive ``le`` bounds in seconds (see
:mod:`scxd.histogram`).
Served on 127.0.0.1 by default.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.utils import floatToGoString

from scxd.actuator import ActuatorEventKind, FailureReason, SwapOutcome
from scxd.config import split_host_port
from scxd.control import RpcError
from scxd.guard import GuardEventKind
from scxd.histogram import HIST_SLOTS, Log2Histogram, WindowHistogram, le_bounds_seconds

SWAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Decisions the exploration ratio is computed over.
EXPLORE_WINDOW = 100
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
KERNEL_STATES = ("enabling", "enabled", "disabling", "disabled", "unavailable")
TELEMETRY_SOURCES = ("system", "bpf", "schedstat")
# Label values known in advance are exported at 0 from the start, so rate() and alert
# expressions have a series to work on before the first event.  They come from the
# producers' enums: nothing here is a copied string.
SWAP_OUTCOMES = tuple(o.value for o in SwapOutcome if o is not SwapOutcome.NOOP)
REQUEST_OUTCOMES = ("ok", *(c.outcome for c in RpcError))


class MetricName(StrEnum):
    """Every metric family scxd exports (without the ``_total``/``_info`` suffixes the
    exposition format adds).  Dashboards and alert rules may use only these."""

    INFO = "scxd"
    SCHEDULER = "scxd_scheduler"
    INTENDED_SCHEDULER = "scxd_intended_scheduler"
    KERNEL_STATE = "scxd_kernel_sched_ext_state"
    KERNEL_ENABLE_SEQ = "scxd_kernel_sched_ext_enable_seq"
    SWAPS = "scxd_swaps"
    SWAP_DURATION = "scxd_swap_duration_seconds"
    ACTUATOR_FAILURES = "scxd_actuator_failures"
    ACTUATOR_EVENTS = "scxd_actuator_events"
    GUARD_EVENTS = "scxd_guard_events"
    FROZEN = "scxd_frozen"
    PINNED = "scxd_pinned"
    WINDOWS = "scxd_windows"
    WINDOWS_SCORED = "scxd_windows_scored"
    COLLECTOR_BPF_CPU = "scxd_collector_bpf_cpu_seconds"
    COLLECTOR_CPU = "scxd_collector_cpu_seconds"
    JOURNAL_RECORDS = "scxd_journal_records"
    JOURNAL_ERRORS = "scxd_journal_errors"
    DECISIONS = "scxd_decisions"
    DECISION_DURATION = "scxd_decision_duration_seconds"
    ACTION_PROBABILITY = "scxd_policy_action_probability"
    POLICY_EXPLORATION = "scxd_policy_exploration_ratio"
    POLICY_EPSILON = "scxd_policy_epsilon"
    POLICY_ENTROPY = "scxd_policy_entropy_nats"
    POLICY_LOSS = "scxd_policy_loss"
    POLICY_UPDATES = "scxd_policy_updates"
    POLICY_CHANGES = "scxd_policy_change_detections"
    POLICY_CHECKPOINT_AGE = "scxd_policy_checkpoint_age_seconds"
    POLICY_NOVELTY = "scxd_policy_novelty_ratio"
    POLICY_NOVEL = "scxd_policy_novel"
    REWARD = "scxd_reward"
    COST_RATIO = "scxd_cost_ratio"
    RUNQUEUE_LATENCY = "scxd_runqueue_latency_seconds"
    WAKEUP_LATENCY = "scxd_wakeup_latency_seconds"
    PREEMPTION_WAIT = "scxd_preemption_wait_seconds"
    EXTERNAL_WAKEUP_LATENCY = "scxd_external_wakeup_latency_seconds"
    RESPONSE_TIME = "scxd_response_time_seconds"
    TURNAROUND_TIME = "scxd_turnaround_time_seconds"
    TURNAROUND_AVG = "scxd_turnaround_avg_seconds"
    RESPONSE_AVG = "scxd_response_avg_seconds"
    RUNQUEUE_LATENCY_P99 = "scxd_runqueue_latency_p99_seconds"
    FAIRNESS_CV = "scxd_fairness_cv"
    CPU_BUSY = "scxd_cpu_busy_percent"
    TELEMETRY_DEGRADED = "scxd_telemetry_degraded"
    TELEMETRY_ERRORS = "scxd_telemetry_errors"
    CONTROL_REQUESTS = "scxd_control_requests"


#: The BPF distributions, as exported: histogram → (family, help).
HISTOGRAM_FAMILIES: dict[WindowHistogram, tuple[MetricName, str]] = {
    WindowHistogram.RUNQUEUE_LATENCY: (MetricName.RUNQUEUE_LATENCY,
                                       "runnable → on CPU, every cause (BPF)"),
    WindowHistogram.WAKEUP_LATENCY: (MetricName.WAKEUP_LATENCY,
                                     "woken from sleep → on CPU (BPF)"),
    WindowHistogram.PREEMPTION_WAIT: (MetricName.PREEMPTION_WAIT,
                                      "preempted while runnable → back on CPU (BPF)"),
    WindowHistogram.EXTERNAL_WAKEUP: (MetricName.EXTERNAL_WAKEUP_LATENCY,
                                      "woken by a timer, IRQ or softirq → on CPU (BPF; a "
                                      "subset of the wakeup latency)"),
    WindowHistogram.RESPONSE: (MetricName.RESPONSE_TIME, "task creation → first run (BPF)"),
    WindowHistogram.TURNAROUND: (MetricName.TURNAROUND_TIME, "task creation → exit, tasks "
                                 "born while observed (BPF)"),
}
#: Latest-window figures exported as gauges: window metric → (family, help).
WINDOW_GAUGES: dict[str, tuple[MetricName, str]] = {
    "turnaround_avg_s": (MetricName.TURNAROUND_AVG, "mean turnaround, last window"),
    "response_avg_s": (MetricName.RESPONSE_AVG, "mean response, last window"),
    "runq_latency_p99_s": (MetricName.RUNQUEUE_LATENCY_P99,
                           "runqueue latency p99, last window"),
    "fairness_cv": (MetricName.FAIRNESS_CV, "CV of CPU time among tasks that waited, last "
                    "window"),
    "T_cpu_busy_avg": (MetricName.CPU_BUSY, "CPU busy share, last window"),
}


@dataclass
class FixedHistogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, v: float) -> None:
        i = next((i for i, b in enumerate(self.bounds) if v <= b), len(self.bounds))
        self.counts[i] += 1
        self.total += v

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append((floatToGoString(b), acc))
        return out


@dataclass
class MetricsState:
    """Everything /metrics shows.  The daemon's loop thread owns and mutates it; other
    threads see only copies published through a :class:`MetricsBoard`."""

    version: str = ""
    mode: str = "advisory"
    policy: str = ""
    objective: str = ""
    scheduler: dict[str, str] = field(default_factory=lambda: {"scheduler": "fair",
                                                                "args": "", "preset": ""})
    intended: dict[str, str] = field(default_factory=lambda: {"scheduler": "fair",
                                                               "args": "", "preset": ""})
    kernel_state: str = "unavailable"
    kernel_enable_seq: int = 0
    swaps: Counter = field(default_factory=Counter)                 # outcome
    swap_seconds: dict[str, FixedHistogram] = field(default_factory=dict)
    actuator_failures: Counter = field(default_factory=Counter)     # reason
    actuator_events: Counter = field(default_factory=Counter)       # kind
    guard_events: Counter = field(default_factory=Counter)          # kind
    frozen: bool = False
    pinned: bool = False
    windows: int = 0
    windows_scored: int = 0
    decisions: Counter = field(default_factory=Counter)             # (policy, explore)
    decision_seconds: FixedHistogram = field(
        default_factory=lambda: FixedHistogram(DECISION_BUCKETS))
    action_probability: dict[tuple[str, str], float] = field(default_factory=dict)  # (label,
    #                                                                       key) → probability
    explored: deque = field(default_factory=lambda: deque(maxlen=EXPLORE_WINDOW))
    policy_epsilon: float = 0.0          # ε, or the ucb floor mass, of the last decision
    policy_entropy: float = 0.0          # nats, of the last decision's distribution
    policy_losses: dict[str, float] = field(default_factory=dict)   # critic/actor loss
    policy_updates: int = 0
    policy_changes: int = 0              # detected workload changes (re-opened exploration)
    policy_novelty: float | None = None  # asa: last window's distance / novelty threshold
    policy_novel: float | None = None    # asa: 1 while its novelty check holds fair
    checkpoint_saved_at: float | None = None                        # wall time
    reward: float | None = None
    cost_ratio: dict[str, float] = field(default_factory=dict)
    histograms: dict[WindowHistogram, Log2Histogram] = field(
        default_factory=lambda: {h: Log2Histogram.empty() for h in WindowHistogram})
    last: dict[str, float] = field(default_factory=dict)            # latest window figures
    telemetry_mode: str = "none"
    telemetry_degraded: bool = True
    telemetry_errors: Counter = field(default_factory=Counter)
    collector_bpf_seconds: float = 0.0
    collector_cpu_seconds: float = 0.0
    journal_records: int = 0
    journal_errors: int = 0
    control_requests: Counter = field(default_factory=Counter)      # (method, outcome)

    def observe_swap(self, outcome: str, seconds: float) -> None:
        self.swaps[outcome] += 1
        self.swap_seconds.setdefault(outcome, FixedHistogram(SWAP_BUCKETS)).observe(seconds)


class MetricsBoard:
    """Where the owner publishes :class:`MetricsState` copies and scrapes read them.

    ``publish`` deep-copies *on the owner's thread* (the only thread that may touch the live
    state) and swaps the reference in; ``snapshot`` returns the latest copy with the
    control-request counts merged in.  A published copy is never mutated again, so readers
    need no lock to use it.
    """

    def __init__(self, initial: MetricsState | None = None):
        self._lock = threading.Lock()
        self._published = copy.deepcopy(initial) if initial is not None else MetricsState()
        self._requests: Counter = Counter()

    def publish(self, state: MetricsState) -> None:
        copied = copy.deepcopy(state)  # outside the lock: the owner's own object
        with self._lock:
            self._published = copied

    def count_request(self, method: str, outcome: str) -> None:
        """Called by control-connection threads, once per request."""
        with self._lock:
            self._requests[(method, outcome)] += 1

    def snapshot(self) -> MetricsState:
        with self._lock:
            published, requests = self._published, Counter(self._requests)
        return dataclasses.replace(published, control_requests=requests)


def _log2_buckets(h: Log2Histogram) -> list[tuple[str, float]]:
    cum = h.cumulative()
    bounds = le_bounds_seconds(len(h.counts))
    return [(floatToGoString(b), c) for b, c in zip(bounds, cum, strict=True)]


class ScxdCollector:
    """prometheus_client collector reading the latest published :class:`MetricsState`."""

    def __init__(self, board: MetricsBoard):
        self.board = board

    def describe(self) -> Iterable:
        return []  # families are dynamic; don't let the registry call collect() at register

    def collect(self) -> Iterable:
        s = self.board.snapshot()
        N = MetricName
        info = InfoMetricFamily(N.INFO, "scxd build and run mode")
        info.add_metric([], {"version": s.version, "mode": s.mode, "policy": s.policy,
                             "objective": s.objective})
        yield info
        for name, doc, labels in (
                (N.SCHEDULER, "scheduler running now, as the kernel confirmed it",
                 s.scheduler),
                (N.INTENDED_SCHEDULER, "scheduler scxd wants", s.intended)):
            fam = InfoMetricFamily(name, doc, labels=["scheduler", "args", "preset"])
            fam.add_metric([labels["scheduler"], labels["args"], labels["preset"]], {})
            yield fam
        kstate = GaugeMetricFamily(N.KERNEL_STATE, "1 for the state "
                                   "/sys/kernel/sched_ext/state reports", labels=["state"])
        for st in KERNEL_STATES:
            kstate.add_metric([st], 1.0 if s.kernel_state == st else 0.0)
        yield kstate
        yield GaugeMetricFamily(N.KERNEL_ENABLE_SEQ, "kernel enable_seq",
                                value=s.kernel_enable_seq)
        yield self._counter(N.SWAPS, "scheduler swaps by outcome", "result", s.swaps,
                            SWAP_OUTCOMES)
        swap_h = HistogramMetricFamily(N.SWAP_DURATION, "decision → kernel confirmed, per "
                                       "swap", labels=["result"])
        for outcome, h in s.swap_seconds.items():
            swap_h.add_metric([outcome], h.buckets(), h.total)
        yield swap_h
        yield self._counter(N.ACTUATOR_FAILURES, "failed swaps by reason", "reason",
                            s.actuator_failures, [r.value for r in FailureReason])
        yield self._counter(N.ACTUATOR_EVENTS, "ejections, crashes, takeovers, recoveries",
                            "kind", s.actuator_events, [k.value for k in ActuatorEventKind])
        yield self._counter(N.GUARD_EVENTS, "guard holds, overrides and state changes",
                            "kind", s.guard_events, [k.value for k in GuardEventKind])
        for family, name, doc, value in (
                (GaugeMetricFamily, N.FROZEN, "1 while swaps are frozen", s.frozen),
                (GaugeMetricFamily, N.PINNED, "1 while a scheduler is pinned", s.pinned),
                (CounterMetricFamily, N.WINDOWS, "telemetry windows closed", s.windows),
                (CounterMetricFamily, N.WINDOWS_SCORED, "windows scored (not warm-up and "
                 "kernel-confirmed)", s.windows_scored),
                (CounterMetricFamily, N.COLLECTOR_BPF_CPU, "CPU time of scxd's BPF programs "
                 "(BPF run-time stats)", s.collector_bpf_seconds),
                (CounterMetricFamily, N.COLLECTOR_CPU, "CPU time of the scxd process spent "
                 "sampling", s.collector_cpu_seconds),
                (CounterMetricFamily, N.JOURNAL_RECORDS, "journal records written",
                 s.journal_records),
                (CounterMetricFamily, N.JOURNAL_ERRORS, "journal writes that failed",
                 s.journal_errors)):
            yield family(name, doc, value=float(value))
        dec = CounterMetricFamily(N.DECISIONS, "policy decisions", labels=["policy",
                                                                          "explore"])
        for (policy, explore), n in s.decisions.items():
            dec.add_metric([policy, str(explore).lower()], n)
        yield dec
        dh = HistogramMetricFamily(N.DECISION_DURATION, "window closed → guard verdict "
                                   "(features, reward, policy, guard)")
        dh.add_metric([], s.decision_seconds.buckets(), s.decision_seconds.total)
        yield dh
        prob = GaugeMetricFamily(N.ACTION_PROBABILITY, "probability of each arm in the last "
                                 "decision", labels=["arm", "key"])
        for (arm, key), p in s.action_probability.items():
            prob.add_metric([arm, key], p)
        yield prob
        yield from self._policy(s)
        if s.reward is not None:
            yield GaugeMetricFamily(N.REWARD, "reward (−cost) of the last scored window "
                                    "under the configured objective", value=s.reward)
        ratio = GaugeMetricFamily(N.COST_RATIO, "last scored window's terms relative to the "
                                  "fair scheduler (1 = as good as fair)", labels=["term"])
        for term, r in s.cost_ratio.items():
            ratio.add_metric([term], r)
        yield ratio
        for hist, (name, doc) in HISTOGRAM_FAMILIES.items():
            fam = HistogramMetricFamily(name, doc)
            h = s.histograms[hist]
            if len(h.counts) == HIST_SLOTS:
                fam.add_metric([], _log2_buckets(h), h.sum_ns / 1e9)
            yield fam
        for key, (name, doc) in WINDOW_GAUGES.items():
            if key in s.last:
                yield GaugeMetricFamily(name, doc, value=s.last[key])
        deg = GaugeMetricFamily(N.TELEMETRY_DEGRADED, "1 when BPF telemetry is not in use; "
                                "mode says what runs instead (bpf, schedstat, none)",
                                labels=["mode"])
        deg.add_metric([s.telemetry_mode], float(s.telemetry_degraded))
        yield deg
        yield self._counter(N.TELEMETRY_ERRORS, "failed reads per telemetry source",
                            "source", s.telemetry_errors, TELEMETRY_SOURCES)
        ctl = CounterMetricFamily(N.CONTROL_REQUESTS, "control-socket requests",
                                  labels=["method", "outcome"])
        for (method, outcome), n in s.control_requests.items():
            ctl.add_metric([method, outcome], n)
        yield ctl

    @staticmethod
    def _policy(s: MetricsState) -> Iterable:
        """What the learner is doing: exploration, ε, entropy, losses, checkpoint age."""
        N = MetricName
        rate = sum(s.explored) / len(s.explored) if s.explored else 0.0
        yield GaugeMetricFamily(N.POLICY_EXPLORATION, f"share of the last {EXPLORE_WINDOW} "
                                "decisions that explored", value=rate)
        yield GaugeMetricFamily(N.POLICY_EPSILON, "exploration probability of the last "
                                "decision (epsilon mode: ε; ucb mode: the floor mass)",
                                value=s.policy_epsilon)
        yield GaugeMetricFamily(N.POLICY_ENTROPY, "entropy of the last decision's action "
                                "distribution", value=s.policy_entropy)
        loss = GaugeMetricFamily(N.POLICY_LOSS, "last training step's losses",
                                 labels=["loss"])
        for name, v in s.policy_losses.items():
            loss.add_metric([name], v)
        yield loss
        yield CounterMetricFamily(N.POLICY_UPDATES, "transitions the policy learnt from",
                                  value=s.policy_updates)
        yield CounterMetricFamily(N.POLICY_CHANGES, "workload changes detected "
                                  "(exploration re-opened)", value=s.policy_changes)
        if s.policy_novelty is not None:
            yield GaugeMetricFamily(N.POLICY_NOVELTY, "distance of the last window to the "
                                    "nearest training workload, in units of the novelty "
                                    "threshold (asa; above 1: like no training workload)",
                                    value=s.policy_novelty)
        if s.policy_novel is not None:
            yield GaugeMetricFamily(N.POLICY_NOVEL, "1 while the novelty check holds the "
                                    "fair scheduler (windows like no training workload)",
                                    value=s.policy_novel)
        if s.checkpoint_saved_at is not None:
            yield GaugeMetricFamily(N.POLICY_CHECKPOINT_AGE, "time since the learned state "
                                    "was last saved",
                                    value=max(0.0, time.time() - s.checkpoint_saved_at))

    @staticmethod
    def _counter(name: str, doc: str, label: str, counts: Counter,
                 known: Sequence[str] = ()) -> CounterMetricFamily:
        fam = CounterMetricFamily(name, doc, labels=[label])
        for key in dict.fromkeys([*known, *counts]):
            fam.add_metric([key], counts.get(key, 0))
        return fam


def make_registry(board: MetricsBoard) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScxdCollector(board))
    ProcessCollector(namespace="scxd", registry=registry)
    return registry


class MetricsServer:
    """The /metrics HTTP endpoint on its own thread."""

    def __init__(self, address: str, registry: CollectorRegistry):
        host, port = split_host_port(address)
        self.httpd, self.thread = start_http_server(port, addr=host, registry=registry)
        self.port = self.httpd.server_address[1]
        self.host = host

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__: Sequence[str] = ("MetricsBoard", "MetricsServer", "MetricsState", "ScxdCollector",
                          "make_registry")
