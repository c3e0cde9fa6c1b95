"""The decision path of one window — score → decide → guard → (apply) → record → learn — as one
object that ``scxd run`` and the replay benchmark both drive.

The daemon (:mod:`scxd.daemon`) calls it with real telemetry and the real actuator between
:meth:`DecisionPath.decide` and :meth:`DecisionPath.record`; the replay benchmark
(:mod:`scxd.replay.simulate`) calls it with recorded windows and a simulated swap.  Nothing
else differs: the same guard rules, the same fair reference and cost, the same composite
propensity, the same transition join and ``Policy.update``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scxd.catalog import Action
from scxd.features import FeatureVector
from scxd.guard import Guard, Verdict
from scxd.policy import Decision, Policy
from scxd.policy.arms import ArmSet, arm_key
from scxd.record import Choice, Context, Transition, TransitionJoiner, WindowRecord
from scxd.record import composite_distribution as composite
from scxd.reward import Cost, FairReference, cost


@dataclass
class DecisionPath:
    policy: Policy
    guard: Guard
    arms: ArmSet
    objective: str
    reference: FairReference

    def __post_init__(self) -> None:
        self.joiner = TransitionJoiner()
        self.fair = next((a.action for a in self.arms if a.action.is_fair), None)
        self.eligible = self.arms.actions()

    def score(self, terms: Mapping[str, float | None], running: Action | None) -> Cost | None:
        """Cost of the window that just closed (None: a warm-up window, or ``running`` is
        None — the kernel ran something that is not ours).  The fair scheduler's windows
        feed the fair reference; the others feed the regression guard."""
        scored = self.guard.window_scored() and running is not None
        if not scored or running is None:
            return None
        c = cost(terms, self.objective, self.reference.means())
        if running.is_fair:
            self.reference.add_cost(self.objective, c.value)
            self.reference.add(terms)
        else:
            self.guard.record_cost(c.value)
        return c

    def decide(self, features: FeatureVector, current: Action, now: float
               ) -> tuple[Decision, Verdict]:
        decision = self.policy.decide(features, self.eligible, current)
        fair = self.fair or current
        verdict = self.guard.review(decision.action, current, fair, now,
                                    self.reference.baseline_cost(self.objective))
        return decision, verdict

    def choice(self, decision: Decision, verdict: Verdict, executed: Action) -> Choice:
        """What runs next and its probability under policy∘guard."""
        by_policy = verdict.policy_draw and executed.same_as(decision.action)
        key = arm_key(executed)
        dist = composite(decision.distribution, key, by_policy)
        return Choice(key, executed.label(), dist[key], dist, by_policy, decision.explore,
                      decision.policy, decision.policy_version, self.arms.hash)

    def record(self, *, at: float, window_id: int | None, features: FeatureVector,
               running_key: str, running_label: str, window_cost: Cost | None,
               terms: Mapping[str, float | None], choice: Choice,
               tags: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None
               ) -> tuple[WindowRecord, Transition | None]:
        """The window's typed record; the transition it completes goes to the policy."""
        rec = WindowRecord(
            at=at, id=window_id,
            context=Context(features.schema, features.version,
                            tuple(float(v) for v in features.values), features.missing),
            running=running_key, running_label=running_label, warmup=window_cost is None,
            terms=dict(terms), cost=window_cost.value if window_cost else None,
            objective=self.objective, choice=choice, tags=dict(tags or {}),
            extra=dict(extra or {}))
        transition = self.joiner.push(rec)
        if transition is not None:
            self.policy.update(transition)
        return rec, transition
