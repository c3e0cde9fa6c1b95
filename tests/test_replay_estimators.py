"""Off-policy estimators against closed-form cases, unbiasedness and CI coverage."""

from __future__ import annotations

import numpy as np
import pytest

from scxd.replay import model as reward_model
from scxd.replay.estimators import (
    EstimatorError,
    Logged,
    deterministic_terms,
    evaluate,
    stochastic_terms,
)

ARMS2 = ("a", "b")


def small_case():
    """Four hand-worked rows: logged arms, propensities, costs, target picks, a q̂ matrix."""
    a = np.array([0, 1, 0, 1])
    p = np.array([0.5, 0.25, 0.8, 0.25])
    y = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.array([0, 0, 1, 1])          # target's pick per row → π(a_i|x_i) = 1, 0, 0, 1
    q = np.array([[1.5, 2.5], [1.0, 2.0], [3.0, 1.0], [0.0, 3.0]])
    return Logged(a, p, y, ARMS2), t, q


def values(ev, name="t"):
    return {k: v.value for k, v in ev.targets[name].estimates.items()}


def test_hand_worked_case_every_estimator():
    logged, t, q = small_case()
    ev = evaluate(logged, {"t": deterministic_terms(logged.actions, t, 2, q)}, n_bootstrap=50)
    # w = [2, 0, 0, 4]; replay = (1 + 4)/2; ips = (2·1 + 4·4)/4; snips = 18/6
    # dm = (1.5 + 1 + 1 + 3)/4; dr = dm + (2·(1 − 1.5) + 4·(4 − 3))/4
    assert values(ev) == pytest.approx(
        {"replay": 2.5, "ips": 4.5, "snips": 3.0, "dm": 1.625, "dr": 2.375})
    est = ev.targets["t"]
    assert est.ess == pytest.approx(36 / 20)  # (Σw)² / Σw²
    assert est.matched == 2 and est.max_weight == 4.0 and est.clipped_share == 0.0


def test_weight_clipping():
    logged, t, q = small_case()
    ev = evaluate(logged, {"t": deterministic_terms(logged.actions, t, 2, q)}, clip=3.0,
                  n_bootstrap=50)
    # w = [2, 0, 0, 3]
    assert values(ev) == pytest.approx(
        {"replay": 2.5, "ips": 3.5, "snips": 14 / 5, "dm": 1.625, "dr": 1.625 + 0.5})
    assert ev.targets["t"].clipped_share == 0.25
    assert any("exceed the clip" in w for w in ev.targets["t"].warnings)


def test_stochastic_target_equals_deterministic_when_one_hot():
    logged, t, q = small_case()
    one_hot = np.eye(2)[t]
    det = evaluate(logged, {"t": deterministic_terms(logged.actions, t, 2, q)}, n_bootstrap=20)
    sto = evaluate(logged, {"t": stochastic_terms(logged.actions, one_hot, q)}, n_bootstrap=20)
    assert values(det) == pytest.approx(values(sto))
    half = np.full((4, 2), 0.5)
    ev = evaluate(logged, {"t": stochastic_terms(logged.actions, half, q)}, n_bootstrap=20)
    w = 0.5 / logged.propensities
    assert values(ev)["ips"] == pytest.approx(np.mean(w * logged.outcomes))
    assert values(ev)["snips"] == pytest.approx(np.sum(w * logged.outcomes) / w.sum())
    assert values(ev)["dm"] == pytest.approx(q.mean(axis=1).mean())
    with pytest.raises(EstimatorError, match="sums to"):
        stochastic_terms(logged.actions, np.full((4, 2), 0.4))


def test_dr_is_dm_with_a_perfect_model_and_ips_with_a_zero_model():
    rng = np.random.default_rng(3)
    n, k = 500, 3
    a = rng.integers(0, k, n)
    p = rng.uniform(0.1, 0.9, n)
    truth = rng.normal(size=(n, k))
    y = truth[np.arange(n), a]                          # noiseless: q = truth is perfect
    t = rng.integers(0, k, n)
    logged = Logged(a, p, y, ("x", "y", "z"))
    perfect = values(evaluate(logged, {"t": deterministic_terms(a, t, k, truth)},
                              n_bootstrap=10))
    assert perfect["dr"] == pytest.approx(perfect["dm"])
    assert perfect["dm"] == pytest.approx(truth[np.arange(n), t].mean())
    zero = values(evaluate(logged, {"t": deterministic_terms(a, t, k, np.zeros((n, k)))},
                           n_bootstrap=10))
    assert zero["dr"] == pytest.approx(zero["ips"])


