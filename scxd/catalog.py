"""THE declarative list of schedulers scxd can run, and their typed parameter spaces.

One :class:`SchedulerSpec` per scheduler: its binary, the ops-name prefix the kernel shows in
``/sys/kernel/sched_ext/root/ops``, every parameter (type, default, range or choices, how it
renders to argv, which version family has it, whether the policy may explore it), the
constraints between parameters, and presets (its defaults, and scx_loader's modes where they
exist).  Everything else — CLI choices, the README table, the policy's arms, the tests —
derives from :data:`BUILTIN`.  Users add or override entries in the config's
``[schedulers.NAME]`` tables with the same fields (:func:`build_catalog`).

Facts come from the schedulers' own ``--help`` output and sources (scx v1.0.14–1.1.x, the
6.12 kernel tree's ``tools/sched_ext``, the scx_flashyspark fork).  Only non-default values
render to argv (scx_loader's style): the binary's own default stands otherwise, and the help
probe (``scxd.probe``) drops flags an installed binary lacks.
"""

from __future__ import annotations

import math
import operator
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

FAIR = "fair"
KINDS = ("bool", "int", "float", "choice")
RENDERS = ("switch", "option", "choice_flag", "debugfs")
INT64_MAX = 2**63 - 1


class CatalogError(ValueError):
    """A catalog entry or a parameter value is invalid; the message names which and why."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of one scheduler.

    ``render``: ``switch`` — a boolean flag present when true; ``option`` — ``flag VALUE``;
    ``choice_flag`` — each choice is its own flag (``flags`` maps choice → flag, the default
    renders nothing); ``debugfs`` — a file under /sys/kernel/debug/sched (the fair
    scheduler's tunables), ``flag`` is the file name.
    """

    name: str
    kind: str
    default: Any
    flag: str
    render: str = "option"
    doc: str = ""
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""              # a choice param may also take values matching this regex
    flags: Mapping[str, str] = field(default_factory=dict)  # choice_flag: choice → flag
    families: str = "all"          # version families that have the flag (informational)
    explore: bool = True           # may the policy vary it? (False: fault injection, I/O)
    grid: tuple[Any, ...] = ()     # values the policy may try (numbers; see explore_values)
    short: str = ""                # the binary's short flag (accepted in argv, never rendered)
    requires: str = ""             # kernel capability, e.g. "kfunc:scx_bpf_cpu_curr" (probe)
    no_effect: str = ""            # why setting it changes nothing (then never explored)

    def __post_init__(self) -> None:
        if self.no_effect:
            object.__setattr__(self, "explore", False)
        if self.kind not in KINDS:
            raise CatalogError(f"parameter {self.name}: kind must be one of {KINDS}")
        if self.render not in RENDERS:
            raise CatalogError(f"parameter {self.name}: render must be one of {RENDERS}")
        if self.render == "switch" and (self.kind != "bool" or self.default is not False):
            raise CatalogError(f"parameter {self.name}: a switch is a bool defaulting to false")
        if self.render == "choice_flag" and set(self.flags) != set(self.choices):
            raise CatalogError(f"parameter {self.name}: choice_flag needs a flag per choice")
        if self.kind == "choice" and not self.choices:
            raise CatalogError(f"parameter {self.name}: a choice needs choices")
        object.__setattr__(self, "flags", MappingProxyType(dict(self.flags)))
        self.check(self.default, where="default")
        object.__setattr__(self, "grid", tuple(self.check(v, where="grid value")
                                               for v in self.grid))

    def explore_values(self) -> tuple[Any, ...]:
        """The finite exploration grid: the default first, then the other values the policy
        may try.  Booleans try both, choices every named choice, numbers their declared
        ``grid`` (a number without one is held at its default); a parameter with
        ``explore=False`` only ever has its default."""
        if not self.explore:
            return (self.default,)
        if self.kind == "bool":
            values: tuple[Any, ...] = (False, True)
        elif self.kind == "choice":
            values = self.choices
        else:
            values = self.grid
        return (self.default, *(v for v in dict.fromkeys(values) if v != self.default))

    def check(self, value: Any, where: str = "value") -> Any:
        """Validate (and normalise) one value; raises CatalogError naming the problem."""
        name = f"{self.name} {where}"
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise CatalogError(f"{name}: expected true/false, got {value!r}")
            return value
        if self.kind == "choice":
            if not isinstance(value, str):
                raise CatalogError(f"{name}: expected one of {list(self.choices)}, got {value!r}")
            if value in self.choices or (self.pattern and re.fullmatch(self.pattern, value)):
                return value
            extra = f" or a value matching {self.pattern}" if self.pattern else ""
            raise CatalogError(f"{name}: expected one of {list(self.choices)}{extra}, "
                               f"got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CatalogError(f"{name}: expected a number, got {value!r}")
        if self.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise CatalogError(f"{name}: expected an integer, got {value!r}")
                value = int(value)
        elif not math.isfinite(value):
            raise CatalogError(f"{name}: expected a finite number, got {value!r}")
        if self.min is not None and value < self.min:
            raise CatalogError(f"{name}: {value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise CatalogError(f"{name}: {value} is above the maximum {self.max}")
        return float(value) if self.kind == "float" else value

    def argv(self, value: Any) -> list[str]:
        """Command-line words for ``value`` (empty when it is the default)."""
        if self.render == "debugfs" or value == self.default:
            return []
        if self.render == "switch":
            return [self.flag] if value else []
        if self.render == "choice_flag":
            return [self.flags[value]]
        return [self.flag, format_value(value)]

    def flag_words(self) -> list[str]:
        """Every flag this parameter can render (what the help probe looks for)."""
        if self.render == "debugfs":
            return []
        if self.render == "choice_flag":
            return sorted(set(self.flags.values()))
        return [self.flag]


def format_value(value: Any) -> str:
    """argv text of a value: integral floats without ".0" (strtod and clap read both)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([a-z_][a-z0-9_]*|-?[0-9.]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``left OP right`` where right is another parameter or a number, e.g.
    ``slice_us >= slice_us_min``."""

    text: str

    def parts(self) -> tuple[str, str, str]:
        m = _CONSTRAINT.match(self.text)
        if not m:
            raise CatalogError(f"constraint {self.text!r}: expected 'param OP param|number' "
                               f"with OP in {sorted(_OPS)}")
        return m.group(1), m.group(2), m.group(3)

    def holds(self, values: Mapping[str, Any]) -> bool:
        left, op, right = self.parts()
        rv = values[right] if right in values else float(right)
        return _OPS[op](values[left], rv)


@dataclass(frozen=True)
class SchedulerSpec:
    """One scheduler scxd can run."""

    name: str
    ops_prefix: str                # match /sys/kernel/sched_ext/root/ops by prefix
    description: str
    binary: str = ""               # executable name or absolute path; "" for the fair one
    origin: str = "scx"            # kernel (tools/sched_ext), scx, fork, user
    params: tuple[ParamSpec, ...] = ()
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    aliases: Mapping[str, tuple[str, Mapping[Any, Any]]] = field(default_factory=dict)
    help_args: tuple[str, ...] = ("--help",)
    explore: bool = True           # may the policy choose it at all?
    version: str = ""              # the upstream release (family) this entry describes
    #: parameters this machine cannot use (set by the probe): name → (spec, reason).  Asking
    #: for one is refused before anything is spawned, with the reason.
    unavailable: Mapping[str, tuple[ParamSpec, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise CatalogError(f"scheduler {self.name}: duplicate parameters {sorted(dup)}")
        if self.name != FAIR and not self.binary:
            raise CatalogError(f"scheduler {self.name}: needs a binary")
        if not self.ops_prefix and self.name != FAIR:
            raise CatalogError(f"scheduler {self.name}: needs an ops-name prefix")
        presets = {"default": {}, **{k: dict(v) for k, v in self.presets.items()}}
        object.__setattr__(self, "presets", MappingProxyType(presets))
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))
        object.__setattr__(self, "unavailable", MappingProxyType(dict(self.unavailable)))
        for c in self.constraints:
            left, _, right = c.parts()
            for ref in (left, right):
                if re.match(r"[a-z_]", ref) and ref not in names:
                    raise CatalogError(f"scheduler {self.name}: constraint {c.text!r} names "
                                       f"unknown parameter {ref!r}")
        for preset, values in presets.items():
            try:
                self.resolve(values)
            except CatalogError as exc:
                raise CatalogError(f"scheduler {self.name}: preset {preset!r}: {exc}") from None

    @property
    def is_fair(self) -> bool:
        return self.name == FAIR

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        if name in self.unavailable:
            raise CatalogError(f"{self.name}: {name} refused: {self.unavailable[name][1]}")
        raise CatalogError(f"scheduler {self.name} has no parameter {name!r} "
                           f"(has: {', '.join(p.name for p in self.params) or 'none'})")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, values: Mapping[str, Any] | None = None,
                preset: str | None = None) -> dict[str, Any]:
        """Defaults < preset < values, aliases expanded, each value and constraint checked."""
        out = self.defaults()
        if preset is not None:
            if preset not in self.presets:
                raise CatalogError(f"scheduler {self.name} has no preset {preset!r} "
                                   f"(has: {', '.join(self.presets)})")
            out.update(self.presets[preset])
        for name, value in (values or {}).items():
            if name in self.aliases:
                target, mapping = self.aliases[name]
                if value not in mapping:
                    raise CatalogError(f"{name}: alias of {target} takes {list(mapping)}, "
                                       f"got {value!r}")
                name, value = target, mapping[value]
            out[name] = self.param(name).check(value)
        for name, value in out.items():
            out[name] = self.param(name).check(value)
        for c in self.constraints:
            if not c.holds(out):
                left, _, right = c.parts()
                raise CatalogError(f"constraint {c.text} violated: {left}={out[left]} "
                                   f"{right}={out.get(right, right)}")
        return out

    def argv(self, values: Mapping[str, Any]) -> list[str]:
        words: list[str] = []
        for p in self.params:
            words += p.argv(values[p.name])
        return words

    def debugfs_writes(self, values: Mapping[str, Any]) -> dict[str, str]:
        return {p.flag: format_value(values[p.name]) for p in self.params
                if p.render == "debugfs" and values[p.name] != p.default}


@dataclass(frozen=True)
class Action:
    """A fully resolved choice: scheduler + every parameter value + the argv it runs."""

    scheduler: str
    params: tuple[tuple[str, Any], ...]
    argv: tuple[str, ...]
    preset: str = ""

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def is_fair(self) -> bool:
        return self.scheduler == FAIR

    def label(self) -> str:
        """Short human name: ``scx_simple -f``, ``fair``."""
        return " ".join((self.scheduler, *self.argv))

    def same_as(self, other: Action | None) -> bool:
        """Would running ``other`` be a no-op? (same scheduler, same argv and tunables)"""
        return other is not None and (self.scheduler, self.argv, self.params) == (
            other.scheduler, other.argv, other.params)

    def as_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "preset": self.preset, "args": list(self.argv),
                "params": self.values}


