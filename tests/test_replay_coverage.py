"""Off-policy estimates from a real ``scxd run`` journal against the known truth of the
synthetic host (``tests/fakes/synthetic_host.py``): a slice of ``bench/replay_coverage.py``
(one seed, a short run; the 20-seed run with its coverage table is the bench).

The daemon runs unmodified — the torch network as an ε-greedy logging policy over the fake
kernel's six arms, the guard, the actuator with fake loaders, schedstat telemetry of a
synthetic /proc — and its journal is read by the code behind ``scxd replay evaluate
--journal``.  The synthetic host makes each window's cost μ[arm][phase] + ε under
``v1_latency`` (recomputed from the journaled terms), so the expected cost of "always arm k"
over the evaluated windows is known.
"""

from __future__ import annotations

import pytest

from scxd.journal import JournalReader
from tests.fakes.synthetic_host import ESTIMATORS, check_estimates, daemon_journal

WINDOWS = 150


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 1 s windows: at 0.5 s, with five daemons at once, a window's waits were once seen a
    # window late (bench/replay_coverage.py --window 0.5; the truth check caught it)
    return daemon_journal(tmp_path_factory.mktemp("coverage"), seed=3, windows=WINDOWS)


def test_the_host_caused_every_journaled_cost(run):
    """The truth is known only if each window measured what the host wrote for it, and the
    daemon's own cost (its scorer) is what replay recomputes from the raw terms."""
    assert not run.host.errors
    checks = check_estimates(run, bootstrap=50)   # raises on any window the host did not cause
    assert sum(c.matched for c in checks) >= WINDOWS - 5
    for w in JournalReader(run.journal).windows():
        t = run.host.windows[w["id"]]
        assert w["executed"]["by_policy"] and 0 < w["executed"]["propensity"] < 1
        assert w["running"] == t.arm and not w["warmup"]
        # the runqueue mean the host wrote is the journaled v1 latency term (schedstat mode)
        assert w["terms"]["runq_p99_s"] == pytest.approx(t.runq_mean_s, rel=1e-6)


def test_estimates_cover_the_truth(run):
    """99 % intervals (the slice has one seed: 95 % coverage is the bench's figure) cover the
    truth for at least all arms but one, per estimator; no estimate is off by more than
    three half-widths."""
    checks = [c for c in check_estimates(run, bootstrap=400, alpha=0.01) if c.arm != "fair"]
    assert len(checks) == 5
    for e in ESTIMATORS:
        assert sum(c.covered(e) for c in checks) >= len(checks) - 1, \
            [(c.arm, c.truth, c.estimates[e], c.matched) for c in checks]
        for c in checks:
            value, lo, hi = c.estimates[e]
            if lo is not None:
                assert abs(value - c.truth) <= 3 * max(hi - value, value - lo), (c.arm, e)
