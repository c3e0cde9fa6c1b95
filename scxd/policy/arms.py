"""The arm set: every (scheduler, parameters) configuration a policy may choose, with a stable
identity.

An :class:`Arm` is a fully resolved catalog :class:`~scxd.catalog.Action` plus

* ``key`` — the scheduler and *every* parameter value (``fair base_slice_ns=3000000
  migration_cost_ns=500000 nr_migrate=32 preempt=full``), so two configurations that render
  to the same command line (the fair scheduler's debugfs tunables render to none) never share
  an identity;
* ``index`` — its position in the set (the index ↔ action map learners use).

An :class:`ArmSet` is an ordered, duplicate-free tuple of arms and its ``hash`` (16 hex digits
of a SHA-256 over the sorted keys): journals carry it in their header and checkpoints carry it
beside the learned state, so a learner never applies weights learned for other arms.

Where arms come from:

* :meth:`ArmSet.from_catalog` — the daemon's arms: for every available, explorable scheduler
  its presets, and with ``space="grid"`` also every single-parameter deviation from its
  defaults along each explorable parameter's declared grid (``ParamSpec.explore_values``:
  booleans both ways, choices each choice, numbers their declared grid), constraints
  respected; parameters marked ``explore=False`` (fault injection, no effect) never vary;
* :meth:`ArmSet.from_labels` / :meth:`ArmSet.from_actions` — a recorded dataset's arms, or any
  explicit list.

:class:`Factorisation` is the structure a factorised policy needs: the schedulers, and per
scheduler the parameters that vary among its arms with the values they take, so an arm is
(scheduler, one value per varying parameter) and its probability a product of factors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scxd.catalog import Action, Catalog, CatalogError, format_value
from scxd.probe import ProbedCatalog

SPACES = ("presets", "grid")


def arm_key(action: Action) -> str:
    """The arm's stable identity: scheduler and every parameter as ``name=value``."""
    return " ".join((action.scheduler, *(f"{k}={format_value(v)}" for k, v in action.params)))


@dataclass(frozen=True)
class Arm:
    index: int
    key: str
    action: Action

    @property
    def scheduler(self) -> str:
        return self.action.scheduler

    @property
    def label(self) -> str:
        """The human name (argv), e.g. ``scx_qmap -s 5000``."""
        return self.action.label()


class ArmSetError(ValueError):
    """An arm set cannot be built or does not match; the message says which arm and why."""


