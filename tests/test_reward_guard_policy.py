"""Reward (pure), guard rules, and the two baseline policies."""

from __future__ import annotations

import math

import pytest

from scxd.catalog import build_catalog
from scxd.config import GuardConfig, PolicyConfig
from scxd.features import featurize
from scxd.guard import Guard
from scxd.policy import eligible_arms
from scxd.policy.arms import ArmSet
from scxd.policy.base import PolicyEnv
from scxd.policy.baseline import FixedPolicy, RulePolicy
from scxd.policy.registry import make_policy
from scxd.probe import Availability, ProbedCatalog
from scxd.reward import (
    OBJECTIVES,
    PREEMPTION_COST_S,
    WAIT_SHARE_SLACK,
    FairReference,
    cost,
    window_terms,
)
from scxd.types import Window

CAT = build_catalog()
FAIR = CAT.fair()
SIMPLE = CAT.action("scx_simple")
QMAP = CAT.action("scx_qmap")


def window(**metrics) -> Window:
    base = {"turnaround_avg_s": 0.2, "response_avg_s": 1e-4, "fairness_cv": 0.5,
            "runq_latency_p99_s": 2e-3, "runq_latency_mean_s": 1e-4,
            "tasks_completed_per_s": 10.0, "turnarounds_total_delta": 5.0,
            "responses_total_delta": 5.0, "T_cpu_user_avg": 50.0, "ncpus": 2.0,
            "T_busiest_cpu_pct_avg": 20.0, "external_wakeup_latency_p99_s": 2e-3,
            "external_wakeup_waits_total_delta": 100.0, "preemptions_per_s_per_core": 100.0,
            "T_cpu_busy_avg": 100.0, "runq_wait_per_s_per_core": 0.5}
    base.update(metrics)
    return Window(0, 5, 0, 5, 5, base, ())


def probed(available: set[str]) -> ProbedCatalog:
    avail = {s.name: Availability(s.name, s.name in available or s.is_fair,
                                  binary_path=f"/x/{s.name}") for s in CAT}
    return ProbedCatalog(CAT, avail)


def env(pc: ProbedCatalog) -> PolicyEnv:
    return PolicyEnv(ArmSet.from_catalog(pc, "presets"), probed=pc)


# -- reward -----------------------------------------------------------------------------------
def test_terms_read_from_the_window():
    t = window_terms(window())
    assert t["turnaround_s"] == 0.2 and t["runq_p99_s"] == 2e-3
    assert t["user_cpu"] == pytest.approx(1.0)  # 50 % of 2 CPUs


def test_terms_without_exits_are_missing():
    t = window_terms(window(turnarounds_total_delta=0, responses_total_delta=0))
    assert t["turnaround_s"] is None and t["response_s"] is None


def test_schedstat_mode_uses_the_mean_latency():
    w = window()
    del w.metrics["runq_latency_p99_s"]
    assert window_terms(w)["runq_p99_s"] == 1e-4


def slowdown(share: float) -> float:
    """log of a task's slowdown when it waits ``share`` of its time (above the slack)."""
    return -math.log(1 - max(0.0, share - WAIT_SHARE_SLACK))


def test_balanced_cost_is_progress_lost_relative_to_fair():
    ref = {"ext_wait_share": 0.1, "completed_per_s": 10.0, "preempt_cost": 100.0,
           "idle_wait_share": 0.0}
    same = cost(window_terms(window(external_wait_share_max=0.1)), "balanced", ref)
    assert same.value == pytest.approx(0.0) and same.neutral == ()
    # A periodic task now waits 40 % of its time instead of 10 %: it progresses at
    # (1 − 0.35) / (1 − 0.05) of its rate under the fair scheduler (5 % slack).
    late = cost(window_terms(window(external_wait_share_max=0.4)), "balanced", ref)
    assert late.value == pytest.approx(slowdown(0.4) - slowdown(0.1))
    assert late.value == pytest.approx(math.log(0.95 / 0.65))
    assert late.ratios["ext_wait_share"] == 4.0 and late.reward == -late.value
    # Twice the work completed (pseudo-count 1/s): less cost, whatever CPU it took.
    more = cost(window_terms(window(external_wait_share_max=0.1, tasks_completed_per_s=20.0,
                                    T_cpu_user_avg=10.0)), "balanced", ref)
    assert more.value == pytest.approx(math.log(11 / 21))
    both = cost(window_terms(window(external_wait_share_max=0.4, tasks_completed_per_s=20.0)),
                "balanced", ref)
    assert both.value == pytest.approx(late.value + more.value)


