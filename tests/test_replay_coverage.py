"""Estimates from ε-greedy journals against a simulator's known truth, over 20 seeds.

A simulated host writes a real scxd journal (``JournalWriter`` + the typed
:class:`scxd.record.WindowRecord` the daemon writes): random contexts, an ε-greedy logging
policy whose greedy arm depends on the context, the exact composite distribution in every
``executed`` choice, and windows whose runqueue p99 is the fair scheduler's (noise-free, so
the rolling fair reference is exact) times exp(μ_arm + noise).  Under the ``latency``
objective a window's cost is then log(p99 / fair's p99) = μ_arm + noise: the true expected
cost of "always arm k" is exactly μ_k.  The journal goes through the same reader, transition
join, offline costs and estimators as any journal.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from scxd.catalog import build_catalog
from scxd.features import FEATURE_NAMES, SCHEMA_NAME, SCHEMA_VERSION
from scxd.journal import JournalWriter
from scxd.policy.arms import ArmSet, action_from_label
from scxd.record import Choice, Context, WindowRecord
from scxd.replay import evaluate

LABELS = ("fair", "scx_simple", "scx_qmap -s 5000", "scx_flatcg -f")
MU = np.array([0.0, 0.15, -0.10, 0.30])     # true expected latency cost per arm
FAIR_P99 = 0.002                            # seconds
EPSILON = 0.2


def simulate_journal(directory: Path, seed: int, windows: int = 2500) -> None:
    rng = np.random.default_rng(seed)
    catalog = build_catalog()
    arms = ArmSet([action_from_label(catalog, lbl) for lbl in LABELS])
    k, f = len(arms), len(FEATURE_NAMES)
    w = rng.normal(size=(f, k))
    writer = JournalWriter(directory, {"feature_schema": SCHEMA_NAME,
                                       "feature_version": SCHEMA_VERSION,
                                       "feature_names": list(FEATURE_NAMES),
                                       "arm_set": arms.header(), "objective": "latency",
                                       "window_s": 5.0}, fsync=False)
    running = 0
    for i in range(windows):
        x = rng.normal(size=f)
        noise = rng.normal(0, 0.3) if running else 0.0
        p99 = FAIR_P99 * math.exp(MU[running] + noise)
        greedy = int(np.argmax(x @ w))
        dist = np.full(k, EPSILON / k)
        dist[greedy] += 1 - EPSILON
        nxt = int(rng.choice(k, p=dist))
        choice = Choice(arms[nxt].key, arms[nxt].label, float(dist[nxt]),
                        arms.distribution(dist), True, nxt != greedy, "epsilon-sim", "1",
                        arms.hash)
        rec = WindowRecord(at=1e9 + 5.0 * i, context=Context(SCHEMA_NAME, SCHEMA_VERSION,
                                                             tuple(float(v) for v in x)),
                           running=arms[running].key, running_label=arms[running].label,
                           warmup=False, terms={"runq_p99_s": p99}, cost=None,
                           objective="latency", choice=choice, id=i)
        writer.append(rec.to_journal())
        running = nxt
    writer.close()


def estimate(journal: Path, label: str) -> dict:
    p = argparse.ArgumentParser()
    evaluate.add_arguments(p)
    args = p.parse_args(["--journal", str(journal), "--policy", f"fixed:{label}",
                         "--objective", "latency", "--bootstrap", "200"])
    return evaluate.evaluate(args)


def test_estimates_cover_the_known_truth_in_90_percent_of_20_seeds(tmp_path):
    covered = {e: 0 for e in ("ips", "snips", "dr")}
    trials = 0
    for seed in range(20):
        journal = tmp_path / f"j{seed}"
        simulate_journal(journal, seed)
        label = LABELS[seed % len(LABELS)]
        out = estimate(journal, label)
        truth = float(MU[LABELS.index(label)])
        trials += 1
        for e in covered:
            lo, hi = out["estimates"][e]["ci95"]
            covered[e] += lo <= truth <= hi
    for e, n in covered.items():
        assert n / trials >= 0.9, (e, n, trials)
