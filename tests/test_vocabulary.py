"""One vocabulary per concept: guard events, swap outcomes, failure reasons, actuator events,
histogram names, exported metric families and RPC error codes are each an enum beside the
code that produces them.  These tests prove that every value produced is a member (and that
producers never pass a bare string), and that consumers (metrics, dashboards, alert rules)
use only members."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from scxd.actuator import ActuatorEventKind, FailureReason, SwapOutcome
from scxd.catalog import build_catalog
from scxd.config import GuardConfig
from scxd.control import RpcError
from scxd.guard import Guard, GuardEventKind
from scxd.histogram import Log2Histogram, WindowHistogram
from scxd.metrics import MetricName, MetricsBoard, MetricsState, ScxdCollector
from scxd.types import SchedSample, Window

ROOT = Path(__file__).resolve().parent.parent
SCXD = ROOT / "scxd"

#: call → (which positional argument carries the vocabulary, the enum it must come from)
PRODUCERS = {
    ("guard.py", "_event"): (0, "GuardEventKind"),
    ("guard.py", "GuardEvent"): (0, "GuardEventKind"),
    ("actuator.py", "_event"): (0, "ActuatorEventKind"),
    ("actuator.py", "ActuatorEvent"): (0, "ActuatorEventKind"),
    ("actuator.py", "ApplyResult"): (0, "SwapOutcome"),
    ("actuator.py", "_Failure"): (0, "FailureReason"),
}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            yield name, node


@pytest.mark.parametrize("module,call", sorted(PRODUCERS))
def test_producers_never_pass_a_bare_string(module, call):
    pos, enum = PRODUCERS[(module, call)]
    seen = 0
    for name, node in _calls(SCXD / module):
        if name != call or len(node.args) <= pos:
            continue
        seen += 1
        arg = node.args[pos]
        assert not isinstance(arg, ast.Constant), (
            f"{module}:{node.lineno}: {call}({arg.value!r}, …) — use {enum}")
        if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name):
            assert arg.value.id == enum, f"{module}:{node.lineno}: {ast.unparse(arg)}"
    assert seen or call in ("GuardEvent", "ActuatorEvent"), f"no {call} calls in {module}?"


def test_rpc_errors_are_raised_with_the_enum():
    """Every ControlError anywhere in scxd is built from an RpcError member."""
    for path in SCXD.rglob("*.py"):
        for name, node in _calls(path):
            if name == "ControlError" and node.args:
                arg = node.args[0]
                text = ast.unparse(arg)
                assert not isinstance(arg, ast.Constant | ast.UnaryOp), \
                    f"{path.name}:{node.lineno}: ControlError({text}, …) — use RpcError"
                assert text.startswith("RpcError.") or text in (
                    "code", "e.get('code', INTERNAL_ERROR)", "INVALID_REQUEST",
                    "PARSE_ERROR", "METHOD_NOT_FOUND", "INVALID_PARAMS", "INTERNAL_ERROR",
                    "PERMISSION_DENIED", "BUSY", "FAILED"), f"{path.name}:{node.lineno}: {text}"


def test_every_guard_event_kind_is_produced():
    """Drive the guard through every rule: the kinds it emits are exactly the enum."""
    cat = build_catalog()
    fair, simple, qmap = cat.fair(), cat.action("scx_simple"), cat.action("scx_qmap")
    cfg = GuardConfig(min_dwell=10, swaps_per_hour=1, regression_windows=2,
                      regression_margin=0.1, panic_failures=2, warmup_windows=0)
    g = Guard(cfg, current_since=0.0)
    events = [g.freeze(0.0, 5.0), *g.review(simple, fair, fair, 1.0).events]   # frozen_hold
    events += g.review(simple, fair, fair, 6.0).events                          # expired
    events.append(g.thaw())
    events += g.review(simple, fair, fair, 7.0).events                          # dwell_hold
    g.on_swap(20.0, True, left=fair)
    events += g.review(qmap, simple, fair, 40.0).events                         # budget_hold
    g.record_cost(1.0)
    g.record_cost(1.0)
    events += g.review(qmap, simple, fair, 41.0, baseline=0.0,
                       fair_costs=[0.0, 0.01, -0.01]).events                    # regression
    events += g.review(simple, fair, fair, 42.0).events                         # quarantine
    g2 = Guard(GuardConfig(min_dwell=0), current_since=0.0)
    g2.record_cost(5.0)
    events += g2.review(qmap, simple, fair, 1.0, baseline=0.0).events           # reanchor
    events += [g.pin(qmap), g.unpin()]
    events += g.on_apply_result(False, "x", 50.0) + g.on_apply_result(False, "x", 51.0)
    kinds = [e.kind for e in events]
    assert all(isinstance(k, GuardEventKind) for k in kinds)
    assert set(kinds) == set(GuardEventKind)


def test_histogram_names_are_the_fields_that_carry_histograms():
    for cls in (Window, SchedSample):
        fields = {f.name for f in dataclasses.fields(cls) if "Log2Histogram" in str(f.type)}
        assert fields == {h.value for h in WindowHistogram}, cls


def full_state() -> MetricsState:
    """A state in which every optional family has something to say."""
    s = MetricsState(version="t", reward=-0.1, last={"turnaround_avg_s": 0.1,
                     "response_avg_s": 1e-4, "runq_latency_p99_s": 1e-3,
                     "fairness_cv": 0.2, "T_cpu_busy_avg": 50.0},
                     checkpoint_saved_at=1.0, policy_novelty=0.8, policy_novel=0.0)
    s.observe_swap(SwapOutcome.APPLIED, 0.5)
    s.histograms = {h: Log2Histogram.from_values([1000, 2000]) for h in WindowHistogram}
    return s


def test_exported_families_are_exactly_the_metric_names():
    collector = ScxdCollector(MetricsBoard(full_state()))
    names = [f.name for f in collector.collect()]
    assert len(names) == len(set(names))
    assert set(names) == {m.value for m in MetricName}


def test_exported_label_values_come_from_the_enums():
    fams = {f.name: f for f in ScxdCollector(MetricsBoard(MetricsState())).collect()}

    def labels(name: str, label: str) -> set[str]:
        return {s.labels[label] for s in fams[name].samples}

    assert labels(MetricName.GUARD_EVENTS, "kind") == {k.value for k in GuardEventKind}
    assert labels(MetricName.ACTUATOR_EVENTS, "kind") == {k.value for k in ActuatorEventKind}
    assert labels(MetricName.ACTUATOR_FAILURES, "reason") == {r.value for r in FailureReason}
    assert labels(MetricName.SWAPS, "result") == {o.value for o in SwapOutcome} - {"noop"}


SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_info", "_created")


PROCESS = {"scxd_process_cpu_seconds", "scxd_process_resident_memory_bytes",
           "scxd_process_open_fds", "scxd_process_max_fds", "scxd_process_start_time_seconds",
           "scxd_process_virtual_memory_bytes"}  # prometheus_client's ProcessCollector


def referenced_metrics(text: str) -> set[str]:
    known = {m.value for m in MetricName} | PROCESS
    out = set()
    for name in re.findall(r"\bscxd_[a-z0-9_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in known:
                name = name[: -len(suffix)]
        out.add(name)
    return out


@pytest.mark.parametrize("path", ["dashboards/scxd.json", "prometheus/alerts.yml",
                                  "prometheus/alerts_test.yml"])
def test_dashboards_and_alerts_use_only_exported_names(path):
    text = (ROOT / path).read_text()
    if path.endswith(".json"):
        json.loads(text)
    unknown = referenced_metrics(text) - {m.value for m in MetricName} - PROCESS
    assert not unknown, f"{path} uses metrics scxd does not export: {sorted(unknown)}"


def test_rpc_error_codes_are_distinct_and_standard():
    codes = [c.value for c in RpcError]
    assert len(codes) == len(set(codes))
    assert {-32700, -32600, -32601, -32602, -32603} <= set(codes)
    assert all(-32099 <= c <= -32000 for c in codes if c > -32600)  # server-error range