def test_slack_and_preemption_cost():
    ref = {"ext_wait_share": 0.0, "completed_per_s": 10.0, "preempt_cost": 100.0}
    quiet = cost(window_terms(window(external_wait_share_max=0.04)), "balanced", ref)
    assert quiet.value == pytest.approx(0.0)  # 4 % of a periodic task's time: not felt
    felt = cost(window_terms(window(external_wait_share_max=0.25)), "balanced", ref)
    assert felt.value == pytest.approx(-math.log(0.8))
    # 100 more preemptions per second per CPU cost 100 × 50 µs = 0.5 % of CPU time.
    churn = cost(window_terms(window(preemptions_per_s_per_core=200.0)), "throughput", ref)
    assert churn.value == pytest.approx(100 * PREEMPTION_COST_S) == pytest.approx(0.005)


def test_capacity_left_idle_while_tasks_wait_is_charged():
    """A CPU idle while runnable tasks wait loses their progress outright: the overlap is
    bounded by the smaller of the idle share and the waiting tasks per CPU."""
    ref = {"idle_wait_share": 0.0}
    # Saturated (2 tasks waiting per CPU) yet 20 % idle: a non-work-conserving scheduler.
    lazy = window_terms(window(T_cpu_busy_avg=80.0, runq_wait_per_s_per_core=2.0))
    assert lazy["idle_wait_share"] == pytest.approx(0.2)
    assert cost(lazy, "throughput", ref).value == pytest.approx(-math.log(0.8))
    # Busy throughout: waits are time-sharing, not capacity lost.
    busy = window_terms(window(T_cpu_busy_avg=100.0, runq_wait_per_s_per_core=2.0))
    assert busy["idle_wait_share"] == 0.0
    # Mostly idle: every wait is one a free CPU could have served (3 ms per second per CPU).
    quiet = window_terms(window(T_cpu_busy_avg=5.0, runq_wait_per_s_per_core=0.003))
    assert quiet["idle_wait_share"] == pytest.approx(0.003)
    assert cost(quiet, "balanced", {"idle_wait_share": 0.001}).value == pytest.approx(
        math.log(0.999 / 0.997))
    # A window recorded with the metric keeps its own figure; one without runqueue
    # telemetry leaves the term out (neutral), and the latency objective does not use it.
    assert window_terms(window(idle_while_waiting_share=0.5, T_cpu_busy_avg=100.0,
                               runq_wait_per_s_per_core=1.0))["idle_wait_share"] == 0.5
    unmeasured = window()
    del unmeasured.metrics["runq_wait_per_s_per_core"]
    assert window_terms(unmeasured)["idle_wait_share"] is None
    assert "idle_wait_share" in cost(window_terms(unmeasured), "balanced", ref).neutral
    assert "idle_wait_share" not in cost(lazy, "latency", ref).ratios


def test_log_terms_are_clipped_and_wait_shares_capped():
    ref = {"ext_wait_share": 0.1, "completed_per_s": 10.0, "preempt_cost": 100.0}
    wild = cost(window_terms(window(external_wait_share_max=1.0, tasks_completed_per_s=0.0)),
                "balanced", ref)
    # The share is capped at 95 % (a slowdown of 20×); the work term at ±3.
    assert wild.value == pytest.approx(-math.log(0.05) - slowdown(0.1) + math.log(11 / 1))


