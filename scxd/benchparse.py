"""Parsers for the raw output of the benchmark tools scxd uses as real workloads (pure).

Each parser takes the tool's text output and returns typed figures; none of them decides
what a figure *means* for a workload (that is :mod:`scxd.workloads`).  Formats, as printed
by the Debian 12 versions:

* stress-ng 0.15 ``--metrics-brief`` (after ``stress-ng: metrc: [PID]``)::

      stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
      cpu                2156      2.00      1.80      0.00      1077.99        1200.00

* ``perf bench sched messaging`` / ``perf bench sched pipe``: ``Total time: 0.097 [sec]``;
  pipe adds ``4.888700 usecs/op`` and ``204553 ops/sec``;
* hackbench (rt-tests): ``Time: 0.448``;
* cyclictest (rt-tests, ``-q``): one summary line per thread,
  ``T: 0 ( 1234) P: 0 I:2000 C:   4999 Min:  12 Act:  40 Avg:  61 Max:  912`` (µs);
* :func:`timed_loop` lines written by :func:`scxd.workloads.timed_loop`:
  ``@@iteration_s 0.412``.

A parser finds nothing rather than guessing: missing lines give an empty result, and
:mod:`scxd.workloads` records the outcome as missing for that cell.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class StressorMetrics:
    """One stressor's ``--metrics-brief`` row."""

    name: str
    bogo_ops: int
    real_s: float
    usr_s: float
    sys_s: float
    bogo_ops_per_s: float           # per second of wall-clock time

    @property
    def bogo_ops_per_cpu_s(self) -> float:
        """Per second of CPU time used (usr+sys); 0 when no CPU time was reported."""
        cpu = self.usr_s + self.sys_s
        return self.bogo_ops / cpu if cpu > 0 else 0.0


_STRESS = re.compile(r"metrc: \[\d+\] (\w[\w-]*)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
                     r"([\d.]+)")


def stress_ng(text: str) -> dict[str, StressorMetrics]:
    """Rows of ``stress-ng --metrics-brief``, by stressor name (the header row has no
    numbers and does not match)."""
    out = {}
    for m in _STRESS.finditer(text):
        out[m.group(1)] = StressorMetrics(m.group(1), int(m.group(2)), float(m.group(3)),
                                          float(m.group(4)), float(m.group(5)),
                                          float(m.group(6)))
    return out


_PERF_TOTAL = re.compile(r"Total time: ([\d.]+) \[sec\]")
_PERF_USECS = re.compile(r"^\s*([\d.]+) usecs/op", re.M)


def perf_total_seconds(text: str) -> list[float]:
    """``Total time`` of every ``perf bench sched messaging|pipe`` run in ``text``."""
    return [float(x) for x in _PERF_TOTAL.findall(text)]


def perf_pipe_usecs_per_op(text: str) -> list[float]:
    """``usecs/op`` of every ``perf bench sched pipe`` run in ``text``."""
    return [float(x) for x in _PERF_USECS.findall(text)]


_HACKBENCH = re.compile(r"^Time: ([\d.]+)", re.M)


def hackbench_seconds(text: str) -> list[float]:
    """``Time`` of every hackbench run in ``text``."""
    return [float(x) for x in _HACKBENCH.findall(text)]


@dataclass(frozen=True)
class CyclictestThread:
    """One measuring thread's summary (latencies in µs)."""

    thread: int
    cycles: int
    min_us: int
    avg_us: int
    max_us: int


_CYCLICTEST = re.compile(r"T:\s*(\d+).*?C:\s*(\d+)\s+Min:\s*(\d+)\s+Act:\s*\d+\s+"
                         r"Avg:\s*(\d+)\s+Max:\s*(\d+)")


def cyclictest(text: str) -> list[CyclictestThread]:
    """Per-thread summaries of cyclictest (``-q`` prints them once, at the end)."""
    return [CyclictestThread(int(t), int(c), int(mn), int(avg), int(mx))
            for t, c, mn, avg, mx in _CYCLICTEST.findall(text)]


@dataclass(frozen=True)
class CyclictestSummary:
    threads: int
    cycles: int
    avg_us: float                   # cycle-weighted mean over threads
    max_us: int


def cyclictest_summary(text: str) -> CyclictestSummary | None:
    threads = cyclictest(text)
    cycles = sum(t.cycles for t in threads)
    if not threads or cycles == 0:
        return None
    avg = sum(t.avg_us * t.cycles for t in threads) / cycles
    return CyclictestSummary(len(threads), cycles, avg, max(t.max_us for t in threads))


TIMED_LOOP_MARK = "@@iteration_s"
_TIMED = re.compile(r"^" + TIMED_LOOP_MARK + r" ([\d.]+)$", re.M)


def timed_loop(text: str) -> list[float]:
    """Iteration times (s) printed by :func:`scxd.workloads.timed_loop`."""
    return [float(x) for x in _TIMED.findall(text)]


def mean_or_none(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None