class Catalog:
    """The effective set of schedulers (built-ins plus config overrides)."""

    def __init__(self, specs: Iterable[SchedulerSpec]):
        self.specs: dict[str, SchedulerSpec] = {}
        for s in specs:
            if s.name in self.specs:
                raise CatalogError(f"scheduler {s.name} defined twice")
            self.specs[s.name] = s
        if FAIR not in self.specs:
            raise CatalogError("the catalog must contain the fair scheduler")

    def __contains__(self, name: str) -> bool:
        return name in self.specs

    def __iter__(self):
        return iter(self.specs.values())

    def names(self) -> list[str]:
        return list(self.specs)

    def get(self, name: str) -> SchedulerSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise CatalogError(f"unknown scheduler {name!r} (known: {', '.join(self.specs)})"
                               ) from None

    def action(self, name: str, values: Mapping[str, Any] | None = None,
               preset: str | None = None) -> Action:
        spec = self.get(name)
        resolved = spec.resolve(values, preset)
        label = preset or ("custom" if values else "default")
        return Action(name, tuple(sorted(resolved.items())), tuple(spec.argv(resolved)), label)

    def fair(self) -> Action:
        return self.action(FAIR)

    def action_from_args(self, name: str, args: list[str]) -> Action:
        """Parse an argv the way scx_loader users write it (``-s 20000 -m all``)."""
        return self.action(name, self.values_from_args(name, args))

    def action_from_text(self, text: str) -> Action:
        """A choice as people write it: ``NAME``, ``NAME:PRESET``, ``NAME[:PRESET] ARGS…``
        (``fair``, ``scx_bpfland:lowlatency``, ``scx_flashyspark --dsq-mode cpu -K``)."""
        words = shlex.split(text)
        if not words:
            raise CatalogError("empty scheduler choice")
        name, _, preset = words[0].partition(":")
        return self.action(name, self.values_from_args(name, words[1:]), preset or None)

    def values_from_args(self, name: str, args: list[str]) -> dict[str, Any]:
        """Parameter values from an argv: long and short flags, ``--flag=value``.  A flag
        this machine cannot use is refused with the probe's reason."""
        spec = self.get(name)
        by_flag: dict[str, tuple[ParamSpec, Any]] = {}
        for p in spec.params:
            if p.render == "switch":
                fixed: Any = True
            elif p.render == "option":
                fixed = None
            else:
                for choice, flag in p.flags.items():
                    by_flag[flag] = (p, choice)
                continue
            for flag in (p.flag, p.short):
                if flag:
                    by_flag[flag] = (p, fixed)
        refused = {f: reason for p, reason in spec.unavailable.values()
                   for f in (*p.flag_words(), p.short) if f}
        values: dict[str, Any] = {}
        i = 0
        while i < len(args):
            word = args[i]
            flag, eq, inline = word.partition("=")
            if flag in refused and flag not in by_flag:
                raise CatalogError(f"{name}: {flag} refused: {refused[flag]}")
            if flag not in by_flag:
                raise CatalogError(f"{name}: unknown argument {word!r} (known: "
                                   f"{', '.join(sorted(by_flag)) or 'none'})")
            p, fixed = by_flag[flag]
            if fixed is not None:
                values[p.name] = fixed
            else:
                if eq:
                    raw = inline
                elif i + 1 < len(args):
                    i += 1
                    raw = args[i]
                else:
                    raise CatalogError(f"{name}: {flag} needs a value")
                values[p.name] = parse_value(p, raw)
            i += 1
        return values


