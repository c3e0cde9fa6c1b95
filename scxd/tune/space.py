"""The search space of a tuning run: which parameters vary, over which values.

A :class:`SearchSpace` is derived from a catalog entry's typed parameters
(:mod:`scxd.catalog`) — booleans and choices as categories, numbers over their catalogued
range — and can be narrowed or replaced per parameter from Python (``IntRange``,
``FloatRange``, ``Choice``) or from the config's ``[schedulers.NAME]`` table (which edits the
catalog entry itself: ranges, choices, new parameters).  Parameters that are not searched
keep their default or a value given in ``fixed``.  Every configuration the search proposes
goes through :meth:`SchedulerSpec.resolve`, so catalog ranges and constraints such as
``slice_us >= slice_min_us`` hold for everything that is run.

Default ranges: a numeric range with a positive floor spanning two decades or more is
searched on a log scale.  A wide range whose floor is 0 or a sentinel (``-1`` = off) cannot be
log-scaled, and a linear scale would spend nearly every trial on huge values (a 0.5 s
throttle): it becomes an ordered ladder of the floor, 0, and 1-3-10 steps up to the maximum,
plus the default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from scxd.catalog import CatalogError, ParamSpec, SchedulerSpec

#: Ranges at least this many times wider than their (positive) floor are log-scaled.
LOG_RATIO = 100.0
#: Ranges with a floor ≤ 0 at least this wide become a ladder.
LADDER_WIDTH = 1000.0
DEFAULT_GRID_POINTS = 5


class SpaceError(ValueError):
    """A search-space definition is invalid; the message names the parameter and why."""


@dataclass(frozen=True)
class IntRange:
    """Integers ``low``..``high`` (inclusive), optionally on a log scale."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise SpaceError(f"IntRange: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise SpaceError(f"IntRange: a log scale needs low > 0, got {self.low}")
        if self.step < 1 or (self.log and self.step != 1):
            raise SpaceError("IntRange: step must be ≥ 1 (and 1 on a log scale)")

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self, points: int) -> list[int]:
        if self.low == self.high:
            return [self.low]
        raw = _spaced(self.low, self.high, points, self.log)
        return sorted({min(self.high, self.low + round((v - self.low) / self.step) * self.step)
                       for v in raw})

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int {self.low}..{self.high}{scale}{step}"

    def as_dict(self) -> dict:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}


