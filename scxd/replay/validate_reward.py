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
import itertools
import json
import math
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scxd.replay.data import Dataset, DatasetError, load_dataset
from scxd.replay.stats import kendall_tau_b, mean_se
from scxd.reward import (
    ALL_OBJECTIVE_TERMS,
    COMPLETIONS_PSEUDO_PER_S,
    LEGACY_OBJECTIVE_TERMS,
    OBJECTIVES,
    PREEMPTION_COST_S,
    TERMS_BY_NAME,
    WAIT_SHARE_SLACK,
    FairReference,
    Term,
    cost,
    terms_from_metrics,
)
from scxd.workloads import Headline, HeadlineError, recorded_headlines

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
              reference: dict[str, float], specs: Mapping[str, Term] | None = None
              ) -> dict[str, float]:
    per_arm: dict[str, list[float]] = collections.defaultdict(list)
    for w in windows:
        per_arm[w["arm"]].append(
            cost(terms_from_metrics(w.get("metrics", {})), objective, reference, specs).value)
    return {a: statistics.fmean(v) for a, v in per_arm.items()}


def arm_outcomes(runs: Sequence[dict[str, Any]], h: Headline) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    for r in runs:
        if r.get("ok"):
            v = h.value(r.get("outcome"))
            if v is not None:
                out[r["arm"]].append(v)
    return out


