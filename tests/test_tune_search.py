"""Search spaces from the catalog, the Optuna ask/tell optimiser, and the statistics behind
every reported figure (pure: no scheduler runs here)."""

from __future__ import annotations

import math
import random

import pytest

from scxd.catalog import BUILTIN, CatalogError, build_catalog
from scxd.tune.optimizer import OptimizerError, SchedulerOptimizer
from scxd.tune.space import (
    Choice,
    FloatRange,
    IntRange,
    SearchSpace,
    SpaceError,
    ladder,
    parse_range,
)
from scxd.tune.stats import (
    chance_to_beat,
    improvement,
    pooled_noise,
    reproduce_interval,
    summarize,
)

CATALOG = build_catalog()


@pytest.mark.parametrize("spec", BUILTIN, ids=lambda s: s.name)
def test_every_catalog_entry_has_a_valid_default_space(spec):
    space = SearchSpace.from_catalog(spec)
    explorable = [p.name for p in spec.params if p.explore]
    assert list(space.dims) == explorable
    # the defaults are a point of the space, and every grid point resolves or is rejected
    # by a named constraint — never by a range or type error
    assert space.defaults_sample() is not None
    grid = space.grid(3)
    rng = random.Random(0)
    for _ in range(50):
        sample = {n: rng.choice(v) for n, v in grid.items()}
        why = space.violation(sample)
        assert not why or "constraint" in why, why


def test_wide_ranges_with_a_zero_floor_become_a_ladder():
    bpf = SearchSpace.from_catalog(CATALOG.get("scx_bpfland"))
    assert bpf.dims["slice_us"] == IntRange(100, 100_000, log=True)
    throttle = bpf.dims["throttle_us"]
    assert isinstance(throttle, Choice) and throttle.values[0] == 0
    assert 1_000_000 in throttle.values and 3 in throttle.values
    lag = bpf.dims["slice_us_lag"]
    assert 40_000 in lag.values          # the default is always a rung
    assert ladder(-1, 1000, -1, True) == [-1, 0, 1, 3, 10, 30, 100, 300, 1000]


def test_custom_ranges_and_values_are_checked_against_the_catalog():
    spec = CATALOG.get("scx_bpfland")
    space = SearchSpace.from_catalog(spec, params=["slice_us", "no_wake_sync"],
                                     overrides={"slice_us": IntRange(500, 20_000, log=True)},
                                     fixed={"primary_domain": "performance"})
    assert list(space.dims) == ["slice_us", "no_wake_sync"]
    assert space.resolve({"slice_us": 800, "no_wake_sync": True})["primary_domain"] == \
        "performance"
    with pytest.raises(SpaceError, match="above the maximum"):
        SearchSpace.from_catalog(spec, overrides={"slice_us": IntRange(500, 10**9)})
    with pytest.raises(SpaceError, match="is a bool"):
        SearchSpace.from_catalog(spec, overrides={"local_pcpu": IntRange(0, 1)})
    with pytest.raises(SpaceError, match="has no parameter bogus"):
        SearchSpace.from_catalog(spec, params=["bogus"])
    with pytest.raises(SpaceError, match="both searched and fixed"):
        SearchSpace(spec, {"slice_us": IntRange(500, 600)}, {"slice_us": 500})
    assert parse_range(spec.param("slice_us"), "500:20000:log") == \
        IntRange(500, 20000, log=True)
    assert parse_range(spec.param("no_wake_sync"), "on,off") == Choice([True, False])
    assert parse_range(spec.param("primary_domain"), "auto,all") == Choice(["auto", "all"])
    with pytest.raises(SpaceError, match="expected one of"):
        parse_range(spec.param("primary_domain"), "auto,fastest")
    rusty = CATALOG.get("scx_rusty")
    assert parse_range(rusty.param("interval"), "0.5:4") == FloatRange(0.5, 4.0)


def test_constraints_are_never_violated_by_what_the_optimiser_proposes():
    spec = CATALOG.get("scx_bpfland")
    space = SearchSpace.from_catalog(spec, params=["slice_us", "slice_min_us"])
    opt = SchedulerOptimizer(space, seed=3)
    for _ in range(25):
        s = opt.ask()
        assert s.values["slice_us"] >= s.values["slice_min_us"]
        assert "--slice-us" in s.argv or s.values["slice_us"] == 1000
        opt.tell(s, [float(s.values["slice_us"]), float(s.values["slice_us"]) + 1])
    assert opt.rejected, "slice_min_us often exceeds slice_us in this space"
    assert all("constraint slice_us >= slice_min_us violated" in why
               for _, why, _ in opt.rejected)


def test_tpe_finds_the_optimum_and_learns_to_avoid_failures():
    """A synthetic objective: best slice near 3000 µs; -H (boost_nice) always fails."""
    space = SearchSpace.from_catalog(CATALOG.get("scx_qmap"))
    opt = SchedulerOptimizer(space, seed=7, startup_trials=5)
    failures_late = 0
    for i in range(30):
        s = opt.ask()
        if s.values["boost_nice"]:
            failures_late += i >= 15
            opt.tell(s, None, "failed_to_start")
            continue
        x = math.log10(s.values["slice_us"])
        opt.tell(s, 1.0 - 0.4 * math.exp(-((x - 3.5) ** 2) / 0.2))
    best = opt.best
    assert best is not None and 1000 <= best.suggestion.values["slice_us"] <= 10_000
    assert failures_late <= 3, "TPE kept proposing a configuration that never starts"


