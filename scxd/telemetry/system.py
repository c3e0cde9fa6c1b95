"""System-wide telemetry from /proc: CPU, context switches, run queue, memory, swap, disk, PSI.

The psutil figures (cpu_times_percent, cpu_stats, virtual_memory, swap_memory,
disk_io_counters, per-process num_ctx_switches/status/num_threads) computed from the same
kernel files, but through :class:`~scxd.hostfs.HostFS` so the root can be a test tree:
psutil hard-codes /sys for disks and keeps its /proc path in a process-wide global.

Counters become deltas between consecutive readings; the first reading only primes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from scxd.hostfs import HostFS
from scxd.procparse import CPU_FIELDS, ProcStat
from scxd.types import CpuPercent, SystemSample

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class _Counters:
    """Cumulative counters of one reading (the state kept between readings)."""

    stat: ProcStat
    pswpin: int
    pswpout: int
    disk_read: int
    disk_write: int
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
        stat = self.host.proc_stat()
        vm = self.host.vmstat()
        mem = self.host.meminfo()
        load = self.host.loadavg()
        disks = self.host.disk_totals()
        psi = {kind: self.host.pressure(kind) for kind in ("cpu", "memory", "io")}
        psi_totals: dict[str, int | None] = {}
        for kind, p in psi.items():
            psi_totals[f"{kind}_some"] = p.some_total_us if p else None
            psi_totals[f"{kind}_full"] = p.full_total_us if p else None
        scan = self._scan_processes() if self.per_process else None
        now = _Counters(stat, vm["pswpin"], vm["pswpout"], disks.read_bytes, disks.write_bytes,
                        psi_totals, scan.switches_by_pid if scan else {})
        prev, prev_mono = self._prev, self._prev_mono
        self._prev, self._prev_mono = now, mono
        if prev is None or prev_mono is None:
            return None
        interval = max(mono - prev_mono, 1e-6)

        cpu_delta = {f: max(0, stat.cpu[f] - prev.stat.cpu[f]) for f in CPU_FIELDS[:8]}
        total = sum(cpu_delta.values()) or 1
        cpu = CpuPercent(**{f: 100.0 * cpu_delta[f] / total for f in CPU_FIELDS[:8]})
        busiest = 0.0
        for (busy_now, tot_now), (busy_old, tot_old) in zip(stat.per_cpu, prev.stat.per_cpu,
                                                            strict=False):
            span = tot_now - tot_old
            if span > 0:
                busiest = max(busiest, 100.0 * (busy_now - busy_old) / span)

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

        cached = mem.get("Cached", 0) + mem.get("SReclaimable", 0)
        buffers = mem.get("Buffers", 0)
        return SystemSample(
            interval_s=interval,
            ncpus=stat.ncpus,
            cpu=cpu,
            busiest_cpu_pct=busiest,
            ctx_switches=max(0, stat.ctxt - prev.stat.ctxt),
            forks=max(0, stat.processes - prev.stat.processes),
            procs_running=stat.procs_running,
            procs_blocked=stat.procs_blocked,
            load1=load.load1,
            load5=load.load5,
            load15=load.load15,
            mem_used=max(0, mem["MemTotal"] - mem["MemFree"] - cached - buffers),
            mem_available=mem["MemAvailable"],
            mem_cached=cached,
            mem_buffers=buffers,
            swap_used=max(0, mem.get("SwapTotal", 0) - mem.get("SwapFree", 0)),
            swap_in_bytes=max(0, now.pswpin - prev.pswpin) * PAGE_SIZE,
            swap_out_bytes=max(0, now.pswpout - prev.pswpout) * PAGE_SIZE,
            disk_read_bytes=max(0, now.disk_read - prev.disk_read),
            disk_write_bytes=max(0, now.disk_write - prev.disk_write),
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
