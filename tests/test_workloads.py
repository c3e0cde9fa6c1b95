"""Workloads declared once (scxd.workloads) and the raw benchmark parsers (scxd.benchparse)."""

from __future__ import annotations

import subprocess

import pytest

from scxd import benchparse, workloads
from scxd.workloads import CATEGORIES, WORKLOADS, Headline, UnknownWorkload, get, select

PIPE = """# Running 'sched/pipe' benchmark:
# Executed 5000 pipe operations between two processes

     Total time: 0.029 [sec]

       5.851200 usecs/op
         170905 ops/sec
"""
STRESS_TWO = "\n".join(f"stress-ng: metrc: [1] {row}" for row in (
    "stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s",
    "                          (secs)    (secs)    (secs)   (real time) (usr+sys time)",
    "hdd                9407     10.17      0.40      6.10       925.11        1447.23",
    "cpu                1990     10.16     10.00      0.00       195.82         199.00"))


def test_stress_ng_rows_by_stressor():
    rows = benchparse.stress_ng(STRESS_TWO)
    assert set(rows) == {"hdd", "cpu"}
    assert rows["hdd"].bogo_ops == 9407 and rows["hdd"].bogo_ops_per_s == 925.11
    assert rows["hdd"].bogo_ops_per_cpu_s == pytest.approx(9407 / 6.5)
    assert benchparse.stress_ng("stress-ng: info: [1] no metrics\n") == {}


def test_perf_pipe_and_messaging():
    assert benchparse.perf_total_seconds(PIPE * 2) == [0.029, 0.029]
    assert benchparse.perf_pipe_usecs_per_op(PIPE) == [5.8512]
    out = get("pipe").outcome([PIPE * 3])
    assert out["pipe_usecs_per_op_iterations"] == 3
    assert out["pipe_usecs_per_op_mean"] == pytest.approx(5.8512)


def test_cyclictest_summary_weights_threads_by_cycles():
    text = ("T: 0 ( 1) P: 0 I:2000 C:    100 Min: 1 Act: 2 Avg:  10 Max: 50\n"
            "T: 1 ( 2) P: 0 I:2000 C:    300 Min: 1 Act: 2 Avg:  30 Max: 70\n")
    s = benchparse.cyclictest_summary(text)
    assert s is not None and s.avg_us == 25.0 and s.max_us == 70 and s.cycles == 400
    assert benchparse.cyclictest_summary("no summary") is None


def test_timed_loop_runs_and_parses():
    cmd = workloads.timed_loop("true", 1)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    times = benchparse.timed_loop(out)
    assert times and all(0 <= t < 1 for t in times)


def test_headline_direction_and_loss():
    up = Headline("ops", True, "ops/s", "")
    down = Headline("s", False, "s", "")
    assert up.loss_pct(70.0, 100.0) == pytest.approx(30.0)
    assert down.loss_pct(1.34, 1.0) == pytest.approx(34.0)
    assert up.goodness(2) > up.goodness(1) and down.goodness(1) > down.goodness(2)
    assert up.loss_pct(100.0, 100.0) == 0.0


@pytest.mark.parametrize("wl", WORKLOADS, ids=lambda w: w.name)
def test_every_workload_is_complete(wl):
    assert wl.category in CATEGORIES and wl.describe
    cmds = wl.commands(12, 7)
    assert cmds and all(isinstance(c, list) and c for c in cmds)
    joined = " ".join(" ".join(c) for c in cmds)
    if "stress-ng" in joined:
        assert "--seed 7" in joined and "--metrics-brief" in joined
    assert "12" in joined  # it runs for the duration it is given
    assert wl.headline.metric and wl.outcome([""]) == {}  # no output → no figures
    assert wl.headline_value({wl.headline.metric: 3}) == 3.0
    assert wl.headline_value({}) is None


