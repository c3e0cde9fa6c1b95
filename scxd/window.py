"""Samples → windows (pure).

A window closes on the sample the driver marks ``closes_window`` (every ``window /
sample_interval`` ticks).  Naming follows the earlier study so its analyses carry over:

* ``T_<gauge>_avg`` — mean of a gauge over the window's samples;
* ``<counter>_total_delta`` — sum of a counter's per-sample deltas over the window;
* ``<metric>_pct_change`` — percent change of that metric against the previous window
  (0 with the flag ``no_previous_window`` on the first one; clipped to ±1000 %).

Units: times in seconds (``_s``), sizes in bytes, shares in percent.  Per-core figures are
divided by the number of CPUs.  Each window carries data-quality flags naming what is
missing or suspect, so the policy and the journal can tell a quiet machine from a blind one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

from scxd.histogram import Log2Histogram, WindowHistogram
from scxd.types import Sample, SchedSample, SystemSample, TaskWindow, Window

NS = 1e-9
#: Gauges averaged into T_<name>_avg (SystemSample attribute → metric stem).
SYSTEM_GAUGES = {
    "procs_running": "procs_running", "procs_blocked": "procs_blocked",
    "load1": "load1", "load5": "load5", "load15": "load15",
    "mem_used": "mem_used_bytes", "mem_available": "mem_available_bytes",
    "mem_cached": "mem_cached_bytes", "mem_buffers": "mem_buffers_bytes",
    "swap_used": "swap_used_bytes", "busiest_cpu_pct": "busiest_cpu_pct",
    "processes": "processes", "threads": "threads", "threads_running": "threads_running",
    "processes_blocked": "processes_blocked",
    "psi_cpu_some": "psi_cpu_some_pct", "psi_memory_some": "psi_memory_some_pct",
    "psi_memory_full": "psi_memory_full_pct", "psi_io_some": "psi_io_some_pct",
    "psi_io_full": "psi_io_full_pct",
}
CPU_PARTS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
#: Counters summed into <name>_total_delta (SystemSample attribute → metric stem).
SYSTEM_COUNTERS = {
    "ctx_switches": "ctx_switches", "forks": "forks",
    "voluntary_switches": "voluntary_switches", "involuntary_switches": "involuntary_switches",
    "swap_in_bytes": "swap_in_bytes", "swap_out_bytes": "swap_out_bytes",
    "disk_read_bytes": "disk_read_bytes", "disk_write_bytes": "disk_write_bytes",
    "net_recv_bytes": "net_recv_bytes", "net_sent_bytes": "net_sent_bytes",
    "net_recv_packets": "net_recv_packets", "net_sent_packets": "net_sent_packets",
}
SCHED_COUNTERS = ("switches", "voluntary", "preemptions", "wakeups", "new_tasks", "exits",
                  "lost_events")
#: Histograms a window carries: short name → Window attribute (scxd.histogram's vocabulary).
HISTOGRAMS = {h.value.removesuffix("_hist"): h.value for h in WindowHistogram}
#: What the degraded schedstat source can count (switch-ins, vanished threads).
SCHEDSTAT_COUNTERS = ("switches", "exits")
#: Metrics whose change against the previous window is reported as <name>_pct_change.
PCT_CHANGE_OF = (
    "T_cpu_busy_avg", "T_procs_running_avg", "T_load1_avg", "ctx_switches_total_delta",
    "ctx_switches_per_s_per_core",
    "forks_per_s", "runq_latency_mean_s", "runq_latency_p99_s", "wakeup_latency_p99_s",
    "turnaround_avg_s", "response_avg_s", "tasks_completed_per_s", "fairness_cv",
)
PCT_CHANGE_CLIP = 1000.0
LATE_FACTOR = 1.5


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Population std / mean; 0 for fewer than two values or a zero mean."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    if m <= 0:
        return 0.0
    var = sum((v - m) ** 2 for v in values) / len(values)
    return math.sqrt(var) / m


def pct_change(new: float, old: float) -> float:
    if old == 0:
        return 0.0 if new == 0 else math.copysign(PCT_CHANGE_CLIP, new)
    change = 100.0 * (new - old) / abs(old)
    return max(-PCT_CHANGE_CLIP, min(PCT_CHANGE_CLIP, change))


def _sum_hists(hists: Iterable[Log2Histogram | None]) -> Log2Histogram | None:
    total: Log2Histogram | None = None
    for h in hists:
        if h is not None:
            total = h if total is None else total + h
    return total


def system_metrics(systems: Sequence[SystemSample]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in CPU_PARTS:
        out[f"T_cpu_{part}_avg"] = mean(getattr(s.cpu, part) for s in systems)
    out["T_cpu_busy_avg"] = mean(s.cpu.busy for s in systems)
    for attr, stem in SYSTEM_GAUGES.items():
        vals = [getattr(s, attr) for s in systems if getattr(s, attr) is not None]
        if vals:
            out[f"T_{stem}_avg"] = mean(vals)
    for attr, stem in SYSTEM_COUNTERS.items():
        vals = [getattr(s, attr) for s in systems if getattr(s, attr) is not None]
        if vals:
            out[f"{stem}_total_delta"] = float(sum(vals))
    seconds = sum(s.interval_s for s in systems) or 1.0
    ncpus = systems[-1].ncpus or 1
    out["ncpus"] = float(ncpus)
    out["ctx_switches_per_s_per_core"] = out["ctx_switches_total_delta"] / seconds / ncpus
    out["forks_per_s"] = out["forks_total_delta"] / seconds
    out["runq_per_core"] = out["T_procs_running_avg"] / ncpus
    out["load1_per_core"] = out["T_load1_avg"] / ncpus
    out["disk_bytes_per_s"] = (out["disk_read_bytes_total_delta"]
                               + out["disk_write_bytes_total_delta"]) / seconds
    out["swap_out_bytes_per_s"] = out["swap_out_bytes_total_delta"] / seconds
    for stem in ("voluntary_switches", "involuntary_switches"):
        if f"{stem}_total_delta" in out:
            out[f"{stem}_per_s_per_core"] = out[f"{stem}_total_delta"] / seconds / ncpus
    return out


#: A task is *light* in a window when it ran less than this fraction of an equal share of
#: the CPUs among the tasks that ran (periodic, interactive and housekeeping tasks); its
#: wakeup latency is what a user feels, while heavy tasks' waits are time-sharing.
LIGHT_SHARE = 0.5


def light_task_metrics(tasks: Sequence[TaskWindow], seconds: float, ncpus: int
                       ) -> dict[str, float]:
    """Wakeup latency of light tasks (see :data:`LIGHT_SHARE`); empty without the split."""
    ran = [t for t in tasks if t.oncpu_ns > 0]
    if not ran or any(t.wakes < 0 for t in tasks):
        return {}
    equal_share_ns = ncpus * seconds / NS / len(ran)
    light = [t for t in tasks if t.oncpu_ns < LIGHT_SHARE * equal_share_ns]
    wakes = sum(t.wakes for t in light)
    out = {"active_tasks": float(len(ran)), "light_tasks": float(len(light)),
           "light_wakeups_total_delta": float(wakes),
           "light_cpu_share": sum(t.oncpu_ns for t in light) * NS / seconds / max(ncpus, 1)}
    if wakes:
        out["light_wakeup_latency_mean_s"] = sum(t.wake_wait_ns for t in light) / wakes * NS
    return out


def external_wait_metrics(tasks: Sequence[TaskWindow], seconds: float) -> dict[str, float]:
    """How much of their time user tasks spent waiting for a CPU after external wakeups
    (timer, IRQ, softirq): the worst task's share, and the sum over tasks (task-seconds per
    second).  A periodic task that misses its periods shows a share near 1.  Kernel threads
    (RCU, kworkers) are left out: their waits are no user's latency."""
    waiting = [t for t in tasks if t.ext_wakes > 0 and not t.kthread]
    if any(t.ext_wakes < 0 for t in tasks):
        return {}
    shares = [t.ext_wait_ns * NS / seconds for t in waiting]
    return {"external_wait_share_max": max(shares, default=0.0),
            "external_wait_share_sum": sum(shares),
            "external_wakers": float(len(waiting))}