def parse_value(p: ParamSpec, raw: str) -> Any:
    try:
        if p.kind == "int":
            return int(raw, 0)
        if p.kind == "float":
            return float(raw)
        if p.kind == "bool":
            return {"true": True, "false": False, "1": True, "0": False}[raw.lower()]
    except (ValueError, KeyError):
        raise CatalogError(f"{p.name}: cannot read {raw!r} as {p.kind}") from None
    return raw


# -- the built-in entries ---------------------------------------------------------------------
def switch(name: str, flag: str, doc: str, families: str = "all", explore: bool = True,
           **extra: Any) -> ParamSpec:
    return ParamSpec(name, "bool", False, flag, render="switch", doc=doc, families=families,
                     explore=explore, **extra)


def integer(name: str, flag: str, default: int, lo: int, hi: int, doc: str, unit: str = "",
            families: str = "all", explore: bool = True, grid: tuple[int, ...] = (),
            **extra: Any) -> ParamSpec:
    return ParamSpec(name, "int", default, flag, doc=doc, unit=unit, min=lo, max=hi,
                     families=families, explore=explore, grid=grid, **extra)


PRIMARY_DOMAIN_MASK = r"0x[0-9a-fA-F]+"
_TOPOLOGY = (
    switch("disable_smt", "--disable-smt", "ignore SMT siblings when picking idle CPUs"),
    switch("disable_numa", "--disable-numa", "ignore NUMA nodes"),
    switch("cpufreq", "--cpufreq", "drive CPU frequency from the scheduler", short="-f"),
)

