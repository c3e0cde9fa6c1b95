"""The Prometheus collector on its own: an explicit registry, no HTTP, no Prometheus
binaries.  Exposition text is parsed back with prometheus_client's own parser."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scxd.actuator import SwapOutcome
from scxd.histogram import Log2Histogram, WindowHistogram
from scxd.metrics import MetricName, MetricsBoard, MetricsState, ScxdCollector


def scrape(state: MetricsState, requests: int = 0) -> dict:
    board = MetricsBoard(state)
    for _ in range(requests):
        board.count_request("status", "ok")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScxdCollector(board))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, name: str, suffix: str = "", **labels) -> float:
    """The value of sample ``name + suffix`` with those labels (whatever family holds it:
    the text format types info metrics as gauges named ``…_info``)."""
    for fam in fams.values():
        for s in fam.samples:
            if s.name == name + suffix and all(s.labels.get(k) == v
                                               for k, v in labels.items()):
                return s.value
    raise KeyError((name, suffix, labels))


def test_counters_gauges_and_info_carry_the_state():
    s = MetricsState(version="9.9", mode="active", policy="rule", objective="latency",
                     windows=7, windows_scored=5, frozen=True, kernel_state="enabled",
                     kernel_enable_seq=3, reward=-0.25)
    s.scheduler = {"scheduler": "scx_simple", "args": "-f", "preset": "fifo"}
    s.guard_events["freeze"] += 2
    s.actuator_events["crashed"] += 1
    s.actuator_failures["ebusy"] += 1
    s.observe_swap(SwapOutcome.APPLIED, 0.3)
    s.observe_swap(SwapOutcome.APPLIED, 2.0)
    fams = scrape(s, requests=3)
    assert sample(fams, "scxd", "_info", version="9.9", mode="active") == 1
    assert sample(fams, "scxd_scheduler", "_info", scheduler="scx_simple", args="-f") == 1
    assert sample(fams, MetricName.WINDOWS, "_total") == 7
    assert sample(fams, MetricName.WINDOWS_SCORED, "_total") == 5
    assert sample(fams, MetricName.FROZEN) == 1 and sample(fams, MetricName.PINNED) == 0
    assert sample(fams, MetricName.KERNEL_STATE, state="enabled") == 1
    assert sample(fams, MetricName.KERNEL_STATE, state="disabled") == 0
    assert sample(fams, MetricName.GUARD_EVENTS, "_total", kind="freeze") == 2
    assert sample(fams, MetricName.GUARD_EVENTS, "_total", kind="panic") == 0  # pre-exported
    assert sample(fams, MetricName.ACTUATOR_EVENTS, "_total", kind="crashed") == 1
    assert sample(fams, MetricName.ACTUATOR_FAILURES, "_total", reason="ebusy") == 1
    assert sample(fams, MetricName.SWAPS, "_total", result="applied") == 2
    assert sample(fams, MetricName.SWAP_DURATION, "_bucket", result="applied", le="0.5") == 1
    assert sample(fams, MetricName.SWAP_DURATION, "_bucket", result="applied", le="+Inf") == 2
    assert sample(fams, MetricName.SWAP_DURATION, "_sum", result="applied") == 2.3
    assert sample(fams, MetricName.REWARD) == -0.25
    assert sample(fams, MetricName.CONTROL_REQUESTS, "_total", method="status",
                  outcome="ok") == 3


def test_bpf_histograms_have_inclusive_le_bounds_in_seconds():
    s = MetricsState()
    # 1000 and 1023 ns have bit_length 10 → slot 10, whose inclusive upper bound is
    # 2^10 − 1 = 1023 ns; 1024 ns starts slot 11; 0 ns has a slot of its own.
    s.histograms[WindowHistogram.RUNQUEUE_LATENCY] = Log2Histogram.from_values([1000, 1023,
                                                                                1024, 0])
    fams = scrape(s)
    name = MetricName.RUNQUEUE_LATENCY
    assert sample(fams, name, "_bucket", le="0.0") == 1                 # exactly 0 ns
    assert sample(fams, name, "_bucket", le="1.023e-06") == 3           # ≤ 1023 ns
    assert sample(fams, name, "_bucket", le="2.047e-06") == 4
    assert sample(fams, name, "_bucket", le="+Inf") == 4
    assert sample(fams, name, "_count") == 4
    assert math.isclose(sample(fams, name, "_sum"), 3047e-9)


def test_absent_figures_are_absent_not_zero():
    fams = scrape(MetricsState())
    names = {s.name for f in fams.values() for s in f.samples}
    assert MetricName.REWARD not in names and MetricName.FAIRNESS_CV not in names
    assert MetricName.WINDOWS in fams  # counters always present


def test_the_novelty_gauges_appear_only_for_a_policy_that_reports_them():
    """asa reports how unlike its training workloads the last window was; a policy that
    reports nothing exports no such gauge rather than a misleading 0."""
    fams = scrape(MetricsState(policy="asa", policy_novelty=1.75, policy_novel=1.0))
    assert sample(fams, MetricName.POLICY_NOVELTY) == 1.75
    assert sample(fams, MetricName.POLICY_NOVEL) == 1.0
    fams = scrape(MetricsState(policy="network"))
    assert MetricName.POLICY_NOVELTY not in fams and MetricName.POLICY_NOVEL not in fams
