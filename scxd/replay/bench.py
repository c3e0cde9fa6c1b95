"""``scxd replay bench``: every registered policy judged on replayed real data, side by side.

Protocol (../shared/learning.md, issue "the adaptive policy"):

1. The dataset's repeats are split: the evaluation repeats (``--eval-repeats``; default the
   last 40 %) form the counterfactual table the runs are bootstrapped from; learners are
   pretrained (``--pretrain``) only on the other, *training* repeats.  ``--holdout-workloads``
   removes workloads from training and evaluates on them alone: the check that nothing is
   tuned to the committed workloads' identities.
2. Per seed, one piecewise-stationary schedule (phases of 30–200 windows, each a workload
   other than the last) is run by every policy (paired comparison) through
   :func:`scxd.replay.simulate.simulate` — the same decision path as ``scxd run``.
3. Per policy, mean and 95 % CI (Student t over seeds) of:

   * ``outcome_loss_pct`` — the workload's own outcome (its headline figure, averaged over
     the evaluation repeats) for the running arm vs the outcome-best arm of that workload,
     averaged over windows;
   * ``beats_fair_pct`` — phases whose second half is at least as good as the fair scheduler
     by the workload's outcome;
   * ``worse_than_fair_5pct_windows_pct`` — windows running an arm more than 5 % worse than
     the fair scheduler by outcome;
   * ``top1_pct`` / ``top3_pct`` — windows running the outcome-best arm / one of the best
     three (ASA reports 86.4 % / 78.6 %);
   * ``cost_regret`` — cumulative regret in cost (the objective) vs the per-workload oracle
     arm, each cell's cost against its workload's fair reference;
   * ``swaps_per_hour`` — at the daemon's window length; ``steady_swaps_per_hour`` the same
     over the second halves of the phases only (steady state, after the workload change);
   * ``converge_windows_median`` — windows from a phase's start until the running arm is one
     of the best three and stays so for 10 windows (a phase that never gets there counts
     its length).

Output: JSON ``{"policies": {name: {metric: {"mean", "ci95"}}}, "config": {…}}`` (plus
``per_seed`` and ``timing``), a markdown table on stdout, and a PNG with each policy's
regret over time and one seed's arm timeline.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scxd.catalog import FAIR, Catalog, build_catalog
from scxd.config import GuardConfig, PolicyConfig
from scxd.policy import registry
from scxd.policy.base import PolicyEnv
from scxd.probe import Availability, ProbedCatalog, fair_as_found
from scxd.replay.logs import LogError, load_logs
from scxd.replay.simulate import (
    Table,
    Trace,
    build_table,
    loss_pct,
    manifest_of,
    offline_data,
    outcome_losses,
    schedule,
    simulate,
)
from scxd.reward import OBJECTIVES

VERB = "bench"
HELP = "judge every registered policy on replayed real data (the replay benchmark)"
METRICS = ("outcome_loss_pct", "beats_fair_pct", "worse_than_fair_5pct_windows_pct",
           "top1_pct", "top3_pct", "cost_regret", "swaps_per_hour",
           "steady_swaps_per_hour", "converge_windows_median")
#: Windows a policy must hold a top-3 arm to count as converged.
CONVERGED_RUN = 10
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
         16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042}


def default_eval_repeats(repeats: Sequence[int]) -> list[int]:
    """The last 40 % of the repeats (at least one): what learners never train on."""
    return list(repeats[-max(1, round(0.4 * len(repeats))):])


def ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and Student-t 95 % interval over seeds (a point for a single seed)."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) == 1:
        return m, m, m
    df = len(v) - 1
    t = _T975.get(df) or next((t for d, t in sorted(_T975.items()) if d >= df), 1.96)
    half = t * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def metrics(trace: Trace, table: Table, window_s: float) -> dict[str, float]:
    w, a = trace.workload, trace.arm
    loss = table.loss[w, a]
    fair = table.arms.fair_index()
    out: dict[str, float] = {"outcome_loss_pct": float(np.nanmean(loss))}
    if fair is not None:
        worse = [loss_pct(table.outcome[wi, ai], table.outcome[wi, fair],
                          table.higher_is_better[wi]) > 5.0
                 for wi, ai in zip(w, a, strict=True)
                 if not (math.isnan(table.outcome[wi, ai]) or
                         math.isnan(table.outcome[wi, fair]))]
        out["worse_than_fair_5pct_windows_pct"] = 100.0 * float(np.mean(worse)) if worse \
            else math.nan
    ranks = [table.rank(i) for i in range(len(table.workloads))]
    top1 = np.array([ai == ranks[wi][0] for wi, ai in zip(w, a, strict=True)])
    top3 = np.array([ai in ranks[wi][:3] for wi, ai in zip(w, a, strict=True)])
    out["top1_pct"] = 100.0 * float(top1.mean())
    out["top3_pct"] = 100.0 * float(top3.mean())
    out["cost_regret"] = float((table.cell_cost[w, a] - table.cell_cost[w].min(axis=1)).sum())
    out["swaps_per_hour"] = float(trace.swapped.sum()) / (len(a) * window_s / 3600.0)
    beats, converge, steady = [], [], []
    for p in np.unique(trace.phase):
        idx = np.flatnonzero(trace.phase == p)
        wl = int(w[idx[0]])
        second = idx[len(idx) // 2:]
        steady.append(second)
        if fair is not None and not math.isnan(table.loss[wl, fair]):
            beats.append(float(np.nanmean(loss[second])) <= table.loss[wl, fair] + 1e-9)
        good = top3[idx]
        at = len(idx)
        for i in range(len(idx)):
            if good[i:i + CONVERGED_RUN].all():
                at = i
                break
        converge.append(at)
    second_halves = np.concatenate(steady)
    out["steady_swaps_per_hour"] = float(trace.swapped[second_halves].sum()) / (
        len(second_halves) * window_s / 3600.0)
    out["beats_fair_pct"] = 100.0 * float(np.mean(beats)) if beats else math.nan
    out["converge_windows_median"] = float(np.median(converge))
    return out


def probed_for(arms) -> ProbedCatalog:
    """The catalog with exactly the arm set's schedulers available (fixed/rule need it), its
    fair scheduler as the recording machine had it: the kernel's tunables are probed live
    and differ between machines (the base slice scales with the CPU count, the preemption
    model with the build), so the plain ``fair`` arm's values are the defaults, and the
    tunables that machine could not set are dropped, as its probe dropped them."""
    catalog = build_catalog()
    recorded_fair = next((a.action for a in arms if a.action.is_fair and a.label == FAIR),
                         None)
    if recorded_fair is not None:
        values = dict(recorded_fair.params)
        fair = catalog.get(FAIR)
        spec, _ = fair_as_found(fair, values, {p.name: "not set by the recording machine"
                                               for p in fair.params if p.name not in values})
        catalog = Catalog(spec if s.name == FAIR else s for s in catalog)
    present = {a.scheduler for a in arms}
    return ProbedCatalog(catalog, {s.name: Availability(s.name, s.name in present)
                                   for s in catalog})


def hindsight_arm(table: Table) -> int:
    """The single arm with the lowest mean outcome loss over the evaluated workloads."""
    mean = np.nanmean(np.where(np.isnan(table.loss), 100.0, table.loss), axis=0)
    return int(np.argmin(mean))


def outcome_best(log, repeats: Sequence[int], table: Table,
                 manifest: dict[str, Any] | None = None) -> dict[str, int]:
    """Each workload's outcome-best arm judged on the *training* repeats only, by the
    workload's declared headline (scxd's declaration, else the dataset manifest's)."""
    losses = outcome_losses(log, repeats, table.arms, table.workloads, manifest)
    return {w: int(np.nanargmin(row)) for w, row in losses.items()}