def test_missing_reference_floor_or_term_is_neutral():
    c = cost(window_terms(window()), "balanced", {})
    assert c.value == 0.0 and set(c.neutral) == {"ext_wait_share", "completed_per_s",
                                                 "preempt_cost", "idle_wait_share"}
    # A workload that completes < 1 task/s under the fair scheduler: completion is noise.
    c = cost(window_terms(window(tasks_completed_per_s=0.1)), "throughput",
             {"completed_per_s": 0.5})
    assert c.value == 0.0 and "completed_per_s" in c.neutral
    # Too few external wakeups for a p99.
    t = window_terms(window(external_wakeup_latency_p99_s=1e-3,
                            external_wakeup_waits_total_delta=3))
    assert t["ext_wakeup_p99_s"] is None


def test_latency_and_throughput_signs():
    ref = {"ext_wait_share": 0.0, "ext_wakeup_p99_s": 1e-3, "completed_per_s": 10.0}
    w = window(external_wait_share_max=0.2, external_wakeup_latency_p99_s=2e-3,
               external_wakeup_waits_total_delta=100)
    assert cost(window_terms(w), "latency", ref).value == pytest.approx(
        slowdown(0.2) + math.log(2))
    tp = cost(window_terms(window(tasks_completed_per_s=21.0)), "throughput", ref)
    assert tp.value == pytest.approx(-math.log(2))  # twice the work (with the pseudo-count)
    with pytest.raises(ValueError, match="unknown objective"):
        cost({}, "speed", ref)


def test_v1_objectives_are_kept_for_comparison():
    """replay validate-reward --legacy: v1's objectives averaged clipped log ratios."""
    ref = {"turnaround_s": 0.2, "response_s": 1e-4, "fairness_cv": 0.5}
    worse = cost(window_terms(window(turnaround_avg_s=0.4)), "v1_balanced", ref)
    assert worse.value == pytest.approx(math.log(2) / 3)
    assert "v1_balanced" not in OBJECTIVES


def test_fair_reference_is_a_rolling_median():
    ref = FairReference(size=3)
    for v in (1.0, 2.0, 3.0, 40.0):
        ref.add({"turnaround_s": v, "response_s": None})
        ref.add_cost("balanced", v)
    assert ref.means() == {"turnaround_s": 3.0}  # median of 2, 3, 40: the outlier is moot
    assert ref.baseline_cost("balanced") == 15.0 and ref.baseline_cost("latency") is None


# -- guard ------------------------------------------------------------------------------------
# Fair's recent window costs on a quiet workload: ±0.002 around its reference.
QUIET_FAIR = [0.001, -0.002, 0.0, 0.002, -0.001, 0.001, 0.0, -0.001]


def guard(**cfg) -> Guard:
    base = {"min_dwell": 30.0, "warmup_windows": 1, "swaps_per_hour": 3,
            "regression_margin": 0.1, "regression_windows": 3, "panic_failures": 2}
    base.update(cfg)
    return Guard(GuardConfig(**base), current_since=0.0)


def test_dwell_then_apply():
    g = guard()
    v = g.review(SIMPLE, FAIR, FAIR, now=10.0)
    assert v.apply is None and v.events[0].kind == "dwell_hold"
    v = g.review(SIMPLE, FAIR, FAIR, now=31.0)
    assert v.apply == SIMPLE and v.why == "policy"


def test_same_choice_is_not_a_swap():
    assert guard().review(FAIR, FAIR, FAIR, now=100.0).apply is None


def test_swap_budget_per_sliding_hour():
    g = guard(min_dwell=0.0)
    for t in (1.0, 2.0, 3.0):
        g.on_swap(t, True)
    v = g.review(SIMPLE, FAIR, FAIR, now=4.0)
    assert v.apply is None and v.events[0].kind == "budget_hold"
    assert g.review(SIMPLE, FAIR, FAIR, now=3601.5).apply == SIMPLE


def test_warmup_windows_are_not_scored():
    g = guard(warmup_windows=2)
    g.on_swap(1.0, True)
    assert [g.window_scored() for _ in range(3)] == [False, False, True]
    g.on_kernel_change(5.0)
    assert g.window_scored() is False and g.swaps_last_hour(5.0) == 1


