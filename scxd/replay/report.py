"""``scxd replay report``: what recorded data says, as a markdown summary with PNG plots.

    scxd replay report --dataset data/testbed --out report/

Writes into ``--out``:

* ``README.md`` — the summary, linking every plot;
* ``report.json`` — every figure in it, machine-readable;
* ``best_by_outcome.png`` / ``best_by_cost.png`` — per workload, each arm's mean with its
  95 % CI (runs are the unit: a run's cost is the mean of its scored windows), relative to
  the fair scheduler; the best arm and those not distinguishable from it marked;
* ``parameter_effects.png`` — each parameter's effect on the outcome and on the cost with
  95 % cluster-bootstrap CIs (:func:`scxd.replay.analysis.parameter_effects`);
* ``ope.png`` — the off-policy comparison: every fixed arm and every registered policy that
  can be scored offline, estimated expected cost with 95 % CIs (SNIPS and DR), next to the
  on-policy mean where the logs hold one.

Outcomes (each workload's own headline figure, :func:`scxd.replay.simulate.headline`) exist only for
datasets; for journals the report covers costs, and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scxd.replay import analysis, offpolicy
from scxd.replay import estimators as est
from scxd.replay.inputs import DEFAULT_OBJECTIVE, progress, single_threaded_blas
from scxd.replay.policies import METHODS, PolicyTarget, build, offline_scorable
from scxd.replay.table import Table, TableError, optional_import
from scxd.reward import OBJECTIVES

VERB = "report"
HELP = "best configurations, parameter effects and an OPE comparison, as markdown + PNGs"

def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("recorded windows")
    src.add_argument("--journal", action="append", type=Path, default=[], metavar="DIR")
    src.add_argument("--dataset", action="append", type=Path, default=[], metavar="DIR")
    p.add_argument("--objective", choices=OBJECTIVES, default=DEFAULT_OBJECTIVE)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--bootstrap", type=int, default=400, metavar="B",
                   help="bootstrap replicates for effects and OPE (default 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policies", metavar="A,B,…",
                   help="registered policies to compare offline, each NAME (trained here on "
                        "the training split) or NAME:CHECKPOINT (default: every one that can "
                        "be scored offline)")
    p.add_argument("--method", choices=METHODS, default="dr",
                   help="how those policies are trained (default dr; see scxd replay train)")
    p.add_argument("--clip", type=float, default=est.DEFAULT_CLIP, metavar="W",
                   help=f"importance-weight clip (default {est.DEFAULT_CLIP:g})")


# -- runs: the unit of analysis -----------------------------------------------------------------

@dataclass
class Run:
    run_id: str
    workload: str
    arm: str                 # key
    label: str
    scheduler: str
    params: dict[str, Any]
    defaults: dict[str, Any]
    cost: float              # mean cost of its scored windows
    outcome: float | None    # the workload's headline figure


def collect_runs(log: Any, table: Table, objective: str,
                 heads: dict[str, tuple[str, bool]]) -> list[Run]:
    """One :class:`Run` per dataset run (``run_id``), or per dwell of a journal (consecutive
    windows on one arm)."""
    cost = table.column(f"cost_{objective}").astype(float)
    scored = np.isfinite(cost) & ~table.column("warmup").astype(bool)
    if "run_id" in table.columns:
        unit = table.column("run_id")
    else:  # a journal: a run is a stretch of windows on the same arm
        arm = table.column("arm")
        change = np.r_[True, arm[1:] != arm[:-1]]
        unit = np.cumsum(change).astype(str)
    workloads = table.columns.get("workload")
    by_unit: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(unit):
        if scored[i]:
            by_unit[str(u)].append(i)
    outcomes = run_outcomes(log, heads)
    runs = []
    for u, idx in by_unit.items():
        key = str(table.column("arm")[idx[0]])
        if key not in log.arms:
            continue
        arm = log.arms.get(key)
        wl = str(workloads[idx[0]]) if workloads is not None else "all"
        defaults = _defaults(arm.action)
        runs.append(Run(u, wl, key, arm.label, arm.scheduler, dict(arm.action.params),
                        defaults, float(np.mean(cost[idx])), outcomes.get(u)))
    return runs


def _defaults(action: Any) -> dict[str, Any]:
    from scxd.catalog import build_catalog

    try:
        return dict(build_catalog().action(action.scheduler).params)
    except Exception:  # a scheduler only the logs know (a config override): no defaults
        return {}


def headlines(log: Any) -> dict[str, tuple[str, bool]]:
    """workload → (its headline outcome, higher is better): declared by scxd's workload
    declarations, else by the dataset's manifest (:func:`scxd.replay.simulate.headline`)."""
    from scxd.replay.simulate import headline, manifest_of

    manifest = manifest_of(log.sources)
    return {w: h for w in log.workloads() if (h := headline(w, manifest)) is not None}