def run_bench(datasets: Sequence[str], policies: Sequence[str] | None = None, seeds: int = 10,
              objective: str = "balanced", eval_repeats: Sequence[int] | None = None,
              windows: int = 1500, window_s: float = 5.0, pretrain: str = "learners",
              holdout: Sequence[str] = (), guard: GuardConfig | None = None,
              overrides: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-able result (plus traces under ``_traces``)."""
    say = progress or (lambda _m: None)
    started = time.monotonic()
    log = load_logs(datasets=datasets)
    manifest = manifest_of(datasets)
    repeats = log.repeats()
    if eval_repeats is None:
        eval_repeats = default_eval_repeats(repeats)
    bad = [r for r in eval_repeats if r not in repeats]
    if bad:
        raise ValueError(f"evaluation repeats {bad} are not in the data (repeats: {repeats})")
    train = [r for r in repeats if r not in eval_repeats]
    table = build_table(log, eval_repeats, objective, manifest)
    unknown = [w for w in holdout if w not in table.workloads]
    if unknown:
        raise ValueError(f"--holdout-workloads {unknown}: not in the data "
                         f"({', '.join(table.workloads)})")
    trained_on = [w for w in table.workloads if w not in holdout]
    evaluated = list(holdout) or table.workloads
    # A window's loss needs its arm's outcome: a workload with arms that have no trusted
    # figure on the evaluation repeats (a tool that disowned its run) cannot be judged —
    # a policy could hide in an unmeasured arm, and fair's own share would vanish.
    unjudged = {}
    for w in evaluated:
        missing = int(np.isnan(table.outcome[table.workloads.index(w)]).sum())
        if missing:
            unjudged[w] = (f"{missing} of {len(table.arms)} arms have no trusted outcome on "
                           f"the evaluation repeats")
    if unjudged:
        say("not judged: " + "; ".join(f"{w}: {why}" for w, why in unjudged.items()))
        evaluated = [w for w in evaluated if w not in unjudged]
        if not evaluated:
            raise ValueError("no workload left to judge: " + "; ".join(
                f"{w}: {why}" for w, why in unjudged.items()))
    guard = guard or GuardConfig()
    names = list(policies or [e.name for e in registry.ENTRIES])
    skipped: dict[str, str] = {}
    for n in list(names):
        why = registry.entry(n).available()
        if why:
            skipped[n] = why
            names.remove(n)
    hindsight = hindsight_arm(table)
    probed = probed_for(table.arms)
    data = None
    if pretrain != "none" and train:
        data = offline_data(log, train, objective, table.arms, trained_on, 4, seed=0,
                            outcome_best=outcome_best(log, train, table, manifest),
                            outcome_loss=outcome_losses(log, train, table.arms, trained_on,
                                                        manifest))
    plans = [schedule(evaluated, windows, np.random.default_rng(1000 + s)) for s in range(seeds)]
    result: dict[str, Any] = {"policies": {}, "per_seed": {}, "per_workload": {},
                              "timing": {}, "_traces": {}}
    for name in names:
        cfg = PolicyConfig(**{"name": name, "pretrained": "none",
                              **(overrides or {}).get(name, {})})

        def env(seed: int) -> PolicyEnv:
            return PolicyEnv(table.arms, seed=seed, probed=probed, window_s=window_s,
                             schema=log.schema, schema_version=log.feature_version,
                             feature_names=tuple(log.feature_names) or
                             tuple(f"f{i}" for i in range(len(log.records[0].context.values))),
                             extras={"hindsight_arm": table.arms[hindsight].key})

        state = None
        entry = registry.entry(name)
        t0 = time.monotonic()
        wanted = pretrain == name or (pretrain == "learners" and
                                      (entry.learns or name == "asa"))
        if data is not None and wanted:
            proto = registry.make_policy(cfg, env(0))
            proto.pretrain(data)   # type: ignore[attr-defined]
            state = proto.state()  # type: ignore[attr-defined]
        pre_s = time.monotonic() - t0
        per_seed, secs, traces = [], [], []
        for s in range(seeds):
            pol = registry.make_policy(cfg, env(s))
            if state is not None:
                pol.load_state(*state)  # type: ignore[attr-defined]
            trace = simulate(pol, table, plans[s], s, objective, guard, window_s)
            per_seed.append(metrics(trace, table, window_s))
            secs.append(trace.seconds)
            traces.append(trace)
        allsecs = np.concatenate(secs)
        result["policies"][name] = {
            m: dict(zip(("mean", "ci95"), ((v := ci95([p[m] for p in per_seed]))[0],
                                            [v[1], v[2]]), strict=True)) for m in METRICS}
        result["per_seed"][name] = per_seed
        result["timing"][name] = {"pretrain_s": pre_s,
                                  "decide_update_p50_ms": 1e3 * float(np.percentile(allsecs, 50)),
                                  "decide_update_p99_ms": 1e3 * float(np.percentile(allsecs, 99))}
        result["_traces"][name] = traces
        result["per_workload"][name] = per_workload(traces, table)
        say(f"{name}: outcome loss {result['policies'][name]['outcome_loss_pct']['mean']:.2f} %"
            f", top-3 {result['policies'][name]['top3_pct']['mean']:.1f} %, "
            f"{time.monotonic() - t0:.1f} s")
    result["config"] = {
        "datasets": list(datasets), "objective": objective, "seeds": seeds,
        "eval_repeats": list(eval_repeats), "train_repeats": train, "windows": windows,
        "window_s": window_s, "phase_windows": [30, 200], "pretrain": pretrain,
        "holdout_workloads": list(holdout), "evaluated_workloads": evaluated,
        "unjudged_workloads": unjudged,
        "workloads": table.workloads, "headlines": dict(zip(table.workloads, table.headlines,
                                                             strict=True)),
        "arms": table.arms.labels(), "arm_set": table.arms.hash,
        "feature_schema": f"{log.schema} v{log.feature_version}",
        "hindsight_arm": table.arms[hindsight].label, "guard": guard.model_dump(),
        "training_transitions": len(data) if data is not None else 0,
        "skipped_policies": skipped, "elapsed_s": time.monotonic() - started,
    }
    result["_table"] = table
    return result


def per_workload(traces: Sequence[Trace], table: Table) -> dict[str, dict[str, Any]]:
    """Per evaluated workload, pooled over every seed's windows of it: the outcome loss %
    and the share of windows (%) the fair scheduler ran (None without a fair arm) — where a
    policy's loss comes from, and whether it came from holding fair."""
    fair = table.arms.fair_index()
    w = np.concatenate([tr.workload for tr in traces])
    a = np.concatenate([tr.arm for tr in traces])
    out: dict[str, dict[str, Any]] = {}
    for wi in np.unique(w):
        sel = w == wi
        out[table.workloads[wi]] = {
            "outcome_loss_pct": float(np.nanmean(table.loss[wi, a[sel]])),
            "fair_pct": float(100.0 * np.mean(a[sel] == fair)) if fair is not None
            else None,
            "windows": int(sel.sum())}
    return out


def markdown(result: dict[str, Any]) -> str:
    def cell(d: dict[str, Any]) -> str:
        m, (lo, hi) = d["mean"], d["ci95"]
        if math.isnan(m):
            return "—"
        return f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if abs(m) < 1000 else f"{m:.0f}"

    short = {"outcome_loss_pct": "outcome loss %", "beats_fair_pct": "beats fair %",
             "worse_than_fair_5pct_windows_pct": ">5 % worse than fair, % windows",
             "top1_pct": "top-1 %", "top3_pct": "top-3 %", "cost_regret": "cost regret",
             "swaps_per_hour": "swaps/h", "steady_swaps_per_hour": "steady swaps/h",
             "converge_windows_median": "converge (windows)"}
    rows = sorted(result["policies"].items(), key=lambda kv: kv[1]["outcome_loss_pct"]["mean"])
    out = ["| policy | " + " | ".join(short[m] for m in METRICS) + " |",
           "|---|" + "---|" * len(METRICS)]
    for name, ms in rows:
        ref = " (hindsight)" if registry.entry(name).hindsight else ""
        out.append(f"| {name}{ref} | " + " | ".join(cell(ms[m]) for m in METRICS) + " |")
    c = result["config"]
    out.append("")
    out.append(f"Mean [95 % CI] over {c['seeds']} seeds; {c['windows']} windows of "
               f"{c['window_s']:g} s per run; objective {c['objective']}; evaluation repeats "
               f"{c['eval_repeats']}, training repeats {c['train_repeats']}; "
               f"{len(c['arms'])} arms; hindsight-best fixed arm `{c['hindsight_arm']}`"
               + (f"; held-out workloads {c['holdout_workloads']}" if c['holdout_workloads']
                  else "") + ".")
    for w, why in (c.get("unjudged_workloads") or {}).items():
        out.append(f"Not judged: `{w}` ({why}).")
    by_workload = result.get("per_workload") or {}
    if by_workload:
        workloads = list(next(iter(by_workload.values())))
        out += ["", "Outcome loss % by workload (in brackets: % of its windows on the fair "
                "scheduler), pooled over seeds:", "",
                "| policy | " + " | ".join(workloads) + " |",
                "|---|" + "---|" * len(workloads)]
        for name, _ms in rows:
            cells = by_workload.get(name, {})
            out.append(f"| {name} | " + " | ".join(
                f"{cells[w]['outcome_loss_pct']:.1f} ("
                + ("—" if cells[w]["fair_pct"] is None else f"{cells[w]['fair_pct']:.0f}")
                + ")" if w in cells else "—" for w in workloads) + " |")
    return "\n".join(out)


def plot(result: dict[str, Any], path: Path, timeline_seed: int = 0) -> None:
    """Regret over time per policy (mean over seeds, band = min..max) and one seed's arm
    timeline per policy, with the outcome-best arm on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    table: Table = result["_table"]
    names = sorted(result["policies"], key=lambda n: result["policies"][n]
                   ["outcome_loss_pct"]["mean"])
    k = len(table.arms)
    fig = plt.figure(figsize=(13, 4.5 + 0.32 * (len(names) + 1)), dpi=110)
    grid = fig.add_gridspec(2, 1, height_ratios=[3.2, 0.32 * (len(names) + 1) + 0.6])
    ax = fig.add_subplot(grid[0])
    cmap = plt.get_cmap("tab20")
    for i, n in enumerate(names):
        curves = []
        for tr in result["_traces"][n]:
            loss = np.nan_to_num(table.loss[tr.workload, tr.arm], nan=0.0)
            curves.append(np.cumsum(loss))
        c = np.array(curves)
        x = np.arange(1, c.shape[1] + 1)
        ax.plot(x, c.mean(axis=0), color=cmap(i % 20), lw=1.6, label=n)
        ax.fill_between(x, c.min(axis=0), c.max(axis=0), color=cmap(i % 20), alpha=0.12)
    ax.set_xlabel("window")
    ax.set_ylabel("cumulative outcome loss (% · windows)")
    c = result["config"]
    ax.set_title(f"Regret vs the per-workload outcome-best arm — {len(c['datasets'])} dataset(s),"
                 f" objective {c['objective']}, {c['seeds']} seeds (band: min..max)")
    ax.legend(ncol=3, fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax2 = fig.add_subplot(grid[1])
    tr0 = result["_traces"][names[0]][timeline_seed]
    best = np.array([table.rank(w)[0] for w in tr0.workload])
    rows = [best] + [result["_traces"][n][timeline_seed].arm for n in names]
    colors = ListedColormap([cmap(i % 20) for i in range(k)])
    ax2.imshow(np.array(rows), aspect="auto", interpolation="nearest", cmap=colors,
               vmin=-0.5, vmax=k - 0.5)
    ax2.set_yticks(range(len(rows)), ["outcome-best", *names], fontsize=8)
    bounds = np.flatnonzero(np.diff(tr0.phase)) + 0.5
    for b in bounds:
        ax2.axvline(b, color="k", lw=0.6)
    for p in np.unique(tr0.phase):
        idx = np.flatnonzero(tr0.phase == p)
        ax2.text(idx.mean(), -0.62, table.workloads[tr0.workload[idx[0]]], ha="center",
                 va="bottom", fontsize=7)
    ax2.set_xlabel(f"window (seed {timeline_seed}): running arm, colour = arm; black lines = "
                   "workload changes")
    if k <= 20:
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 20)) for i in range(k)]
        fig.legend(handles, table.arms.labels(), ncol=min(k, 5), fontsize=7,
                   loc="lower center", bbox_to_anchor=(0.5, 0.0))
        fig.subplots_adjust(bottom=0.16)
    fig.tight_layout(rect=(0, 0.07 if k <= 20 else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", required=True, metavar="DIR",
                   help="a packaged dataset (repeat for several with the same arms)")
    p.add_argument("--policies", default="", help="comma-separated registry names "
                   "(default: every registered policy)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--objective", choices=OBJECTIVES, default="balanced")
    p.add_argument("--eval-repeats", default="", help="comma-separated repeat numbers "
                   "evaluated on (default: the last 40 %%); learners train on the others")
    p.add_argument("--windows", type=int, default=1500, help="windows per run")
    p.add_argument("--window-s", type=float, default=5.0,
                   help="window length the guard and swaps/hour count with (the daemon's)")
    p.add_argument("--pretrain", default="learners", help="learners = pretrain every "
                   "learner on the training repeats; none; or one policy name")
    p.add_argument("--holdout-workloads", default="", help="comma-separated workloads left "
                   "out of training and evaluated alone")
    p.add_argument("--json", type=Path, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, help="write the PNG here")


def _ints(text: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--eval-repeats: expected comma-separated integers, got {text!r}"
                         ) from None


def run(args: argparse.Namespace) -> int:
    try:
        if args.seeds < 1 or args.windows < 50:
            raise ValueError("--seeds must be ≥ 1 and --windows ≥ 50")
        policies = [p.strip() for p in args.policies.split(",") if p.strip()] or None
        for p in policies or ():
            registry.entry(p)
        result = run_bench(
            args.dataset, policies, args.seeds, args.objective, _ints(args.eval_repeats),
            args.windows, args.window_s, args.pretrain,
            [w for w in args.holdout_workloads.split(",") if w],
            progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, LogError) as exc:
        print(f"scxd replay bench: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    if args.json:
        public = {k: v for k, v in result.items() if not k.startswith("_")}
        args.json.write_text(json.dumps(public, indent=2, default=float) + "\n")
    if args.plot:
        try:
            plot(result, args.plot)
        except ImportError:
            print("scxd replay bench: --plot needs matplotlib (pip install 'scxd[replay]')",
                  file=sys.stderr)
            return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scxd replay bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
