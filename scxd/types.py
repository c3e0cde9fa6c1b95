"""Frozen dataclasses that are the contracts between scxd's stages.

sample (telemetry) → :class:`Sample` → window → :class:`Window` → features.  Counters inside a
sample are *deltas over the sample's interval*; gauges are instantaneous readings.  Times are
seconds unless a name ends in ``_ns``; sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from scxd.histogram import Log2Histogram


@dataclass(frozen=True)
class CpuPercent:
    """Share of all CPUs' time over the interval, in percent (sums to ≈100)."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float

    @property
    def busy(self) -> float:
        return max(0.0, 100.0 - self.idle - self.iowait)


@dataclass(frozen=True)
class SystemSample:
    """One reading of the system-wide counters (psutil and /proc, root-injectable)."""

    interval_s: float              # time since the previous reading
    ncpus: int
    cpu: CpuPercent
    busiest_cpu_pct: float         # utilisation of the busiest single CPU over the interval
    ctx_switches: int              # Δ /proc/stat ctxt
    forks: int                     # Δ /proc/stat processes
    procs_running: int             # runnable threads now (/proc/stat procs_running)
    procs_blocked: int             # threads in uninterruptible wait now
    load1: float
    load5: float
    load15: float
    mem_used: int
    mem_available: int
    mem_cached: int
    mem_buffers: int
    swap_used: int
    swap_in_bytes: int             # Δ pswpin × page size
    swap_out_bytes: int
    disk_read_bytes: int           # Δ over whole physical disks
    disk_write_bytes: int
    # Δ over every network interface but loopback (None: the root has no /proc/net/dev).
    net_recv_bytes: int | None = None
    net_sent_bytes: int | None = None
    net_recv_packets: int | None = None
    net_sent_packets: int | None = None
    # From /proc/<pid>/status summed over processes (None when per_process is off).
    voluntary_switches: int | None = None     # Δ summed over processes that lived through
    involuntary_switches: int | None = None
    processes: int | None = None
    threads: int | None = None
    threads_running: int | None = None         # threads of processes in state R
    processes_blocked: int | None = None       # processes in state D
    # PSI: percent of the interval some/all tasks stalled (None when PSI is absent).
    psi_cpu_some: float | None = None
    psi_memory_some: float | None = None
    psi_memory_full: float | None = None
    psi_io_some: float | None = None
    psi_io_full: float | None = None


@dataclass(frozen=True)
class TaskExit:
    """One task that exited during the interval (from the BPF ring buffer)."""

    pid: int
    tgid: int
    comm: str
    born_ns: int                   # CLOCK_MONOTONIC ns; 0 = born before the collector loaded
    first_run_ns: int
    exit_ns: int
    oncpu_ns: int
    wait_ns: int
    wake_wait_ns: int = 0          # the part of wait_ns spent waiting after wakeups
    wakes: int = 0                 # how many wakeup waits that was
    ext_wait_ns: int = 0           # the part of wake_wait_ns after external wakeups
    ext_wakes: int = 0

    @property
    def turnaround_ns(self) -> int | None:
        return self.exit_ns - self.born_ns if self.born_ns else None

    @property
    def response_ns(self) -> int | None:
        if self.born_ns and self.first_run_ns:
            return self.first_run_ns - self.born_ns
        return None


class TaskWindow(NamedTuple):
    """One task's scheduling over a window (ns deltas; tasks that ran or waited in it)."""

    oncpu_ns: int
    wait_ns: int                   # runqueue wait of every kind
    wake_wait_ns: int              # the part after wakeups; -1 where not measured (schedstat)
    wakes: int                     # wakeup waits; -1 where not measured
    ext_wait_ns: int = -1          # the part after external (interrupt-context) wakeups
    ext_wakes: int = -1
    pid: int = 0                   # the task (thread) id
    kthread: bool = False          # a kernel thread (set by the sampler for external wakers)


@dataclass(frozen=True)
class SchedSample:
    """Scheduling figures over the interval, from BPF or (degraded) /proc schedstat."""

    source: str                    # "bpf" or "schedstat"
    rq_count: int                  # runqueue waits that ended (switch-ins after waiting)
    rq_sum_ns: int                 # their total wait
    rq_hist: Log2Histogram | None  # None in schedstat mode (no distribution available)
    resp_hist: Log2Histogram | None
    turn_hist: Log2Histogram | None
    # The runqueue waits split by cause (BPF only): rq = wake + preempt + new tasks' first
    # waits (= resp).  Wakeup latency is what sleeping tasks feel; preemption wait is the
    # time-sharing of runnable tasks.
    wake_hist: Log2Histogram | None = None
    preempt_hist: Log2Histogram | None = None
    ext_hist: Log2Histogram | None = None   # external wakeups (subset of wake)
    switches: int = 0
    wakeups: int = 0
    new_tasks: int = 0
    preemptions: int = 0           # involuntary switches: prev still runnable (all threads)
    voluntary: int = 0             # voluntary switches: prev went to sleep (all threads)
    exits: int = 0                 # tasks that exited (BPF) / threads that vanished (schedstat)
    lost_events: int = 0           # ring-buffer drops + per-task table full
    task_exits: tuple[TaskExit, ...] = ()
    bpf_run_time_ns: int = 0       # collector's own BPF cost over the interval
    bpf_run_cnt: int = 0


@dataclass(frozen=True)
class Sample:
    """Everything read at one tick."""

    mono: float                    # time.monotonic() at the reading
    wall: float                    # time.time() at the reading
    system: SystemSample | None    # None when the system source failed this tick
    sched: SchedSample | None      # None when the scheduling source failed this tick
    # Per-task CPU time received in the window that this sample closes (contending tasks
    # only); empty unless this sample closes a window.
    window_task_cpu_ns: tuple[int, ...] = ()
    # Every task that ran or waited in that window (same condition), for the light-task
    # figures of the window stage.
    window_tasks: tuple[TaskWindow, ...] = ()
    errors: tuple[str, ...] = ()   # "source: problem" for each source that failed
    closes_window: bool = False    # the driver's tick that ends a window
    collector_cpu_s: float = 0.0   # CPU time the sampling process used over the interval


@dataclass(frozen=True)
class Window:
    """Samples aggregated over one window: named metrics plus what they rest on."""

    start_wall: float
    end_wall: float
    start_mono: float
    end_mono: float
    n_samples: int
    metrics: dict[str, float]
    quality: tuple[str, ...]       # data-quality flags, empty = all sources healthy
    rq_hist: Log2Histogram | None = None
    resp_hist: Log2Histogram | None = None
    turn_hist: Log2Histogram | None = None
    wake_hist: Log2Histogram | None = None
    preempt_hist: Log2Histogram | None = None
    ext_hist: Log2Histogram | None = None   # external wakeups (subset of wake)
    sched_source: str = "none"
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_mono - self.start_mono
