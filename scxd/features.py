"""Window → feature vector (pure), under a named, versioned schema.

Each feature names the window metric it reads, its unit, and the transform that makes it
numerically safe for a network: shares in percent become fractions, counts and rates go
through ``log1p``, latencies become ``log1p`` of microseconds, percent changes are clipped
and scaled into [-1, 1].  Missing metrics (e.g. no BPF) read as 0 and the vector's
``missing`` list names them; NaN and ±inf never leave this module.

Bump :data:`SCHEMA_VERSION` whenever a feature is added, removed, reordered or transformed
differently: recorded journals carry the version, and offline replay refuses to mix them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scxd.types import Window

#: v2: every feature independent of the window's length (per-window totals became rates:
#: the test bed's 2 s windows and the daemon's 5 s ones agree), ``voluntary_share`` renamed
#: to what it is (``voluntary_rate``), and the runqueue wait split by cause — wakeup latency
#: (what a sleeper feels), preemption wait (time-sharing), external wakeups (timers, IRQs)
#: and light tasks' wakeup latency.
SCHEMA_VERSION = 2
SCHEMA_NAME = "scxd-window-features"


def _fraction(v: float) -> float:
    return min(max(v / 100.0, 0.0), 1.0)


def _share(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def _log1p(v: float) -> float:
    return math.log1p(max(v, 0.0))


def _log1p_us(seconds: float) -> float:
    return math.log1p(max(seconds, 0.0) * 1e6)


def _change(pct: float) -> float:
    return min(max(pct / 100.0, -10.0), 10.0) / 10.0


TRANSFORMS: dict[str, Callable[[float], float]] = {
    "fraction": _fraction, "share": _share, "log1p": _log1p, "log1p_us": _log1p_us,
    "change": _change,
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    metric: str          # key in Window.metrics
    transform: str       # key in TRANSFORMS
    unit: str            # unit of the metric before the transform
    doc: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("cpu_user", "T_cpu_user_avg", "fraction", "%", "user CPU share"),
    FeatureSpec("cpu_system", "T_cpu_system_avg", "fraction", "%", "kernel CPU share"),
    FeatureSpec("cpu_iowait", "T_cpu_iowait_avg", "fraction", "%", "IO-wait share"),
    FeatureSpec("cpu_irq", "T_cpu_irq_avg", "fraction", "%", "hard-IRQ share"),
    FeatureSpec("cpu_softirq", "T_cpu_softirq_avg", "fraction", "%", "soft-IRQ share"),
    FeatureSpec("cpu_idle", "T_cpu_idle_avg", "fraction", "%", "idle share"),
    FeatureSpec("busiest_cpu", "T_busiest_cpu_pct_avg", "fraction", "%",
                "utilisation of the busiest CPU"),
    FeatureSpec("runq_per_core", "runq_per_core", "log1p", "threads/CPU",
                "runnable threads per CPU"),
    FeatureSpec("blocked", "T_procs_blocked_avg", "log1p", "threads",
                "threads in uninterruptible wait"),
    FeatureSpec("load1_per_core", "load1_per_core", "log1p", "1/CPU", "1-min load per CPU"),
    FeatureSpec("ctxsw_rate", "ctx_switches_per_s_per_core", "log1p", "1/s/CPU",
                "context switches per second per CPU"),
    FeatureSpec("voluntary_rate", "voluntary_switches_per_s_per_core", "log1p", "1/s/CPU",
                "voluntary switches (processes' leaders) per second per CPU"),
    FeatureSpec("involuntary_rate", "involuntary_switches_per_s_per_core", "log1p", "1/s/CPU",
                "involuntary switches (processes' leaders) per second per CPU"),
    FeatureSpec("preempt_rate", "preemptions_per_s_per_core", "log1p", "1/s/CPU",
                "preemptions per second per CPU (BPF)"),
    FeatureSpec("wakeup_rate", "wakeups_per_s_per_core", "log1p", "1/s/CPU",
                "wakeups per second per CPU (BPF)"),
    FeatureSpec("fork_rate", "forks_per_s", "log1p", "1/s", "forks per second"),
    FeatureSpec("exit_rate", "tasks_completed_per_s", "log1p", "1/s",
                "tasks completed per second"),
    FeatureSpec("threads", "T_threads_avg", "log1p", "threads", "threads alive"),
    FeatureSpec("mem_available", "T_mem_available_bytes_avg", "log1p", "bytes",
                "available memory"),
    FeatureSpec("swap_out_rate", "swap_out_bytes_per_s", "log1p", "bytes/s",
                "bytes swapped out per second"),
    FeatureSpec("disk_rate", "disk_bytes_per_s", "log1p", "bytes/s", "disk throughput"),
    FeatureSpec("psi_cpu", "T_psi_cpu_some_pct_avg", "fraction", "%",
                "share of time some task stalled on CPU"),
    FeatureSpec("psi_io", "T_psi_io_some_pct_avg", "fraction", "%",
                "share of time some task stalled on IO"),
    FeatureSpec("psi_mem", "T_psi_memory_some_pct_avg", "fraction", "%",
                "share of time some task stalled on memory"),
    FeatureSpec("rq_lat_mean", "runq_latency_mean_s", "log1p_us", "s",
                "mean runqueue latency"),
    FeatureSpec("rq_lat_p50", "runq_latency_p50_s", "log1p_us", "s", "runqueue latency p50"),
    FeatureSpec("rq_lat_p95", "runq_latency_p95_s", "log1p_us", "s", "runqueue latency p95"),
    FeatureSpec("rq_lat_p99", "runq_latency_p99_s", "log1p_us", "s", "runqueue latency p99"),
    FeatureSpec("rq_wait_rate", "runq_wait_per_s_per_core", "log1p_us", "s/s/CPU",
                "runqueue wait accumulated per second per CPU"),
    FeatureSpec("wake_lat_mean", "wakeup_latency_mean_s", "log1p_us", "s",
                "mean wakeup latency (a task that slept: wakeup → running)"),
    FeatureSpec("wake_lat_p99", "wakeup_latency_p99_s", "log1p_us", "s", "wakeup latency p99"),
    FeatureSpec("preempt_wait_mean", "preempt_wait_mean_s", "log1p_us", "s",
                "mean preemption wait (runnable again after being preempted → running)"),
    FeatureSpec("preempt_wait_rate", "preempt_wait_per_s_per_core", "log1p_us", "s/s/CPU",
                "preemption wait accumulated per second per CPU"),
    FeatureSpec("ext_wake_lat_mean", "external_wakeup_latency_mean_s", "log1p_us", "s",
                "mean latency after external wakeups (timer, IRQ, softirq)"),
    FeatureSpec("ext_wait_share_max", "external_wait_share_max", "share", "s/s",
                "the user task most delayed after external wakeups: its share of time waiting"),
    FeatureSpec("light_wake_lat", "light_wakeup_latency_mean_s", "log1p_us", "s",
                "mean wakeup latency of light tasks (below half an equal CPU share)"),
    FeatureSpec("light_cpu_share", "light_cpu_share", "share", "CPU/CPU",
                "CPU share of the light tasks"),
    FeatureSpec("response_avg", "response_avg_s", "log1p_us", "s",
                "new-task response time (creation → first run)"),
    FeatureSpec("turnaround_avg", "turnaround_avg_s", "log1p_us", "s",
                "turnaround of tasks born and exited while observed"),
    FeatureSpec("fairness_cv", "fairness_cv", "log1p", "ratio",
                "CV of CPU time among tasks that waited"),
    FeatureSpec("busy_change", "T_cpu_busy_pct_change", "change", "%",
                "CPU busy change vs previous window"),
    FeatureSpec("ctxsw_change", "ctx_switches_per_s_per_core_pct_change", "change", "%",
                "context-switch change vs previous window"),
    FeatureSpec("rq_p99_change", "runq_latency_p99_s_pct_change", "change", "%",
                "runqueue p99 change vs previous window"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)


@dataclass(frozen=True)
class FeatureVector:
    schema: str
    version: int
    values: np.ndarray             # float32, len(FEATURES), all finite
    missing: tuple[str, ...]       # features whose metric the window did not have

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(FEATURE_NAMES, self.values, strict=True)}

    def as_record(self) -> dict[str, Any]:
        """The ``features`` field of a journaled window."""
        return {"schema": self.schema, "version": self.version,
                "values": [float(v) for v in self.values], "missing": list(self.missing)}


def featurize(window: Window) -> FeatureVector:
    return featurize_metrics(window.metrics)


def featurize_metrics(metrics: Mapping[str, float]) -> FeatureVector:
    """The feature vector of a window's metrics alone: recorded windows keep every metric,
    so their features can be recomputed under a later schema (see
    :func:`scxd.testbed.dataset.refeature`)."""
    values = np.zeros(len(FEATURES), dtype=np.float32)
    missing = []
    for i, spec in enumerate(FEATURES):
        raw = metrics.get(spec.metric)
        if raw is None or not math.isfinite(raw):
            missing.append(spec.name)
            continue
        v = TRANSFORMS[spec.transform](raw)
        values[i] = v if math.isfinite(v) else 0.0
    return FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, values, tuple(missing))


def schema_header() -> dict[str, Any]:
    """What a journal header says of its windows' features: this build's schema."""
    return {"feature_schema": SCHEMA_NAME, "feature_version": SCHEMA_VERSION,
            "feature_names": list(FEATURE_NAMES), "feature_doc": schema_doc()}


def schema_doc() -> list[dict[str, str]]:
    """The schema as data (journal header, docs)."""
    return [{"name": f.name, "metric": f.metric, "transform": f.transform, "unit": f.unit,
             "doc": f.doc} for f in FEATURES]
