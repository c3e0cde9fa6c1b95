"""The run's PNG plots (matplotlib, Agg backend — no display needed).

* ``convergence.png`` — each search trial's mean, the best so far, and the baselines' means
  with their 95% intervals as bands;
* ``importance.png`` — fANOVA share per parameter, coloured by the effect test's verdict;
* ``metric_per_trial.png`` — every measurement in the order it was taken, with its 95%
  interval: search trials, the interleaved baseline rounds (drift shows as a slope in their
  dashed lines) and the confirmation run.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from scxd.tune.report import Analysis
from scxd.tune.stats import summarize

BASELINE_STYLE = {"fair": ("tab:orange", "s"), "defaults": ("tab:green", "D")}
VERDICT_COLOUR = {"matters": "tab:blue", "no detectable effect": "0.75",
                  "not enough data": "navajowhite", "not varied": "white"}
DPI = 110


def _ylabel(a: Analysis) -> str:
    arrow = "higher is better" if a.higher_is_better else "lower is better"
    unit = f" [{a.unit}]" if a.unit else ""
    return f"{a.metric}{unit}  ({arrow})"


def _err(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    hw = summarize(values).half_width
    return hw if math.isfinite(hw) else 0.0


def _finish(fig, ax, a: Analysis, path: Path, failed_at: list[int], xlabel: str,
            title: str) -> None:
    """Failed measurements as red crosses on the bottom edge, labels, legend, save."""
    if failed_at:
        lo, _ = ax.get_ylim()
        ax.scatter(failed_at, [lo] * len(failed_at), marker="x", color="red", zorder=5,
                   label="failed (not measured)", clip_on=False)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_ylabel(a))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def convergence(a: Analysis, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    done = [r for r in a.search if r.complete]
    failed = [r for r in a.search if not r.complete]
    if done:
        ax.scatter([r.number for r in done], [r.mean for r in done], color="0.55", s=22,
                   zorder=3, label="trial mean")
        best, xs, ys = None, [], []
        for r in sorted(done, key=lambda r: r.number):
            if best is None or a.better(r.mean, best):
                best = r.mean
            xs.append(r.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:blue", lw=2, zorder=4, label="best so far")
    for name, view in a.baselines.items():
        if view.summary is None:
            continue
        colour, _ = BASELINE_STYLE.get(name, ("tab:purple", "o"))
        s = view.summary
        ax.axhline(s.mean, color=colour, lw=1.2, ls="--", label=f"{view.label} (all rounds)")
        if math.isfinite(s.half_width):
            ax.axhspan(s.ci_low, s.ci_high, color=colour, alpha=0.12)
    _finish(fig, ax, a, path, [r.number for r in failed], "search trial",
            f"{a.scheduler}: convergence of {a.metric}")


def importance(a: Analysis, path: Path) -> None:
    rows = list(reversed(a.importance))
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.38 * len(rows) + 1.4)))
    shares = all(p.importance is not None for p in rows) and rows
    vals = [(p.importance if shares else (p.effect_percent or 0.0)) or 0.0 for p in rows]
    colours = [VERDICT_COLOUR.get(p.verdict, "0.5") for p in rows]
    ax.barh([p.name for p in rows], vals, color=colours, edgecolor="0.3")
    for i, p in enumerate(rows):
        q = f"q={p.q_value:.2g}" if p.q_value is not None else "untested"
        ax.text(vals[i], i, f"  {p.verdict}, {q}", va="center", fontsize=8)
    ax.set_xlabel("fANOVA share of variance" if shares else
                  "effect: spread between values, % of baseline")
    if vals:
        top = max(vals) or 1.0
        ax.set_xlim(0, max(1.0, top * 1.5) if shares else top * 1.8)
    note = "" if shares else f" ({a.importance_note})" if a.importance_note else ""
    ax.set_title(f"{a.scheduler}: which parameters matter for {a.metric}{note}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def metric_per_trial(a: Analysis, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10.5, 4.8))
    recs = [r for r in a.records if r.kind != "infeasible"]
    search = [r for r in recs if r.kind == "search" and r.complete]
    if search:
        ax.errorbar([r.seq for r in search], [r.mean for r in search],
                    yerr=[_err(r.values) for r in search], fmt="o", color="tab:blue", ms=5,
                    capsize=2, label="search trial")
    for name in a.baselines:
        rs = [r for r in recs if r.kind == "baseline" and r.baseline == name and r.complete]
        if not rs:
            continue
        colour, marker = BASELINE_STYLE.get(name, ("tab:purple", "o"))
        ax.errorbar([r.seq for r in rs], [r.mean for r in rs], yerr=[_err(r.values) for r in rs],
                    fmt=marker, color=colour, ms=6, capsize=3, ls="--", lw=1,
                    label=f"{a.baselines[name].label} (rounds)")
    conf = [r for r in recs if r.kind == "confirm" and r.complete]
    if conf:
        ax.errorbar([r.seq for r in conf], [r.mean for r in conf],
                    yerr=[_err(r.values) for r in conf], fmt="*", color="tab:red", ms=12,
                    capsize=3, label="best, confirmation")
    _finish(fig, ax, a, path, [r.seq for r in recs if not r.complete],
            "measurement, in run order",
            f"{a.scheduler}: every measurement (mean ± 95% CI of its repeats)")


def write_all(out_dir: Path, a: Analysis) -> list[str]:
    names = []
    for name, draw in (("convergence.png", convergence), ("importance.png", importance),
                       ("metric_per_trial.png", metric_per_trial)):
        draw(a, Path(out_dir) / name)
        names.append(name)
    return names
