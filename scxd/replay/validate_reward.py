"""``scxd replay validate-reward``: does an objective rank schedulers the way the workloads do?

For every workload of a dataset and every objective (../shared/learning.md, "The reward must
agree with the workload"):

1. the fair reference is the median of each reward term over the fair scheduler's scored
   windows of that workload (what the daemon's :class:`scxd.reward.FairReference` converges
   to while the fair scheduler runs it);
2. each scored window gets its cost under the objective, with terms recomputed from the
   recorded metrics by the current :func:`scxd.reward.terms_from_metrics`; an arm's cost is
   the mean over its windows;
3. each arm's outcome is the mean over repeats of the workload's own headline figure
   (:mod:`scxd.workloads`: metric and direction declared there);
4. reported: Kendall τ-b between the two rankings, the objective's pick (lowest mean cost),
   the outcome-best arm, and the outcome lost by the pick in percent of the best arm's
   figure.  A workload is *separable* when its outcome-best and outcome-worst arms differ by
   more than :data:`SEPARABLE_SE` standard errors: on the others the ranking is noise, so
   the τ target is judged on separable workloads only.

``--split repeats`` is the held-out form: the pick is made from the costs of even repeats
and judged on the outcomes of odd repeats, and the other way round (mean of both), so an
objective cannot look good by fitting the very runs it is judged on.

Targets for the default objective (issue 10): mean outcome loss ≤ 3 %, no workload above
10 %, mean τ ≥ 0.5 over separable workloads.  ``--check`` exits 1 when they are missed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scxd.replay.data import Dataset, DatasetError, load_dataset
from scxd.replay.stats import kendall_tau_b, mean_se
from scxd.reward import (
    ALL_OBJECTIVE_TERMS,
    LEGACY_OBJECTIVE_TERMS,
    OBJECTIVES,
    FairReference,
    cost,
    terms_from_metrics,
)
from scxd.workloads import BY_NAME, Workload

VERB = "validate-reward"
HELP = "rank arms per workload by an objective's cost and by the workload's own outcome"
FAIR_ARM = "fair"
SEPARABLE_SE = 3.0
TARGETS = {"mean_outcome_loss_pct": 3.0, "max_outcome_loss_pct": 10.0,
           "mean_tau_separable": 0.5}
SPLITS = ("none", "repeats")


@dataclass(frozen=True)
class WorkloadResult:
    workload: str
    metric: str
    direction: str
    arms: int
    tau: float
    pick: str
    pick_outcome: float
    best: str
    best_outcome: float
    loss_pct: float
    separable: bool
    costs: dict[str, float]
    outcomes: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.direction, "arms": self.arms,
                "tau": self.tau, "pick": self.pick, "pick_outcome": self.pick_outcome,
                "best": self.best, "best_outcome": self.best_outcome,
                "outcome_loss_pct": self.loss_pct, "separable": self.separable,
                "mean_cost": self.costs, "mean_outcome": self.outcomes}


def summarize(results: Sequence[WorkloadResult]) -> dict[str, Any]:
    sep = [r.tau for r in results if r.separable]
    return {
        "mean_tau": statistics.fmean(r.tau for r in results) if results else None,
        "mean_outcome_loss_pct": (statistics.fmean(r.loss_pct for r in results)
                                  if results else None),
        "max_outcome_loss_pct": max((r.loss_pct for r in results), default=None),
        "mean_tau_separable": statistics.fmean(sep) if sep else None,
        "separable_workloads": sum(r.separable for r in results),
        "workloads": {r.workload: r.as_dict() for r in results},
    }


def targets_met(summary: dict[str, Any]) -> dict[str, bool]:
    def ok(key: str, good: Callable[[float, float], bool]) -> bool:
        v = summary.get(key)
        return v is not None and good(v, TARGETS[key])
    return {"mean_outcome_loss_pct": ok("mean_outcome_loss_pct", lambda v, t: v <= t),
            "max_outcome_loss_pct": ok("max_outcome_loss_pct", lambda v, t: v <= t),
            "mean_tau_separable": ok("mean_tau_separable", lambda v, t: v >= t)}


def fair_reference(windows: Sequence[dict[str, Any]]) -> dict[str, float]:
    ref = FairReference(size=max(len(windows), 1))
    for w in windows:
        if w["arm"] == FAIR_ARM:
            ref.add(terms_from_metrics(w.get("metrics", {})))
    return ref.means()


def arm_costs(windows: Sequence[dict[str, Any]], objective: str,
              reference: dict[str, float]) -> dict[str, float]:
    per_arm: dict[str, list[float]] = collections.defaultdict(list)
    for w in windows:
        per_arm[w["arm"]].append(
            cost(terms_from_metrics(w.get("metrics", {})), objective, reference).value)
    return {a: statistics.fmean(v) for a, v in per_arm.items()}


def arm_outcomes(runs: Sequence[dict[str, Any]], wl: Workload) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    for r in runs:
        if r.get("ok"):
            v = wl.headline_value(r.get("outcome"))
            if v is not None:
                out[r["arm"]].append(v)
    return out


def rank_workload(wl: Workload, costs: dict[str, float], outcomes: dict[str, list[float]],
                  judge: dict[str, list[float]] | None, order: Sequence[str]
                  ) -> WorkloadResult | None:
    """Compare the cost ranking with the outcome ranking over arms that have both.

    ``outcomes`` decide separability and the τ; ``judge`` (default: the same) are the
    outcomes the pick's loss is measured on (held-out repeats in the split form)."""
    judge = judge if judge is not None else outcomes
    arms = [a for a in order if a in costs and outcomes.get(a) and judge.get(a)]
    if len(arms) < 2:
        return None
    mean_out = {a: statistics.fmean(outcomes[a]) for a in arms}
    h = wl.headline
    tau = kendall_tau_b([-costs[a] for a in arms], [h.goodness(mean_out[a]) for a in arms])
    pick = min(arms, key=lambda a: (costs[a], arms.index(a)))
    judged = {a: statistics.fmean(judge[a]) for a in arms}
    best = max(arms, key=lambda a: (h.goodness(judged[a]), -arms.index(a)))
    worst = min(arms, key=lambda a: h.goodness(mean_out[a]))
    top = max(arms, key=lambda a: h.goodness(mean_out[a]))
    (m_top, se_top), (m_worst, se_worst) = mean_se(outcomes[top]), mean_se(outcomes[worst])
    se = math.hypot(se_top, se_worst)
    separable = abs(m_top - m_worst) > SEPARABLE_SE * se if se > 0 else m_top != m_worst
    return WorkloadResult(wl.name, h.metric, h.direction, len(arms), tau, pick, judged[pick],
                          best, judged[best], h.loss_pct(judged[pick], judged[best]),
                          separable, {a: costs[a] for a in arms}, mean_out)


