"""Journals and datasets (through :mod:`scxd.replay.logs`) → one :class:`Table` of windows.

Rows are windows.  Each carries its own features and, as ``ctx_<feature>``, the features of
the window the decision that put its arm there was made from (the *decision context*: what a
policy sees), the arm that ran, and the probability with which it was chosen — taken from the
transition into the window (:class:`scxd.record.Transition`), NaN when no decision led to it
(the first window of a run, after a restart).

Costs for every objective are recomputed from each window's metrics against a fair-scheduler
reference: with workload tags (test-bed datasets) the median of the fair scheduler's scored
windows of the same workload; without (daemon journals) the daemon's own rolling reference
(:class:`scxd.reward.FairReference`) replayed in journal order, so the journal's recorded cost
is reproduced for its objective and every other objective — v1's (``v1_*``) included — is
computed the same way.

``meta["context_pre_decision"]`` says whether the logged propensities were conditional on the
decision context: true for journals (the daemon decided from that window's features), false
for datasets (the design drew each run's arm before the run; its windows' features are
*outcomes* of the arm) — the direct method then models cost from the arm alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from scxd.replay.logs import ReplayLog
from scxd.replay.table import Table, TableError
from scxd.reward import ALL_OBJECTIVE_TERMS, FairReference, cost


def table_from_log(log: ReplayLog, objective: str) -> Table:
    recs = log.records
    n = len(recs)
    names = list(log.feature_names)
    if not names:
        raise TableError(f"{', '.join(log.sources)}: no feature names in the header")
    arms = log.arms
    cols: dict[str, np.ndarray] = {}
    feats = np.array([r.context.values for r in recs], dtype=np.float64).reshape(n, len(names))
    into = {t.at: t for t in log.transitions}
    ctx = np.full((n, len(names)), np.nan)
    prop = np.full(n, np.nan)
    explore = np.zeros(n, dtype=bool)
    for i, r in enumerate(recs):
        t = into.get(r.at)
        if t is not None and t.arm == r.running:
            ctx[i] = t.context
            prop[i] = t.propensity
            explore[i] = t.explore
    for j, f in enumerate(names):
        cols[f] = feats[:, j]
    for j, f in enumerate(names):
        cols[f"ctx_{f}"] = ctx[:, j]
    keys = [r.running for r in recs]
    unknown = sorted({k for k in keys if k not in arms})
    cols["arm"] = np.array(keys, dtype=object)
    cols["arm_label"] = np.array([r.running_label for r in recs], dtype=object)
    cols["scheduler"] = np.array([arms.get(k).scheduler if k in arms else None for k in keys],
                                 dtype=object)
    cols.update(_param_columns(log, keys))
    terms = [dict(r.terms) for r in recs]
    for term in sorted({t for ts in terms for t in ts}):
        cols[f"term_{term}"] = np.array([_f(ts.get(term)) for ts in terms])
    warmup = np.array([r.warmup for r in recs], dtype=bool)
    fair = arms[arms.fair_index()].key if arms.fair_index() is not None else None
    for obj in ALL_OBJECTIVE_TERMS:   # v1's objectives too: replay compares them
        cols[f"cost_{obj}"] = offline_costs(recs, terms, warmup, keys, fair, obj)
    cols["cost"] = cols[f"cost_{objective}"]
    cols["reward"] = -cols["cost"]
    cols["propensity"] = prop
    cols["explore"] = explore
    cols["warmup"] = warmup
    cols["window_id"] = np.array([r.id if r.id is not None else -1 for r in recs],
                                 dtype=np.int64)
    cols["at"] = np.array([r.at for r in recs], dtype=np.float64)
    for tag in ("workload", "run_id"):
        if any(tag in r.tags for r in recs):
            cols[tag] = np.array([r.tags.get(tag) for r in recs], dtype=object)
    for tag in ("repeat", "index"):   # index: the window's position in its run
        if any(tag in r.tags for r in recs):
            cols[tag] = np.array([int(r.tags.get(tag, -1)) for r in recs], dtype=np.int64)
    meta = {"feature_schema": log.schema, "feature_version": log.feature_version,
            "feature_names": names, "context_columns": [f"ctx_{f}" for f in names],
            "arms": arms.keys(), "arm_labels": arms.labels(), "arm_set": arms.hash,
            "objectives": list(ALL_OBJECTIVE_TERMS), "objective": objective, "sources": log.sources,
            "window_s": log.window_s, "skipped_lines": len(log.skipped),
            "reference": "workload" if "workload" in cols else "rolling",
            # Daemon journals decide from the window's features (a context); a dataset's
            # design assigned each run its arm before any of its windows was measured.
            "context_pre_decision": "run_id" not in cols,
            "unknown_arms": unknown}
    return Table(cols, meta)


def _f(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan


def _param_columns(log: ReplayLog, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """``param_<name>`` for every parameter of the arm set's schedulers: numeric where every
    value is a number or a boolean, else text; empty where the arm's scheduler lacks it."""
    per_arm = {a.key: dict(a.action.params) for a in log.arms}
    names = sorted({p for params in per_arm.values() for p in params})
    out: dict[str, np.ndarray] = {}
    for p in names:
        values = [per_arm.get(k, {}).get(p) for k in keys]
        present = [v for v in values if v is not None]
        if all(isinstance(v, int | float | bool) for v in present):
            out[f"param_{p}"] = np.array([math.nan if v is None else float(v) for v in values])
        else:
            out[f"param_{p}"] = np.array([None if v is None else str(v) for v in values],
                                         dtype=object)
    return out


def offline_costs(recs: Sequence[Any], terms: Sequence[dict[str, float | None]],
                  warmup: np.ndarray, keys: Sequence[str], fair: str | None,
                  objective: str) -> np.ndarray:
    """Cost of every scored window under ``objective`` (NaN for warm-up windows)."""
    out = np.full(len(recs), np.nan)
    by_workload = all("workload" in r.tags for r in recs) and len(recs) > 0
    if by_workload:
        refs: dict[str, FairReference] = defaultdict(lambda: FairReference(size=10**9))
        for r, ts, w, k in zip(recs, terms, warmup, keys, strict=True):
            if k == fair and not w:
                refs[r.tags["workload"]].add(ts)
        means = {wl: ref.means() for wl, ref in refs.items()}
        for i, (r, ts, w) in enumerate(zip(recs, terms, warmup, strict=True)):
            if not w:
                out[i] = cost(ts, objective, means.get(r.tags["workload"], {})).value
        return out
    ref = FairReference()
    for i, (ts, w, k) in enumerate(zip(terms, warmup, keys, strict=True)):
        if w:
            continue
        out[i] = cost(ts, objective, ref.means()).value
        if k == fair:
            ref.add(ts)
    return out
