"""Log2 histograms of nanosecond durations, as the BPF program fills them.

Slot semantics (see ``bpf/scxd_sched.bpf.c``: ``slot_of``): slot 0 holds exactly 0 ns; slot
``i ≥ 1`` holds ``2^(i-1) ≤ v ≤ 2^i − 1`` ns; the last slot also holds everything larger.
So the *inclusive* upper bound of slot ``i`` is ``2^i − 1`` ns (``+Inf`` for the last slot),
which is what Prometheus' ``le`` label needs.  (bcc's ``bpf_log2l`` differs: it puts 0 and 1
together in slot 1; libbpf-tools' ``log2l`` has no +1.  Those are not used here.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

#: Slots per histogram; slot 47 starts at 2^46 ns ≈ 19.5 h and absorbs the rest.
HIST_SLOTS = 48
NS_PER_S = 1_000_000_000


def slot_of(value_ns: int, slots: int = HIST_SLOTS) -> int:
    """The slot the BPF program puts ``value_ns`` in (mirror of the C ``slot_of``)."""
    if value_ns < 0:
        raise ValueError(f"durations are non-negative, got {value_ns}")
    return min(value_ns.bit_length(), slots - 1)


def slot_lower_ns(i: int) -> int:
    """Smallest value in slot ``i``."""
    return 0 if i == 0 else 1 << (i - 1)


def slot_upper_ns(i: int, slots: int = HIST_SLOTS) -> float:
    """Inclusive upper bound of slot ``i`` in ns; ``inf`` for the overflow slot."""
    if i >= slots - 1:
        return math.inf
    return float((1 << i) - 1)


def le_bounds_seconds(slots: int = HIST_SLOTS) -> list[float]:
    """Prometheus ``le`` bounds (seconds, inclusive), one per slot, last = +Inf."""
    return [slot_upper_ns(i, slots) / NS_PER_S for i in range(slots)]


class WindowHistogram(StrEnum):
    """The distributions the BPF telemetry produces per sample and window.

    Each value is the attribute name on :class:`~scxd.types.SchedSample` and
    :class:`~scxd.types.Window` (and the key under ``hists`` in a journal record).
    """

    RUNQUEUE_LATENCY = "rq_hist"   # runnable → on CPU, every cause: the sum of the next
    WAKEUP_LATENCY = "wake_hist"   # woken from sleep → on CPU        two and of new tasks'
    PREEMPTION_WAIT = "preempt_hist"  # preempted while runnable → on CPU      first waits
    EXTERNAL_WAKEUP = "ext_hist"   # woken by a timer, IRQ or softirq → on CPU (⊂ wakeups)
    RESPONSE = "resp_hist"         # task creation → first run
    TURNAROUND = "turn_hist"       # task creation → exit (tasks born while observed)


@dataclass(frozen=True)
class Log2Histogram:
    """Counts per slot plus the exact count and sum of the observed values."""

    counts: tuple[int, ...]
    sum_ns: int

    @classmethod
    def empty(cls, slots: int = HIST_SLOTS) -> Log2Histogram:
        return cls((0,) * slots, 0)

    @classmethod
    def from_values(cls, values_ns: Sequence[int], slots: int = HIST_SLOTS) -> Log2Histogram:
        counts = [0] * slots
        for v in values_ns:
            counts[slot_of(v, slots)] += 1
        return cls(tuple(counts), sum(values_ns))

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean_ns(self) -> float:
        n = self.count
        return self.sum_ns / n if n else 0.0

    def __add__(self, other: Log2Histogram) -> Log2Histogram:
        if len(self.counts) != len(other.counts):
            raise ValueError("histograms with different slot counts")
        return Log2Histogram(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
                             self.sum_ns + other.sum_ns)

    def __sub__(self, older: Log2Histogram) -> Log2Histogram:
        """Difference of two readings of monotonic counters (newer − older)."""
        diff = tuple(a - b for a, b in zip(self.counts, older.counts, strict=True))
        if any(d < 0 for d in diff) or self.sum_ns < older.sum_ns:
            raise ValueError("histogram went backwards: counters were reset")
        return Log2Histogram(diff, self.sum_ns - older.sum_ns)

    def quantile_ns(self, q: float) -> float:
        """Approximate q-quantile: linear interpolation inside the slot that holds it.

        Exact to within the slot (a factor of two).  The overflow slot reports its lower
        bound, the only honest number.  Empty histogram → 0.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        total = self.count
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, c in enumerate(self.counts):
            if c == 0:
                continue
            if seen + c >= rank:
                lo = slot_lower_ns(i)
                hi = slot_upper_ns(i, len(self.counts))
                if math.isinf(hi):
                    return float(lo)
                frac = (rank - seen) / c
                return lo + frac * (hi - lo)
            seen += c
        return float(slot_lower_ns(len(self.counts) - 1))

    def cumulative(self) -> list[int]:
        out, acc = [], 0
        for c in self.counts:
            acc += c
            out.append(acc)
        return out