def test_balanced_uniform_design_is_exact():
    """Every arm logged equally often at propensity 1/K, constant cost per arm: every
    estimator returns that arm's cost, with a degenerate CI."""
    k, per = 3, 40
    a = np.repeat(np.arange(k), per)
    cost = np.array([0.2, -0.1, 0.5])
    logged = Logged(a, np.full(len(a), 1 / k), cost[a], ("x", "y", "z"))
    q = np.tile(cost, (len(a), 1))
    targets = {f"always {j}": deterministic_terms(a, np.full(len(a), j), k, q) for j in range(k)}
    ev = evaluate(logged, targets, n_bootstrap=100)
    for j in range(k):
        est = ev.targets[f"always {j}"]
        for name in ("replay", "snips", "dm", "dr"):
            iv = est.estimates[name]
            assert (iv.value, iv.lo, iv.hi) == pytest.approx((cost[j],) * 3), name
        assert est.estimates["ips"].value == pytest.approx(cost[j])
        assert est.ess == pytest.approx(per)
    assert ev.warnings == []


def test_ips_is_unbiased_and_cis_cover():
    """Non-uniform logging over 3 arms with known mean costs: over many logs IPS/SNIPS/DR
    centre on the truth and their 95 % bootstrap CIs cover it about 95 % of the time."""
    means = np.array([0.0, 0.3, -0.2])
    logging = np.array([0.6, 0.3, 0.1])
    rng = np.random.default_rng(11)
    reps, n = 150, 600
    found = {e: [] for e in ("ips", "snips", "dr")}
    covered = dict.fromkeys(found, 0)
    for r in range(reps):
        a = rng.choice(3, n, p=logging)
        y = means[a] + rng.normal(0, 1, n)
        logged = Logged(a, logging[a], y, ("x", "y", "z"))
        q = np.tile(np.zeros(3), (n, 1))
        ev = evaluate(logged, {"t": deterministic_terms(a, np.full(n, 2), 3, q)},
                      n_bootstrap=200, seed=r)
        for e in found:
            iv = ev.targets["t"].estimates[e]
            found[e].append(iv.value)
            covered[e] += iv.lo <= means[2] <= iv.hi
    for e in found:
        se = np.std(found[e]) / np.sqrt(reps)
        assert abs(np.mean(found[e]) - means[2]) < 4 * se + 0.01, e
        assert 0.88 <= covered[e] / reps <= 0.995, (e, covered[e])


def test_paired_difference_of_identical_targets_is_exactly_zero():
    logged, t, q = small_case()
    terms = deterministic_terms(logged.actions, t, 2, q)
    ev = evaluate(logged, {"x": terms, "y": terms}, pairs=[("x", "y")], n_bootstrap=50)
    for iv in ev.differences[("x", "y")].values():
        assert (iv.value, iv.lo, iv.hi) == (0.0, 0.0, 0.0)


def test_paired_difference_ci_is_narrower_than_unpaired():
    """Two targets that agree on most rows: the paired CI of their difference is far
    narrower than one built from their separate CIs."""
    rng = np.random.default_rng(5)
    n = 2000
    a = rng.integers(0, 2, n)
    y = rng.normal(0, 1, n) + 0.1 * a
    logged = Logged(a, np.full(n, 0.5), y, ARMS2)
    t1 = np.zeros(n, dtype=int)
    t2 = t1.copy()
    t2[:200] = 1
    ev = evaluate(logged, {"one": deterministic_terms(a, t1, 2),
                           "two": deterministic_terms(a, t2, 2)},
                  pairs=[("two", "one")], n_bootstrap=300)
    d = ev.differences[("two", "one")]["snips"]
    one, two = ev.targets["one"].estimates["snips"], ev.targets["two"].estimates["snips"]
    assert d.hi - d.lo < 0.5 * ((one.hi - one.lo) + (two.hi - two.lo))
    assert d.value == pytest.approx(two.value - one.value)