@dataclass(frozen=True)
class FloatRange:
    """Reals ``low``..``high``, optionally on a log scale."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise SpaceError(f"FloatRange: need finite low ≤ high, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise SpaceError(f"FloatRange: a log scale needs low > 0, got {self.low}")

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=self.log)

    def grid(self, points: int) -> list[float]:
        vals = (min(self.high, max(self.low, float(f"{v:.6g}")))
                for v in _spaced(self.low, self.high, points, self.log))
        return sorted(set(vals))

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and self.low <= value <= self.high)

    def describe(self) -> str:
        return f"float {self.low:g}..{self.high:g}{' log' if self.log else ''}"

    def as_dict(self) -> dict:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Choice:
    """A finite set of values (booleans, names, or an ordered ladder of numbers)."""

    values: tuple[Any, ...]

    def __init__(self, values: Iterable[Any]):
        vals = tuple(values)
        if not vals:
            raise SpaceError("Choice: needs at least one value")
        if len(set(map(repr, vals))) != len(vals):
            raise SpaceError(f"Choice: duplicate values in {list(vals)}")
        for v in vals:
            if not isinstance(v, bool | int | float | str):
                raise SpaceError(f"Choice: values must be bool, int, float or str, got {v!r}")
        object.__setattr__(self, "values", vals)

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.values)

    def grid(self, points: int) -> list[Any]:
        return list(self.values)

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        shown = ", ".join(_show(v) for v in self.values)
        return f"{{{shown}}}"

    def as_dict(self) -> dict:
        return {"type": "choice", "values": list(self.values)}


Dimension = IntRange | FloatRange | Choice


def dimension_from_dict(data: Mapping[str, Any]) -> Dimension:
    kind = data.get("type")
    if kind == "int":
        return IntRange(int(data["low"]), int(data["high"]), bool(data.get("log")),
                        int(data.get("step", 1)))
    if kind == "float":
        return FloatRange(float(data["low"]), float(data["high"]), bool(data.get("log")))
    if kind == "choice":
        return Choice(data["values"])
    raise SpaceError(f"unknown dimension type {kind!r}")


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _spaced(low: float, high: float, points: int, log: bool) -> list[float]:
    points = max(2, points)
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
    return [low + (high - low) * i / (points - 1) for i in range(points)]


def ladder(low: float, high: float, default: Any, integral: bool) -> list[Any]:
    """The floor, 0, 1-3-10 steps up to ``high``, and the default — ordered."""
    values = {low, default}
    if low <= 0 <= high:
        values.add(0)
    step = 1.0
    while step <= high:
        for m in (1, 3):
            v = step * m
            if low <= v <= high:
                values.add(v)
        step *= 10
    out = sorted(values)
    return [int(v) for v in out] if integral else [float(v) for v in out]


def default_dimension(p: ParamSpec) -> Dimension:
    """The dimension a catalog parameter is searched over unless told otherwise."""
    if p.kind == "bool":
        return Choice((False, True))
    if p.kind == "choice":
        return Choice(p.choices)
    if p.min is None or p.max is None:
        raise SpaceError(f"parameter {p.name} has no catalogued range: give one "
                         "(IntRange/FloatRange, --range NAME=LOW:HIGH)")
    low, high = p.min, p.max
    integral = p.kind == "int"
    if low > 0:
        log = high / low >= LOG_RATIO
        return IntRange(int(low), int(high), log) if integral else FloatRange(low, high, log)
    if high - low >= LADDER_WIDTH:
        return Choice(ladder(low, high, p.default, integral))
    return IntRange(int(low), int(high)) if integral else FloatRange(low, high)


def coerce_dimension(p: ParamSpec, dim: Dimension | Sequence[Any] | tuple) -> Dimension:
    """A user's dimension for ``p``: a Dimension, or a list of values (a Choice).  Every
    value it can produce must be valid for the catalog parameter."""
    if isinstance(dim, list | tuple) and not isinstance(dim, Choice):
        dim = Choice(dim)
    if not isinstance(dim, IntRange | FloatRange | Choice):
        raise SpaceError(f"parameter {p.name}: expected IntRange, FloatRange, Choice or a "
                         f"list of values, got {dim!r}")
    if isinstance(dim, IntRange | FloatRange) and p.kind not in ("int", "float"):
        raise SpaceError(f"parameter {p.name} is a {p.kind}: give a Choice of its values")
    if isinstance(dim, FloatRange) and p.kind == "int":
        raise SpaceError(f"parameter {p.name} is an integer: use IntRange")
    probes = dim.values if isinstance(dim, Choice) else (dim.low, dim.high)
    for v in probes:
        if isinstance(dim, IntRange | FloatRange) and p.kind == "float":
            v = float(v)
        try:
            p.check(v, where="search value")
        except CatalogError as exc:
            raise SpaceError(str(exc)) from None
    return dim


@dataclass(frozen=True)
class SearchSpace:
    """What a tuning run varies (``dims``) and holds (``fixed``) for one scheduler."""

    spec: SchedulerSpec
    dims: Mapping[str, Dimension]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (*self.dims, *self.fixed):
            self.spec.param(name)         # raises CatalogError naming the known ones
        both = set(self.dims) & set(self.fixed)
        if both:
            raise SpaceError(f"parameters both searched and fixed: {sorted(both)}")
        try:
            self.spec.resolve(self.fixed)
        except CatalogError as exc:
            raise SpaceError(f"fixed values: {exc}") from None

    @classmethod
    def from_catalog(cls, spec: SchedulerSpec, params: Iterable[str] | None = None,
                     overrides: Mapping[str, Dimension | Sequence[Any]] | None = None,
                     fixed: Mapping[str, Any] | None = None) -> SearchSpace:
        """``params`` None: every parameter the catalog lets the policy explore (and that is
        not fixed); otherwise exactly those.  ``overrides`` replace the default dimension of
        a parameter (and add it to the search when ``params`` is None)."""
        overrides = dict(overrides or {})
        fixed = dict(fixed or {})
        if params is None:
            names = [p.name for p in spec.params if p.explore and p.name not in fixed]
            names += [n for n in overrides if n not in names]
        else:
            names = list(dict.fromkeys(params))
        unknown = [n for n in [*names, *overrides] if n not in {p.name for p in spec.params}]
        if unknown:
            known = ", ".join(p.name for p in spec.params) or "none"
            raise SpaceError(f"{spec.name} has no parameter {', '.join(sorted(set(unknown)))} "
                             f"(has: {known})")
        stray = [n for n in overrides if n not in names]
        if stray:
            raise SpaceError(f"ranges given for parameters that are not searched: {stray}")
        dims: dict[str, Dimension] = {}
        for name in names:
            p = spec.param(name)
            dims[name] = coerce_dimension(p, overrides[name]) if name in overrides \
                else default_dimension(p)
        if not dims:
            raise SpaceError(f"{spec.name}: nothing to search (no explorable parameters; "
                             "name some with --params)")
        return cls(spec, dims, fixed)

    # -- values ----------------------------------------------------------------------------
    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value for a sample (raises CatalogError on a violated
        constraint)."""
        return self.spec.resolve({**self.fixed, **sampled})

    def violation(self, sampled: Mapping[str, Any]) -> str:
        """Empty when the sample is runnable, else why not."""
        try:
            self.resolve(sampled)
        except CatalogError as exc:
            return str(exc)
        return ""

    def defaults_sample(self) -> dict[str, Any] | None:
        """The searched parameters' default values, when the defaults are a point of this
        space (every default inside its dimension, every fixed value at its default) — then
        the defaults baseline is also a measurement of the search."""
        base = self.spec.resolve({})
        if any(base[n] != v for n, v in self.fixed.items()):
            return None
        sample = {n: base[n] for n in self.dims}
        ok = all(d.contains(sample[n]) for n, d in self.dims.items())
        return sample if ok else None

    def distributions(self, grid: bool = False, grid_points: int = DEFAULT_GRID_POINTS
                      ) -> dict[str, BaseDistribution]:
        if grid:
            return {n: CategoricalDistribution(tuple(d.grid(grid_points)))
                    for n, d in self.dims.items()}
        return {n: d.distribution() for n, d in self.dims.items()}

    def grid(self, points: int = DEFAULT_GRID_POINTS) -> dict[str, list[Any]]:
        return {n: d.grid(points) for n, d in self.dims.items()}

    def grid_size(self, points: int = DEFAULT_GRID_POINTS) -> int:
        return math.prod(len(v) for v in self.grid(points).values())

    def suggest(self, trial: optuna.trial.BaseTrial, grid: bool = False,
                grid_points: int = DEFAULT_GRID_POINTS) -> dict[str, Any]:
        """Ask Optuna's trial for one value per dimension."""
        out: dict[str, Any] = {}
        for name, dist in self.distributions(grid, grid_points).items():
            if isinstance(dist, IntDistribution):
                out[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step,
                                              log=dist.log)
            elif isinstance(dist, FloatDistribution):
                out[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
            else:
                assert isinstance(dist, CategoricalDistribution)
                out[name] = trial.suggest_categorical(name, dist.choices)
        return out

    # -- description -------------------------------------------------------------------------
    def describe(self) -> list[str]:
        lines = []
        for name, dim in self.dims.items():
            p = self.spec.param(name)
            unit = f" {p.unit}" if p.unit else ""
            lines.append(f"{name:26s} {dim.describe()}{unit}  (default {_show(p.default)})")
        for name, value in self.fixed.items():
            lines.append(f"{name:26s} fixed at {_show(value)}")
        return lines

    def as_dict(self) -> dict:
        return {"scheduler": self.spec.name,
                "dims": {n: d.as_dict() for n, d in self.dims.items()},
                "fixed": dict(self.fixed),
                "constraints": [c.text for c in self.spec.constraints]}


def parse_range(p: ParamSpec, text: str) -> Dimension:
    """``LOW:HIGH[:log]`` for numbers, or ``a,b,c`` values (``on``/``off`` for booleans)."""
    from scxd.catalog import parse_value

    if ":" in text and p.kind in ("int", "float"):
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise SpaceError(f"{p.name}: expected LOW:HIGH or LOW:HIGH:log, got {text!r}")
        try:
            low, high = (parse_value(p, x) for x in parts[:2])
        except CatalogError as exc:
            raise SpaceError(str(exc)) from None
        log = len(parts) == 3
        dim: Dimension = IntRange(int(low), int(high), log) if p.kind == "int" \
            else FloatRange(float(low), float(high), log)
        return coerce_dimension(p, dim)
    words = [w.strip() for w in text.split(",") if w.strip()]
    if p.kind == "bool":
        words = [{"on": "true", "off": "false"}.get(w.lower(), w) for w in words]
    try:
        values = [parse_value(p, w) for w in words]
    except CatalogError as exc:
        raise SpaceError(str(exc)) from None
    return coerce_dimension(p, Choice(values))