def test_freeze_holds_and_expires():
    g = guard(min_dwell=0.0)
    g.freeze(now=0.0, duration=60.0)
    v = g.review(SIMPLE, FAIR, FAIR, now=10.0)
    assert v.apply is None and v.events[0].kind == "frozen_hold"
    v = g.review(SIMPLE, FAIR, FAIR, now=61.0)
    assert v.apply == SIMPLE and v.events[0].kind == "freeze_expired"
    g.freeze(now=70.0)
    assert g.status(1e9)["frozen"] and g.status(1e9)["frozen_for_s"] is None
    g.thaw()
    assert g.review(SIMPLE, FAIR, FAIR, now=100.0).apply == SIMPLE


def test_pin_overrides_policy_dwell_and_freeze():
    g = guard()
    g.freeze(0.0)
    g.pin(QMAP)
    assert g.review(SIMPLE, FAIR, FAIR, now=1.0).apply == QMAP
    assert g.review(SIMPLE, QMAP, FAIR, now=2.0).apply is None  # already runs
    g.unpin()
    assert g.review(SIMPLE, QMAP, FAIR, now=3.0).apply is None  # frozen again


def test_regression_guard_goes_back_to_fair():
    g = guard(min_dwell=86400.0)  # margin 10 %: log(1.1) ≈ 0.095 over the baseline
    for c in (0.15, 0.2, 0.12):
        g.record_cost(c)
    v = g.review(SIMPLE, SIMPLE, FAIR, now=5.0, baseline=0.0)
    assert v.apply == FAIR and v.events[0].kind == "regression"
    assert "vs fair baseline 0.000: ×1.16 worse" in v.events[0].detail
    g2 = guard()
    for c in (0.05, 0.08, 0.05):
        g2.record_cost(c)
    assert g2.review(SIMPLE, SIMPLE, FAIR, now=5.0, baseline=0.0).apply is None  # < 10 %
    g3 = guard()
    g3.record_cost(9.0)  # too few windows to judge
    assert g3.regressed(0.0) == ""


def test_regression_uses_the_median_not_one_wild_window():
    g = guard()
    for c in (3.0, 0.01, 0.02):
        g.record_cost(c)
    assert g.regressed(0.0) == ""
    assert not guard().regressed(None)


def test_fast_path_removes_a_broken_pick_after_two_gross_windows():
    g = guard(regression_windows=6)          # the median path would need six windows
    g.record_cost(2.0)
    assert g.regressed(0.0) == ""            # one window is not enough
    g.record_cost(0.1)
    g.record_cost(2.0)
    assert g.regressed(0.0) == ""            # nor two that are not consecutive
    g.record_cost(1.5)                       # log(1 + 3) ≈ 1.39 < 1.5: both gross
    v = g.review(SIMPLE, SIMPLE, FAIR, now=5.0, baseline=0.0)
    assert v.apply == FAIR and v.events[0].kind == "regression"
    assert "fast margin 300%" in v.events[0].detail


def test_a_warmup_window_counts_for_the_fast_path_only():
    g = guard(regression_windows=3)
    g.on_swap(1.0, True, left=FAIR)
    g.record_cost(2.5, transient=True)       # the warm-up window of a broken pick
    assert g.regressed(0.0) == "" and not g.scored_costs
    g.record_cost(2.0)
    assert "fast margin" in g.regressed(0.0)
    g.on_swap(2.0, True)
    for _ in range(5):
        g.record_cost(2.5, transient=True)   # warm-ups never reach the median path
    g.record_cost(0.0)
    assert g.regressed(0.0) == ""


