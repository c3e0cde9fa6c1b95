"""The recording design of the test-bed dataset: which arms run, and with what probability.

Arms (one fixed list for the whole recording, made from the probed catalog and a seed):

* **named presets** — every recorded scheduler's defaults and the scx_loader modes the catalog
  declares for it (:func:`presets`), plus scx_flashyspark with per-CPU queues;
* **parameter draws** — ``draws`` independent configurations: the scheduler uniformly among
  the tunable ones available (:data:`TUNED`), then each parameter of :data:`DRAW_SPACE`
  independently from its listed values with their listed probabilities.  The probability of
  one draw producing exactly that configuration is the product, logged as
  ``draw_probability``.  A draw that repeats an arm already in the list is not added.

Cell assignment: every (workload, repeat) block runs every arm exactly once, in an order
shuffled with a seeded generator (a complete block design: each arm × workload has as many
repeats as the recording, which the counterfactual table of the replay benchmark needs).  A
cell picked at random from a block therefore runs a given arm with probability exactly
1/K (K arms): that is each window's logged ``propensity``.

Why not draw every cell's arm independently: with ~20 cells per block, most drawn
configurations would be measured once per workload, and the arm × workload table (and any
ranking by outcome) needs repeats of the same arm.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scxd.catalog import Action, Catalog, CatalogError

#: Schedulers the dataset records, in table order.
RECORDED = ("fair", "scx_simple", "scx_bpfland", "scx_flash", "scx_flashyspark", "scx_flatcg")
#: Named configurations besides every recorded scheduler's catalog presets (its defaults
#: and scx_loader's modes): (scheduler, preset, extra values).
EXTRA_PRESETS: tuple[tuple[str, str, Mapping[str, Any]], ...] = (
    ("scx_flashyspark", "default", {"dsq_mode": "cpu"}),
)
#: Catalog presets left out: the kernel-tree schedulers' variants (one arm each is enough
#: to represent them; flatcg is there as the scheduler known to be bad for some loads), and
#: scx_flashyspark's copies of scx_flash's modes (scx_loader does not know the fork; its
#: own axis, the dispatch-queue mode, is an extra arm).
SKIP_PRESETS = {"scx_simple": ("fifo",), "scx_flatcg": ("fifo", "short_slice"),
                "scx_flashyspark": ("auto", "gaming", "lowlatency", "powersave", "server")}


def presets(catalog: Catalog) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Every recorded scheduler's catalog presets (defaults first), then the extras."""
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    for name in RECORDED:
        if name not in catalog:
            out.append((name, "default", {}))  # reported as unavailable by build_design
            continue
        for preset in catalog.get(name).presets:
            if preset not in SKIP_PRESETS.get(name, ()):
                out.append((name, preset, {}))
    return out + list(EXTRA_PRESETS)
#: Schedulers whose parameters are drawn.
TUNED = ("scx_bpfland", "scx_flash", "scx_flashyspark")
#: A boolean is switched on with this probability (most switches are off by default).
P_ON = 0.25
_BOOL = ((False, 1 - P_ON), (True, P_ON))


def _uniform(*values: Any) -> tuple[tuple[Any, float], ...]:
    return tuple((v, 1 / len(values)) for v in values)


_FLASH_SPACE: dict[str, tuple[tuple[Any, float], ...]] = {
    "slice_us": _uniform(500, 1000, 2048, 4096, 8192, 16384),
    "slice_us_lag": _uniform(1024, 4096, 16384),
    "slice_lag_scaling": _BOOL, "rr_sched": _BOOL, "no_builtin_idle": _BOOL,
    "local_pcpu": _BOOL, "direct_dispatch": _BOOL, "sticky_cpu": _BOOL,
    "native_priority": _BOOL, "local_kthreads": _BOOL, "no_wake_sync": _BOOL,
}
#: Parameter → ((value, probability), …) per tuned scheduler.  Left out on purpose: topology
#: switches (a 2-vCPU guest has no SMT/NUMA/cache domains to ignore), cpufreq (no cpufreq
#: in the guest), ``tickless`` (cannot load on 6.12: verifier), GPU and no-effect flags.
DRAW_SPACE: dict[str, dict[str, tuple[tuple[Any, float], ...]]] = {
    "scx_bpfland": {
        "slice_us": _uniform(250, 500, 1000, 2000, 5000, 10000, 20000),
        "slice_us_lag": _uniform(5000, 20000, 40000, 80000),
        "local_pcpu": _BOOL, "local_kthreads": _BOOL, "no_wake_sync": _BOOL,
        "sticky_tasks": _BOOL, "preferred_idle_scan": _BOOL,
        "primary_domain": _uniform("auto", "performance", "powersave", "all"),
    },
    "scx_flash": _FLASH_SPACE,
    "scx_flashyspark": {**_FLASH_SPACE, "dsq_mode": _uniform("shared", "cpu"),
                        "timer_kick": _BOOL},
}


