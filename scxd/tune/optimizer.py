"""``SchedulerOptimizer``: Optuna's ask/tell over a scheduler's search space.

The optimiser proposes configurations; it never runs anything.  Optuna does the search
(TPE by default — multivariate, seeded; ``random``; ``grid``), this class adds what a
scheduler needs: every proposal is resolved through the catalog (types, ranges,
constraints) into an :class:`~scxd.catalog.Action` with its argv, proposals that violate a
constraint are rejected before anything runs (counted in ``rejected``), and a value can be
a list of repeats (their mean is the objective).

Rejected proposals and configurations that failed (did not start, broke the benchmark, were
ejected) are told to Optuna as *infeasible* — a completed trial whose constraint is
violated (``Trial.set_constraint``) — not as failed trials: TPE ignores failed trials and
would keep proposing the same region, while it ranks infeasible trials below every feasible
one and learns to avoid them.  (Their objective value is a placeholder — the worst value seen —
that the constrained TPE never ranks by.)

Custom loops::

    opt = SchedulerOptimizer(SearchSpace.from_catalog(catalog.get("scx_bpfland"),
                                                      params=["slice_us", "no_wake_sync"]),
                             direction="minimize", seed=1)
    for _ in range(10):
        s = opt.ask()
        opt.tell(s, measure(s.action))        # a float, a list of repeats, or None = failed
    print(opt.best.values, opt.best.value)
"""

from __future__ import annotations

import contextlib
import statistics
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState, create_trial

from scxd.catalog import Action, CatalogError
from scxd.tune.space import DEFAULT_GRID_POINTS, SearchSpace

SAMPLERS = ("tpe", "random", "grid")
MAX_REJECTIONS = 10_000


class OptimizerError(RuntimeError):
    """The optimiser cannot propose anything (grid exhausted, constraints never hold)."""


@dataclass(frozen=True)
class Suggestion:
    """One configuration to try."""

    number: int                       # 1-based, in the order asked
    sampled: dict[str, Any]           # the searched parameters' values
    values: dict[str, Any]            # every parameter (defaults, fixed, sampled)
    action: Action                    # the catalog action: scheduler + argv
    optuna_number: int
    system_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def argv(self) -> tuple[str, ...]:
        return self.action.argv


@dataclass(frozen=True)
class Told:
    suggestion: Suggestion
    value: float | None               # None: failed
    values: tuple[float, ...] = ()
    reason: str = ""
    system_attrs: dict[str, Any] = field(default_factory=dict)   # after tell (to rebuild)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every study it creates; scxd reports progress itself."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


#: The constraint every told trial carries: > 0 when the configuration could not be measured.
MEASURED = "measured"
FEASIBLE, INFEASIBLE = -1.0, 1.0


def make_sampler(name: str, space: SearchSpace, seed: int | None,
                 grid_points: int = DEFAULT_GRID_POINTS, startup_trials: int | None = None
                 ) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True,
                n_startup_trials=startup_trials if startup_trials is not None else 10)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(grid_points), seed=seed)
    raise OptimizerError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")


