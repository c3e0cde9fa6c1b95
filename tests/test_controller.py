"""The controller's verbs, parameters and status semantics; the scorer; the actuator's
answer to "what runs and can I trust it"; the one ticker."""

from __future__ import annotations

import math
import threading
import time

import pytest

from scxd.actuator import Ownership, running_from
from scxd.catalog import build_catalog
from scxd.clock import Ticker
from scxd.control import ControlError, RpcError
from scxd.controller import METHODS, Verb, check_params, parse_duration
from scxd.schedext import KernelState
from scxd.scorer import Scorer
from tests.test_reward_guard_policy import window

CAT = build_catalog()
FAIR, SIMPLE = CAT.fair(), CAT.action("scx_simple")
TUNED_FAIR = CAT.action("fair", {"base_slice_ns": 1_000_000})


# -- verbs and parameters ---------------------------------------------------------------------
def test_verbs_say_whether_they_change_anything():
    assert METHODS["status"] is False and METHODS["freeze"] is True
    assert {v for v in Verb if not v.changes} == {Verb.PING, Verb.STATUS, Verb.GET, Verb.LIST,
                                                  Verb.HISTORY, Verb.EXPLAIN}


@pytest.mark.parametrize("value,seconds", [(None, None), ("", None), (0, None), (90, 90.0),
                                           ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0),
                                           ("1d", 86400.0), (" 1.5H ", 5400.0)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value,message", [
    (float("nan"), "finite"), ("nan", "finite"), ("infh", "finite"), (math.inf, "finite"),
    (-5, "positive"), ("-1m", "positive"), (True, "not a duration"), ([1], "not a duration"),
    ("soon", "not a duration"), ({"a": 1}, "not a duration"), ("400d", "longer than a year"),
    (1e300, "longer than a year")])
def test_bad_durations_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize("verb,params,message", [
    (Verb.STATUS, {"x": 1}, r"unknown parameter 'x' for status \(allowed: none\)"),
    (Verb.FREEZE, {"for": "NaN"}, "finite"),
    (Verb.FREEZE, {"for": 1, "until": 2}, "unknown parameter 'until' for freeze"),
    (Verb.HISTORY, {"n": 0}, "n must be an integer 1..500"),
    (Verb.HISTORY, {"n": True}, "n must be an integer"),
    (Verb.HISTORY, {"n": 1.5}, "n must be an integer"),
    (Verb.SWITCH, {}, "scheduler .* is required"),
    (Verb.SWITCH, {"scheduler": ["x"]}, "scheduler .* is required"),
    (Verb.SWITCH, {"scheduler": "x" * 65}, "scheduler .* is required"),
    (Verb.PIN, {"scheduler": "scx_simple", "mode": 3}, "mode must be a name"),
    (Verb.PIN, {"scheduler": "scx_simple", "args": "-f"}, "args must be a list"),
    (Verb.PIN, {"scheduler": "scx_simple", "args": [1]}, "args must be a list"),
    (Verb.PIN, {"scheduler": "scx_simple", "args": ["-f"] * 65}, "args must be a list"),
    (Verb.PIN, {"scheduler": "scx_simple", "mode": "fifo", "args": ["-f"]}, "not both"),
])
def test_bad_params_are_refused_by_name(verb, params, message):
    with pytest.raises(ControlError, match=message) as err:
        check_params(verb, params)
    assert err.value.code == RpcError.INVALID_PARAMS


def test_good_params_pass():
    check_params(Verb.SWITCH, {"scheduler": "simple", "mode": None, "args": None})
    check_params(Verb.SWITCH, {"scheduler": "scx_qmap", "args": ["-s", "5000"]})
    check_params(Verb.FREEZE, {"for": "2h"})
    check_params(Verb.HISTORY, {"n": 500})
    check_params(Verb.STATUS, {})


# -- what runs, and can it be trusted ----------------------------------------------------------
ABSENT = KernelState(present=False)


def kernel(state: str, ops: str | None = None, seq: int = 1) -> KernelState:
    return KernelState(present=True, state=state, switch_all=ops is not None, ops=ops,
                       enable_seq=seq, nr_rejected=0, hotplug_seq=1)


def own(current=FAIR, prefix=None, seq=None, mode="active") -> Ownership:
    return Ownership(mode, current, FAIR, prefix, seq)


