"""From a run's records to its answer: the best configuration, its improvement over each
baseline, drift, parameter importance — and the files that carry them.

:func:`analyze` is pure (records in, :class:`Analysis` out) so a finished or interrupted
run can be re-reported from ``trials.jsonl`` alone.  :func:`write_outputs` writes
``best_parameters.json``, ``importance.json``, ``summary.md`` and the PNG plots
(``convergence.png``, ``importance.png``, ``metric_per_trial.png``); ``trials.jsonl`` and
``trials.csv`` are written as the run goes (:mod:`scxd.tune.records`).

Which measurements back which figure:

* the best configuration is the one with the best mean over all its measured repeats
  (identical configurations pool; the defaults baseline competes too);
* its reported metric is the **confirmation** run (measured again after the search, so the
  figure is not inflated by having been selected as the best of many noisy trials); the
  search-phase estimate is kept beside it;
* improvements compare that against every round of each baseline pooled (drift between
  rounds widens the interval instead of hiding);
* the reproduce interval is where a fresh run's mean should land (see
  :func:`scxd.tune.stats.reproduce_interval`).
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scxd.catalog import SchedulerSpec, format_value
from scxd.tune.importance import ParamImportance, param_importance
from scxd.tune.records import TrialRecord, write_atomic, write_json
from scxd.tune.space import SearchSpace
from scxd.tune.stats import (
    Improvement,
    Noise,
    Summary,
    drift,
    improvement,
    pooled_noise,
    reproduce_interval,
    summarize,
)

BEST_JSON = "best_parameters.json"
IMPORTANCE_JSON = "importance.json"
SUMMARY_MD = "summary.md"
PLOTS = ("convergence.png", "importance.png", "metric_per_trial.png")


@dataclass(frozen=True)
class Config:
    """One distinct configuration and every complete measurement of it."""

    label: str
    scheduler: str
    params: dict[str, Any]
    argv: list[str]
    values: list[float]
    records: list[TrialRecord]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


@dataclass(frozen=True)
class BaselineView:
    name: str
    label: str
    values: list[float]
    rounds: list[tuple[int, float, float]]     # (round, started_at, mean)
    summary: Summary | None
    drift_percent: float | None
    failures: list[str]


@dataclass
class Analysis:
    scheduler: str
    metric: str
    unit: str
    higher_is_better: bool
    repeats: int
    best: Config | None
    best_summary: Summary | None           # what best_parameters.json reports
    best_source: str                       # confirmation / search
    search_summary: Summary | None
    confirm_failed: str
    reproduce: tuple[float, float] | None
    improvements: dict[str, Improvement]
    baselines: dict[str, BaselineView]
    noise: Noise
    importance: list[ParamImportance]
    importance_note: str
    search: list[TrialRecord]
    states: dict[str, int]
    records: list[TrialRecord] = field(default_factory=list)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


def _configs(records: Sequence[TrialRecord]) -> list[Config]:
    groups: dict[tuple, list[TrialRecord]] = {}
    for r in records:
        if r.complete:
            groups.setdefault(r.key(), []).append(r)
    out = []
    for recs in groups.values():
        first = recs[0]
        label = first.label if first.kind != "baseline" else f"{first.baseline} (baseline)"
        out.append(Config(label, first.scheduler, dict(first.params), list(first.argv),
                          [v for r in recs for v in r.values], recs))
    return out


def analyze(records: Sequence[TrialRecord], space: SearchSpace, metric: str, unit: str,
            higher_is_better: bool, repeats: int, seed: int | None = 0,
            importance: bool = True) -> Analysis:
    recs = list(records)
    sched = space.spec.name
    search = [r for r in recs if r.kind == "search"]
    # The search, the confirmation and the tuned scheduler's own baseline (its defaults)
    # compete; the fair baseline is another scheduler (unless fair is what is tuned).
    candidates = _configs([r for r in recs if r.kind in ("search", "confirm")
                           or (r.kind == "baseline" and r.scheduler == sched)])
    # The confirmation run re-measures the best: it must not re-rank the search.
    ranking = [c for c in candidates if any(r.kind != "confirm" for r in c.records)]
    key = (lambda c: c.mean) if higher_is_better else (lambda c: -c.mean)
    best = max(ranking, key=key) if ranking else None
    groups = [c.values for c in _configs(recs)]
    baselines: dict[str, BaselineView] = {}
    per_round: list[list[list[float]]] = []
    for name in dict.fromkeys(r.baseline for r in recs if r.kind == "baseline"):
        brs = [r for r in recs if r.kind == "baseline" and r.baseline == name]
        done = [r for r in brs if r.complete]
        values = [v for r in done for v in r.values]
        rounds = [(r.round, r.started_at, r.mean or math.nan) for r in done]
        per_round.append([r.values for r in done])
        baselines[name] = BaselineView(
            name, brs[0].label, values, rounds, summarize(values) if values else None,
            drift([m for _, _, m in rounds]),
            [f"round {r.round}: {r.state} ({r.reason}: {r.detail})" for r in brs
             if not r.complete])
    noise = pooled_noise(groups, per_round)
    best_summary = search_summary = None
    source, confirm_failed, reproduce = "search", "", None
    improvements: dict[str, Improvement] = {}
    if best is not None:
        search_vals = [v for r in best.records if r.kind != "confirm" for v in r.values]
        search_summary = summarize(search_vals)
        confirms = [r for r in recs if r.kind == "confirm" and r.key() == best.records[0].key()]
        conf_vals = [v for r in confirms if r.complete for v in r.values]
        failed = [r for r in recs if r.kind == "confirm" and not r.complete]
        if failed:
            confirm_failed = f"{failed[-1].state}: {failed[-1].reason} {failed[-1].detail}"
        if conf_vals:
            best_summary, source = summarize(conf_vals), "confirmation"
        else:
            best_summary, source = search_summary, "search"
        reported = conf_vals or search_vals
        reproduce = reproduce_interval(reported, repeats, noise)
        for name, view in baselines.items():
            if view.values:
                improvements[name] = improvement(reported, view.values, higher_is_better,
                                                 name)
    ref = baselines.get("defaults") or baselines.get("fair")
    reference = ref.summary.mean if ref and ref.summary else None
    points = [(r.sampled, r.mean) for r in search if r.complete and r.mean is not None]
    for r in recs:  # the defaults baseline is a point of the search space too
        if r.kind == "baseline" and r.scheduler == sched and r.complete:
            sample = space.defaults_sample()
            if sample is not None:
                points.append((sample, r.mean))
    if not importance:
        ranked: list[ParamImportance] = []
        note = "not computed"
    elif points:
        ranked, note = param_importance(space, points, higher_is_better, reference, seed)
    else:
        ranked, note = [], "no measured trials"
    states: dict[str, int] = {}
    for r in search:
        states[r.state] = states.get(r.state, 0) + 1
    infeasible = sum(1 for r in recs if r.kind == "infeasible")
    if infeasible:
        states["rejected_by_constraints"] = infeasible
    return Analysis(sched, metric, unit, higher_is_better, repeats, best, best_summary, source,
                    search_summary, confirm_failed, reproduce, improvements, baselines, noise,
                    ranked, note, search, states, recs)


# -- files ------------------------------------------------------------------------------------
def _fmt(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    s = f"{x:.4g}"
    return f"{s} {unit}".rstrip()


def _pm(s: Summary | None, unit: str) -> str:
    if s is None:
        return "n/a"
    if not math.isfinite(s.half_width):
        return f"{_fmt(s.mean, unit)} (n={s.n}, interval unknown)"
    return f"{s.mean:.4g} ± {s.half_width:.2g} {unit} (95% CI, n={s.n})".replace("  ", " ")


def _imp(i: Improvement) -> str:
    return (f"{i.percent:+.2f}% [{i.ci_low_percent:+.2f}%, {i.ci_high_percent:+.2f}%] "
            f"({i.verdict}, p={i.p_value:.3g})")


def preset_toml(spec: SchedulerSpec, params: Mapping[str, Any], name: str = "tuned") -> str:
    changed = {k: v for k, v in params.items() if v != spec.param(k).default}
    lines = [f"[schedulers.{spec.name}.presets.{name}]"]
    for k, v in changed.items():
        lines.append(f"{k} = {_toml(v)}")
    if not changed:
        lines.append("# every parameter at its default")
    return "\n".join(lines) + "\n"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return format_value(v)


def scxctl_command(spec: SchedulerSpec, argv: Sequence[str]) -> str:
    if spec.is_fair:
        return "scxctl stop   # the fair scheduler (debugfs tunables: see the preset)"
    cmd = f"scxctl switch -s {spec.name}"
    return cmd + (f" -a {shlex.quote(' '.join(argv))}" if argv else "")


def best_json(a: Analysis, space: SearchSpace, binary: str, run: Mapping[str, Any]) -> dict:
    spec = space.spec
    if a.best is None:
        return {"scheduler": spec.name, "best": None,
                "error": "no configuration was measured successfully", "run": dict(run)}
    b = a.best
    s = a.best_summary
    assert s is not None
    changed = {k: v for k, v in b.params.items() if v != spec.param(k).default}
    return {
        "scheduler": spec.name,
        "label": b.label,
        "argv": ([binary] if binary else []) + b.argv,
        "args": b.argv,
        "parameters": b.params,
        "changed": changed,
        "debugfs": spec.debugfs_writes(b.params),
        "metric": {"name": a.metric, "unit": a.unit,
                   "direction": "maximize" if a.higher_is_better else "minimize",
                   "source": a.best_source, **s.as_dict()},
        "search_estimate": a.search_summary.as_dict() if a.search_summary else None,
        "confirmation_failed": a.confirm_failed or None,
        "reproduce": {"repeats": a.repeats, "low": a.reproduce[0], "high": a.reproduce[1],
                      "level": 0.95,
                      "meaning": f"where the mean of a fresh run of {a.repeats} repeats of "
                      "this configuration should land (prediction interval: estimate, "
                      "run noise and the drift seen in the baselines)"}
        if a.reproduce else None,
        "improvement": {n: i.as_dict() for n, i in a.improvements.items()},
        "baselines": {n: v.summary.as_dict() if v.summary else None
                      for n, v in a.baselines.items()},
        "noise": a.noise.as_dict(),
        "apply": {"scxctl": scxctl_command(spec, b.argv), "config": preset_toml(spec,
                                                                                b.params)},
        "run": dict(run),
    }


def summary_md(a: Analysis, space: SearchSpace, bench: Mapping[str, Any],
               run: Mapping[str, Any], files: Sequence[str]) -> str:
    spec = space.spec
    unit = a.unit
    better = "higher" if a.higher_is_better else "lower"
    cmd = bench["command"] if isinstance(bench["command"], str) else \
        shlex.join(bench["command"])
    out = [f"# scxd tune: {spec.name} on `{cmd}`", ""]
    out += [f"- metric: **{a.metric}** ({bench['parser']}), {better} is better",
            f"- status: {run.get('status', '?')}; {run.get('search_trials', 0)} of "
            f"{run.get('budget')} search trials run"
            + (f"; stopped early: {run['stopped']}" if run.get("stopped") else ""),
            f"- sampler: {run.get('sampler')} (seed {run.get('seed')}); {a.repeats} repeats "
            f"per trial after {run.get('warmup')} warm-up run(s); baselines every "
            f"{run.get('baseline_every')} trials",
            f"- kernel: {run.get('kernel', '?')}; scxd {run.get('scxd_version', '?')}, "
            f"optuna {run.get('optuna_version', '?')}"]
    if run.get("resumed"):
        out.append(f"- resumed {run['resumed']} time(s)")
    out.append("")
    out += ["## Best configuration", ""]
    if a.best is None:
        out += ["No configuration was measured successfully.", ""]
    else:
        b = a.best
        out.append(f"**{b.label}** — `{' '.join([spec.name, *b.argv])}`")
        out.append("")
        out.append(f"- {a.metric}: {_pm(a.best_summary, unit)} from the {a.best_source} run"
                   + (f"; search estimate {_pm(a.search_summary, unit)}"
                      if a.best_source == "confirmation" else ""))
        if a.confirm_failed:
            out.append(f"- ⚠ the confirmation run failed: {a.confirm_failed}")
        if a.reproduce:
            out.append(f"- a fresh run of {a.repeats} repeats should land in "
                       f"[{a.reproduce[0]:.4g}, {a.reproduce[1]:.4g}] {unit} (95%)")
        for name, i in a.improvements.items():
            out.append(f"- vs {name}: {_imp(i)}")
        fair = a.improvements.get("fair")
        if fair is not None and fair.verdict == "worse" and spec.name != "fair":
            out.append(f"- ⚠ **the fair scheduler beats every measured setting of "
                       f"{spec.name}** on this benchmark")
        out += ["", "| parameter | value | default |", "|---|---|---|"]
        for name in space.dims:
            v, d = b.params[name], spec.param(name).default
            mark = "**" if v != d else ""
            out.append(f"| {name} | {mark}{_toml(v)}{mark} | {_toml(d)} |")
        out += ["", "Apply it:", "", "```sh", scxctl_command(spec, b.argv), "```", "",
                "or as a preset in `/etc/scxd/config.toml`:", "", "```toml",
                preset_toml(spec, b.params).rstrip(), "```", ""]
    out += ["## Baselines and drift", "",
            "| baseline | mean ± 95% CI | rounds (mean each) | drift first→last |",
            "|---|---|---|---|"]
    for v in a.baselines.values():
        rounds = ", ".join(f"{m:.4g}" for _, _, m in v.rounds)
        d = f"{v.drift_percent:+.2f}%" if v.drift_percent is not None else "n/a"
        out.append(f"| {v.label} | {_pm(v.summary, unit)} | {rounds} | {d} |")
        for f in v.failures:
            out.append(f"|  ⚠ {f} | | | |")
    noise_pct = ""
    ref = next((v.summary for v in a.baselines.values() if v.summary), None)
    if ref and ref.mean:
        noise_pct = f" ({100 * a.noise.within_sd / abs(ref.mean):.2f}% of the first baseline)"
    out += ["", f"Measurement noise: within a trial sd {a.noise.within_sd:.3g} {unit}"
            f"{noise_pct}; between rounds sd {math.sqrt(a.noise.between_var):.3g} {unit}.",
            ""]
    out += ["## Parameter importance", ""]
    if a.importance_note:
        out += [f"fANOVA importance unavailable: {a.importance_note}.", ""]
    out += ["| parameter | fANOVA share | effect (spread) | q-value | verdict | best value |",
            "|---|---|---|---|---|---|"]
    for p in a.importance:
        share = f"{p.importance:.2f}" if p.importance is not None else "n/a"
        eff = _fmt(p.effect, unit) + (f" ({p.effect_percent:.1f}%)"
                                      if p.effect_percent is not None else "")
        q = f"{p.q_value:.3g}" if p.q_value is not None else "n/a"
        out.append(f"| {p.name} | {share} | {eff} | {q} | {p.verdict} | "
                   f"{_toml(p.best_value)} |")
    out += ["", "*matters*: the metric differs between the parameter's values more than in "
            "shuffled data (permutation test, Benjamini–Hochberg q < 0.05); *no detectable "
            "effect*: it does not; *not enough data*: too few trials per value to tell; "
            "*not varied*: only one of its values was measured successfully.", ""]
    out += ["## Trials", "", f"States: {', '.join(f'{k} {v}' for k, v in a.states.items())}.",
            "", f"| trial | {a.metric} (mean ± 95% CI) | state | arguments |",
            "|---|---|---|---|"]
    ranked = sorted(a.search, key=lambda r: (not r.complete, -(r.mean or 0)
                                             if a.higher_is_better else (r.mean or 0)))
    for r in ranked[:15]:
        val = _pm(summarize(r.values), unit) if r.values else "—"
        why = r.state if r.complete else f"{r.state}: {r.reason}"
        out.append(f"| {r.number} | {val} | {why} | `{' '.join(r.argv) or '(defaults)'}` |")
    if len(ranked) > 15:
        out.append(f"| … {len(ranked) - 15} more in trials.csv | | | |")
    out += ["", "## Files", ""] + [f"- `{f}`" for f in files] + [""]
    return "\n".join(out)


def write_outputs(out_dir: Path, a: Analysis, space: SearchSpace, bench: Mapping[str, Any],
                  run: Mapping[str, Any], binary: str) -> list[str]:
    out_dir = Path(out_dir)
    write_json(out_dir / BEST_JSON, best_json(a, space, binary, run))
    write_json(out_dir / IMPORTANCE_JSON, {"note": a.importance_note,
                                           "parameters": [p.as_dict() for p in a.importance]})
    from scxd.tune import plots

    files = ["best_parameters.json", "trials.csv", "trials.jsonl", "importance.json",
             *plots.write_all(out_dir, a), "summary.md", "run.json"]
    write_atomic(out_dir / SUMMARY_MD, summary_md(a, space, bench, run, files))
    return files