def sched_metrics(scheds: Sequence[SchedSample], seconds: float, ncpus: int,
                  shares: Sequence[int], tasks: Sequence[TaskWindow] = ()
                  ) -> tuple[dict[str, float], dict[str, Log2Histogram]]:
    out: dict[str, float] = {}
    rq_count = sum(s.rq_count for s in scheds)
    rq_sum = sum(s.rq_sum_ns for s in scheds)
    out["runq_waits_total_delta"] = float(rq_count)
    out["runq_latency_sum_s"] = rq_sum * NS
    out["runq_latency_mean_s"] = rq_sum / rq_count * NS if rq_count else 0.0
    out["runq_wait_per_s_per_core"] = rq_sum * NS / max(seconds, 1e-9) / max(ncpus, 1)
    per_s, per_s_core = 1 / max(seconds, 1e-9), 1 / max(seconds, 1e-9) / max(ncpus, 1)
    hists: dict[str, Log2Histogram] = {}
    for name, attr in HISTOGRAMS.items():
        h = _sum_hists(getattr(s, attr) for s in scheds)
        if h is not None:
            hists[name] = h
    if "rq" in hists:
        for q in (50, 95, 99):
            out[f"runq_latency_p{q}_s"] = hists["rq"].quantile_ns(q / 100) * NS
    # The runqueue wait split by cause: what sleepers feel, and CPU hogs' time-sharing.
    for name, stem, count in (("wake", "wakeup_latency", "wakeup_waits"),
                              ("preempt", "preempt_wait", "preempt_waits"),
                              ("ext", "external_wakeup_latency", "external_wakeup_waits")):
        if name in hists:
            h = hists[name]
            out[f"{stem}_mean_s"] = h.mean_ns * NS
            for q in (50, 95, 99):
                out[f"{stem}_p{q}_s"] = h.quantile_ns(q / 100) * NS
            out[f"{count}_total_delta"] = float(h.count)
            out[f"{count}_per_s_per_core"] = h.count * per_s_core
            out[f"{stem}_per_s_per_core"] = h.sum_ns * NS * per_s_core
    if "resp" in hists:
        out["response_avg_s"] = hists["resp"].mean_ns * NS
        out["response_p99_s"] = hists["resp"].quantile_ns(0.99) * NS
        out["responses_total_delta"] = float(hists["resp"].count)
    if "turn" in hists:
        out["turnaround_avg_s"] = hists["turn"].mean_ns * NS
        out["turnaround_p99_s"] = hists["turn"].quantile_ns(0.99) * NS
        out["turnarounds_total_delta"] = float(hists["turn"].count)
    bpf = all(s.source == "bpf" for s in scheds)
    for attr in SCHED_COUNTERS if bpf else SCHEDSTAT_COUNTERS:
        out[f"{attr}_total_delta"] = float(sum(getattr(s, attr) for s in scheds))
    out["tasks_completed"] = out["exits_total_delta"]
    out["tasks_completed_per_s"] = out["exits_total_delta"] * per_s
    out["switches_per_s_per_core"] = out["switches_total_delta"] * per_s_core
    if bpf:
        out["preemptions_per_s_per_core"] = out["preemptions_total_delta"] * per_s_core
        out["voluntary_per_s_per_core"] = out["voluntary_total_delta"] * per_s_core
        out["wakeups_per_s_per_core"] = out["wakeups_total_delta"] * per_s_core
        out["new_tasks_per_s"] = out["new_tasks_total_delta"] * per_s
    out["fairness_cv"] = coefficient_of_variation([float(x) for x in shares])
    out["fairness_tasks"] = float(len(shares))
    out.update(light_task_metrics(tasks, seconds, ncpus))
    out.update(external_wait_metrics(tasks, seconds))
    run_time = sum(s.bpf_run_time_ns for s in scheds)
    run_cnt = sum(s.bpf_run_cnt for s in scheds)
    out["collector_bpf_cpu_s"] = run_time * NS
    out["collector_bpf_ns_per_event"] = run_time / run_cnt if run_cnt else 0.0
    return out, hists


