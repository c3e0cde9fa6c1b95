"""Windows from synthetic samples, and the feature vector built from them."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from scxd.features import FEATURE_NAMES, FEATURES, SCHEMA_VERSION, TRANSFORMS, featurize
from scxd.histogram import Log2Histogram
from scxd.types import CpuPercent, Sample, SchedSample, SystemSample, TaskExit
from scxd.window import (
    Windower,
    coefficient_of_variation,
    pct_change,
    window_from_dict,
    window_to_dict,
)

#: Features the synthetic samples below cannot give (no per-task times, no external wakeups).
NEEDS_TASKS_OR_EXT = {"ext_wake_lat_mean", "light_wake_lat", "light_cpu_share"}


def system(**kw) -> SystemSample:
    base = dict(interval_s=1.0, ncpus=2, cpu=CpuPercent(30, 0, 10, 60, 0, 0, 0, 0),
                busiest_cpu_pct=70.0, ctx_switches=1000, forks=4, procs_running=3,
                procs_blocked=0, load1=1.5, load5=1.0, load15=0.5, mem_used=1 << 30,
                mem_available=2 << 30, mem_cached=0, mem_buffers=0, swap_used=0,
                swap_in_bytes=0, swap_out_bytes=0, disk_read_bytes=100, disk_write_bytes=300,
                voluntary_switches=50, involuntary_switches=5, processes=10, threads=20,
                threads_running=2, processes_blocked=0, psi_cpu_some=5.0, psi_memory_some=0.0,
                psi_memory_full=0.0, psi_io_some=1.0, psi_io_full=0.0)
    base.update(kw)
    return SystemSample(**base)


def sched(waits=(1000, 3000), exits=(), preempt_waits=(8000,)) -> SchedSample:
    wake = Log2Histogram.from_values(list(waits))
    preempt = Log2Histogram.from_values(list(preempt_waits))
    resp = Log2Histogram.from_values([2000])
    h = wake + preempt + resp
    return SchedSample(source="bpf", rq_count=h.count, rq_sum_ns=h.sum_ns, rq_hist=h,
                       wake_hist=wake, preempt_hist=preempt, resp_hist=resp,
                       turn_hist=Log2Histogram.from_values([10**9]), switches=10, wakeups=5,
                       new_tasks=1, preemptions=2, exits=len(exits), task_exits=tuple(exits),
                       bpf_run_time_ns=3000, bpf_run_cnt=10)


def samples(n=5, t0=0.0, **kw):
    return [Sample(mono=t0 + i + 1, wall=1000 + t0 + i + 1, system=kw.get("system", system()),
                   sched=kw.get("sched", sched()), window_task_cpu_ns=kw.get("shares", (5, 5))
                   if i == n - 1 else (), closes_window=i == n - 1) for i in range(n)]


def close(windower, batch):
    out = [windower.add(s) for s in batch]
    assert all(w is None for w in out[:-1])
    return out[-1]


def test_window_aggregates():
    w = close(Windower(1.0), samples(5))
    m = w.metrics
    assert w.n_samples == 5 and w.duration_s == pytest.approx(5.0)
    assert m["T_cpu_user_avg"] == pytest.approx(30) and m["T_cpu_busy_avg"] == pytest.approx(40)
    assert m["ctx_switches_total_delta"] == 5000
    assert m["ctx_switches_per_s_per_core"] == pytest.approx(500)
    assert m["runq_per_core"] == pytest.approx(1.5)
    assert m["runq_waits_total_delta"] == 20  # 2 wakeups + 1 preemption + 1 new task, × 5
    assert m["runq_latency_mean_s"] == pytest.approx(14000 / 4 * 1e-9)
    assert 4.096e-6 <= m["runq_latency_p99_s"] <= 16.383e-6
    # The split: wakeups (1 and 3 µs) and the preemption wait (8 µs) apart.
    assert m["wakeup_latency_mean_s"] == pytest.approx(2e-6)
    assert 2.048e-6 <= m["wakeup_latency_p99_s"] <= 4.095e-6
    assert m["preempt_wait_mean_s"] == pytest.approx(8e-6)
    assert m["wakeup_waits_per_s_per_core"] == pytest.approx(10 / 5 / 2)
    assert m["preempt_wait_per_s_per_core"] == pytest.approx(5 * 8e-6 / 5 / 2)
    assert m["turnaround_avg_s"] == pytest.approx(1.0)
    assert m["response_avg_s"] == pytest.approx(2e-6)
    assert m["fairness_cv"] == 0.0 and m["fairness_tasks"] == 2
    assert m["collector_bpf_ns_per_event"] == pytest.approx(300)
    assert w.quality == ("no_previous_window",)
    assert w.rq_hist.count == 20 and w.wake_hist.count == 10 and w.preempt_hist.count == 5


def test_pct_change_against_previous_window():
    win = Windower(1.0)
    close(win, samples(5))
    busier = system(ctx_switches=2000)
    w2 = close(win, samples(5, t0=5, system=busier))
    assert w2.metrics["ctx_switches_per_s_per_core_pct_change"] == pytest.approx(100.0)
    assert "no_previous_window" not in w2.quality


def test_pct_change_bounds():
    assert pct_change(0, 0) == 0 and pct_change(5, 0) == 1000 and pct_change(-5, 0) == -1000
    assert pct_change(1e9, 1) == 1000 and pct_change(50, 100) == -50


def test_cv():
    assert coefficient_of_variation([1, 1, 1]) == 0
    assert coefficient_of_variation([0, 2]) == pytest.approx(1.0)
    assert coefficient_of_variation([7]) == 0 and coefficient_of_variation([]) == 0


def test_degraded_and_failed_sources_are_flagged():
    batch = samples(5)
    batch[2] = replace(batch[2], system=None, errors=("system: OSError: boom",))
    schedstat = SchedSample(source="schedstat", rq_count=4, rq_sum_ns=400, rq_hist=None,
                            resp_hist=None, turn_hist=None)
    batch = [replace(s, sched=schedstat) for s in batch]
    w = close(Windower(1.0), batch)
    assert "system:error" in w.quality and "sched:schedstat" in w.quality
    assert "runq_latency_p99_s" not in w.metrics
    assert w.metrics["runq_latency_mean_s"] == pytest.approx(1e-7)
    assert w.extras["errors"] == ["system: OSError: boom"]
    fv = featurize(w)
    assert "rq_lat_p99" in fv.missing and "turnaround_avg" in fv.missing


def test_late_samples_flagged():
    batch = samples(5)
    batch[3] = replace(batch[3], mono=batch[3].mono + 0.9)
    w = close(Windower(1.0), batch)
    assert "late_samples" in w.quality
    assert w.metrics["sampling_jitter_max_s"] == pytest.approx(0.9)


def test_exits_by_comm():
    ex = [TaskExit(i, i, "make" if i % 2 else "cc1", 1, 2, 3, 1, 1) for i in range(5)]
    w = close(Windower(1.0), samples(5, sched=sched(exits=ex)))
    assert w.extras["exits_by_comm"] == {"make": 2 * 5, "cc1": 3 * 5}


def test_round_trip_dict():
    w = close(Windower(1.0), samples(5))
    assert window_from_dict(window_to_dict(w)) == w


def test_features_are_finite_named_and_versioned():
    w = close(Windower(1.0), samples(5))
    fv = featurize(w)
    assert fv.version == SCHEMA_VERSION and len(fv.values) == len(FEATURE_NAMES)
    assert fv.values.dtype == np.float32 and np.all(np.isfinite(fv.values))
    assert fv.as_dict()["cpu_user"] == pytest.approx(0.30)
    assert fv.as_dict()["rq_lat_mean"] == pytest.approx(math.log1p(14000 / 4 / 1000))
    # These samples carry no per-task times and no external-wakeup histogram.
    assert set(fv.missing) == NEEDS_TASKS_OR_EXT


def test_features_survive_hostile_metrics():
    w = close(Windower(1.0), samples(5))
    hostile = replace(w, metrics={k: v for k, v in w.metrics.items()} | {
        "T_cpu_user_avg": float("nan"), "runq_latency_p99_s": float("inf"),
        "forks_per_s": -5.0, "T_cpu_busy_pct_change": 1e12})
    fv = featurize(hostile)
    assert np.all(np.isfinite(fv.values))
    assert "cpu_user" in fv.missing and "rq_lat_p99" in fv.missing
    assert fv.as_dict()["fork_rate"] == 0.0 and fv.as_dict()["busy_change"] == 1.0


@pytest.mark.parametrize("spec", FEATURES, ids=lambda f: f.name)
def test_every_feature_has_a_known_transform_and_doc(spec):
    assert spec.transform in TRANSFORMS and spec.doc and spec.unit
    for raw in (0.0, 1.0, 1e9, -1.0):
        assert math.isfinite(TRANSFORMS[spec.transform](raw))


def test_light_tasks_wakeup_latency():
    """Two hogs and a periodic waker over 2 s on 2 CPUs: the waker (and only it) is light;
    its wakeup latency is the light-task figure, whatever the hogs waited."""
    from scxd.types import TaskWindow
    from scxd.window import light_task_metrics

    hog = TaskWindow(1_900_000_000, 100_000_000, 0, 0)
    waker = TaskWindow(20_000_000, 30_000_000, 30_000_000, 1000)
    m = light_task_metrics([hog, hog, waker], 2.0, 2)
    assert m["active_tasks"] == 3 and m["light_tasks"] == 1
    assert m["light_wakeup_latency_mean_s"] == pytest.approx(30e-6)
    assert m["light_cpu_share"] == pytest.approx(0.02 / 2 / 2)
    # A herd of equal tasks has no light task: their waits are time-sharing.
    herd = [TaskWindow(50_000_000, 40_000_000, 40_000_000, 500)] * 80
    assert light_task_metrics(herd, 2.0, 2)["light_tasks"] == 0
    # schedstat (no split): nothing claimed.
    assert light_task_metrics([TaskWindow(1, 1, -1, -1)], 2.0, 2) == {}


def test_external_wait_share_is_the_worst_user_task():
    """A periodic task waiting 40 % of its time after timer wakeups is the figure; a
    kernel thread (RCU, kworker) waiting longer is left out; schedstat claims nothing."""
    from scxd.types import TaskWindow
    from scxd.window import external_wait_metrics

    periodic = TaskWindow(10_000_000, 800_000_000, 800_000_000, 200, 800_000_000, 200, pid=7)
    rcu = TaskWindow(1_000_000, 1_500_000_000, 1_500_000_000, 90, 1_500_000_000, 90, pid=9,
                     kthread=True)
    piped = TaskWindow(500_000_000, 300_000_000, 300_000_000, 5000, 0, 0, pid=8)
    m = external_wait_metrics([periodic, rcu, piped], 2.0)
    assert m["external_wait_share_max"] == pytest.approx(0.4)
    assert m["external_wakers"] == 1
    assert external_wait_metrics([TaskWindow(1, 1, -1, -1)], 2.0) == {}


def test_features_do_not_depend_on_the_window_length():
    """The same steady load seen through 2 s windows (the test bed's) and 5 s windows (the
    daemon's) gives the same feature vector: every feature is a rate, mean, share or
    percentile, never a per-window total (schema v2; v1's voluntary_share was not)."""
    vectors = {}
    for n in (2, 5):
        w = Windower(1.0)
        close(w, samples(n))                 # a first window, so changes are measured
        window = close(w, samples(n, t0=n))
        fv = featurize(window)
        assert set(fv.missing) == NEEDS_TASKS_OR_EXT, fv.missing
        vectors[n] = fv.as_dict()
    differ = {k: (vectors[2][k], vectors[5][k]) for k in FEATURE_NAMES
              if not math.isclose(vectors[2][k], vectors[5][k], rel_tol=1e-5, abs_tol=1e-6)}
    assert not differ


def test_refeature_recomputes_features_from_stored_metrics(tmp_path):
    """A packaged dataset's features are rewritten under this build's schema from the
    metrics each window keeps; rates an old recording lacks come from its totals; what it
    cannot give is listed missing; the manifest says what was done."""
    import json
    import lzma

    from scxd.journal import encode
    from scxd.testbed.dataset import load_windows, refeature

    metrics = {"window_s": 2.0, "ncpus": 2.0, "voluntary_switches_total_delta": 400.0,
               "involuntary_switches_total_delta": 40.0, "swap_out_bytes_total_delta": 0.0,
               "wakeups_total_delta": 80.0, "ctx_switches_total_delta_pct_change": 50.0,
               "T_cpu_user_avg": 50.0}
    old = {"kind": "window", "features": {"schema": "scxd-window-features", "version": 1,
                                          "values": [0.0] * 35, "missing": []},
           "metrics": metrics, "workload": "w", "arm": "fair"}
    with lzma.open(tmp_path / "windows.jsonl.xz", "wb") as fh:
        fh.write(encode({"kind": "header", "feature_version": 1}))
        fh.write(encode(old))
    (tmp_path / "manifest.json").write_text(json.dumps({"feature_version": 1}))
    summary = refeature(tmp_path)
    assert summary == {"windows": 1, "from_versions": ["1"], "to_version": SCHEMA_VERSION}
    (rec,) = list(load_windows(tmp_path))
    f = dict(zip(FEATURE_NAMES, rec["features"]["values"], strict=True))
    assert rec["features"]["version"] == SCHEMA_VERSION
    assert f["voluntary_rate"] == pytest.approx(math.log1p(100.0))   # 400 / 2 s / 2 CPUs
    assert f["wakeup_rate"] == pytest.approx(math.log1p(20.0))
    assert f["ctxsw_change"] == pytest.approx(0.05)
    assert f["cpu_user"] == pytest.approx(0.5)
    assert "wake_lat_mean" in rec["features"]["missing"]
    assert "voluntary_rate" not in rec["features"]["missing"]
    assert rec["metrics"] == metrics          # the stored measurements are untouched
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["feature_version"] == SCHEMA_VERSION
    assert m["features_recomputed"][0]["from"] == ["1"]
