"""System-wide telemetry: CPU, context switches, run queue, memory, swap, disk, network, PSI.

Through psutil where it reads the figure (pointed at the injected root, see
:meth:`~scxd.hostfs.HostFS._psutil`): per-CPU times, context switches, memory, swap and
swap traffic, per-disk and per-interface I/O.  By hand, only what psutil does not read:
``procs_running``/``procs_blocked``/forks from /proc/stat, the load average (psutil's is
``os.getloadavg()``, which cannot read a test root), PSI, and the per-process scan of
/proc/<pid>/status (states, threads, voluntary/involuntary switches) — psutil reads the same
figures from two files per process through its Process objects, measured at twice the cost
of this scan on every sample (bench/sampler_cost.py).

Counters become deltas between consecutive readings; the first reading only primes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from scxd.hostfs import HostFS
from scxd.procparse import CPU_FIELDS
from scxd.types import CpuPercent, SystemSample

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: psutil turns /proc/vmstat's pswpin/pswpout (pages) into bytes assuming 4 KiB pages.
PSUTIL_SWAP_PAGE = 4096


#: psutil's per-CPU time fields that add up to the CPU's time (guest is inside user/nice).
CPU_TIME_FIELDS = CPU_FIELDS[:8]


@dataclass(frozen=True)
class _Counters:
    """Cumulative counters of one reading (the state kept between readings)."""

    cpu: tuple[tuple[float, ...], ...]   # per CPU, seconds per CPU_TIME_FIELDS
    ctx_switches: int
    forks: int
    swap_in: int                         # bytes since boot
    swap_out: int
    disk_read: int
    disk_write: int
    net: tuple[int, int, int, int] | None  # recv/sent bytes, recv/sent packets
    psi_total_us: dict[str, int | None]
    switches_by_pid: dict[int, tuple[int, int]]


@dataclass(frozen=True)
class _ProcessScan:
    switches_by_pid: dict[int, tuple[int, int]]
    processes: int
    threads: int
    threads_running: int
    processes_blocked: int


class SystemSource:
    """Reads the system counters; :meth:`read` returns None on the priming call."""

    name = "system"

    def __init__(self, host: HostFS, per_process: bool = True):
        self.host = host
        self.per_process = per_process
        self._prev: _Counters | None = None
        self._prev_mono: float | None = None

    def _scan_processes(self) -> _ProcessScan:
        switches: dict[int, tuple[int, int]] = {}
        threads = running = blocked = 0
        for pid in self.host.pids():
            try:
                status = self.host.pid_status(pid)
            except (OSError, ValueError):
                continue  # exited mid-read, or a kernel thread with a partial file
            if status is None:
                continue
            switches[pid] = (status.voluntary_ctxt_switches, status.nonvoluntary_ctxt_switches)
            threads += status.threads
            if status.state == "R":
                running += status.threads
            elif status.state == "D":
                blocked += 1
        return _ProcessScan(switches, len(switches), threads, running, blocked)

    def read(self, mono: float) -> SystemSample | None:
        h = self.host
        cpu = tuple(tuple(getattr(t, f) for f in CPU_TIME_FIELDS) for t in h.cpu_times())
        stat = h.proc_stat()
        ctx = h.cpu_stats().ctx_switches
        mem = h.memory()
        swap = h.swap()
        load = h.loadavg()
        disks = h.disk_totals()
        net = h.net_totals()
        psi = {kind: h.pressure(kind) for kind in ("cpu", "memory", "io")}
        psi_totals: dict[str, int | None] = {}
        for kind, p in psi.items():
            psi_totals[f"{kind}_some"] = p.some_total_us if p else None
            psi_totals[f"{kind}_full"] = p.full_total_us if p else None
        scan = self._scan_processes() if self.per_process else None
        # Back to pages, then bytes at this kernel's page size (64 KiB on some arm64).
        swap_in = swap.sin // PSUTIL_SWAP_PAGE * PAGE_SIZE
        swap_out = swap.sout // PSUTIL_SWAP_PAGE * PAGE_SIZE
        now = _Counters(cpu, ctx, stat.processes, swap_in, swap_out, disks.read_bytes,
                        disks.write_bytes, (net.recv_bytes, net.sent_bytes, net.recv_packets,
                                            net.sent_packets) if net else None,
                        psi_totals, scan.switches_by_pid if scan else {})
        prev, prev_mono = self._prev, self._prev_mono
        self._prev, self._prev_mono = now, mono
        if prev is None or prev_mono is None:
            return None
        interval = max(mono - prev_mono, 1e-6)

        # Per-CPU deltas (a CPU's counters never go back; max() guards hotplug resets).
        deltas = [[max(0.0, a - b) for a, b in zip(c_now, c_old, strict=True)]
                  for c_now, c_old in zip(now.cpu, prev.cpu, strict=False)]
        summed = [sum(col) for col in zip(*deltas, strict=True)] if deltas else \
            [0.0] * len(CPU_TIME_FIELDS)
        total = sum(summed) or 1.0
        shares = dict(zip(CPU_TIME_FIELDS, summed, strict=True))
        cpu_pct = CpuPercent(**{f: 100.0 * shares[f] / total for f in CPU_TIME_FIELDS})
        busiest = 0.0
        for d in deltas:
            span = sum(d)
            if span > 0:  # busy = all but idle and iowait
                busiest = max(busiest, 100.0 * (span - d[3] - d[4]) / span)

        def psi_pct(key: str) -> float | None:
            a, b = now.psi_total_us.get(key), prev.psi_total_us.get(key)
            if a is None or b is None:
                return None
            return min(100.0, max(0.0, (a - b) / (interval * 1e6) * 100.0))

        vol = invol = None
        if scan is not None:
            vol = invol = 0
            for pid, (v, i) in scan.switches_by_pid.items():
                old = prev.switches_by_pid.get(pid, (0, 0))
                # A pid seen for the first time was born in this interval (its whole count
                # is new); a recycled pid whose count went down is treated the same way.
                dv, di = v - old[0], i - old[1]
                vol += v if dv < 0 else dv
                invol += i if di < 0 else di

        def delta(a: int, b: int) -> int:
            return max(0, a - b)

        net_d = (tuple(delta(a, b) for a, b in zip(now.net, prev.net, strict=True))
                 if now.net is not None and prev.net is not None else None)
        return SystemSample(
            interval_s=interval,
            ncpus=max(len(now.cpu), 1),
            cpu=cpu_pct,
            busiest_cpu_pct=busiest,
            ctx_switches=delta(now.ctx_switches, prev.ctx_switches),
            forks=delta(now.forks, prev.forks),
            procs_running=stat.procs_running,
            procs_blocked=stat.procs_blocked,
            load1=load.load1,
            load5=load.load5,
            load15=load.load15,
            # psutil ≥ 6 calls total − available "used"; the window metric keeps its
            # meaning since the first recordings: total − free − cache − buffers.
            mem_used=max(0, mem.total - mem.free - mem.cached - mem.buffers),
            mem_available=mem.available,
            mem_cached=mem.cached,
            mem_buffers=mem.buffers,
            swap_used=max(0, swap.used),
            swap_in_bytes=delta(now.swap_in, prev.swap_in),
            swap_out_bytes=delta(now.swap_out, prev.swap_out),
            disk_read_bytes=delta(now.disk_read, prev.disk_read),
            disk_write_bytes=delta(now.disk_write, prev.disk_write),
            net_recv_bytes=net_d[0] if net_d else None,
            net_sent_bytes=net_d[1] if net_d else None,
            net_recv_packets=net_d[2] if net_d else None,
            net_sent_packets=net_d[3] if net_d else None,
            voluntary_switches=vol,
            involuntary_switches=invol,
            processes=scan.processes if scan else None,
            threads=scan.threads if scan else None,
            threads_running=scan.threads_running if scan else None,
            processes_blocked=scan.processes_blocked if scan else None,
            psi_cpu_some=psi_pct("cpu_some"),
            psi_memory_some=psi_pct("memory_some"),
            psi_memory_full=psi_pct("memory_full"),
            psi_io_some=psi_pct("io_some"),
            psi_io_full=psi_pct("io_full"),
        )
