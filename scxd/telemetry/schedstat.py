"""Degraded scheduling source: per-thread /proc/<pid>/task/<tid>/schedstat, no BPF.

Used when BPF cannot load (no headers, no permission, old kernel).  It yields the total
runqueue wait and the number of switch-ins over each interval (so the mean runqueue latency),
and per-thread CPU time for the fairness figure, but no latency distribution, no new-task
response time and no turnaround time: those fields stay ``None`` and the window is flagged.
Costs one file read per thread per sample.
"""

from __future__ import annotations

from scxd.hostfs import HostFS
from scxd.types import SchedSample, TaskWindow


class SchedstatSource:
    name = "schedstat"

    def __init__(self, host: HostFS):
        self.host = host
        self._prev: dict[int, tuple[int, int, int]] | None = None
        self._window_prev: dict[int, tuple[int, int, int]] = {}
        self._last: dict[int, tuple[int, int, int]] = {}

    def _snapshot(self) -> dict[int, tuple[int, int, int]]:
        return {tid: (s.oncpu_ns, s.wait_ns, s.timeslices)
                for tid, s in self.host.thread_schedstats()}

    def load(self) -> None:
        """Prime the counters; raises OSError when schedstat is unreadable here."""
        snap = self._snapshot()
        if not snap:
            raise OSError("no /proc/<pid>/task/<tid>/schedstat readable (CONFIG_SCHED_INFO "
                          "off?)")
        self._prev = self._window_prev = self._last = snap

    def close(self) -> None:
        self._prev = None

    def read(self) -> SchedSample:
        if self._prev is None:
            raise RuntimeError("schedstat source is not loaded")
        now = self._snapshot()
        wait = slices = 0
        for tid, (_cpu, w, n) in now.items():
            old = self._prev.get(tid)
            if old is None or w < old[1]:
                continue  # born in this interval (its wait is counted from the next one)
            wait += w - old[1]
            slices += n - old[2]
        vanished = sum(1 for tid in self._prev if tid not in now)
        self._prev = self._last = now
        return SchedSample(source="schedstat", rq_count=slices, rq_sum_ns=wait, rq_hist=None,
                           resp_hist=None, turn_hist=None, switches=slices, exits=vanished)

    def window_task_cpu(self, exited: tuple = ()) -> tuple[int, ...]:
        """CPU time per thread since the previous call, for threads that waited meanwhile."""
        return tuple(t.oncpu_ns for t in self.window_tasks(exited) if t.wait_ns > 0)

    def window_tasks(self, exited: tuple = ()) -> tuple[TaskWindow, ...]:
        """Per thread since the previous call (threads that ran or waited): schedstat has
        no wakeup/preemption split, so those fields are -1."""
        now, prev = self._last, self._window_prev
        tasks = []
        for tid, (cpu, wait, _n) in now.items():
            old = prev.get(tid)
            if old is None or cpu < old[0] or wait < old[1]:
                old = (0, 0, 0)
            if cpu > old[0] or wait > old[1]:
                tasks.append(TaskWindow(cpu - old[0], wait - old[1], -1, -1, pid=tid))
        self._window_prev = now
        return tuple(tasks)