FAIR_SPEC = SchedulerSpec(
    name=FAIR, ops_prefix="", origin="kernel", help_args=(),
    description="the kernel's fair scheduler (CFS/EEVDF): no sched_ext scheduler loaded",
    params=(
        ParamSpec("base_slice_ns", "int", 3_000_000, "base_slice_ns", render="debugfs",
                  min=100_000, max=100_000_000, unit="ns", grid=(750_000, 12_000_000),
                  doc="EEVDF base slice (default 3 ms × (1+ilog(ncpus)); probed at start)"),
        ParamSpec("migration_cost_ns", "int", 500_000, "migration_cost_ns", render="debugfs",
                  min=0, max=100_000_000, unit="ns", doc="cache-hot time for load balancing"),
        ParamSpec("nr_migrate", "int", 32, "nr_migrate", render="debugfs", min=1, max=1024,
                  doc="tasks moved per load-balancing pass"),
        ParamSpec("preempt", "choice", "full", "preempt", render="debugfs", explore=False,
                  choices=("none", "voluntary", "full", "lazy"),
                  doc="preemption model (PREEMPT_DYNAMIC kernels)"),
    ),
)

SCX_SIMPLE = SchedulerSpec(
    name="scx_simple", binary="scx_simple", ops_prefix="simple", origin="kernel",
    help_args=("-h",),
    description="global weighted-vtime (or FIFO) queue, 20 ms slice (kernel tools/sched_ext)",
    params=(switch("fifo", "-f", "FIFO instead of weighted vtime"),),
    presets={"fifo": {"fifo": True}},
)

SCX_QMAP = SchedulerSpec(
    name="scx_qmap", binary="scx_qmap", ops_prefix="qmap", origin="kernel", help_args=("-h",),
    description="five-level FIFO queues by nice level (kernel tools/sched_ext example)",
    params=(
        integer("slice_us", "-s", 20000, 100, 1_000_000, "time slice", unit="µs",
                grid=(5000,)),
        integer("dsp_batch", "-b", 0, 0, 1024, "dispatch up to this many tasks together "
                "(0 = one)", grid=(8,)),
        switch("boost_nice", "-H", "boost nice -20 tasks in the shared DSQ (with -b)"),
        switch("partial", "-p", "switch only SCHED_EXT tasks (partial mode)", explore=False),
        integer("error_after", "-e", 0, 0, INT64_MAX, "fault injection: scx_bpf_error() "
                "after N enqueues (0 = never)", explore=False),
        integer("stall_user_nth", "-t", 0, 0, INT64_MAX, "fault injection: stall every Nth "
                "user thread", explore=False),
        integer("stall_kernel_nth", "-T", 0, 0, INT64_MAX, "fault injection: stall every Nth "
                "kernel thread", explore=False),
    ),
    presets={"short_slice": {"slice_us": 5000}, "batched": {"dsp_batch": 8}},
)