@pytest.mark.parametrize("k,o,label,trusted,scheduler", [
    (ABSENT, own(SIMPLE, mode="advisory"), "fair", True, "fair"),
    (kernel("disabled"), own(), "fair", True, "fair"),
    (kernel("disabled"), own(TUNED_FAIR), "fair", True, "fair"),
    (kernel("disabled"), own(SIMPLE, "simple", 3), "unverified", False, None),
    (kernel("disabled"), own(SIMPLE, mode="advisory"), "fair", True, "fair"),
    (kernel("enabling", "simple"), own(SIMPLE, "simple", 3), "unverified", False, None),
    (kernel("enabled", "simple", 3), own(SIMPLE, "simple", 3), "scx_simple", True,
     "scx_simple"),
    (kernel("enabled", "simple", 4), own(SIMPLE, "simple", 3), "external:simple", False,
     None),
    (kernel("enabled", "bpfland_1.0", 2), own(), "external:bpfland_1.0", False, None),
    (kernel("enabled", "simple", 3), own(SIMPLE, "simple", 3, "advisory"), "external:simple",
     False, None),
])
def test_running_is_what_the_kernel_confirms(k, o, label, trusted, scheduler):
    r = running_from(k, o)
    assert (r.label, r.trusted, r.scheduler) == (label, trusted, scheduler), r


# -- the scorer ---------------------------------------------------------------------------------
def test_scorer_feeds_the_reference_only_from_default_fair():
    s = Scorer("latency", FAIR)
    fair_run = running_from(kernel("disabled"), own())
    for _ in range(3):
        score = s.score(window(), fair_run, warm=True)
        assert score.scored and score.for_guard is None
    assert s.reference.windows() == 3 and s.baseline_cost() is not None
    tuned = running_from(kernel("disabled"), own(TUNED_FAIR))
    score = s.score(window(external_wakeup_latency_p99_s=4e-3), tuned, warm=True)
    assert score.for_guard == pytest.approx(math.log(2)) and s.reference.windows() == 3
    ours = running_from(kernel("enabled", "simple", 3), own(SIMPLE, "simple", 3))
    assert s.score(window(), ours, warm=True).for_guard == pytest.approx(0.0)


def test_scorer_skips_warmup_and_untrusted_windows():
    s = Scorer("balanced", FAIR)
    fair_run = running_from(kernel("disabled"), own())
    score = s.score(window(), fair_run, warm=False)
    assert not score.scored and "warm-up" in score.why_unscored and score.terms
    foreign = running_from(kernel("enabled", "other", 2), own())
    score = s.score(window(), foreign, warm=True)
    assert not score.scored and score.for_guard is None and "external:other" in \
        score.why_unscored
    assert s.reference.windows() == 0


def test_a_warmup_window_is_unscored_but_its_cost_reaches_the_fast_path():
    s = Scorer("latency", FAIR)
    ours = running_from(kernel("enabled", "simple", 3), own(SIMPLE, "simple", 3))
    first = s.score(window(), ours, warm=False)
    assert first.for_guard is None and not first.scored   # no reference yet: nothing
    fair_run = running_from(kernel("disabled"), own())
    assert s.score(window(), fair_run, warm=False).for_guard is None
    s.score(window(), fair_run, warm=True)
    slow = s.score(window(external_wakeup_latency_p99_s=4e-3), ours, warm=False)
    assert not slow.scored and slow.transient and "warm-up" in slow.why_unscored
    assert slow.for_guard == pytest.approx(math.log(2)) and s.reference.windows() == 1


# -- the ticker -----------------------------------------------------------------------------------
def test_ticker_ticks_on_schedule_and_halts_at_once():
    t = Ticker(0.05)
    start = time.monotonic()
    ticks = []
    for k in t:
        ticks.append((k, time.monotonic() - start))
        if k == 4:
            t.halt()
    assert [k for k, _ in ticks] == [1, 2, 3, 4]
    assert ticks[-1][1] == pytest.approx(0.2, abs=0.04)
    stopper = Ticker(10.0)
    threading.Timer(0.05, stopper.halt).start()
    t0 = time.monotonic()
    assert list(stopper) == [] and time.monotonic() - t0 < 1.0


def test_ticker_skips_missed_ticks_instead_of_bursting():
    t = Ticker(0.02)
    seen = []
    for k in t:
        seen.append(k)
        if k == 1:
            time.sleep(0.1)  # a slow tick: ~4 deadlines missed
        if len(seen) == 3:
            break
    assert seen[1] - seen[0] >= 4 and t.skipped >= 3


def test_ticker_runs_chores_and_wakeups_between_ticks():
    woken, pings = [], []
    t = Ticker(0.3, on_wake=lambda: woken.append(time.monotonic()))
    t.every(0.05, lambda: pings.append(time.monotonic()))
    threading.Timer(0.1, t.poke).start()
    start = time.monotonic()
    for k in t:
        if k == 2:
            t.halt()
    took = time.monotonic() - start
    assert len(woken) == 1 and woken[0] - start == pytest.approx(0.1, abs=0.05)
    assert len(pings) >= int(took / 0.05) - 1, (len(pings), took)
    assert pings[0] - start < 0.02, "the first chore runs at once"