class ArmSet:
    """An ordered, duplicate-free set of arms."""

    def __init__(self, actions: Iterable[Action]):
        arms: list[Arm] = []
        seen: dict[str, int] = {}
        for action in actions:
            key = arm_key(action)
            if key in seen:
                continue
            seen[key] = len(arms)
            arms.append(Arm(len(arms), key, action))
        if not arms:
            raise ArmSetError("an arm set needs at least one arm")
        self.arms: tuple[Arm, ...] = tuple(arms)
        self._by_key = seen
        # (scheduler, params) → index: what find() needs without formatting a key.
        self._by_values = {(a.action.scheduler, a.action.params): a.index for a in arms}
        self._by_label: dict[str, int] = {}
        for arm in self.arms:
            self._by_label.setdefault(arm.label, arm.index)
        digest = hashlib.sha256(json.dumps(sorted(seen), separators=(",", ":")).encode())
        self.hash = digest.hexdigest()[:16]

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_actions(cls, actions: Iterable[Action]) -> ArmSet:
        return cls(actions)

    @classmethod
    def from_catalog(cls, probed: ProbedCatalog, space: str = "grid",
                     extra_keys: Iterable[str] = ()) -> ArmSet:
        """The fair scheduler first, then per available, explorable scheduler its presets and
        (``space="grid"``) its single-parameter grid deviations; then every non-fair arm of
        ``extra_keys`` (a pretrained model's arms) this machine can run."""
        if space not in SPACES:
            raise ArmSetError(f"unknown arm space {space!r} (known: {', '.join(SPACES)})")
        catalog = probed.catalog
        actions: list[Action] = [catalog.fair()]
        for spec in catalog:
            avail = probed.availability.get(spec.name)
            if not spec.explore or (avail is not None and not avail.available):
                continue
            if not spec.is_fair:
                for preset in spec.presets:
                    actions.append(catalog.action(spec.name, preset=preset))
            if space == "grid":
                for param in spec.params:
                    for value in param.explore_values()[1:]:
                        try:
                            actions.append(catalog.action(spec.name, {param.name: value}))
                        except CatalogError:
                            continue  # the value breaks a constraint with the defaults
        for key in extra_keys:
            action = resolve_key(catalog, key)
            if action is None or action.is_fair:
                continue   # fair is there already (at this machine's own tunables)
            avail = probed.availability.get(action.scheduler)
            if catalog.get(action.scheduler).explore and (avail is None or avail.available):
                actions.append(action)
        return cls(actions)

    @classmethod
    def from_keys(cls, keys: Iterable[str], labels: Iterable[str] | None = None) -> ArmSet:
        """Arms exactly as a journal or checkpoint recorded them (their keys and labels),
        whatever this machine's catalog says: the recording machine's probe may have
        dropped parameters, so rebuilding them from the catalog would change the keys."""
        keys = list(keys)
        labels = list(labels) if labels is not None else [k.split()[0] for k in keys]
        if len(labels) != len(keys):
            raise ArmSetError(f"{len(keys)} arm keys but {len(labels)} labels")
        return cls(recorded_action(k, lbl) for k, lbl in zip(keys, labels, strict=True))

    @classmethod
    def from_labels(cls, catalog: Catalog, labels: Iterable[str]) -> ArmSet:
        """Arms named the way journals and datasets name them (``scx_qmap -s 5000``)."""
        return cls(action_from_label(catalog, label) for label in labels)

    # -- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.arms)

    def __iter__(self) -> Iterator[Arm]:
        return iter(self.arms)

    def __getitem__(self, index: int) -> Arm:
        return self.arms[index]

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def keys(self) -> list[str]:
        return [a.key for a in self.arms]

    def labels(self) -> list[str]:
        return [a.label for a in self.arms]

    def actions(self) -> list[Action]:
        return [a.action for a in self.arms]

    def index(self, key: str) -> int:
        try:
            return self._by_key[key]
        except KeyError:
            raise ArmSetError(f"arm {key!r} is not in arm set {self.hash}") from None

    def get(self, key: str) -> Arm:
        return self.arms[self.index(key)]

    def find(self, action: Action) -> Arm | None:
        """The arm running ``action`` would be (None when it is not in the set)."""
        i = self._by_values.get((action.scheduler, action.params))
        return None if i is None else self.arms[i]

    def by_label(self, label: str) -> Arm | None:
        i = self._by_label.get(label)
        return None if i is None else self.arms[i]

    def fair_index(self) -> int | None:
        return next((a.index for a in self.arms if a.action.is_fair), None)

    def subset(self, keys: Iterable[str]) -> ArmSet:
        return ArmSet(self.get(k).action for k in keys)

    def header(self) -> dict[str, Any]:
        """What a journal header or a checkpoint records about the arm set."""
        return {"hash": self.hash, "keys": self.keys(), "labels": self.labels()}

    def factorisation(self) -> Factorisation:
        return Factorisation(self)

    def distribution(self, probs: Sequence[float]) -> dict[str, float]:
        """A probability vector (in arm order) as {key: probability}."""
        return {a.key: float(p) for a, p in zip(self.arms, probs, strict=True)}


def action_from_label(catalog: Catalog, label: str) -> Action:
    """``"scx_qmap -s 5000"`` → the catalog's Action (raises ArmSetError naming the label)."""
    words = label.split()
    if not words:
        raise ArmSetError("empty arm label")
    try:
        if len(words) == 1:
            return catalog.action(words[0])
        return catalog.action_from_args(words[0], words[1:])
    except CatalogError as exc:
        raise ArmSetError(f"arm {label!r}: {exc}") from None