SCX_FLATCG = SchedulerSpec(
    name="scx_flatcg", binary="scx_flatcg", ops_prefix="flatcg", origin="kernel",
    help_args=("-h",),
    description="flattened cgroup hierarchy, weighted vtime (kernel tools/sched_ext)",
    params=(
        ParamSpec("slice_us", "float", 20000.0, "-s", min=100.0, max=1_000_000.0, unit="µs",
                  doc="time slice", grid=(5000.0,)),
        switch("fifo", "-f", "FIFO instead of weighted vtime"),
    ),
    presets={"fifo": {"fifo": True}, "short_slice": {"slice_us": 5000.0}},
)

SCX_CENTRAL = SchedulerSpec(
    name="scx_central", binary="scx_central", ops_prefix="central", origin="kernel",
    help_args=("-h",), explore=False,
    description="one CPU makes every scheduling decision (kernel example; the 6.12 build "
    "fails ~1 start in 3 with 'init from non-central CPU')",
    params=(
        integer("slice_us", "-s", 20000, 100, 1_000_000, "time slice", unit="µs"),
        integer("central_cpu", "-c", 0, 0, 4095, "the deciding CPU", explore=False),
    ),
)

SCX_BPFLAND = SchedulerSpec(
    name="scx_bpfland", binary="scx_bpfland", ops_prefix="bpfland", origin="scx",
    version="sched-ext/scx 1.1.0",
    description="vruntime-based, prioritises interactive tasks (scx v1.1.x flags)",
    params=(
        integer("slice_us", "--slice-us", 1000, 100, 100_000, "maximum slice", unit="µs",
                grid=(500, 5000, 20000), short="-s"),
        integer("slice_min_us", "--slice-min-us", 0, 0, 100_000, "minimum slice", unit="µs",
                short="-L"),
        integer("slice_us_lag", "--slice-us-lag", 40000, 0, 1_000_000,
                "maximum vruntime credit", unit="µs", grid=(10000, 160000), short="-l"),
        integer("throttle_us", "--throttle-us", 0, 0, 1_000_000,
                "idle time forced between slices (power saving)", unit="µs", short="-t"),
        integer("idle_resume_us", "--idle-resume-us", -1, -1, 1_000_000,
                "CPU idle exit latency bound, written to sysfs pm_qos_resume_latency_us "
                "(-1 = off)", unit="µs", short="-I"),
        switch("local_pcpu", "--local-pcpu", "per-CPU tasks go to the local DSQ", short="-p"),
        switch("local_kthreads", "--local-kthreads", "kthreads dispatched locally",
               short="-k"),
        switch("no_wake_sync", "--no-wake-sync", "ignore WF_SYNC wake-up hints", short="-w"),
        switch("sticky_tasks", "--sticky-tasks", "keep tasks on their CPU", short="-S"),
        ParamSpec("primary_domain", "choice", "auto", "--primary-domain", short="-m",
                  choices=("auto", "performance", "powersave", "all", "none"),
                  pattern=PRIMARY_DOMAIN_MASK, doc="CPUs preferred for scheduling"),
        switch("preferred_idle_scan", "--preferred-idle-scan", "scan preferred CPUs first",
               short="-P"),
        *_TOPOLOGY,
    ),
    constraints=(Constraint("slice_us >= slice_min_us"),),
    presets={
        # scx_loader's modes for bpfland (its mode table, scx v1.1).
        "auto": {"primary_domain": "auto"},
        "gaming": {"primary_domain": "all"},
        "lowlatency": {"primary_domain": "performance", "no_wake_sync": True},
        "powersave": {"slice_us": 20000, "primary_domain": "powersave", "idle_resume_us": 100,
                      "throttle_us": 100},
        "server": {"slice_us": 20000, "sticky_tasks": True},
    },
)