def test_quarantine_refuses_a_regressed_scheduler_until_it_expires():
    g = guard(quarantine=100.0)
    g.on_swap(10.0, True, left=FAIR)
    for c in (0.2, 0.2, 0.2):
        g.record_cost(c)
    v = g.review(QMAP, SIMPLE, FAIR, now=40.0, baseline=0.0, fair_costs=QUIET_FAIR)
    assert v.apply == FAIR and v.events[0].kind == "regression"
    g.on_swap(40.0, True, left=SIMPLE)
    v = g.review(SIMPLE, FAIR, FAIR, now=75.0)  # dwell is over; the quarantine is not
    assert v.apply is None and v.events[0].kind == "quarantine_hold"
    assert "quarantined for 65 s more" in v.events[0].detail
    assert v.policy_draw and [a.label() for a in v.refused] == ["scx_simple"]
    assert g.status(75.0)["quarantined"][0]["scheduler"] == "scx_simple"
    assert g.review(QMAP, FAIR, FAIR, now=76.0).apply == QMAP   # others may run
    assert g.review(SIMPLE, FAIR, FAIR, now=141.0).apply == SIMPLE
    assert g.status(141.0)["quarantined"] == []
    off = guard(quarantine=0.0)
    off.on_swap(10.0, True, left=FAIR)
    for c in (0.2, 0.2, 0.2):
        off.record_cost(c)
    off.review(QMAP, SIMPLE, FAIR, now=40.0, baseline=0.0, fair_costs=QUIET_FAIR)
    assert off.review(SIMPLE, FAIR, FAIR, now=75.0).apply == SIMPLE


def test_reanchor_leaves_a_failing_scheduler_for_fair_not_another_guess():
    g = guard(min_dwell=0.0, regression_windows=6)
    g.on_swap(0.0, True, left=FAIR)
    g.record_cost(2.0)                       # one gross window: not yet a regression
    v = g.review(QMAP, SIMPLE, FAIR, now=5.0, baseline=0.0)
    assert v.apply == FAIR and v.events[0].kind == "reanchor"
    assert "last window cost 2.000" in v.events[0].detail
    # still the policy's draw, mapped: any other non-fair draw would have run fair too
    assert v.policy_draw and v.image(QMAP) == FAIR and v.image(SIMPLE) == SIMPLE
    assert g.review(FAIR, SIMPLE, FAIR, now=5.0, baseline=0.0).apply == FAIR
    fine = guard(min_dwell=0.0, regression_windows=6)
    fine.on_swap(0.0, True, left=FAIR)
    fine.record_cost(0.1)
    v = fine.review(QMAP, SIMPLE, FAIR, now=5.0, baseline=0.0)   # even then: through fair
    assert v.apply == FAIR and "every pick starts from fair" in v.events[0].detail
    assert fine.review(FAIR, SIMPLE, FAIR, now=5.0, baseline=0.0).events == ()
    off = guard(min_dwell=0.0, regression_windows=6, reanchor=False)
    off.record_cost(2.0)
    assert off.review(QMAP, SIMPLE, FAIR, now=5.0, baseline=0.0).apply == QMAP


@pytest.mark.parametrize("left,now", [(FAIR, 301.0), (QMAP, 5.0)])
def test_reanchor_measures_fair_before_a_pick_it_could_not_judge(left, now):
    """Fair left long ago (or never, since the last swap): the next pick would have no fair
    windows of the present workload to be judged against, so fair runs first."""
    g = guard(min_dwell=0.0, regression_windows=6)
    g.on_swap(0.0, True, left=left)
    g.record_cost(0.1)
    v = g.review(QMAP, SIMPLE, FAIR, now=now, baseline=0.0)
    assert v.apply == FAIR and "fair last ran more than 300 s ago" in v.events[0].detail
    assert g.review(SIMPLE, SIMPLE, FAIR, now=now, baseline=0.0).apply is None  # stays


def test_regression_test_sees_a_small_steady_loss_of_a_quiet_workload():
    """Fair's windows cost ±0.002; the pick costs +0.03 every window: far inside the 50 %
    margin, but far outside the noise.  Three windows are enough."""
    g = guard(regression_windows=6, regression_margin=0.5)
    g.on_swap(10.0, True, left=FAIR)
    for c in (0.03, 0.035, 0.028):
        g.record_cost(c)
    v = g.review(SIMPLE, SIMPLE, FAIR, now=30.0, baseline=0.0, fair_costs=QUIET_FAIR)
    assert v.apply == FAIR and "z = " in v.events[0].detail
    assert g.regressed(0.0, QUIET_FAIR, now=30.0) and not g.regressed(0.0, QUIET_FAIR)


@pytest.mark.parametrize("case", ["not from fair", "stale", "fair jumped", "noisy", "tiny",
                                  "off"])