def validate(ds: Dataset, objectives: Sequence[str], split: str = "none"
             ) -> tuple[dict[str, list[WorkloadResult]], list[str]]:
    """Per objective, one :class:`WorkloadResult` per workload; plus skipped workloads."""
    scored = ds.scored()
    order = ds.arms()
    results: dict[str, list[WorkloadResult]] = {o: [] for o in objectives}
    skipped: list[str] = []
    for name in ds.workloads():
        wl = BY_NAME.get(name)
        if wl is None:
            skipped.append(f"{name}: not declared in scxd/workloads.py")
            continue
        windows = [w for w in scored if w["workload"] == name]
        runs = [r for r in ds.runs if r["workload"] == name]
        if not any(w["arm"] == FAIR_ARM for w in windows):
            skipped.append(f"{name}: no fair-scheduler windows for the reference")
            continue
        for objective in objectives:
            if split == "none":
                ref = fair_reference(windows)
                r = rank_workload(wl, arm_costs(windows, objective, ref),
                                  arm_outcomes(runs, wl), None, order)
                if r is None:
                    skipped.append(f"{name}: fewer than two arms with windows and outcomes")
                    break
                results[objective].append(r)
            else:
                halves = []
                for parity in (0, 1):
                    fit = [w for w in windows if w["repeat"] % 2 == parity]
                    held = [r for r in runs if r["repeat"] % 2 != parity]
                    own = [r for r in runs if r["repeat"] % 2 == parity]
                    halves.append(rank_workload(
                        wl, arm_costs(fit, objective, fair_reference(fit)),
                        arm_outcomes(own, wl), arm_outcomes(held, wl), order))
                if None in halves:
                    skipped.append(f"{name}: too few repeats to split")
                    break
                # Separability is a property of the workload: judged on every repeat.
                whole = rank_workload(wl, halves[0].costs, arm_outcomes(runs, wl), None,
                                      order)
                merged = _merge_halves(halves)
                results[objective].append(dataclasses.replace(
                    merged, separable=bool(whole and whole.separable)))
    return results, list(dict.fromkeys(skipped))


def _merge_halves(halves: list[WorkloadResult | None]) -> WorkloadResult:
    a, b = (h for h in halves if h is not None)
    return WorkloadResult(
        a.workload, a.metric, a.direction, min(a.arms, b.arms), (a.tau + b.tau) / 2,
        f"{a.pick} | {b.pick}", (a.pick_outcome + b.pick_outcome) / 2,
        f"{a.best} | {b.best}", (a.best_outcome + b.best_outcome) / 2,
        (a.loss_pct + b.loss_pct) / 2, False, a.costs, a.outcomes)