# scx_flash 1.0.14–1.1.0 flags; 1.1.2+ keeps only slice_us, slice_us_lag, throttle_us,
# idle_resume_us, tickless, rr_sched, primary_domain and the topology switches.
_FLASH_1_0 = "1.0.14-1.1.0"
#: The BPF side of --tickless writes rq->curr->scx.slice; a kernel without the kfunc
#: scx_bpf_cpu_curr() only offers the untrusted rq->curr, and its verifier (6.12) rejects
#: the write ("only read is supported"): the scheduler cannot load with -T there.
TICKLESS_NEEDS = "kfunc:scx_bpf_cpu_curr"
_FLASH_PARAMS = (
    integer("slice_us", "--slice-us", 4096, 100, 100_000, "maximum slice", unit="µs",
            grid=(1024, 16384), short="-s"),
    integer("slice_us_min", "--slice-us-min", 128, 1, 100_000, "minimum slice", unit="µs",
            families=_FLASH_1_0, short="-S"),
    integer("slice_us_lag", "--slice-us-lag", 4096, 0, 1_000_000, "vruntime credit",
            unit="µs", grid=(1024, 32768), short="-l"),
    switch("slice_lag_scaling", "--slice-lag-scaling", "scale lag by CPU utilisation",
           families=_FLASH_1_0, short="-L"),
    integer("run_us_lag", "--run-us-lag", 32768, 0, 10_000_000, "runtime lag bound",
            unit="µs", families=_FLASH_1_0, short="-r"),
    integer("max_avg_nvcsw", "--max-avg-nvcsw", 128, 0, 100_000,
            "voluntary-switch rate cap for interactive boost (0 = off)", families=_FLASH_1_0,
            short="-c"),
    integer("cpu_busy_thresh", "--cpu-busy-thresh", -1, -1, 100,
            "busy threshold (-1 = auto)", unit="%", families=_FLASH_1_0, short="-C"),
    integer("throttle_us", "--throttle-us", 0, 0, 1_000_000, "forced idle between slices",
            unit="µs", short="-t"),
    integer("idle_resume_us", "--idle-resume-us", 32, -1, 1_000_000,
            "CPU idle exit latency bound, written to sysfs pm_qos_resume_latency_us "
            "(-1 = off)", unit="µs", short="-I"),
    switch("tickless", "--tickless", "tickless scheduling (its BPF needs the kfunc "
           "scx_bpf_cpu_curr; the 6.12 verifier rejects it)", short="-T",
           requires=TICKLESS_NEEDS),
    switch("rr_sched", "--rr-sched", "round-robin", short="-R"),
    switch("no_builtin_idle", "--no-builtin-idle", "own idle selection",
           families=_FLASH_1_0, short="-b"),
    switch("local_pcpu", "--local-pcpu", "per-CPU tasks go local", families=_FLASH_1_0,
           short="-p"),
    switch("direct_dispatch", "--direct-dispatch", "dispatch directly to idle CPUs",
           families=_FLASH_1_0, short="-D"),
    switch("sticky_cpu", "--sticky-cpu", "keep tasks on their CPU", families=_FLASH_1_0,
           short="-y"),
    switch("native_priority", "--native-priority", "use task nice as is",
           families=_FLASH_1_0, short="-n"),
    switch("local_kthreads", "--local-kthreads", "kthreads dispatched locally",
           families=_FLASH_1_0, short="-k"),
    switch("no_wake_sync", "--no-wake-sync", "ignore WF_SYNC hints", families=_FLASH_1_0,
           short="-w"),
    ParamSpec("primary_domain", "choice", "auto", "--primary-domain", short="-m",
              choices=("auto", "turbo", "performance", "powersave", "all", "none"),
              pattern=PRIMARY_DOMAIN_MASK, doc="CPUs preferred for scheduling"),
    # still in 1.1.0 (measured on the test-bed build), gone in 1.1.2
    switch("disable_l2", "--disable-l2", "ignore L2 cache domains", families=_FLASH_1_0),
    switch("disable_l3", "--disable-l3", "ignore L3 cache domains", families=_FLASH_1_0),
    *_TOPOLOGY,
)

#: scx_loader's modes for scx_flash (its built-in configuration).
_FLASH_MODES = {
    "auto": {"primary_domain": "auto"},
    "gaming": {"primary_domain": "all"},
    "lowlatency": {"primary_domain": "performance", "no_wake_sync": True,
                   "cpu_busy_thresh": 0},
    "powersave": {"primary_domain": "powersave", "idle_resume_us": 10000,
                  "throttle_us": 10000, "slice_us": 10000, "slice_us_min": 1000},
    "server": {"primary_domain": "all", "slice_us": 20000, "slice_us_min": 1000,
               "idle_resume_us": -1, "direct_dispatch": True, "slice_lag_scaling": True},
}

SCX_FLASH = SchedulerSpec(
    name="scx_flash", binary="scx_flash", ops_prefix="flash", origin="scx",
    version="sched-ext/scx 1.1.0",
    description="EDF with a lag-bounded vruntime, latency oriented (scx v1.0.14–1.1.0 flags)",
    params=_FLASH_PARAMS,
    constraints=(Constraint("slice_us >= slice_us_min"),),
    presets=_FLASH_MODES,
)