def rank_workload(name: str, h: Headline, costs: dict[str, float],
                  outcomes: dict[str, list[float]],
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
    tau = kendall_tau_b([-costs[a] for a in arms], [h.goodness(mean_out[a]) for a in arms])
    pick = min(arms, key=lambda a: (costs[a], arms.index(a)))
    judged = {a: statistics.fmean(judge[a]) for a in arms}
    best = max(arms, key=lambda a: (h.goodness(judged[a]), -arms.index(a)))
    worst = min(arms, key=lambda a: h.goodness(mean_out[a]))
    top = max(arms, key=lambda a: h.goodness(mean_out[a]))
    (m_top, se_top), (m_worst, se_worst) = mean_se(outcomes[top]), mean_se(outcomes[worst])
    se = math.hypot(se_top, se_worst)
    separable = abs(m_top - m_worst) > SEPARABLE_SE * se if se > 0 else m_top != m_worst
    return WorkloadResult(name, h.metric, h.direction, len(arms), tau, pick, judged[pick],
                          best, judged[best], h.loss_pct(judged[pick], judged[best]),
                          separable, {a: costs[a] for a in arms}, mean_out)


def validate(ds: Dataset, objectives: Sequence[str], split: str = "none",
             specs: Mapping[str, Term] | None = None
             ) -> tuple[dict[str, list[WorkloadResult]], list[str]]:
    """Per objective, one :class:`WorkloadResult` per workload; plus skipped workloads.
    ``specs`` overrides term definitions (sensitivity analysis)."""
    scored = ds.scored()
    order = ds.arms()
    results: dict[str, list[WorkloadResult]] = {o: [] for o in objectives}
    skipped: list[str] = []
    headlines = recorded_headlines(ds.workloads(), ds.manifest.get("headlines") or {})
    for name in ds.workloads():
        h = headlines.get(name)
        if h is None:
            skipped.append(f"{name}: no headline (not declared in scxd/workloads.py nor in "
                           "the dataset's manifest)")
            continue
        windows = [w for w in scored if w["workload"] == name]
        runs = [r for r in ds.runs if r["workload"] == name]
        if not any(w["arm"] == FAIR_ARM for w in windows):
            skipped.append(f"{name}: no fair-scheduler windows for the reference")
            continue
        for objective in objectives:
            if split == "none":
                ref = fair_reference(windows)
                r = rank_workload(name, h, arm_costs(windows, objective, ref, specs),
                                  arm_outcomes(runs, h), None, order)
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
                        name, h, arm_costs(fit, objective, fair_reference(fit), specs),
                        arm_outcomes(own, h), arm_outcomes(held, h), order))
                if None in halves:
                    skipped.append(f"{name}: too few repeats to split")
                    break
                # Separability is a property of the workload: judged on every repeat.
                whole = rank_workload(name, h, halves[0].costs, arm_outcomes(runs, h), None,
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


def unmeasured_terms(windows: Sequence[dict[str, Any]], objective: str) -> list[str]:
    """The objective's terms that no window measured (e.g. a dataset recorded before the
    telemetry behind them existed): they count as 0 everywhere, so the objective is judged
    on its other terms only and the report must say so."""
    measured: set[str] = set()
    for w in windows:
        measured.update(t for t, v in terms_from_metrics(w.get("metrics", {})).items()
                        if v is not None)
    return [t for t in ALL_OBJECTIVE_TERMS[objective] if t not in measured]


def report(ds: Dataset, objectives: Sequence[str], split: str, default: str
           ) -> dict[str, Any]:
    results, skipped = validate(ds, objectives, split)
    scored = ds.scored()
    out: dict[str, Any] = {
        "dataset": str(ds.path), "feature_version": ds.feature_version, "split": split,
        "windows": len(scored), "runs": len(ds.runs), "skipped": skipped,
        "separable_se": SEPARABLE_SE, "default_objective": default,
        "objectives": {o: {**summarize(results[o]),
                           "unmeasured_terms": unmeasured_terms(scored, o)}
                       for o in objectives},
    }
    if default in out["objectives"]:
        met = targets_met(out["objectives"][default])
        out["targets"] = {"objective": default, "limits": TARGETS, "met": met,
                          "all_met": all(met.values())}
    return out


#: The default objective's constants varied around their principled values: the external
#: wait share's slack, the CPU time charged per preemption, the completion-rate floor.
GRID = {"slack": (0.02, 0.05, 0.10), "preemption_cost_s": (0.0, 25e-6, 50e-6, 100e-6),
        "completions_pseudo_per_s": (0.5, 1.0, 2.0)}


def grid_specs(slack: float, preemption_cost_s: float, completions_pseudo_per_s: float
               ) -> dict[str, Term]:
    specs = dict(TERMS_BY_NAME)
    specs["ext_wait_share"] = dataclasses.replace(specs["ext_wait_share"], slack=slack)
    specs["preempt_cost"] = dataclasses.replace(specs["preempt_cost"],
                                                per_unit=preemption_cost_s)
    specs["completed_per_s"] = dataclasses.replace(specs["completed_per_s"],
                                                   pseudo=completions_pseudo_per_s)
    return specs


def robustness(ds: Dataset, objective: str) -> dict[str, Any]:
    """How much the default objective's verdict hangs on its constants.

    * ``grid``: mean/max outcome loss and mean τ for every combination of :data:`GRID`;
    * ``leave_one_workload_out``: for each workload, the constants are chosen on the
      *other* workloads (lowest mean loss; ties keep the shipped values) and the loss is
      measured on the held-out one — what the objective would lose on a workload nobody
      recorded."""
    names = list(GRID)
    combos = list(itertools.product(*GRID.values()))
    shipped = (WAIT_SHARE_SLACK, PREEMPTION_COST_S, COMPLETIONS_PSEUDO_PER_S)
    per: dict[tuple, dict[str, WorkloadResult]] = {}
    for combo in combos:
        results, _ = validate(ds, [objective], "none", grid_specs(*combo))
        per[combo] = {r.workload: r for r in results[objective]}
    grid = []
    for combo in combos:
        rs = list(per[combo].values())
        grid.append({**dict(zip(names, combo, strict=True)),
                     "mean_outcome_loss_pct": statistics.fmean(r.loss_pct for r in rs),
                     "max_outcome_loss_pct": max(r.loss_pct for r in rs),
                     "mean_tau": statistics.fmean(r.tau for r in rs)})
    workloads = list(per[shipped]) if shipped in per else []
    lowo = {}
    for held in workloads:
        def others_loss(combo: tuple, held: str = held) -> tuple[float, bool]:
            losses = [r.loss_pct for w, r in per[combo].items() if w != held]
            return (statistics.fmean(losses) if losses else 0.0), combo != shipped
        chosen = min(combos, key=others_loss)
        lowo[held] = {"chosen": dict(zip(names, chosen, strict=True)),
                      "outcome_loss_pct": per[chosen][held].loss_pct,
                      "shipped_loss_pct": per[shipped][held].loss_pct}
    losses = [v["outcome_loss_pct"] for v in lowo.values()]
    return {"objective": objective, "grid": grid, "leave_one_workload_out": lowo,
            "lowo_mean_outcome_loss_pct": statistics.fmean(losses) if losses else None,
            "lowo_max_outcome_loss_pct": max(losses, default=None)}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def render_text(rep: dict[str, Any]) -> str:
    lines = [f"dataset {rep['dataset']} (features v{rep['feature_version']}): "
             f"{rep['windows']} scored windows, {rep['runs']} runs; split: {rep['split']}"]
    for name, s in rep["objectives"].items():
        lines += ["", f"objective {name}: mean τ {_fmt(s['mean_tau'], '+.2f')}, separable "
                  f"{_fmt(s['mean_tau_separable'], '+.2f')} over {s['separable_workloads']}; "
                  f"outcome loss mean {_fmt(s['mean_outcome_loss_pct'], '.1f')} %, max "
                  f"{_fmt(s['max_outcome_loss_pct'], '.1f')} %"]
        if s.get("unmeasured_terms"):
            lines.append(f"  NOT MEASURED in this dataset (counted as 0): "
                         f"{', '.join(s['unmeasured_terms'])}")
        lines += [f"  {'workload':18s} {'τ':>6s} {'sep':3s}  {'pick':34s} "
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
    rob = rep.get("robustness")
    if rob:
        lines += ["", f"robustness of {rob['objective']}: constants chosen leaving each "
                  f"workload out → held-out loss mean "
                  f"{_fmt(rob['lowo_mean_outcome_loss_pct'], '.1f')} %, max "
                  f"{_fmt(rob['lowo_max_outcome_loss_pct'], '.1f')} %",
                  f"  {'slack':>6s} {'preempt µs':>10s} {'k done/s':>10s} {'mean loss':>9s} "
                  f"{'max loss':>9s} {'mean τ':>7s}"]
        for g in rob["grid"]:
            lines.append(f"  {g['slack']:6.2f} {g['preemption_cost_s'] * 1e6:10.0f} "
                         f"{g['completions_pseudo_per_s']:10.1f} "
                         f"{g['mean_outcome_loss_pct']:8.1f}% {g['max_outcome_loss_pct']:8.1f}% "
                         f"{g['mean_tau']:+7.2f}")
    return "\n".join(lines) + "\n"


def markdown_table(rep: dict[str, Any]) -> str:
    """The README form: one row per objective, then the default objective per workload."""
    out = ["| objective | mean τ | mean τ (separable) | mean outcome loss | max outcome loss "
           "| terms the dataset does not measure |", "|---|---|---|---|---|---|"]
    for name, s in rep["objectives"].items():
        out.append(f"| {name} | {_fmt(s['mean_tau'], '+.2f')} | "
                   f"{_fmt(s['mean_tau_separable'], '+.2f')} ({s['separable_workloads']}) | "
                   f"{_fmt(s['mean_outcome_loss_pct'], '.1f')} % | "
                   f"{_fmt(s['max_outcome_loss_pct'], '.1f')} % | "
                   f"{', '.join(s.get('unmeasured_terms') or []) or '—'} |")
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
    p.add_argument("--robustness", action="store_true",
                   help="also vary the default objective's constants (grid) and choose them "
                   "leaving each workload out (what an unrecorded workload would lose)")


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
    try:
        rep = report(ds, objectives, args.split, default)
    except HeadlineError as exc:    # a manifest headline without a direction
        print(f"scxd replay {VERB}: {args.dataset}: {exc}", file=sys.stderr)
        return 2
    if args.robustness:
        rep["robustness"] = robustness(ds, default)
    if args.json:
        print(json.dumps(rep, indent=2))
    elif args.markdown:
        print(markdown_table(rep), end="")
    else:
        print(render_text(rep), end="")
    if args.check and not rep.get("targets", {}).get("all_met"):
        return 1
    return 0