@dataclass
class Windower:
    """Accumulates samples; :meth:`add` returns a :class:`Window` when one closes."""

    sample_interval_s: float
    _samples: list[Sample] = field(default_factory=list)
    _previous: dict[str, float] | None = None
    _start: tuple[float, float] | None = None

    def start(self, mono: float, wall: float) -> None:
        """Mark where the first window begins (the priming read)."""
        self._start = (mono, wall)

    def add(self, sample: Sample) -> Window | None:
        if self._start is None:
            self._start = (sample.mono - self.sample_interval_s,
                           sample.wall - self.sample_interval_s)
        self._samples.append(sample)
        if not sample.closes_window:
            return None
        window = self._close()
        self._samples = []
        self._start = (sample.mono, sample.wall)
        return window

    def _close(self) -> Window:
        samples = self._samples
        start_mono, start_wall = self._start or (samples[0].mono, samples[0].wall)
        end = samples[-1]
        seconds = max(end.mono - start_mono, 1e-9)
        quality: list[str] = []
        systems = [s.system for s in samples if s.system is not None]
        scheds = [s.sched for s in samples if s.sched is not None]
        metrics: dict[str, float] = {"window_s": seconds, "samples": float(len(samples))}
        if systems:
            metrics.update(system_metrics(systems))
            if any(s.psi_cpu_some is None for s in systems):
                quality.append("no_psi")
            if any(s.voluntary_switches is None for s in systems):
                quality.append("no_per_process")
        else:
            quality.append("system:missing")
        if len(systems) < len(samples):
            quality.append("system:error")
        ncpus = systems[-1].ncpus if systems else 1
        hists: dict[str, Log2Histogram] = {}
        source = scheds[-1].source if scheds else "none"
        if scheds:
            sched_m, hists = sched_metrics(scheds, seconds, ncpus, end.window_task_cpu_ns,
                                           end.window_tasks)
            metrics.update(sched_m)
            if source != "bpf":
                quality.append(f"sched:{source}")
            if metrics.get("lost_events_total_delta", 0) > 0:
                quality.append("lost_events")
        else:
            quality.append("sched:missing")
        if len(scheds) < len(samples) and scheds:
            quality.append("sched:error")
        intervals = [b.mono - a.mono for a, b in itertools.pairwise(samples)]
        intervals.insert(0, samples[0].mono - start_mono)
        if any(i > LATE_FACTOR * self.sample_interval_s for i in intervals):
            quality.append("late_samples")
        metrics["sampling_jitter_max_s"] = max(abs(i - self.sample_interval_s)
                                               for i in intervals)
        collector_cpu = sum(s.collector_cpu_s for s in samples)
        metrics["collector_cpu_pct"] = 100.0 * collector_cpu / seconds
        if self._previous is None:
            quality.append("no_previous_window")
        for name in PCT_CHANGE_OF:
            if name in metrics:
                old = self._previous.get(name) if self._previous else None
                metrics[name.removesuffix("_avg") + "_pct_change"] = (
                    pct_change(metrics[name], old) if old is not None else 0.0)
        for k, v in metrics.items():
            if not math.isfinite(v):
                metrics[k] = 0.0
                quality.append(f"nonfinite:{k}")
        self._previous = dict(metrics)
        exits = [e for s in scheds for e in s.task_exits]
        by_comm: dict[str, int] = {}
        for e in exits:
            by_comm[e.comm] = by_comm.get(e.comm, 0) + 1
        top = dict(sorted(by_comm.items(), key=lambda kv: -kv[1])[:5])
        errors = [e for s in samples for e in s.errors]
        extras: dict[str, object] = {"exits_by_comm": top,
                                     "sample_intervals_s": [round(i, 6) for i in intervals]}
        if end.window_tasks:
            # Compact per-task figures, busiest first, for offline analysis: on-CPU µs,
            # wait µs, wakeup-wait µs, wakeups, external-wakeup-wait µs, external wakeups,
            # kernel thread (1/0).
            def us(v: int) -> int:
                return v // 1000 if v >= 0 else -1

            extras["tasks"] = [[us(t.oncpu_ns), us(t.wait_ns), us(t.wake_wait_ns), t.wakes,
                                us(t.ext_wait_ns), t.ext_wakes, int(t.kthread)]
                               for t in sorted(end.window_tasks, key=lambda t: -t.oncpu_ns)]
        if errors:
            extras["errors"] = errors[-5:]
        return Window(
            start_wall=start_wall, end_wall=end.wall, start_mono=start_mono,
            end_mono=end.mono, n_samples=len(samples), metrics=metrics,
            quality=tuple(quality), sched_source=source, extras=extras,
            **{attr: hists.get(name) for name, attr in HISTOGRAMS.items()},
        )


def window_to_dict(window: Window) -> dict:
    """JSON-ready form (``scxd observe --json``, the journal)."""
    out = {f.name: getattr(window, f.name) for f in fields(window)
           if f.name not in HISTOGRAMS.values()}
    out["quality"] = list(window.quality)
    for name in HISTOGRAMS.values():
        h = getattr(window, name)
        out[name] = None if h is None else {"counts": list(h.counts), "sum_ns": h.sum_ns}
    return out


def window_from_dict(data: dict) -> Window:
    """Inverse of :func:`window_to_dict` (journal reader, offline replay)."""
    kw = dict(data)
    for name in HISTOGRAMS.values():
        h = kw.get(name)
        kw[name] = None if h is None else Log2Histogram(tuple(h["counts"]), h["sum_ns"])
    kw["quality"] = tuple(kw.get("quality", ()))
    return Window(**kw)