SCX_FLASHYSPARK = SchedulerSpec(
    name="scx_flashyspark", binary="scx_flashyspark", ops_prefix="flashyspark",
    origin="fork", version="esot0/scx scx_spark 1bd93fe9, base scx_flash 1.0.14",
    description="fork of scx_flash 1.0.14 with workload-aware CPU selection and GPU "
    "awareness (esot0/scx, branch scx_spark)",
    params=(
        *(replace(p, families="all") for p in _FLASH_PARAMS),
        switch("stay_with_kthread", "--stay-with-kthread",
               "keep tasks on CPUs where kthreads run", short="-H",
               no_effect="the BPF side never marks a CPU as running a kthread "
               "(cpu_ctx.has_active_kthread is never set), so the branches it enables "
               "never run"),
        switch("aggressive_gpu_tasks", "--aggressive-gpu-tasks",
               "only GPU tasks use big/performance cores (kprobes on nvidia_poll/open/mmap)",
               short="-G", requires="module:nvidia", explore=False),
        switch("workload_aware_scheduling", "--workload-aware-scheduling",
               "CPU selection by workload type", short="-W",
               no_effect="its BPF field is set but never read"),
        switch("timer_kick", "--timer-kick", "BPF timer instead of scx_kick_cpu", short="-K"),
        ParamSpec("dsq_mode", "choice", "shared", "--dsq-mode", choices=("shared", "cpu"),
                  doc="shared or per-CPU dispatch queues"),
    ),
    constraints=(Constraint("slice_us >= slice_us_min"),),
    # scx_loader has no entry for the fork; flash's modes use only flags the fork shares.
    presets=_FLASH_MODES,
    # The earlier RL tuner explored "more_dsqs" as a boolean: it is --dsq-mode cpu.
    aliases={"more_dsqs": ("dsq_mode", {True: "cpu", False: "shared"})},
)

SCX_RUSTY = SchedulerSpec(
    name="scx_rusty", binary="scx_rusty", ops_prefix="rusty", origin="scx",
    description="multi-domain, user-space load balancing (scx)",
    params=(
        integer("slice_us_underutil", "--slice-us-underutil", 20000, 100, 1_000_000,
                "slice while under-utilised", unit="µs"),
        integer("slice_us_overutil", "--slice-us-overutil", 1000, 100, 1_000_000,
                "slice while over-utilised", unit="µs"),
        ParamSpec("interval", "float", 2.0, "--interval", min=0.1, max=60.0, unit="s",
                  doc="load-balancing interval"),
        ParamSpec("tune_interval", "float", 0.1, "--tune-interval", min=0.01, max=10.0,
                  unit="s", doc="tuning interval"),
        ParamSpec("load_half_life", "float", 1.0, "--load-half-life", min=0.1, max=60.0,
                  unit="s", doc="load decay half-life"),
        switch("kthreads_local", "--kthreads-local", "kthreads dispatched locally"),
        switch("fifo_sched", "--fifo-sched", "FIFO when under-utilised"),
        switch("no_load_balance", "--no-load-balance", "disable load balancing"),
        switch("partial", "--partial", "switch only SCHED_EXT tasks", explore=False),
    ),
    constraints=(Constraint("slice_us_underutil >= slice_us_overutil"),),
)

_LAVD_MODES = {"autopilot": "--autopilot", "autopower": "--autopower",
               "performance": "--performance", "powersave": "--powersave",
               "balanced": "--balanced"}
SCX_LAVD = SchedulerSpec(
    name="scx_lavd", binary="scx_lavd", ops_prefix="lavd", origin="scx",
    description="latency-criticality aware virtual deadline, for interactive loads (scx)",
    params=(
        ParamSpec("power_mode", "choice", "autopilot", "--autopilot", render="choice_flag",
                  choices=tuple(_LAVD_MODES), flags=_LAVD_MODES, doc="power/performance mode"),
        integer("slice_max_us", "--slice-max-us", 5000, 100, 100_000, "maximum slice",
                unit="µs", grid=(2500, 20000)),
        integer("slice_min_us", "--slice-min-us", 500, 50, 100_000, "minimum slice",
                unit="µs"),
        integer("pinned_slice_us", "--pinned-slice-us", 5000, 100, 100_000,
                "slice of pinned tasks", unit="µs"),
        integer("preempt_shift", "--preempt-shift", 6, 0, 10,
                "preemption aggressiveness (lower = more)", grid=(3, 9)),
        integer("lat_load_target_pct", "--lat-load-target-pct", 100, 1, 1000,
                "latency load target", unit="%"),
        switch("no_wake_sync", "--no-wake-sync", "ignore WF_SYNC hints"),
        switch("per_cpu_dsq", "--per-cpu-dsq", "per-CPU dispatch queues"),
        switch("partial", "--partial", "switch only SCHED_EXT tasks", explore=False),
    ),
    constraints=(Constraint("slice_max_us >= slice_min_us"),),
    # scx_loader's modes map onto lavd's own power modes.
    presets={"gaming": {"power_mode": "performance"},
             "lowlatency": {"power_mode": "performance"},
             "powersave": {"power_mode": "powersave"}},
)