def run_outcomes(log: Any, heads: dict[str, tuple[str, bool]]) -> dict[str, float]:
    """run_id → the workload's headline figure (datasets only)."""
    from scxd.replay.simulate import headline_value, manifest_of

    manifest = manifest_of(log.sources)
    out = {}
    for r in getattr(log, "runs", []) or []:
        h = heads.get(r.get("workload"))
        if not r.get("ok", True) or h is None:
            continue
        v = headline_value(r.get("workload"), r.get("outcome"), manifest)
        if v is not None:
            out[str(r["run_id"])] = v
    return out


# -- the analyses -------------------------------------------------------------------------------

def rankings(runs: list[Run], heads: dict[str, tuple[str, bool]]
             ) -> tuple[list[analysis.Ranking], list[analysis.Ranking]]:
    by_outcome, by_cost = [], []
    for wl in sorted({r.workload for r in runs}):
        wr = [r for r in runs if r.workload == wl]
        cost_cells: dict[str, list[float]] = defaultdict(list)
        out_cells: dict[str, list[float]] = defaultdict(list)
        for r in wr:
            cost_cells[r.label].append(r.cost)
            if r.outcome is not None:
                out_cells[r.label].append(r.outcome)
        rc = analysis.rank_cells(wl, "cost", cost_cells, higher_is_better=False)
        if rc:
            by_cost.append(rc)
        h = heads.get(wl)
        if h and out_cells:
            ro = analysis.rank_cells(wl, f"{h[0]} ({'higher' if h[1] else 'lower'} is better)",
                                     out_cells, higher_is_better=h[1])
            if ro:
                by_outcome.append(ro)
    return by_outcome, by_cost


def effect_rows(runs: list[Run], fair_label: str, heads: dict[str, tuple[str, bool]]
                ) -> list[analysis.RunRow]:
    """Runs as regression rows.  The outcome response is 100 × ln(outcome / the workload's
    fair mean), signed so that positive is better: ≈ % for small changes, and symmetric, so
    one workload's 20-fold latency cannot swamp the others' 10 % differences."""
    fair_mean: dict[str, float] = {}
    for wl in {r.workload for r in runs}:
        vals = [r.outcome for r in runs if r.workload == wl and r.label == fair_label
                and r.outcome is not None]
        if vals:
            fair_mean[wl] = float(np.mean(vals))
    rows = []
    for r in runs:
        resp = {"cost": r.cost}
        h = heads.get(r.workload)
        if r.outcome is not None and h and fair_mean.get(r.workload):
            sign = 1.0 if h[1] else -1.0
            if r.outcome > 0 and fair_mean[r.workload] > 0:
                resp["outcome"] = 100.0 * sign * math.log(r.outcome / fair_mean[r.workload])
        rows.append(analysis.RunRow(r.workload, r.arm, r.scheduler, r.params, r.defaults,
                                    resp))
    return rows