def test_seeded_runs_propose_the_same_configurations():
    space = SearchSpace.from_catalog(CATALOG.get("scx_qmap"))

    def trace(seed):
        opt = SchedulerOptimizer(space, seed=seed, startup_trials=3)
        out = []
        for _ in range(8):
            s = opt.ask()
            out.append(s.sampled)
            opt.tell(s, float(s.values["slice_us"] % 97))
        return out
    assert trace(1) == trace(1) and trace(1) != trace(2)


def test_grid_search_covers_the_grid_then_says_so():
    space = SearchSpace.from_catalog(CATALOG.get("scx_simple"))      # fifo: on/off
    opt = SchedulerOptimizer(space, sampler="grid", seed=0)
    seen = set()
    for _ in range(2):
        s = opt.ask()
        seen.add(s.values["fifo"])
        opt.tell(s, 1.0)
    assert seen == {True, False}
    with pytest.raises(OptimizerError, match="exhausted"):
        opt.ask()


def test_resumed_knowledge_is_equivalent_for_the_sampler():
    """add_measured rebuilds a study: failed trials come back as infeasible."""
    space = SearchSpace.from_catalog(CATALOG.get("scx_qmap"))
    a = SchedulerOptimizer(space, seed=5, startup_trials=3)
    told = []
    for _ in range(6):
        s = a.ask()
        v = None if s.values["boost_nice"] else float(s.values["slice_us"])
        a.tell(s, v, "failed")
        told.append((s.sampled, v, a.told[-1].system_attrs))
    b = SchedulerOptimizer(space, seed=5, startup_trials=3)
    for sampled, v, attrs in told:
        b.add_measured(sampled, v, attrs, why_not="failed")
    fa = [t for t in a.study.trials]
    fb = [t for t in b.study.trials]
    assert [t.params for t in fa] == [t.params for t in fb]
    assert [t.constraints for t in fa] == [t.constraints for t in fb]
    assert any(t.constraints["measured"] > 0 for t in fb)


def test_tell_refuses_unknown_suggestions():
    opt = SchedulerOptimizer(SearchSpace.from_catalog(CATALOG.get("scx_simple")), seed=0)
    s = opt.ask()
    opt.tell(s, 1.0)
    with pytest.raises(OptimizerError, match="already told"):
        opt.tell(s, 1.0)
    with pytest.raises(OptimizerError, match="unknown sampler"):
        SchedulerOptimizer(opt.space, sampler="cmaes")
    with pytest.raises(CatalogError):
        CATALOG.get("scx_nonesuch")


# -- statistics -----------------------------------------------------------------------------------
def test_summary_intervals():
    s = summarize([1.0, 1.1, 0.9, 1.0])
    assert s.mean == pytest.approx(1.0) and s.ci_low < 1.0 < s.ci_high
    # t with 3 degrees of freedom: 3.182 × sd/√n
    assert s.half_width == pytest.approx(3.182 * s.sd / 2, rel=1e-3)
    one = summarize([2.0])
    assert one.n == 1 and math.isinf(one.half_width)


def test_improvement_sign_follows_the_direction():
    fast, slow = [0.9, 0.91, 0.89, 0.9], [1.0, 1.01, 0.99, 1.0]
    lower = improvement(fast, slow, higher_is_better=False, name="fair")
    assert lower.percent == pytest.approx(10.0) and lower.verdict == "better"
    assert lower.ci_low_percent > 0 and lower.p_value < 0.001
    higher = improvement(fast, slow, higher_is_better=True)
    assert higher.percent == pytest.approx(-10.0) and higher.verdict == "worse"
    same = improvement([1.0, 1.02, 0.98], [1.01, 0.99, 1.0], False)
    assert same.verdict == "no significant difference"


def test_noise_drift_and_the_reproduce_interval():
    rng = random.Random(3)
    groups = [[rng.gauss(1.0, 0.02) for _ in range(3)] for _ in range(20)]
    rounds = [[[rng.gauss(m, 0.02) for _ in range(3)] for m in (1.0, 1.05, 1.1)]]
    flat = pooled_noise(groups)
    drifting = pooled_noise(groups, rounds)
    assert flat.within_sd == pytest.approx(0.02, rel=0.35) and flat.between_var == 0
    assert drifting.between_var > 0.001
    lo, hi = reproduce_interval([1.0, 1.01, 0.99], 3, flat)
    lo2, hi2 = reproduce_interval([1.0, 1.01, 0.99], 3, drifting)
    assert lo < 1.0 < hi and (hi2 - lo2) > (hi - lo)     # drift widens the prediction
    # coverage: fresh 3-repeat means of the same configuration land inside ~95% of the time
    inside = 0
    for _ in range(400):
        est = [rng.gauss(1.0, 0.02) for _ in range(3)]
        lo, hi = reproduce_interval(est, 3, flat)
        fresh = sum(rng.gauss(1.0, 0.02) for _ in range(3)) / 3
        inside += lo <= fresh <= hi
    assert 0.9 <= inside / 400 <= 0.99


def test_chance_to_beat():
    recent = [1.0, 1.01, 0.99, 1.02, 1.0]
    assert chance_to_beat(recent, 0.8, 10, 0.01, higher_is_better=False) < 1e-6
    assert chance_to_beat(recent, 1.0, 10, 0.0, higher_is_better=False) > 0.9
    assert chance_to_beat(recent, 1.2, 5, 0.01, higher_is_better=True) < 1e-6
    assert chance_to_beat(recent, 0.8, 0, 0.01, higher_is_better=False) == 0.0