@dataclass(frozen=True)
class DesignArm:
    action: Action
    origin: str                        # "preset:NAME[+values]" or "draw:N"
    draw_probability: float | None     # P(one draw = this configuration); None for presets

    @property
    def label(self) -> str:
        return self.action.label()

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "origin": self.origin,
                "draw_probability": self.draw_probability, **self.action.as_dict()}


@dataclass(frozen=True)
class Design:
    arms: tuple[DesignArm, ...]
    seed: int
    draws: int
    skipped: tuple[str, ...] = ()      # presets/schedulers this machine cannot run, and why

    @property
    def propensity(self) -> float:
        """Probability that a cell drawn at random from a block runs a given arm."""
        return 1.0 / len(self.arms)

    def by_label(self) -> dict[str, DesignArm]:
        return {a.label: a for a in self.arms}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "complete-block", "seed": self.seed, "draws": self.draws,
                "propensity": self.propensity, "p_switch_on": P_ON,
                "draw_space": {s: {p: [[v, q] for v, q in vals] for p, vals in space.items()}
                               for s, space in DRAW_SPACE.items()},
                "arms": [a.as_dict() for a in self.arms], "skipped": list(self.skipped)}


def pick(choices: tuple[tuple[Any, float], ...], u: float) -> tuple[Any, float]:
    """The choice a uniform ``u`` in [0, 1) selects (inverse CDF), with its probability."""
    acc = 0.0
    for value, q in choices:
        acc += q
        if u < acc:
            return value, q
    return choices[-1]  # u within rounding of 1


def draw_one(catalog: Catalog, tuned: list[str], rng: random.Random
             ) -> tuple[Action, float]:
    """One configuration from the draw distribution, and its exact probability."""
    name = tuned[int(rng.random() * len(tuned))]
    spec = catalog.get(name)
    have = {p.name: p for p in spec.params if p.explore}
    values: dict[str, Any] = {}
    prob = 1.0 / len(tuned)
    for param, choices in DRAW_SPACE[name].items():
        if param not in have:
            continue  # this binary lacks it (probe): the draw does not vary it
        value, q = pick(choices, rng.random())
        values[param] = value
        prob *= q
    return catalog.action(name, values), prob


def build_design(catalog: Catalog, available: Iterable[str], draws: int, seed: int) -> Design:
    """The arm list for ``catalog`` restricted to ``available`` schedulers."""
    avail = set(available)
    arms: list[DesignArm] = []
    skipped: list[str] = []
    seen: set[str] = set()

    def add(arm: DesignArm) -> bool:
        if arm.label in seen:
            return False
        seen.add(arm.label)
        arms.append(arm)
        return True

    for name, preset, extra in presets(catalog):
        origin = f"preset:{preset}" + "".join(f"+{k}={v}" for k, v in extra.items())
        if name not in avail or name not in catalog:
            skipped.append(f"{name} {origin}: not available here")
            continue
        try:
            action = catalog.action(name, dict(extra), preset=preset)
        except CatalogError as exc:
            skipped.append(f"{name} {origin}: {exc}")
            continue
        add(DesignArm(action, origin, None))
    tuned = [n for n in TUNED if n in avail and n in catalog]
    rng = random.Random(seed)
    for k in range(draws if tuned else 0):
        action, prob = draw_one(catalog, tuned, rng)
        add(DesignArm(action, f"draw:{k}", prob))
    if not tuned and draws:
        skipped.append(f"parameter draws: none of {', '.join(TUNED)} is available")
    return Design(tuple(arms), seed, draws, tuple(skipped))


def design_from_dict(data: Mapping[str, Any], catalog: Catalog) -> Design:
    """A saved design (resuming a recording), re-resolved against this catalog; an arm the
    catalog cannot build any more is an error, never silently changed."""
    arms = []
    for a in data["arms"]:
        action = catalog.action(a["scheduler"], a["params"])
        if action.label() != a["label"]:
            raise CatalogError(f"saved arm {a['label']!r} now renders as {action.label()!r}: "
                               "the catalog changed since the recording started")
        arms.append(DesignArm(action, a["origin"], a["draw_probability"]))
    return Design(tuple(arms), data["seed"], data["draws"], tuple(data.get("skipped", ())))
