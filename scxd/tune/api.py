"""The Python entry points: :func:`optimize_scheduler`, :func:`resume`, :func:`reproduce`.

They compose what ``scxd tune`` composes — settings, the catalog (with the config's
``[schedulers.NAME]`` tables, or a :class:`~scxd.catalog.SchedulerSpec` given here), the
help probe, an active actuator, the benchmark, the search space — and run a
:class:`~scxd.tune.session.Tuner`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scxd.catalog import CatalogError, SchedulerSpec
from scxd.config import ConfigError, Settings, load_config
from scxd.tune.benchmark import Benchmark, BenchmarkError
from scxd.tune.records import RUN_JSON, read_run, write_json
from scxd.tune.report import BEST_JSON
from scxd.tune.session import (
    Progress,
    Result,
    RunOptions,
    TuneError,
    Tuner,
    TuneUsageError,
    catalog_with,
    open_actuator,
)
from scxd.tune.space import Dimension, SearchSpace, SpaceError, dimension_from_dict
from scxd.tune.stats import Summary, summarize
from scxd.tune.trial import TrialRunner

REPRODUCE_JSON = "reproduce.json"


def _settings(settings: Settings | None, config: str | None) -> Settings:
    if settings is not None:
        return settings
    try:
        return load_config(config)
    except ConfigError as exc:
        raise TuneError(f"configuration: {exc}") from None


def _benchmark(benchmark: Benchmark | str | Sequence[str], parser: str | None,
               metric: str | None, direction: str | None, timeout: float) -> Benchmark:
    if isinstance(benchmark, Benchmark):
        return benchmark
    if direction not in (None, "maximize", "minimize"):
        raise TuneUsageError(f"direction must be maximize or minimize, got {direction!r}")
    hib = None if direction is None else direction == "maximize"
    command = benchmark if isinstance(benchmark, str) else tuple(benchmark)
    try:
        return Benchmark(command, parser, metric, hib, timeout)
    except BenchmarkError as exc:
        raise TuneUsageError(str(exc)) from None


def _progress(progress: bool | Progress) -> Progress:
    return progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))


def default_out(scheduler: str) -> Path:
    return Path(f"scxd-tune-{scheduler}-{time.strftime('%Y%m%d-%H%M%S')}")


def build_space(spec: SchedulerSpec, params: Sequence[str] | None,
                space: SearchSpace | Mapping[str, Dimension | Sequence[Any]] | None,
                fixed: Mapping[str, Any] | None, dropped: Mapping[str, str] | None = None
                ) -> SearchSpace:
    """The search space against the probed catalog entry ``spec`` (clear errors for
    parameters the installed binary lacks)."""
    dropped = dict(dropped or {})
    wanted = set(params or ()) | set(fixed or {}) | (
        set(space.dims) if isinstance(space, SearchSpace) else set(space or {}))
    lacking = sorted(n for n in wanted if n in dropped)
    if lacking:
        raise TuneUsageError("the installed " + spec.name + " lacks "
                        + "; ".join(f"{n} ({dropped[n]})" for n in lacking))
    try:
        if isinstance(space, SearchSpace):
            return SearchSpace(spec, dict(space.dims), dict(space.fixed))
        return SearchSpace.from_catalog(spec, params, space, fixed)
    except (SpaceError, CatalogError) as exc:
        raise TuneUsageError(f"search space: {exc}") from None


def optimize_scheduler(
        scheduler: str | SchedulerSpec,
        benchmark: Benchmark | str | Sequence[str],
        metric: str | None = None,
        budget: int = 20,
        *,
        parser: str | None = None,
        direction: str | None = None,
        params: Sequence[str] | None = None,
        space: SearchSpace | Mapping[str, Dimension | Sequence[Any]] | None = None,
        fixed: Mapping[str, Any] | None = None,
        repeats: int = 3,
        warmup: int = 1,
        seed: int = 0,
        sampler: str = "tpe",
        grid_points: int = 5,
        baseline_every: int | None = None,
        confirm_repeats: int | None = None,
        early_stop: bool = True,
        min_trials: int | None = None,
        stop_probability: float = 0.05,
        timeout: float = 600.0,
        out: str | Path | None = None,
        resume: bool = False,
        settings: Settings | None = None,
        config: str | None = None,
        progress: bool | Progress = True,
        command_hint: list[str] | None = None,
) -> Result:
    """Tune ``scheduler`` for ``benchmark``'s ``metric`` on this machine; see
    :mod:`scxd.tune` for the whole story and an example.

    ``scheduler``: a catalog name, or a :class:`SchedulerSpec` of your own.  ``params``:
    which parameters to search (None: every one the catalog lets the policy explore);
    ``space``: per-parameter ranges (``IntRange``, ``FloatRange``, ``Choice``, a list of
    values) or a whole :class:`SearchSpace`; ``fixed``: values held for the run.
    ``settings``/``config``: scxd's settings (host root, binary search path,
    ``[schedulers.*]``); default: ``/etc/scxd/config.toml`` and ``SCXD_*``.
    Raises :class:`TuneError` when it cannot run (no sched_ext, bad space, broken benchmark);
    Ctrl-C returns a Result with ``status == "interrupted"`` (``resume=True`` continues).
    """
    options = RunOptions(budget, repeats, warmup, seed, sampler, grid_points, baseline_every,
                         confirm_repeats, early_stop, min_trials, stop_probability)
    settings = _settings(settings, config)
    bench = _benchmark(benchmark, parser, metric, direction, timeout)
    catalog, name = catalog_with(settings, scheduler)
    out_dir = Path(out) if out is not None else default_out(name)
    actuator, probed = open_actuator(settings, catalog, out_dir / "state", command_hint)
    avail = probed.availability.get(name)
    if avail is not None and not avail.available and name != "fair":
        raise TuneError(f"{name} cannot run here: {avail.reason}")
    spec = probed.catalog.get(name)
    tuned = build_space(spec, params, space, fixed, avail.dropped if avail else None)
    return Tuner(tuned, bench, out_dir, actuator, options, _progress(progress), resume).run()


def saved_run(out: str | Path) -> dict[str, Any]:
    run = read_run(Path(out))
    if run is None or "identity" not in run:
        raise TuneError(f"nothing to resume in {out} (no {RUN_JSON})")
    return run


def saved_benchmark(identity: Mapping[str, Any]) -> Benchmark:
    """The benchmark a run recorded in its ``run.json``."""
    b = identity["benchmark"]
    command = b["command"] if isinstance(b["command"], str) else tuple(b["command"])
    return Benchmark(command, b["parser"], b["metric"], b["higher_is_better"], b["timeout"],
                     b.get("cwd"), b.get("env") or {})


def resume(out: str | Path, budget: int | None = None, *, settings: Settings | None = None,
           config: str | None = None, progress: bool | Progress = True,
           command_hint: list[str] | None = None) -> Result:
    """Continue the run in ``out`` with the settings it was started with (``budget`` may be
    raised)."""
    run = saved_run(out)
    ident = run["identity"]
    o = ident["options"]
    dims = {n: dimension_from_dict(d) for n, d in ident["space"]["dims"].items()}
    bench = saved_benchmark(ident)
    return optimize_scheduler(
        ident["scheduler"], bench, budget=budget if budget is not None else run["budget"],
        params=list(dims), space=dims, fixed=ident["space"]["fixed"], repeats=o["repeats"],
        warmup=o["warmup"], seed=o["seed"], sampler=o["sampler"],
        grid_points=o["grid_points"], baseline_every=o["baseline_every"],
        confirm_repeats=o["confirm_repeats"], early_stop=o["early_stop"],
        min_trials=o["min_trials"], stop_probability=o["stop_probability"], out=out,
        resume=True, settings=settings, config=config, progress=progress,
        command_hint=command_hint)


@dataclass(frozen=True)
class Reproduction:
    """A fresh measurement of a run's best configuration."""

    summary: Summary | None
    interval: tuple[float, float] | None    # what best_parameters.json predicted
    ci: tuple[float, float] | None          # the reported 95% CI of the best's mean
    within_interval: bool
    within_ci: bool
    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.as_dict() if self.summary else None,
                "predicted_interval": self.interval, "reported_ci": self.ci,
                "within_predicted_interval": self.within_interval,
                "within_reported_ci": self.within_ci, "state": self.state,
                "detail": self.detail}


