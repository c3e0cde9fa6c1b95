"""Policies behind one interface: ``decide(features, eligible_arms) → Decision`` and
``update(record)``.

A :class:`Decision` carries the chosen arm, the *full* action distribution it was drawn from
(so every decision logs its propensity, and offline evaluation can re-weight it), whether it
explored, the policy's version, per-arm scores for ``scxctl explain`` and a reason.

Shipped here: ``fixed`` (the configured scheduler + preset) and ``rule`` (a documented
threshold rule in the spirit of scx_loader's ``--auto``).  Both are deterministic: the chosen
arm has probability 1.  The learning policy (torch, exploration, policy gradient) plugs in
behind the same protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scxd.catalog import Action
from scxd.features import FeatureVector
from scxd.probe import ProbedCatalog


@dataclass(frozen=True)
class Decision:
    action: Action
    distribution: dict[str, float]       # arm label → probability (sums to 1)
    explore: bool
    policy: str
    policy_version: str
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def propensity(self) -> float:
        return self.distribution.get(self.action.label(), 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.as_dict(), "arm": self.action.label(),
                "distribution": self.distribution, "propensity": self.propensity,
                "explore": self.explore, "policy": self.policy,
                "policy_version": self.policy_version, "reason": self.reason,
                "scores": self.scores}


class Policy(Protocol):
    name: str
    version: str

    def decide(self, features: FeatureVector, eligible: Sequence[Action]) -> Decision: ...

    def update(self, record: Mapping[str, Any]) -> None: ...


def eligible_arms(probed: ProbedCatalog) -> list[Action]:
    """The fair scheduler plus every preset of every available, explorable scheduler."""
    arms = [probed.catalog.fair()]
    for spec in probed.catalog:
        if spec.is_fair or not spec.explore or not probed.availability[spec.name].available:
            continue
        seen: set[tuple[str, ...]] = set()
        for preset in spec.presets:
            action = probed.catalog.action(spec.name, preset=preset)
            if action.argv not in seen:  # presets that render alike are one arm
                seen.add(action.argv)
                arms.append(action)
    return arms


def point_mass(chosen: Action, eligible: Sequence[Action]) -> dict[str, float]:
    dist = {a.label(): 0.0 for a in eligible}
    dist[chosen.label()] = 1.0
    return dist