def test_support_warnings():
    a = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.5, np.nan, 0.5, 0.0, 0.5, 0.5])
    logged = Logged(a, p, np.ones(6), ("fair", "scx_simple", "scx_qmap"))
    never = deterministic_terms(a, np.full(6, 2), 3)
    ev = evaluate(logged, {"qmap": never}, n_bootstrap=20)
    assert ev.dropped == 2
    assert any("2 of 6 windows dropped" in w and "missing (1) or zero (1)" in w
               for w in ev.warnings)
    warn = " ".join(ev.targets["qmap"].warnings)
    assert "100.0 % of its choices on arms the logs never tried (scx_qmap)" in warn
    assert "no logged window matches" in warn
    assert ev.targets["qmap"].estimates["snips"].lo != ev.targets["qmap"].estimates[
        "snips"].lo  # NaN: undefined, not a number pretending to be an estimate
    nonuniform = Logged(np.array([0, 1]), np.array([0.9, 0.1]), np.ones(2), ARMS2)
    ev = evaluate(nonuniform, {"t": deterministic_terms(nonuniform.actions, np.zeros(2, int), 2)},
                  n_bootstrap=10)
    assert any("not uniform" in w and "replay" in w for w in ev.warnings)


def test_bad_input_is_named():
    a = np.array([0, 1])
    with pytest.raises(EstimatorError, match="outcomes contain NaN"):
        Logged(a, np.ones(2), np.array([1.0, np.nan]), ARMS2)
    with pytest.raises(EstimatorError, match="arm index out of range"):
        Logged(np.array([0, 2]), np.ones(2), np.ones(2), ARMS2)
    with pytest.raises(EstimatorError, match="propensities has shape"):
        Logged(a, np.ones(3), np.ones(2), ARMS2)
    logged = Logged(a, np.ones(2) / 2, np.ones(2), ARMS2)
    t = deterministic_terms(a, a, 2)
    with pytest.raises(EstimatorError, match="clip must be > 0"):
        evaluate(logged, {"t": t}, clip=0)
    with pytest.raises(EstimatorError, match="no window with a usable propensity"):
        evaluate(Logged(a, np.zeros(2), np.ones(2), ARMS2), {"t": t})


def test_json_shape():
    logged, t, q = small_case()
    ev = evaluate(logged, {"t": deterministic_terms(logged.actions, t, 2, q)}, n_bootstrap=20)
    d = ev.targets["t"].as_dict()
    assert set(d["estimates"]) == {"replay", "ips", "snips", "dm", "dr"}
    for v in d["estimates"].values():
        assert set(v) == {"value", "ci95"} and len(v["ci95"]) == 2


# -- the reward model ---------------------------------------------------------------------------

def test_reward_model_recovers_per_arm_linear_costs():
    rng = np.random.default_rng(2)
    n, k = 3000, 3
    x = rng.normal(size=(n, 4))
    a = rng.integers(0, k, n)
    beta = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0.5, 0.5, 0, 0]])
    truth = x @ beta.T + np.array([0.0, 1.0, -1.0])
    y = truth[np.arange(n), a] + rng.normal(0, 0.1, n)
    m = reward_model.fit(x, a, y, k)
    for pred in (m.predict(x), m.predict(x, np.arange(n))):  # full, cross-fitted
        err = np.abs(pred - truth)
        assert err.mean() < 0.03 and err.max() < 0.15
    assert m.unseen == ()


def test_reward_model_cross_fitting_does_not_memorise_noise():
    """Pure-noise costs: a cross-fitted prediction is uncorrelated with a row's own noise."""
    rng = np.random.default_rng(4)
    n = 400
    x = rng.normal(size=(n, 30))
    a = np.zeros(n, dtype=int)
    y = rng.normal(size=n)
    m = reward_model.fit(x, a, y, 1, ridge=1e-6)
    in_sample = m.predict(x)[:, 0]
    crossed = m.predict(x, np.arange(n))[:, 0]
    assert np.corrcoef(in_sample, y)[0, 1] > 0.2        # an in-sample fit memorises
    assert abs(np.corrcoef(crossed, y)[0, 1]) < 0.15     # the cross-fitted one cannot


def test_reward_model_unseen_arm_gets_the_pooled_prediction():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 2))
    a = rng.integers(0, 2, 200)
    y = x[:, 0] + rng.normal(0, 0.01, 200)
    m = reward_model.fit(x, a, y, 3)
    assert m.unseen == (2,)
    pred = m.predict(x)
    assert np.abs(pred[:, 2] - x[:, 0]).max() < 0.05