def reproduce(out: str | Path, repeats: int | None = None, *,
              settings: Settings | None = None, config: str | None = None,
              progress: bool | Progress = True,
              command_hint: list[str] | None = None) -> Reproduction:
    """Apply ``best_parameters.json`` of the run in ``out`` again, run the benchmark, and
    say whether the fresh mean lands inside the reported intervals."""
    out_dir = Path(out)
    run = saved_run(out_dir)
    try:
        best = json.loads((out_dir / BEST_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise TuneError(f"{out_dir / BEST_JSON}: {exc}") from None
    if "parameters" not in best:
        raise TuneError(f"{out_dir / BEST_JSON} has no best configuration")
    ident = run["identity"]
    bench = saved_benchmark(ident)
    settings = _settings(settings, config)
    catalog, name = catalog_with(settings, ident["scheduler"])
    prog = _progress(progress)
    actuator, probed = open_actuator(settings, catalog, out_dir / "state", command_hint)
    opts = ident["options"]
    n = repeats or best.get("reproduce", {}).get("repeats") or opts["repeats"]
    try:
        action = probed.catalog.action(name, best["parameters"])
    except CatalogError as exc:
        raise TuneError(f"best_parameters.json no longer fits {name}: {exc}") from None
    from scxd.tune.records import TrialRecord

    rec = TrialRecord(0, "confirm", "reproduce", "running", name, dict(action.params), {},
                      list(action.argv))
    try:
        TrialRunner(actuator, bench, n, opts["warmup"], prog.status).measure(action, rec, n)
    finally:
        restored = actuator.shutdown()
        prog.line(f"restored the fair scheduler: {restored.outcome}")
    interval = best.get("reproduce") or {}
    iv = (interval["low"], interval["high"]) if interval else None
    m = best.get("metric") or {}
    ci = (m["ci_low"], m["ci_high"]) if m.get("ci_low") is not None else None
    if not rec.complete:
        res = Reproduction(None, iv, ci, False, False, rec.state,
                           f"{rec.reason}: {rec.detail}")
    else:
        s = summarize(rec.values)
        res = Reproduction(s, iv, ci, bool(iv and iv[0] <= s.mean <= iv[1]),
                           bool(ci and ci[0] <= s.mean <= ci[1]), "complete")
    write_json(out_dir / REPRODUCE_JSON, {**res.as_dict(), "argv": list(action.argv),
                                          "values": rec.values, "at": time.time()})
    unit = bench.unit
    if res.summary is not None:
        prog.line(f"reproduce: {bench.metric} {res.summary.mean:.4g} {unit} (n={res.summary.n}, "
                  f"sd {statistics.stdev(rec.values) if len(rec.values) > 1 else 0:.2g}); "
                  f"predicted [{iv[0]:.4g}, {iv[1]:.4g}] → "
                  f"{'inside' if res.within_interval else 'OUTSIDE'}; reported CI "
                  f"[{ci[0]:.4g}, {ci[1]:.4g}] → {'inside' if res.within_ci else 'outside'}"
                  if iv and ci else f"reproduce: {res.summary.mean:.4g} {unit}")
    else:
        prog.line(f"reproduce: {res.state}: {res.detail}")
    return res