def report(ds: Dataset, objectives: Sequence[str], split: str, default: str
           ) -> dict[str, Any]:
    results, skipped = validate(ds, objectives, split)
    out: dict[str, Any] = {
        "dataset": str(ds.path), "feature_version": ds.feature_version, "split": split,
        "windows": len(ds.scored()), "runs": len(ds.runs), "skipped": skipped,
        "separable_se": SEPARABLE_SE, "default_objective": default,
        "objectives": {o: summarize(results[o]) for o in objectives},
    }
    if default in out["objectives"]:
        met = targets_met(out["objectives"][default])
        out["targets"] = {"objective": default, "limits": TARGETS, "met": met,
                          "all_met": all(met.values())}
    return out


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def render_text(rep: dict[str, Any]) -> str:
    lines = [f"dataset {rep['dataset']} (features v{rep['feature_version']}): "
             f"{rep['windows']} scored windows, {rep['runs']} runs; split: {rep['split']}"]
    for name, s in rep["objectives"].items():
        lines += ["", f"objective {name}: mean τ {_fmt(s['mean_tau'], '+.2f')}, separable "
                  f"{_fmt(s['mean_tau_separable'], '+.2f')} over {s['separable_workloads']}; "
                  f"outcome loss mean {_fmt(s['mean_outcome_loss_pct'], '.1f')} %, max "
                  f"{_fmt(s['max_outcome_loss_pct'], '.1f')} %",
                  f"  {'workload':18s} {'τ':>6s} {'sep':3s}  {'pick':34s} "
                  f"{'best':34s} {'loss %':>7s}"]
        for wl, r in s["workloads"].items():
            pick = f"{r['pick']} ({r['pick_outcome']:.3g})"
            best = f"{r['best']} ({r['best_outcome']:.3g})"
            sep = "yes" if r["separable"] else "no"
            lines.append(f"  {wl:18s} {r['tau']:+6.2f} {sep:3s}  {pick[:34]:34s} "
                         f"{best[:34]:34s} {r['outcome_loss_pct']:7.1f}")
    if rep.get("targets"):
        t = rep["targets"]
        lines += ["", f"targets for {t['objective']}: " + ", ".join(
            f"{k} {'met' if ok else 'MISSED'}" for k, ok in t["met"].items())]
    if rep["skipped"]:
        lines += ["", "skipped: " + "; ".join(rep["skipped"])]
    return "\n".join(lines) + "\n"


def markdown_table(rep: dict[str, Any]) -> str:
    """The README form: one row per objective, then the default objective per workload."""
    out = ["| objective | mean τ | mean τ (separable) | mean outcome loss | max outcome loss |",
           "|---|---|---|---|---|"]
    for name, s in rep["objectives"].items():
        out.append(f"| {name} | {_fmt(s['mean_tau'], '+.2f')} | "
                   f"{_fmt(s['mean_tau_separable'], '+.2f')} ({s['separable_workloads']}) | "
                   f"{_fmt(s['mean_outcome_loss_pct'], '.1f')} % | "
                   f"{_fmt(s['max_outcome_loss_pct'], '.1f')} % |")
    return "\n".join(out) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, required=True, metavar="DIR",
                   help="a packaged test-bed dataset (windows.jsonl.xz, runs.jsonl.xz)")
    p.add_argument("--objective", action="append", choices=list(ALL_OBJECTIVE_TERMS),
                   metavar="NAME", help=f"objective to check (repeatable; default: all of "
                   f"{', '.join(OBJECTIVES)})")
    p.add_argument("--legacy", action="store_true",
                   help=f"also v1's objectives ({', '.join(LEGACY_OBJECTIVE_TERMS)}), for "
                   "comparison")
    p.add_argument("--split", choices=SPLITS, default="none",
                   help="repeats: pick on even repeats, judge on odd ones and vice versa")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="the README summary table")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless the default objective meets the targets")


def run(args: argparse.Namespace) -> int:
    from scxd.config import PolicyConfig

    default = PolicyConfig().objective
    try:
        ds = load_dataset(args.dataset)
    except DatasetError as exc:
        print(f"scxd replay {VERB}: {exc}", file=sys.stderr)
        return 2
    objectives = list(dict.fromkeys(args.objective or OBJECTIVES))
    if args.legacy:
        objectives += [o for o in LEGACY_OBJECTIVE_TERMS if o not in objectives]
    rep = report(ds, objectives, args.split, default)
    if args.json:
        print(json.dumps(rep, indent=2))
    elif args.markdown:
        print(markdown_table(rep), end="")
    else:
        print(render_text(rep), end="")
    if args.check and not rep.get("targets", {}).get("all_met"):
        return 1
    return 0
