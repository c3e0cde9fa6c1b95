"""Policies behind one interface: ``decide(features, eligible_arms) → Decision`` and
``update(transition)``.

A :class:`Decision` carries the chosen arm, the *full* action distribution it was drawn from
(keyed by arm key, :mod:`scxd.policy.arms`; so every decision logs its propensity, and
offline evaluation can re-weight it), whether it explored, the policy's version, per-arm
value and uncertainty estimates and the exploration mode for ``scxctl explain``, and a reason.
``update`` receives the typed :class:`scxd.record.Transition` (context, executed arm,
composite propensity, reward of the window that ran it).

The policies themselves are registered in :mod:`scxd.policy.registry` (name → factory and
``[policy.<name>]`` config model): ``fixed`` and ``rule`` (:mod:`scxd.policy.baseline`), the
learners of :mod:`scxd.policy.linear`, :mod:`scxd.policy.offline`, :mod:`scxd.policy.vw`,
and the torch network (:mod:`scxd.policy.network`, the only module that imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from scxd.catalog import Action
from scxd.features import FeatureVector
from scxd.policy.arms import arm_key
from scxd.probe import ProbedCatalog

if TYPE_CHECKING:
    from scxd.record import Transition


@dataclass(frozen=True)
class Decision:
    action: Action
    distribution: dict[str, float]       # arm key → probability (sums to 1)
    explore: bool
    policy: str
    policy_version: str
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)        # arm key → estimated reward
    uncertainty: dict[str, float] = field(default_factory=dict)   # arm key → its std. error
    mode: str = "none"                   # exploration: none, epsilon, ucb, thompson, …
    stats: dict[str, float] = field(default_factory=dict)         # ε, entropy, losses, …

    @property
    def key(self) -> str:
        return arm_key(self.action)

    @property
    def propensity(self) -> float:
        return self.distribution.get(self.key, 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.as_dict(), "arm": self.action.label(), "key": self.key,
                "distribution": self.distribution, "propensity": self.propensity,
                "explore": self.explore, "policy": self.policy,
                "policy_version": self.policy_version, "reason": self.reason,
                "scores": self.scores, "values": self.values,
                "uncertainty": self.uncertainty, "mode": self.mode, "stats": self.stats}


class Policy(Protocol):
    name: str
    version: str

    def decide(self, features: FeatureVector, eligible: Sequence[Action],
               current: Action | None = None) -> Decision:
        """Choose among ``eligible``; ``current`` is what runs now (a swap has a price)."""
        ...

    def update(self, transition: Transition) -> None: ...


def eligible_arms(probed: ProbedCatalog) -> list[Action]:
    """The fair scheduler plus every preset of every available, explorable scheduler
    (presets that render alike are one arm); :class:`scxd.policy.arms.ArmSet` also offers
    the parameter grid."""
    from scxd.policy.arms import ArmSet

    return ArmSet.from_catalog(probed, "presets").actions()


def point_mass(chosen: Action, eligible: Sequence[Action]) -> dict[str, float]:
    dist = {arm_key(a): 0.0 for a in eligible}
    dist[arm_key(chosen)] = 1.0
    return dist