def _action_of_key(catalog: Catalog, key: str) -> Action:
    """The action ``key``'s values make in this catalog; parameters it does not name take
    the catalog's defaults (raises CatalogError/ValueError)."""
    name, *pairs = key.split()
    spec = catalog.get(name)
    values: dict[str, Any] = {}
    for pair in pairs:
        pname, _, raw = pair.partition("=")
        param = spec.param(pname)
        values[pname] = raw if param.kind == "choice" else _parse(param.kind, raw)
    return catalog.action(name, values)


def action_from_key(catalog: Catalog, key: str) -> Action:
    """Inverse of :func:`arm_key` (raises ArmSetError naming the key)."""
    try:
        action = _action_of_key(catalog, key)
    except (CatalogError, ValueError, KeyError) as exc:
        raise ArmSetError(f"arm {key!r}: {exc}") from None
    if arm_key(action) != key:
        raise ArmSetError(f"arm {key!r}: this catalog resolves it to {arm_key(action)!r}")
    return action


def resolve_key(catalog: Catalog, key: str) -> Action | None:
    """The arm a key recorded on another machine names here, or None when this catalog
    cannot express it (a parameter it does not know, a value or combination it refuses).
    Parameters the key does not name take this catalog's defaults: the recording machine's
    probe may have dropped one that this machine's scheduler has (scx_flash's
    ``--tickless`` on the test bed's loaders), and the same arm then spells one more
    parameter here."""
    try:
        return _action_of_key(catalog, key)
    except (CatalogError, ValueError, KeyError):
        return None


def recorded_action(key: str, label: str) -> Action:
    """An Action carrying exactly ``key``'s values and ``label``'s argv (no catalog)."""
    name, *pairs = key.split()
    params = []
    for pair in pairs:
        pname, sep, raw = pair.partition("=")
        if not sep:
            raise ArmSetError(f"arm key {key!r}: {pair!r} is not name=value")
        params.append((pname, _guess(raw)))
    words = label.split()
    if not words or words[0] != name:
        raise ArmSetError(f"arm key {key!r} and label {label!r} name different schedulers")
    action = Action(name, tuple(params), tuple(words[1:]), "recorded")
    if arm_key(action) != key:
        raise ArmSetError(f"arm key {key!r} does not round-trip ({arm_key(action)!r})")
    return action


def _guess(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            continue
    return raw


def _parse(kind: str, raw: str) -> Any:
    if kind == "bool":
        return {"true": True, "false": False}[raw]
    return int(raw) if kind == "int" else float(raw)


@dataclass(frozen=True)
class Dimension:
    """One parameter that varies among a scheduler's arms, and the values it takes."""

    param: str
    values: tuple[Any, ...]


class Factorisation:
    """Arms as (scheduler, one value per varying parameter of that scheduler).

    ``codes[i]`` is arm i's ``(scheduler index, (value index per dimension, ...))``.  A
    product of a scheduler factor and one factor per dimension gives every arm a probability;
    renormalised over the set it is an exact distribution (the full grid product needs no
    renormalisation)."""

    def __init__(self, arms: ArmSet):
        self.schedulers: tuple[str, ...] = tuple(dict.fromkeys(a.scheduler for a in arms))
        dims: dict[str, list[Dimension]] = {}
        for name in self.schedulers:
            members = [a.action.values for a in arms if a.scheduler == name]
            varying = []
            for pname in members[0]:
                values = tuple(dict.fromkeys(m[pname] for m in members))
                if len(values) > 1:
                    varying.append(Dimension(pname, values))
            dims[name] = varying
        self.dims: Mapping[str, tuple[Dimension, ...]] = {k: tuple(v) for k, v in dims.items()}
        codes = []
        for a in arms:
            values = a.action.values
            codes.append((self.schedulers.index(a.scheduler),
                          tuple(d.values.index(values[d.param]) for d in self.dims[a.scheduler])))
        self.codes: tuple[tuple[int, tuple[int, ...]], ...] = tuple(codes)

    def heads(self) -> list[tuple[str, str, int]]:
        """(scheduler, parameter, number of values) of every conditional factor, in order."""
        return [(s, d.param, len(d.values)) for s in self.schedulers for d in self.dims[s]]