def test_regression_test_stays_quiet_when_fair_does_not_describe_the_present(case):
    g = guard(regression_windows=6, regression_margin=0.5,
              regression_z=0.0 if case == "off" else 3.0)
    g.on_swap(10.0, True, left=QMAP if case == "not from fair" else FAIR)
    costs, fair, now = [0.03, 0.035, 0.028], list(QUIET_FAIR), 30.0
    if case == "stale":
        now = 10.0 + 301.0                   # regression_fresh is 300 s
    if case == "fair jumped":
        fair.append(0.09)                    # the last fair window saw a new workload
    if case == "noisy":                      # 0.1 above fair's median, inside the noise
        costs = [0.12, -0.2, 0.3]
        fair = [0.1, -0.2, 0.15, -0.1, 0.0, 0.2, -0.15, 0.05]
    if case == "tiny":
        costs = [0.005, 0.006, 0.005]        # below regression_min_margin (1 %)
    for c in costs:
        g.record_cost(c)
    assert g.regressed(0.0, fair, now=now) == "", case
    if case == "noisy":                      # the noise decided it: a laxer z would fire
        g.cfg = GuardConfig(**{**g.cfg.model_dump(), "regression_z": 0.5})
        assert "z = 0.6" in g.regressed(0.0, fair, now=now)


def test_panic_after_repeated_failures():
    g = guard(min_dwell=0.0)
    ev = g.on_apply_result(False, "exited: boom", 1.0)
    assert [e.kind for e in ev] == ["actuator_failure"] and not g.panic
    ev = g.on_apply_result(False, "exited: boom", 2.0)
    assert [e.kind for e in ev] == ["actuator_failure", "panic", "freeze"] and g.panic
    assert g.review(SIMPLE, SIMPLE, FAIR, now=3.0).apply == FAIR
    assert g.review(SIMPLE, FAIR, FAIR, now=4.0).apply is None
    g.thaw()
    assert not g.panic and g.review(SIMPLE, FAIR, FAIR, now=5.0).apply == SIMPLE
    assert g.status(5.0)["events"]["panic"] == 1


# -- policies ---------------------------------------------------------------------------------
def test_arms_come_from_available_explorable_entries():
    arms = eligible_arms(probed({"scx_simple", "scx_central", "scx_bpfland"}))
    labels = [a.label() for a in arms]
    assert labels[0] == "fair" and "scx_simple -f" in labels
    assert not any(label.startswith("scx_central") for label in labels)  # explore = False
    assert "scx_bpfland --primary-domain all" in labels
    assert labels.count("scx_bpfland") == 1  # default and "auto" render alike: one arm


def test_fixed_policy():
    p = make_policy(PolicyConfig(name="fixed", scheduler="scx_simple", preset="fifo"),
                    env(probed({"scx_simple"})))
    assert isinstance(p, FixedPolicy)
    d = p.decide(featurize(window()), eligible_arms(probed({"scx_simple"})))
    assert d.action.label() == "scx_simple -f" and d.propensity == 1.0
    assert math.isclose(sum(d.distribution.values()), 1.0) and not d.explore
    gone = FixedPolicy(env(probed(set())), PolicyConfig(name="fixed", scheduler="scx_simple"))
    assert gone.target.is_fair and "unavailable" in gone.reason
    with pytest.raises(ValueError, match="no preset"):
        FixedPolicy(env(probed({"scx_simple"})),
                    PolicyConfig(name="fixed", scheduler="scx_simple", preset="x"))


def test_rule_policy_hysteresis():
    cfg = PolicyConfig(name="rule", busy_cpu_pct=90, busy_windows=2, idle_windows=3,
                       busy_schedulers=["scx_lavd", "scx_simple"])
    pc = probed({"scx_simple"})
    p = RulePolicy(env(pc), cfg)
    arms = eligible_arms(pc)
    busy, quiet = window(T_busiest_cpu_pct_avg=95.0), window(T_busiest_cpu_pct_avg=10.0)
    seq = [busy, busy, quiet, quiet, busy, quiet, quiet, quiet]
    chosen = [p.decide(featurize(w), arms).action.label() for w in seq]
    assert chosen == ["fair", "scx_simple", "scx_simple", "scx_simple", "scx_simple",
                      "scx_simple", "scx_simple", "fair"]
    d = p.decide(featurize(busy), arms)
    assert d.propensity == 1.0 and d.scores["busiest_cpu_pct"] == pytest.approx(95.0)