def test_io_cpu_is_judged_by_both_halves_of_its_work():
    """The writer's rate alone ranks a scheduler that starves the CPU hogs first; the
    headline is the geometric mean of both rates, parsed for new recordings and derived
    from the raw rates of recordings made before it was declared."""
    wl = get("io_cpu")
    out = ("stress-ng: metrc: [1] stressor       bogo ops real time  usr time  sys time   "
           "bogo ops/s     bogo ops/s\n"
           "stress-ng: metrc: [1]                           (secs)    (secs)    (secs)   "
           "(real time) (usr+sys time)\n"
           "stress-ng: metrc: [1] hdd                 8000     10.00      1.00      3.00"
           "       800.00        2000.00\n"
           "stress-ng: metrc: [1] cpu                 2000     10.00      8.00      0.00"
           "       200.00         250.00\n")
    figures = wl.outcome([out])
    assert figures["hdd_bogo_ops_per_s"] == 800.0 and figures["cpu_bogo_ops_per_s"] == 200.0
    assert figures["io_cpu_work_ops_per_s"] == pytest.approx(400.0)
    assert wl.headline_value(figures) == pytest.approx(400.0)
    # Dataset v2's three runs of two arms (recorded before the headline was declared):
    # scx_flashyspark --rr-sched traded the hogs' work for the writer's, scx_simple did not.
    rr_sched = [(466.88, 235.72), (1247.9, 180.83), (1957.2, 133.76)]
    simple = [(1015.88, 216.31), (1090.02, 235.23), (1088.24, 234.79)]

    def mean(runs, value):
        return sum(value({"hdd_bogo_ops_per_s": h, "cpu_bogo_ops_per_s": c})
                   for h, c in runs) / len(runs)

    def writer(o):
        return o["hdd_bogo_ops_per_s"]

    assert mean(rr_sched, writer) > mean(simple, writer)           # the old headline
    assert mean(rr_sched, wl.headline_value) < mean(simple, wl.headline_value)
    assert wl.headline_value({"hdd_bogo_ops_per_s": 800.0}) is None   # a half is missing


def test_catalogue_covers_the_categories():
    assert {w.category for w in WORKLOADS} == set(CATEGORIES)
    assert len(WORKLOADS) >= 10


def test_select_and_unknown():
    assert [w.name for w in select("mixed,cpu_batch")] == ["cpu_batch", "mixed"]
    assert select("") == WORKLOADS
    with pytest.raises(UnknownWorkload, match="unknown workload 'nope'"):
        select("nope")


FAILED_SWITCH = "\n".join(f"stress-ng: {row}" for row in (
    "metrc: [186] stressor       bogo ops real time  usr time  sys time   bogo ops/s     "
    "bogo ops/s",
    "metrc: [186] switch          2551151      8.04      1.00      6.00    9593.62      "
    "3644.50",
    "fail:  [186] metrics-check: stressor metrics corrupted, data is compromised",
    "info:  [186] unsuccessful run completed in 8.04s"))


def test_a_failed_stress_ng_run_yields_no_figures():
    """stress-ng says an interrupted switch stressor's metrics are compromised (its rate was
    2–4× the completed runs'): the figure is missing, not wrong."""
    assert benchparse.stress_ng_failed(FAILED_SWITCH)
    assert not benchparse.stress_ng_failed(STRESS_TWO)
    assert workloads.parse_stress([FAILED_SWITCH]) == {}
    assert set(workloads.parse_stress([FAILED_SWITCH, STRESS_TWO])) >= {"cpu_bogo_ops_per_s"}


def test_recorded_figures_of_a_failed_stress_ng_run_are_dropped_at_read_time():
    run = {"workload": "waker", "arm": "fair", "output_tail": ["T: 0 ... Avg: 92", FAILED_SWITCH],
           "outcome": {"wakeup_us_avg": 92.0, "switch_bogo_ops": 2551151,
                       "switch_bogo_ops_per_s": 9593.62}}
    kept = workloads.trusted_outcome(run)
    assert kept["outcome"] == {"wakeup_us_avg": 92.0}
    assert kept["outcome_dropped"]["figures"] == ["switch_bogo_ops", "switch_bogo_ops_per_s"]
    assert run["outcome"]["switch_bogo_ops_per_s"] == 9593.62       # the record is untouched
    fine = {**run, "output_tail": ["T: 0", STRESS_TWO]}
    assert workloads.trusted_outcome(fine) is fine