BUILTIN: tuple[SchedulerSpec, ...] = (
    FAIR_SPEC, SCX_SIMPLE, SCX_QMAP, SCX_FLATCG, SCX_CENTRAL, SCX_BPFLAND, SCX_FLASH,
    SCX_FLASHYSPARK, SCX_RUSTY, SCX_LAVD,
)


# -- config overrides -------------------------------------------------------------------------
def spec_from_config(name: str, cfg: Mapping[str, Any], base: SchedulerSpec | None
                     ) -> SchedulerSpec:
    """Apply a ``[schedulers.NAME]`` table to a built-in entry, or build a custom one."""
    where = f"[schedulers.{name}]"
    if base is None:
        missing = [k for k in ("binary", "ops_prefix") if not cfg.get(k)]
        if missing:
            raise CatalogError(f"{where}: a custom scheduler needs {' and '.join(missing)}")
    if base is not None and base.is_fair and cfg.get("binary"):
        raise CatalogError(f"{where}: the fair scheduler has no binary")
    params = {p.name: p for p in (base.params if base else ())}
    for name_ in cfg.get("remove_params") or ():
        if name_ not in params:
            raise CatalogError(f"{where}: remove_params names unknown parameter {name_!r}")
        del params[name_]
    for raw in cfg.get("params") or ():
        pdata = {k: v for k, v in dict(raw).items() if v is not None}
        old = params.get(pdata["name"])
        try:
            if old is not None:
                merged = replace(old, **{k: tuple(v) if k in ("choices", "grid") else v
                                         for k, v in pdata.items()})
            else:
                for key in ("kind", "flag"):
                    if key not in pdata:
                        raise CatalogError(f"new parameter {pdata['name']!r} needs {key!r}")
                if "default" not in pdata:
                    if pdata["kind"] != "bool":
                        raise CatalogError(f"new parameter {pdata['name']!r} needs a default")
                    pdata["default"] = False
                pdata.setdefault("render", "switch" if pdata["kind"] == "bool" else "option")
                for key in ("choices", "grid"):
                    if key in pdata:
                        pdata[key] = tuple(pdata[key])
                merged = ParamSpec(**pdata)
        except (TypeError, CatalogError) as exc:
            raise CatalogError(f"{where}: parameter {pdata.get('name')!r}: {exc}") from None
        params[merged.name] = merged
    fields_ = {
        "name": name,
        "ops_prefix": cfg.get("ops_prefix") or (base.ops_prefix if base else ""),
        "description": cfg.get("description") or (base.description if base else
                                                  "user-defined scheduler"),
        "binary": cfg.get("binary") or (base.binary if base else ""),
        "origin": base.origin if base else "user",
        "params": tuple(params.values()),
        "presets": {**(dict(base.presets) if base else {}), **(cfg.get("presets") or {})},
        "constraints": (*(c for c in (base.constraints if base else ())
                          if all(r in params or not re.match(r"[a-z_]", r)
                                 for r in (c.parts()[0], c.parts()[2]))),
                        *(Constraint(t) for t in cfg.get("constraints") or ())),
        "aliases": base.aliases if base else {},
        "help_args": tuple(cfg["help_args"]) if cfg.get("help_args") is not None else (
            base.help_args if base else ("--help",)),
        "explore": cfg.get("explore", base.explore if base else True),
    }
    try:
        return SchedulerSpec(**fields_)
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc}") from None


def build_catalog(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Catalog:
    """Built-ins with the config's ``[schedulers.*]`` tables applied (``enabled = false``
    removes an entry; the fair scheduler cannot be removed)."""
    specs = {s.name: s for s in BUILTIN}
    for name, cfg in (overrides or {}).items():
        cfg = dict(cfg)
        if cfg.get("enabled") is False:
            if name == FAIR:
                raise CatalogError("[schedulers.fair]: the fair scheduler cannot be disabled")
            specs.pop(name, None)
            continue
        specs[name] = spec_from_config(name, cfg, specs.get(name))
    return Catalog(specs.values())