def ope_comparison(table: Table, objective: str, policies: list[str] | None,
                   n_boot: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every fixed arm and every offline-scorable registered policy, estimated on the held-out
    rows (:meth:`~scxd.replay.offpolicy.Rows.holdout`) on the same bootstrap replicates.  A
    policy named without a checkpoint is first trained off-policy (``--method``) on the
    other rows — as ``scxd replay train`` would — so the comparison is of what each learner
    makes of these logs, judged on windows it never saw; ``NAME:CHECKPOINT`` is scored as
    loaded."""
    from scxd.replay.inputs import resolve_target
    from scxd.replay.train import fit

    rows = offpolicy.Rows.of(table, objective)
    held, split = rows.holdout()
    train_rows, eval_rows = rows.subset(~held), rows.subset(held)
    targets: dict[str, offpolicy.Target] = {}
    for label in table.arm_labels:
        t = resolve_target(f"fixed:{label}", table, args)
        targets[t.name] = t
    skipped: dict[str, str] = {}
    trained: dict[str, dict[str, Any]] = {}
    with progress(len(policies or []), "training policies", "policy") as bar:
        for spec in policies or []:
            bar.update(1)
            name, _, checkpoint = spec.partition(":")
            try:
                if checkpoint:
                    targets[spec] = resolve_target(spec, table, args)
                    continue
                policy = build(name, table, args, seed=seed)
                trained[name] = fit(policy, train_rows, args.method, args.clip, 3, seed)
            except (ValueError, TableError) as exc:
                skipped[spec] = str(exc)
                continue
            targets[name] = PolicyTarget(name, policy)
    with progress(eval_rows.logged.n * len(targets), "scoring policies", "window") as bar:
        ev = offpolicy.evaluate_targets(eval_rows, targets, clip=args.clip, n_bootstrap=n_boot,
                                        seed=seed, on_chunk=bar.update)
    on_policy: dict[str, dict[str, Any]] = {}
    for k, label in enumerate(table.arm_labels):
        mine = eval_rows.logged.outcomes[eval_rows.logged.actions == k]
        if len(mine):
            on_policy[f"fixed:{label}"] = analysis.mean_ci(mine).as_dict()
    return {"objective": objective, "split": split, "train_rows": train_rows.logged.n,
            "rows": eval_rows.logged.n, "method": args.method, "trained": trained,
            "warnings": ev.warnings, "targets": {n: e.as_dict() for n, e in ev.targets.items()},
            "on_policy": on_policy, "skipped": skipped}


# -- plots --------------------------------------------------------------------------------------

def _plt():
    mpl = optional_import("matplotlib", "scxd replay report")
    mpl.use("Agg")
    return optional_import("matplotlib.pyplot", "scxd replay report")


def plot_rankings(ranks: list[analysis.Ranking], path: Path, title: str, relative_to: str,
                  unit: str) -> None:
    """One panel per workload: arms' means with CIs, as % vs the fair scheduler's mean
    (or, for cost, as is: cost 0 = as good as fair)."""
    plt = _plt()
    cols = min(3, len(ranks))
    nrows = math.ceil(len(ranks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 0.35 * max(
        len(r.cells) for r in ranks) * nrows + 1.6 * nrows), squeeze=False)
    for ax, rk in zip(axes.flat, ranks, strict=False):
        arms = sorted(rk.cells, key=lambda a: rk.cells[a].mean,
                      reverse=rk.higher_is_better)
        base = rk.cells.get(relative_to)
        ref = base.mean if unit == "%" and base and base.mean else None

        def scale(v: float, ref: float | None = ref) -> float:
            return 100.0 * (v / ref - 1.0) if ref else v

        for i, a in enumerate(arms):
            c = rk.cells[a]
            color = "tab:green" if a == rk.best else (
                "tab:olive" if a in rk.tied_with_best else "tab:gray")
            lo = scale(c.lo) if math.isfinite(c.lo) else scale(c.mean)
            hi = scale(c.hi) if math.isfinite(c.hi) else scale(c.mean)
            ax.plot([lo, hi], [i, i], color=color, lw=2)
            ax.plot(scale(c.mean), i, "o", color=color)
        ax.axvline(0, color="black", lw=0.8, ls=":")
        ax.set_yticks(range(len(arms)), arms, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{rk.workload}", fontsize=10)
        ax.set_xlabel(rk.figure if unit != "%" else
                      f"% vs {relative_to} ({'higher' if rk.higher_is_better else 'lower'} "
                      "is better)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(ranks):]:
        ax.set_visible(False)
    fig.suptitle(title + "\n(green: best; olive: not distinguishable from it; lines: 95 % CI "
                 "over runs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_effects(effects: list[analysis.Effect], path: Path) -> None:
    plt = _plt()
    pooled = [e for e in effects if e.workload == "all"]
    panels = [("outcome", "effect on the workload's outcome (100·ln ratio ≈ %; + is better)"),
              ("cost", "effect on cost (lower is better)")]
    labels = sorted({f"{e.scheduler}: {e.term}" for e in pooled})
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(labels) + 1.8), squeeze=False)
    colors = {"better": "tab:green", "worse": "tab:red", "no measurable effect": "tab:gray",
              "not estimable": "lightgray"}
    for ax, (resp, xlabel) in zip(axes.flat, panels, strict=True):
        for i, lab in enumerate(labels):
            e = next((x for x in pooled if x.response == resp
                      and f"{x.scheduler}: {x.term}" == lab), None)
            if e is None:
                continue
            c = colors[e.verdict]
            if math.isfinite(e.lo):
                ax.plot([e.lo, e.hi], [i, i], color=c, lw=2)
            ax.plot(e.value, i, "o", color=c)
        ax.axvline(0, color="black", lw=0.8, ls=":")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=9)
    fig.suptitle("Parameter effects, all workloads (workload fixed effects; 95 % cluster-"
                 "bootstrap CI)\ngreen: better, red: worse, gray: no measurable effect",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ope(ope: dict[str, Any], path: Path) -> None:
    plt = _plt()
    names = sorted(ope["targets"], key=lambda n: (ope["targets"][n]["estimates"]["dr"]["value"]
                                                  if ope["targets"][n]["estimates"]["dr"]
                                                  ["value"] is not None else math.inf))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(names) + 1.6))
    for i, n in enumerate(names):
        t = ope["targets"][n]
        for off, e, color in ((-0.15, "snips", "tab:blue"), (0.15, "dr", "tab:orange")):
            v = t["estimates"][e]
            if v["value"] is None:
                continue
            lo, hi = v["ci95"]
            if lo is not None:
                ax.plot([lo, hi], [i + off] * 2, color=color, lw=2)
            ax.plot(v["value"], i + off, "o", color=color, label=e if i == 0 else None)
        truth = ope["on_policy"].get(n)
        if truth and truth["mean"] is not None:
            ax.plot(truth["mean"], i, "k|", ms=14, label="on-policy mean" if i == 0 else None)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_xlabel(f"estimated expected cost per window ({ope['objective']}; lower is better)",
                  fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Off-policy estimates, 95 % bootstrap CIs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- markdown -----------------------------------------------------------------------------------

def _ci(c: dict[str, Any], fmt: str = ".3g") -> str:
    lo, hi = c["ci95"]
    m = c["mean"]
    if m is None:
        return "—"
    return f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None else f"{m:{fmt}} (n=1)"


def markdown(rep: dict[str, Any]) -> str:
    lines = [f"# Replay report: {', '.join(rep['sources'])}", "",
             f"{rep['windows']} windows, {rep['runs']} runs, {len(rep['arms'])} arms; cost "
             f"objective `{rep['objective']}` (0 = as good as the fair scheduler, lower is "
             "better). Intervals are 95 %; the unit is a run (a run's cost is the mean of its "
             "scored windows).", ""]
    out = rep["best_by_outcome"]
    cost = {r["workload"]: r for r in rep["best_by_cost"]}
    if out:
        lines += ["## Best configuration per workload", "",
                  "By the workload's own outcome, and by cost. *Tied* lists the arms whose "
                  "difference from the best has a CI that includes 0.", "",
                  "| workload | best by outcome | mean [CI] | tied | best by cost | cost [CI] | "
                  "outcome loss of the cost pick |", "|---|---|---|---|---|---|---|"]
        for r in out:
            c = cost.get(r["workload"])
            loss = "—"
            if c:
                pick = r["arms"].get(c["best"])
                if pick and pick["mean"] is not None and r["best_mean"]["mean"]:
                    b = r["best_mean"]["mean"]
                    d = (b - pick["mean"]) if r["higher_is_better"] else (pick["mean"] - b)
                    loss = f"{100 * d / abs(b):.1f} %"
            tied = ", ".join(f"`{a}`" for a in r["not_distinguishable_from_best"]) or "none"
            lines.append(
                f"| {r['workload']} | `{r['best']}` | {_ci(r['best_mean'])} | {tied} | "
                + (f"`{c['best']}` | {_ci(c['best_mean'], '+.3f')} | {loss} |" if c
                   else "— | — | — |"))
        lines += ["", "![best by outcome](best_by_outcome.png)", ""]
    else:
        lines += ["## Best configuration per workload", "",
                  "These logs carry no workload outcomes (daemon journals): ranked by cost "
                  "only.", ""]
    lines += ["| workload | best by cost | cost [CI] | tied |", "|---|---|---|---|"]
    for c in rep["best_by_cost"]:
        tied = ", ".join(f"`{a}`" for a in c["not_distinguishable_from_best"]) or "none"
        lines.append(f"| {c['workload']} | `{c['best']}` | {_ci(c['best_mean'], '+.3f')} | "
                     f"{tied} |")
    lines += ["", "![best by cost](best_by_cost.png)", "", "## Parameter effects", "",
              "Per scheduler, an OLS of each run's response on its parameters (booleans on vs "
              "off; a number seen at two values as that contrast, at more per doubling; "
              "choices vs the default) with workload fixed "
              "effects; 95 % CI from a bootstrap over runs stratified by workload. Outcome "
              "effects are 100 × ln(outcome / fair's outcome) — ≈ % for small effects — "
              "signed so that positive is better; cost effects are in cost units (negative "
              "is better).", "",
              "| scheduler | parameter | values seen | on outcome [CI] | verdict | on cost [CI] "
              "| verdict |", "|---|---|---|---|---|---|---|"]
    pooled = [e for e in rep["parameter_effects"] if e["workload"] == "all"]
    keys = sorted({(e["scheduler"], e["term"]) for e in pooled})
    for s, t in keys:
        cells = []
        seen = ""
        for resp in ("outcome", "cost"):
            e = next((x for x in pooled if (x["scheduler"], x["term"], x["response"]) ==
                      (s, t, resp)), None)
            if e is None:
                cells += ["—", "—"]
                continue
            seen = ", ".join(e["values_seen"])
            v, (lo, hi) = e["value"], e["ci95"]
            fmt = "+.1f" if resp == "outcome" else "+.3f"
            cells += [f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None else
                      f"{v:{fmt}}", e["verdict"]]
        lines.append(f"| {s} | {t} | {seen} | " + " | ".join(cells) + " |")
    per_wl = [e for e in rep["parameter_effects"] if e["workload"] != "all"
              and e["verdict"] in ("better", "worse")]
    if per_wl:
        lines += ["", "Measurable per-workload effects (the pooled effect can hide effects of "
                  "opposite sign):", ""]
        for e in per_wl:
            v, (lo, hi) = e["value"], e["ci95"]
            lines.append(f"* {e['workload']}: {e['scheduler']} {e['term']} → {e['response']} "
                         f"{v:+.3g} [{lo:+.3g}, {hi:+.3g}] ({e['verdict']})")
    lines += ["", "![parameter effects](parameter_effects.png)", "",
              "## Off-policy comparison", "",
              f"Expected cost per window under `{rep['ope']['objective']}` if the policy had "
              f"chosen, estimated from {rep['ope']['rows']} held-out windows "
              f"({rep['ope']['split']}). Registered learners were first trained off-policy "
              f"(method `{rep['ope']['method']}`) on the other {rep['ope']['train_rows']} "
              "windows, so each is judged on windows it never saw. *On-policy* is the mean of "
              "the held-out windows that really ran the arm (for `fixed:` targets). "
              + ("Dataset windows are judged from their design contexts (the window before "
                 "under a uniformly drawn arm: `scxd/replay/offpolicy.py`, "
                 "`design_contexts`), not from the window before in the same run, whose "
                 "features the run's own arm caused. "
                 if not rep.get("context_pre_decision", True) else ""), "",
              "| policy | snips [CI] | dr [CI] | ESS | on-policy mean [CI] |",
              "|---|---|---|---|---|"]
    tg = rep["ope"]["targets"]
    for n in sorted(tg, key=lambda n: tg[n]["estimates"]["dr"]["value"]
                    if tg[n]["estimates"]["dr"]["value"] is not None else math.inf):
        s, d = tg[n]["estimates"]["snips"], tg[n]["estimates"]["dr"]
        op = rep["ope"]["on_policy"].get(n)
        lines.append(f"| `{n}` | {est.format_interval(s, '+.3f', '—')} | "
                     f"{est.format_interval(d, '+.3f', '—')} | {tg[n]['ess']:.0f} | "
                     f"{_ci(op, '+.3f') if op else '—'} |")
    for n, why in rep["ope"]["skipped"].items():
        lines.append(f"\n`{n}` not scored: {why}")
    for w in rep["ope"]["warnings"]:
        lines.append(f"\nWarning: {w}")
    lines += ["", "![off-policy comparison](ope.png)", ""]
    return "\n".join(lines)


# -- the verb -----------------------------------------------------------------------------------

def build_report(args: argparse.Namespace) -> dict[str, Any]:
    from scxd.replay.build import table_from_log
    from scxd.replay.logs import load_logs

    if not (args.journal or args.dataset):
        raise TableError("nothing to read: give --dataset DIR or --journal DIR")
    log = load_logs(journals=args.journal, datasets=args.dataset)
    table = table_from_log(log, args.objective)
    heads = headlines(log)
    runs = collect_runs(log, table, args.objective, heads)
    if not runs:
        raise TableError("no scored windows: nothing to report")
    fair_i = log.arms.fair_index()
    fair_label = log.arms[fair_i].label if fair_i is not None else ""
    by_outcome, by_cost = rankings(runs, heads)
    rows = effect_rows(runs, fair_label, heads)
    effects = (analysis.parameter_effects(rows, "outcome", n_boot=args.bootstrap,
                                          seed=args.seed)
               + analysis.parameter_effects(rows, "cost", n_boot=args.bootstrap,
                                            seed=args.seed))
    policies = args.policies.split(",") if args.policies else offline_scorable()
    ope = ope_comparison(table, args.objective, policies, args.bootstrap, args.seed, args)
    args.out.mkdir(parents=True, exist_ok=True)
    if by_outcome:
        plot_rankings(by_outcome, args.out / "best_by_outcome.png",
                      "Each workload's own outcome per arm", fair_label, "%")
    plot_rankings(by_cost, args.out / "best_by_cost.png",
                  f"Cost per arm ({args.objective}; 0 = as good as fair)", fair_label, "cost")
    if effects:
        plot_effects(effects, args.out / "parameter_effects.png")
    plot_ope(ope, args.out / "ope.png")
    return {"sources": log.sources, "objective": args.objective, "windows": table.n,
            "context_pre_decision": table.meta.get("context_pre_decision", True),
            "runs": len(runs), "arms": log.arms.labels(),
            "best_by_outcome": [r.as_dict() for r in by_outcome],
            "best_by_cost": [r.as_dict() for r in by_cost],
            "parameter_effects": [e.as_dict() for e in effects], "ope": ope}


def run(args: argparse.Namespace) -> int:
    try:
        with single_threaded_blas():
            rep = build_report(args)
    except (TableError, est.EstimatorError, ValueError, OSError) as exc:
        print(f"scxd replay report: {exc}", file=sys.stderr)
        return 2
    (args.out / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (args.out / "README.md").write_text(markdown(rep))
    print(f"{args.out}/README.md: {rep['runs']} runs, {len(rep['best_by_cost'])} workloads, "
          f"{len(rep['parameter_effects'])} effects, {len(rep['ope']['targets'])} policies "
          "scored")
    return 0
