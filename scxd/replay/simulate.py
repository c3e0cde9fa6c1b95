"""Online runs replayed from a recorded counterfactual table (the replay benchmark's engine).

A :class:`Table` holds, per (workload, arm), the recorded windows of the evaluation repeats —
scored ones, and the warm-up windows recorded right after a swap — and each workload's own
outcome per arm (its headline figure, averaged over those repeats).  :func:`simulate` runs one
policy through a piecewise-stationary workload schedule on the **same decision path as
``scxd run``** (:class:`scxd.decide.DecisionPath`: fair reference and cost, policy, guard with
dwell/budget/regression/warm-up, composite propensity, transition join, ``Policy.update``);
only sampling and actuation are simulated: each window is bootstrapped from the recorded
windows of (current workload, running arm) — from that cell's warm-up windows while the guard
counts warm-up after a swap — and a swap always succeeds.  Time advances by the daemon's
window length, so the guard's dwell and swap budget act in real seconds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scxd.actuator import Running
from scxd.config import GuardConfig
from scxd.decide import DecisionPath
from scxd.features import FeatureVector
from scxd.guard import Guard
from scxd.policy import Policy
from scxd.policy.arms import ArmSet
from scxd.policy.base import OfflineData
from scxd.record import WindowRecord
from scxd.replay.logs import ReplayLog
from scxd.reward import FairReference, cost
from scxd.scorer import Scorer


def headline(workload: str, manifest: Mapping[str, Any] | None = None
             ) -> tuple[str, bool] | None:
    """(outcome key, higher is better) of a workload: scxd's own declaration
    (:mod:`scxd.workloads`, the one place a workload's outcome is declared) for the workloads
    it declares, else the dataset manifest's (recordings of workloads scxd does not know)."""
    from scxd import workloads

    w = workloads.BY_NAME.get(workload)
    if w is not None:
        return w.headline.metric, w.headline.higher_is_better
    h = workloads.Headline.from_manifest(
        workload, ((manifest or {}).get("headlines") or {}).get(workload))
    # None: a workload nobody declared has no outcome to judge by.
    return (h.metric, h.higher_is_better) if h is not None else None


def headline_value(workload: str, outcome: Mapping[str, Any] | None,
                   manifest: Mapping[str, Any] | None = None) -> float | None:
    """A run's headline figure, as :func:`headline` declares it (scxd's declared figures may
    be derived from a recording's raw ones), or None when missing or not finite."""
    from scxd import workloads

    w = workloads.BY_NAME.get(workload)
    if w is not None:
        return w.headline_value(outcome)
    h = headline(workload, manifest)
    v = (outcome or {}).get(h[0]) if h else None
    if not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def loss_pct(value: float, best: float, higher_is_better: bool) -> float:
    """How much worse ``value`` is than ``best``, in percent of ``best``."""
    if best == 0:
        return 0.0 if value == best else math.inf
    return 100.0 * ((best - value) if higher_is_better else (value - best)) / abs(best)


@dataclass
class Cell:
    scored: list[WindowRecord] = field(default_factory=list)
    warmup: list[WindowRecord] = field(default_factory=list)


@dataclass
class Table:
    """The evaluation repeats as (workload, arm) cells, with outcomes and reference costs."""

    arms: ArmSet
    workloads: list[str]
    cells: dict[tuple[str, int], Cell]
    outcome: np.ndarray              # (W, K) headline outcome (mean over eval repeats)
    higher_is_better: list[bool]     # per workload
    loss: np.ndarray                 # (W, K) outcome loss % vs the workload's best arm
    cell_cost: np.ndarray            # (W, K) mean cost vs the workload's fair reference
    headlines: list[str]

    def rank(self, w: int) -> np.ndarray:
        """Arms of workload w ordered best first by outcome (NaN outcomes last)."""
        loss = np.where(np.isnan(self.loss[w]), np.inf, self.loss[w])
        return np.argsort(loss, kind="stable")


def build_table(log: ReplayLog, eval_repeats: Sequence[int], objective: str,
                manifest: Mapping[str, Any] | None = None) -> Table:
    arms = log.arms
    workloads = [w for w in log.workloads() if headline(w, manifest) is not None]
    missing = [w for w in log.workloads() if w not in workloads]
    if missing:
        raise ValueError(f"no headline outcome declared for workloads {missing}: declare it "
                         "in scxd/workloads.py or the dataset manifest's 'headlines'")
    wi = {w: i for i, w in enumerate(workloads)}
    cells: dict[tuple[str, int], Cell] = defaultdict(Cell)
    for r in log.records:
        if r.tags.get("repeat") in eval_repeats and r.tags.get("workload") in wi and \
                r.running in arms:
            c = cells[(r.tags["workload"], arms.index(r.running))]
            (c.warmup if r.warmup else c.scored).append(r)
    holes = [(w, arms[a].label) for w in workloads for a in range(len(arms))
             if not cells[(w, a)].scored]
    if holes:
        raise ValueError(f"evaluation repeats {list(eval_repeats)} have no scored window for "
                         f"{len(holes)} cells, e.g. {holes[:3]}")
    for c in cells.values():
        if not c.warmup:   # a recording without warm-up windows: the scored ones stand in
            c.warmup = list(c.scored)
    label_index = {a.label: a.index for a in arms}
    key_index = {a.key: a.index for a in arms}
    sums: dict[tuple[int, int], list[float]] = defaultdict(list)
    every: dict[tuple[int, int], list[float]] = defaultdict(list)
    for run in log.runs:
        w = run.get("workload")
        if w not in wi or not run.get("ok", True):
            continue
        a = key_index.get(run.get("arm_key", ""), label_index.get(run.get("arm", "")))
        value = headline_value(w, run.get("outcome"), manifest)
        if a is None or value is None:
            continue
        every[(wi[w], a)].append(float(value))
        if run.get("repeat") in eval_repeats:
            sums[(wi[w], a)].append(float(value))
    W, K = len(workloads), len(arms)
    outcome = np.full((W, K), np.nan)
    for (w, a), vals in every.items():
        use = sums.get((w, a)) or vals        # eval repeats, else every repeat
        outcome[w, a] = float(np.mean(use))
    hib = [bool(headline(w, manifest)[1]) for w in workloads]  # type: ignore[index]
    loss = np.full((W, K), np.nan)
    for w in range(W):
        vals = outcome[w]
        if np.isnan(vals).all():
            continue
        best = np.nanmax(vals) if hib[w] else np.nanmin(vals)
        loss[w] = [loss_pct(v, best, hib[w]) if not np.isnan(v) else np.nan for v in vals]
    fair = arms.fair_index()
    cell_cost = np.zeros((W, K))
    for w in workloads:
        ref = fair_reference(cells[(w, fair)].scored if fair is not None else [])
        for a in range(K):
            cell_cost[wi[w], a] = float(np.mean([cost(r.terms, objective, ref).value
                                                 for r in cells[(w, a)].scored]))
    return Table(arms, workloads, dict(cells), outcome, hib, loss, cell_cost,
                 [headline(w, manifest)[0] for w in workloads])  # type: ignore[index]


def fair_reference(records: Iterable[WindowRecord]) -> dict[str, float]:
    ref = FairReference(size=10**6)
    for r in records:
        ref.add(r.terms)
    return ref.means()


def offline_data(log: ReplayLog, repeats: Sequence[int], objective: str, table_arms: ArmSet,
                 workloads: Sequence[str], contexts_per_window: int, seed: int,
                 outcome_best: Mapping[str, int] | None = None,
                 outcome_loss: Mapping[str, np.ndarray] | None = None) -> OfflineData:
    """Training transitions from the training repeats, as the counterfactual table allows:
    every scored window of (workload, arm, repeat) — its cost against the fair reference of
    the same workload and repeat — is paired with ``contexts_per_window`` context windows
    drawn from the same workload and repeat under *any* arm (what the daemon sees before it
    decides is measured under whatever runs).  Propensity: the recording design's."""
    rng = np.random.default_rng(seed)
    by_wr: dict[tuple[str, int], list[WindowRecord]] = defaultdict(list)
    for r in log.records:
        rep = r.tags.get("repeat")
        if rep in repeats and r.tags.get("workload") in workloads and r.running in table_arms:
            by_wr[(r.tags["workload"], rep)].append(r)
    fair = table_arms.fair_index()
    xs, arms, rewards, props, groups, swapped, ctx_arms = [], [], [], [], [], [], []
    for (w, _rep), recs in by_wr.items():
        scored = [r for r in recs if not r.warmup]
        ref = fair_reference(r for r in scored
                             if fair is not None and r.running == table_arms[fair].key)
        for r in scored:
            a = table_arms.index(r.running)
            c = cost(r.terms, objective, ref).value
            p = r.choice.propensity if r.choice else 1.0 / len(table_arms)
            for j in rng.integers(0, len(recs), contexts_per_window):
                ctx = recs[j]
                xs.append(ctx.context.values)
                arms.append(a)
                rewards.append(-c)
                props.append(p)
                groups.append(w)
                swapped.append(ctx.running != r.running)
                ctx_arms.append(table_arms.index(ctx.running))
    if not xs:
        raise ValueError(f"no training windows in repeats {list(repeats)}")
    return OfflineData(np.asarray(xs, dtype=np.float64), np.asarray(arms), np.asarray(rewards),
                       np.asarray(props), np.asarray(groups), np.asarray(swapped),
                       np.asarray(ctx_arms), dict(outcome_best or {}), dict(outcome_loss or {}))


def outcome_losses(log: ReplayLog, repeats: Sequence[int], arms: ArmSet,
                   workloads: Sequence[str], manifest: Mapping[str, Any] | None = None
                   ) -> dict[str, np.ndarray]:
    """Per workload, each arm's outcome loss (a fraction: 0.5 = 50 % worse) against that
    workload's outcome-best arm, from the mean headline figure of the runs in ``repeats``;
    NaN for an arm never run there.  Workloads without a declared headline are left out."""
    out: dict[str, np.ndarray] = {}
    for w in workloads:
        h = headline(w, manifest)
        if h is None:
            continue
        vals: dict[int, list[float]] = defaultdict(list)
        for run in log.runs:
            if run.get("workload") != w or run.get("repeat") not in repeats:
                continue
            arm = arms.by_label(run.get("arm", ""))
            v = headline_value(w, run.get("outcome"), manifest)
            if arm is not None and v is not None:
                vals[arm.index].append(v)
        if not vals:
            continue
        means = {a: float(np.mean(v)) for a, v in vals.items()}
        best = (max if h[1] else min)(means.values())
        row = np.full(len(arms), np.nan)
        for a, m in means.items():
            row[a] = loss_pct(m, best, h[1]) / 100.0
        out[w] = row
    return out


def schedule(workloads: Sequence[str], windows: int, rng: np.random.Generator,
             phase_min: int = 30, phase_max: int = 200) -> list[tuple[str, int]]:
    """Piecewise-stationary: phases of uniform length in [phase_min, phase_max], each a
    workload other than the previous one."""
    out: list[tuple[str, int]] = []
    total, prev = 0, None
    while total < windows:
        choices = [w for w in workloads if w != prev] or list(workloads)
        w = choices[int(rng.integers(len(choices)))]
        n = min(int(rng.integers(phase_min, phase_max + 1)), windows - total)
        out.append((w, n))
        total += n
        prev = w
    return out


@dataclass
class Trace:
    """One simulated run, per window."""

    workload: np.ndarray        # workload index
    phase: np.ndarray           # phase index
    arm: np.ndarray             # arm that ran in the window
    warmup: np.ndarray          # not scored
    cost: np.ndarray            # scored cost (NaN when warm-up)
    swapped: np.ndarray         # a swap happened at the window's end
    explore: np.ndarray
    propensity: np.ndarray      # composite propensity of the executed arm
    seconds: np.ndarray         # decision + update wall time


def simulate(policy: Policy, table: Table, plan: Sequence[tuple[str, int]], seed: int,
             objective: str, guard_cfg: GuardConfig, window_s: float) -> Trace:
    import time

    rng = np.random.default_rng(seed + 7919)
    arms = table.arms
    wi = {w: i for i, w in enumerate(table.workloads)}
    fair = arms.fair_index()
    current = arms[fair if fair is not None else 0].action
    path = DecisionPath(policy, Guard(guard_cfg, current_since=0.0), arms,
                        Scorer(objective, current if current.is_fair else arms[0].action))
    rows: dict[str, list] = defaultdict(list)
    now, t = 0.0, 0
    for p, (w, n) in enumerate(plan):
        for _ in range(n):
            now += window_s
            running = arms.find(current)
            assert running is not None, (policy, current)
            cell = table.cells[(w, running.index)]
            warm = path.guard.warmup_left > 0
            pool = cell.warmup if warm else cell.scored
            src = pool[int(rng.integers(len(pool)))]
            features = FeatureVector(src.context.schema, src.context.version,
                                     src.context.array(), src.context.missing)
            t0 = time.perf_counter()
            ran = Running(current, running.label, True, "replayed")
            score = path.score(src.terms, ran)
            window_cost = score.cost
            decision, verdict = path.decide(features, current, now)
            executed = current
            if verdict.apply is not None:
                path.guard.on_swap(now, not verdict.apply.same_as(current), current,
                                   path.scorer.fair)
                path.guard.on_apply_result(True, "", now)
                executed = verdict.apply
            choice = path.choice(decision, verdict, executed)
            path.record(at=now, window_id=t, features=features, running=ran, score=score,
                        choice=choice)
            rows["seconds"].append(time.perf_counter() - t0)
            rows["workload"].append(wi[w])
            rows["phase"].append(p)
            rows["arm"].append(running.index)
            rows["warmup"].append(window_cost is None)
            rows["cost"].append(window_cost.value if window_cost else math.nan)
            rows["swapped"].append(not executed.same_as(current))
            rows["explore"].append(decision.explore)
            rows["propensity"].append(choice.propensity)
            current = executed
            t += 1
    return Trace(**{k: np.asarray(v) for k, v in rows.items()})


def manifest_of(paths: Iterable[str]) -> dict[str, Any]:
    """The first dataset manifest among ``paths``, with the ``headlines`` of every one of
    them for the workloads scxd does not declare (a recording of such workloads carries
    their headlines; replayed beside another, both count).  Two datasets that judge one such
    workload by another figure or direction are refused."""
    from scxd import workloads

    merged: dict[str, Any] = {}
    headlines: dict[str, tuple[tuple[Any, ...], Mapping[str, Any]]] = {}
    origin: dict[str, str] = {}
    for p in paths:
        m = Path(p) / "manifest.json"
        if not m.exists():
            continue
        try:
            manifest = json.loads(m.read_text())
        except json.JSONDecodeError:
            continue
        if not isinstance(manifest, dict):
            continue
        if not merged:
            merged = manifest
        declared = manifest.get("headlines")
        for name, h in (declared if isinstance(declared, dict) else {}).items():
            if not isinstance(h, Mapping):
                continue
            if name in workloads.BY_NAME:   # kept as recorded; scxd's declaration is used
                headlines.setdefault(name, ((), h))
                continue
            parsed = workloads.Headline.from_manifest(name, h)
            judged = (parsed.metric, parsed.higher_is_better) if parsed else ()
            if name in headlines and headlines[name][0] != judged:
                raise ValueError(f"workload {name!r}: {origin[name]} and {m} judge it by "
                                 f"different headlines ({headlines[name][1]} vs {h})")
            headlines.setdefault(name, (judged, h))
            origin.setdefault(name, str(m))
    if merged:
        merged = {**merged, "headlines": {n: h for n, (_, h) in headlines.items()}}
    return merged
