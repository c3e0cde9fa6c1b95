"""The test-bed recording design: which arms, and the exact probability of each."""

from __future__ import annotations

import collections
import json
import math
import random

import pytest

from scxd.catalog import CatalogError, build_catalog
from scxd.testbed.design import (
    DRAW_SPACE,
    RECORDED,
    TUNED,
    build_design,
    design_from_dict,
    draw_one,
    presets,
)

CAT = build_catalog()


def test_presets_cover_defaults_modes_and_flatcg():
    d = build_design(CAT, RECORDED, draws=8, seed=1)
    labels = [a.label for a in d.arms]
    assert labels[0] == "fair" and "scx_flatcg" in labels and "scx_simple" in labels
    assert "scx_flashyspark --dsq-mode cpu" in labels
    assert {"preset:gaming", "preset:lowlatency", "preset:powersave", "preset:server"} <= {
        a.origin for a in d.arms if a.action.scheduler == "scx_bpfland"}
    assert len(labels) == len(set(labels))  # no arm twice
    assert d.propensity == pytest.approx(1 / len(d.arms))
    draws = [a for a in d.arms if a.origin.startswith("draw:")]
    assert draws and all(a.action.scheduler in TUNED for a in draws)
    assert all(0 < a.draw_probability < 1 for a in draws)
    assert all(a.draw_probability is None for a in d.arms if a.origin.startswith("preset"))
    assert len(d.arms) <= len(presets(CAT)) + 8


def test_draw_probability_is_the_exact_product():
    rng = random.Random(5)
    for _ in range(50):
        action, prob = draw_one(CAT, list(TUNED), rng)
        values = action.values
        expected = 1 / len(TUNED)
        for param, choices in DRAW_SPACE[action.scheduler].items():
            expected *= dict(choices)[values[param]]
        assert prob == pytest.approx(expected)


def test_draws_follow_the_declared_distribution():
    """Empirical frequencies over many draws match the declared probabilities."""
    rng = random.Random(11)
    n = 6000
    sched = collections.Counter()
    slices = collections.Counter()
    for _ in range(n):
        action, _ = draw_one(CAT, list(TUNED), rng)
        sched[action.scheduler] += 1
        if action.scheduler == "scx_bpfland":
            slices[action.values["slice_us"]] += 1
    for name in TUNED:
        assert sched[name] / n == pytest.approx(1 / 3, abs=4 * math.sqrt(2 / 9 / n))
    m = sum(slices.values())
    for value, q in DRAW_SPACE["scx_bpfland"]["slice_us"]:
        assert slices[value] / m == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / m))


def test_unavailable_schedulers_are_skipped_with_a_reason():
    d = build_design(CAT, ["fair", "scx_simple", "scx_flatcg"], draws=4, seed=1)
    assert [a.label for a in d.arms] == ["fair", "scx_simple", "scx_flatcg"]
    assert any("scx_bpfland" in s for s in d.skipped)
    assert any("parameter draws" in s for s in d.skipped)


def test_saved_design_round_trips_and_refuses_a_changed_catalog():
    d = build_design(CAT, RECORDED, draws=6, seed=3)
    data = json.loads(json.dumps(d.as_dict()))
    again = design_from_dict(data, CAT)
    assert [a.label for a in again.arms] == [a.label for a in d.arms]
    assert [a.draw_probability for a in again.arms] == [a.draw_probability for a in d.arms]
    data["arms"][1]["label"] = "scx_simple -X"
    with pytest.raises(CatalogError, match="catalog changed"):
        design_from_dict(data, CAT)