def startup_trials_for(budget: int) -> int:
    """TPE's random start: Optuna's 10, fewer for small budgets (a third, at least 3)."""
    return max(3, min(10, budget // 3))


class SchedulerOptimizer:
    """Ask/tell optimisation of one scheduler's parameters with Optuna."""

    def __init__(self, space: SearchSpace, *, direction: str = "minimize",
                 sampler: str = "tpe", seed: int | None = None,
                 grid_points: int = DEFAULT_GRID_POINTS, startup_trials: int | None = None,
                 study_name: str = "scxd-tune"):
        if direction not in ("minimize", "maximize"):
            raise OptimizerError(f"direction must be minimize or maximize, got {direction!r}")
        if sampler not in SAMPLERS:
            raise OptimizerError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
        self.space = space
        self.direction = direction
        self.sampler_name = sampler
        self.grid_points = grid_points
        self.grid = sampler == "grid"
        with quiet_optuna():
            self.study = optuna.create_study(
                study_name=study_name, direction=direction,
                sampler=make_sampler(sampler, space, seed, grid_points, startup_trials))
        self.distributions = space.distributions(self.grid, grid_points)
        self.told: list[Told] = []
        #: proposals rejected by a constraint: (sampled, why, Optuna system attributes)
        self.rejected: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        self._asked = 0
        self._pending: dict[int, optuna.trial.Trial] = {}

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "maximize"

    def action_for(self, sampled: Mapping[str, Any]) -> Action:
        values = self.space.resolve(sampled)
        spec = self.space.spec
        changed = {k: v for k, v in values.items() if v != spec.param(k).default}
        return Action(spec.name, tuple(sorted(values.items())), tuple(spec.argv(values)),
                      "custom" if changed else "default")

    def exhausted(self) -> bool:
        """Only for grid search: every grid point has been proposed."""
        sampler = self.study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and \
            sampler.is_exhausted(self.study)

    def ask(self) -> Suggestion:
        """The next configuration; constraint violations are rejected (and told) here."""
        for _ in range(MAX_REJECTIONS):
            if self.exhausted():
                raise OptimizerError(f"the grid ({self.space.grid_size(self.grid_points)} "
                                     "points) is exhausted")
            trial = self.study.ask()
            sampled = self.space.suggest(trial, self.grid, self.grid_points)
            why = self.space.violation(sampled)
            if why:
                trial.set_user_attr("infeasible", why)
                trial.set_constraint(MEASURED, INFEASIBLE)
                self._tell(trial, self._placeholder())
                self.rejected.append((sampled, why, self._system_attrs(trial.number)))
                continue
            self._asked += 1
            self._pending[trial.number] = trial
            return Suggestion(self._asked, sampled, self.space.resolve(sampled),
                              self.action_for(sampled), trial.number,
                              self._system_attrs(trial.number))
        raise OptimizerError(f"no configuration satisfying the constraints "
                             f"{[c.text for c in self.space.spec.constraints]} after "
                             f"{MAX_REJECTIONS} proposals: widen the ranges")

    def _system_attrs(self, number: int) -> dict[str, Any]:
        frozen = self.study.get_trials(deepcopy=False)[number]
        assert frozen.number == number
        return _jsonable(frozen.system_attrs)

    def tell(self, suggestion: Suggestion, value: float | Sequence[float] | None,
             reason: str = "") -> None:
        """Report a measurement: one value, a list of repeats (their mean is the objective),
        or None when the configuration failed (it is not scored, the search goes on)."""
        trial = self._pending.pop(suggestion.optuna_number, None)
        if trial is None:
            raise OptimizerError(f"suggestion {suggestion.number} was not asked or was "
                                 "already told")
        values: tuple[float, ...] = ()
        if value is not None and not isinstance(value, int | float):
            values = tuple(float(v) for v in value)
            value = statistics.fmean(values) if values else None
        if value is None:
            trial.set_user_attr("failed", reason or "failed")
            trial.set_constraint(MEASURED, INFEASIBLE)
            self._tell(trial, self._placeholder())
        else:
            trial.set_constraint(MEASURED, FEASIBLE)
            self._tell(trial, float(value))
        self.told.append(Told(suggestion, None if value is None else float(value),
                              values or (() if value is None else (float(value),)), reason,
                              self._system_attrs(trial.number)))

    def _tell(self, trial: optuna.trial.Trial, value: float) -> None:
        try:
            self.study.tell(trial, value)
        except RuntimeError as exc:
            # GridSampler calls Study.stop() once the grid is covered, which Optuna only
            # allows inside optimize(); the trial is stored before that (exhausted() says it).
            if "Study.stop" not in str(exc):
                raise

    def _placeholder(self) -> float:
        """The worst value measured so far (0 before any): an infeasible trial's value."""
        vals = [t.value for t in self.study.get_trials(deepcopy=False,
                                                       states=(TrialState.COMPLETE,))
                if t.value is not None and t.constraints.get(MEASURED, FEASIBLE) <= 0]
        if not vals:
            return 0.0
        return min(vals) if self.higher_is_better else max(vals)

    # -- knowledge from elsewhere (baselines, resumed runs) -----------------------------------
    def add_measured(self, sampled: Mapping[str, Any], value: float | None,
                     system_attrs: Mapping[str, Any] | None = None,
                     why_not: str = "", infeasible: bool = False) -> None:
        """Tell the study about a configuration measured outside ask() (the defaults
        baseline, or the trials of an interrupted run being resumed).  ``value`` None: it
        could not be measured (``why_not``); ``infeasible``: rejected by a constraint."""
        dists = {k: v for k, v in self.distributions.items() if k in sampled}
        for name, dist in dists.items():
            if not dist._contains(dist.to_internal_repr(sampled[name])):
                return     # outside this space (a changed range): nothing to learn from it
        attrs = {k: v for k, v in (system_attrs or {}).items() if k in KEPT_ATTRS}
        user: dict[str, Any] = {}
        if infeasible:
            user["infeasible"] = why_not or "constraint"
        elif value is None:
            user["failed"] = why_not or "failed"
        if user:
            value = self._placeholder()
        self.study.add_trial(create_trial(
            value=float(value), params=dict(sampled), distributions=dists, system_attrs=attrs,
            user_attrs=user, constraints={MEASURED: INFEASIBLE if user else FEASIBLE}))

    def resume_count(self, asked: int) -> None:
        """Continue numbering suggestions after ``asked`` earlier ones."""
        self._asked = asked

    # -- results ------------------------------------------------------------------------------
    @property
    def best(self) -> Told | None:
        """The best configuration told so far (mean over repeats; None before any)."""
        done = [t for t in self.told if t.value is not None]
        if not done:
            return None
        key = (lambda t: t.value) if self.higher_is_better else (lambda t: -t.value)
        return max(done, key=key)


KEPT_ATTRS = ("grid_id", "search_space")


def _jsonable(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna system attributes worth keeping to rebuild a study (the grid position)."""
    out = {}
    for k in KEPT_ATTRS:
        if k in attrs:
            v = attrs[k]
            out[k] = {n: list(vals) for n, vals in v.items()} if isinstance(v, Mapping) else v
    return out


__all__ = ["SAMPLERS", "CatalogError", "OptimizerError", "SchedulerOptimizer", "Suggestion",
           "Told", "make_sampler", "startup_trials_for"]