def test_rule_policy_without_any_busy_scheduler():
    p = RulePolicy(env(probed(set())), PolicyConfig())
    d = p.decide(featurize(window(T_busiest_cpu_pct_avg=99.0)), [FAIR])
    assert d.action.is_fair and "holding fair" in d.reason


def test_logged_propensity_is_exact_when_the_guard_maps_draws():
    """Whatever the policy draws, the guard runs a known arm; the probability logged for
    what runs is the total mass of the draws that run it.  Checked against every draw."""
    from scxd.decide import DecisionPath
    from scxd.policy import Decision
    from scxd.scorer import Scorer
    arms = ArmSet.from_labels(CAT, ["fair", "scx_simple", "scx_qmap"])
    path = DecisionPath(None, guard(), arms, Scorer("balanced", FAIR))  # type: ignore[arg-type]
    dist = {arms[0].key: 0.2, arms[1].key: 0.5, arms[2].key: 0.3}

    def logged(g: Guard, drawn, current) -> tuple[str, float, dict]:
        v = g.review(drawn, current, FAIR, now=100.0, baseline=0.0)
        executed = v.apply or current
        c = path.choice(Decision(drawn, dict(dist), False, "t", "1"), v, executed)
        return c.arm, c.propensity, c.distribution

    def exact(make, current) -> None:
        runs = {}
        for a in arms:                       # what each draw runs, and with what mass
            arm, _, _ = logged(make(), a.action, current)
            runs[arm] = runs.get(arm, 0.0) + dist[a.key]
        for a in arms:
            arm, p, d = logged(make(), a.action, current)
            assert p == pytest.approx(runs[arm]), (a.key, arm, p, runs)
            assert sum(d.values()) == pytest.approx(1.0)

    def quarantined() -> Guard:              # scx_simple was removed; scx_qmap runs
        g = guard(min_dwell=0.0)
        g.quarantined.append((SIMPLE, 1e9, "test"))
        return g

    def failing() -> Guard:                  # scx_simple's last window was gross
        g = guard(min_dwell=0.0, regression_windows=6)
        g.on_swap(90.0, True, left=FAIR, fair=FAIR)
        g.record_cost(2.0)
        return g

    def stale() -> Guard:                    # fair ran long ago
        g = guard(min_dwell=0.0, regression_windows=6)
        g.record_cost(0.1)
        return g

    exact(quarantined, QMAP)
    exact(failing, SIMPLE)
    exact(stale, SIMPLE)
    arm, p, _ = logged(failing(), QMAP, SIMPLE)
    assert arm == arms[0].key and p == pytest.approx(0.5)      # fair 0.2 + qmap 0.3
    # the actuator ran something else than the guard asked (a failed swap): point mass
    v = failing().review(FAIR, SIMPLE, FAIR, now=100.0, baseline=0.0)
    c = path.choice(Decision(FAIR, dict(dist), False, "t", "1"), v, QMAP)
    assert c.propensity == 1.0 and c.distribution == {arms[2].key: 1.0}


def test_fair_left_at_follows_the_reference_fair_scheduler():
    tuned = CAT.action("fair", {"base_slice_ns": 750_000})
    assert tuned.is_fair and not tuned.same_as(FAIR)
    g = guard()
    g.on_swap(10.0, True, left=FAIR, fair=FAIR)
    assert g.fair_left_at == 10.0
    g.on_swap(50.0, True, left=SIMPLE, fair=FAIR)          # a hop between two others
    assert g.fair_left_at == 10.0
    g.on_kernel_change(60.0)                                # a restart: fair is no older
    assert g.fair_left_at == 10.0
    g.on_swap(70.0, True, left=tuned, fair=FAIR)            # tuned fair feeds no reference
    assert g.fair_left_at == 10.0
    g.on_swap(80.0, True, left=None, fair=FAIR)             # unknown: not fresh
    assert g.fair_left_at is None
