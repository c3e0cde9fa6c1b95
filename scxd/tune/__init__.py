"""Benchmark-driven tuning of one scheduler's parameters (``scxd tune`` and its Python API).

Run a real benchmark under many parameter settings of one scheduler, against the fair
scheduler and the scheduler's own defaults, and keep the best — with every setting applied
and verified in the kernel by scxd's actuator, Optuna choosing what to try, and figures
that carry their confidence intervals::

    from scxd.tune import IntRange, optimize_scheduler

    result = optimize_scheduler(
        "scx_bpfland", "perf bench sched messaging -g 2 -l 50",   # parser and metric guessed
        budget=16, repeats=3, seed=1,
        params=["slice_us", "slice_us_lag", "no_wake_sync", "primary_domain"],
        space={"slice_us": IntRange(500, 20_000, log=True)},      # narrow one range
        out="tune-bpfland")
    print(result.best_parameters, result.improvement["fair"].percent)

Custom loops use :class:`SchedulerOptimizer` (``ask()``/``tell()``) over a
:class:`SearchSpace`; custom schedulers and parameter spaces come from a
:class:`~scxd.catalog.SchedulerSpec` given here or from the config's ``[schedulers.NAME]``
tables.  Modules: ``space`` (search spaces), ``optimizer`` (Optuna ask/tell),
``benchmark`` (commands and metric parsers), ``trial`` (apply → warm up → measure),
``session`` (the run: baselines, search, early stop, confirmation, resume), ``stats``,
``importance``, ``report`` and ``plots`` (outputs), ``api`` (these functions), ``cli``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → submodule.  Imported on first use, so ``scxd``'s command line does not load
#: Optuna, scipy and matplotlib unless it tunes.
_EXPORTS = {
    "Reproduction": "api", "build_space": "api", "optimize_scheduler": "api",
    "reproduce": "api", "resume": "api",
    "PARSERS": "benchmark", "Benchmark": "benchmark", "BenchmarkError": "benchmark",
    "SchedulerOptimizer": "optimizer", "Suggestion": "optimizer",
    "NoSchedExt": "session", "Progress": "session", "Result": "session",
    "RunOptions": "session", "TuneError": "session", "TuneUsageError": "session",
    "Choice": "space", "FloatRange": "space", "IntRange": "space", "SearchSpace": "space",
    "SpaceError": "space",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"scxd.tune.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'scxd.tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
