"""One measured configuration: apply it with the actuator, warm up, run the benchmark.

The actuator applies and verifies in the kernel (state, ops prefix, enable_seq) and rolls
back on failure — a configuration that fails to start is recorded with the actuator's
reason and the search goes on.  After every benchmark run the actuator is polled: a
scheduler ejected or crashed mid-benchmark makes the trial ``ejected`` (its numbers were
not measured under that configuration), and the kernel must still run the configuration at
the end, or the trial is ``lost``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from scxd.actuator import Actuator
from scxd.catalog import Action
from scxd.tune.benchmark import Benchmark, RunResult
from scxd.tune.records import TrialRecord

Status = Callable[[str], None]


class TrialRunner:
    def __init__(self, actuator: Actuator, benchmark: Benchmark, repeats: int, warmup: int,
                 status: Status | None = None):
        if repeats < 1:
            raise ValueError("repeats must be ≥ 1")
        if warmup < 0:
            raise ValueError("warmup must be ≥ 0")
        self.actuator = actuator
        self.benchmark = benchmark
        self.repeats = repeats
        self.warmup = warmup
        self.status = status or (lambda text: None)

    def measure(self, action: Action, record: TrialRecord, repeats: int | None = None
                ) -> TrialRecord:
        """Fill ``record`` (state, values, reason …) by running ``action``."""
        repeats = self.repeats if repeats is None else repeats
        record.started_at = time.time()
        t0 = time.monotonic()
        try:
            self._measure(action, record, repeats)
        finally:
            record.seconds = time.monotonic() - t0
        return record

    def _measure(self, action: Action, record: TrialRecord, repeats: int) -> None:
        self.status(f"{record.label}: applying {action.label()}")
        res = self.actuator.apply(action)
        record.apply = {"outcome": res.outcome, "reason": res.reason,
                        "timings": {"to_disabled_s": res.timings.to_disabled_s,
                                    "to_enabled_s": res.timings.to_enabled_s,
                                    "total_s": res.timings.total_s},
                        "kernel": res.kernel}
        if not res.ok:
            record.state = "failed_to_start"
            record.reason = res.reason or res.outcome
            record.detail = res.detail
            record.output_tail = res.output_tail[-2000:]
            return
        self.actuator.poll()        # settle: consume events from before this trial
        for i in range(self.warmup):
            self.status(f"{record.label}: warm-up {i + 1}/{self.warmup}")
            run = self.benchmark.run()
            record.warmup_values.append(run.value)
            if self._lost(action, record) or not run.ok:
                self._failed(record, run, "warm-up")
                return
        for i in range(repeats):
            self.status(f"{record.label}: repeat {i + 1}/{repeats}"
                        + (f" (last {record.values[-1]:.4g})" if record.values else ""))
            run = self.benchmark.run()
            if self._lost(action, record) or not run.ok:
                self._failed(record, run, f"repeat {i + 1}")
                return
            record.values.append(run.value)
            record.metrics.append(run.metrics)
            record.run_seconds.append(round(run.seconds, 4))
        if not (self.actuator.verified(action) or self.actuator.mode != "active"):
            record.state, record.reason = "lost", "not_running"
            record.detail = f"the kernel no longer runs {action.label()} after the benchmark"
            record.values = []
            return
        record.state = "complete"

    def _lost(self, action: Action, record: TrialRecord) -> bool:
        """Did the scheduler get ejected, crash or replaced while the benchmark ran?"""
        events = self.actuator.poll()
        bad = [e for e in events if e.kind in ("ejected", "crashed", "takeover")]
        if bad:
            record.state = "ejected" if bad[0].kind != "takeover" else "lost"
            record.reason = bad[0].kind
            record.detail = bad[0].detail
            return True
        return False

    def _failed(self, record: TrialRecord, run: RunResult, where: str) -> None:
        if record.state in ("ejected", "lost"):
            record.values = []
            return
        record.state = {"timeout": "timeout", "parse_failed": "parse_failed"}.get(
            run.state, "benchmark_failed")
        record.reason = run.state
        record.detail = f"{where}: {run.error}"
        record.output_tail = (run.stdout_tail[-1000:] + "\n--- stderr ---\n"
                              + run.stderr_tail[-1000:]).strip()
        record.values = []
