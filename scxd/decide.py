"""The decision path of one window — score → decide → guard → (apply) → record → learn — as one
object that ``scxd run`` and the replay benchmark both drive.

The daemon (:mod:`scxd.daemon`) calls it with real telemetry, the actuator's answer to "what
runs" and, between :meth:`DecisionPath.decide` and :meth:`DecisionPath.record`, the
controller's real swap; the replay benchmark (:mod:`scxd.replay.simulate`) calls it with
recorded windows and a simulated swap.  Nothing else differs: the same scorer (fair reference,
cost, what feeds the regression guard), the same guard rules, the same composite propensity,
the same transition join and ``Policy.update``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scxd.actuator import Running
from scxd.catalog import Action
from scxd.features import FeatureVector
from scxd.guard import Guard, Verdict
from scxd.policy import Decision, Policy
from scxd.policy.arms import ArmSet, arm_key
from scxd.record import Choice, Context, Transition, TransitionJoiner, WindowRecord
from scxd.record import composite_distribution as composite
from scxd.scorer import Score, Scorer


@dataclass
class DecisionPath:
    policy: Policy
    guard: Guard
    arms: ArmSet
    scorer: Scorer

    def __post_init__(self) -> None:
        self.joiner = TransitionJoiner()
        self.eligible = self.arms.actions()

    def score(self, terms: Mapping[str, float | None], running: Running) -> Score:
        """The window that just closed, judged by the scorer once the guard's warm-up is
        over; a cost the regression guard must see is handed to it."""
        score = self.scorer.score_terms(dict(terms), running, warm=self.guard.window_scored())
        if score.for_guard is not None:
            self.guard.record_cost(score.for_guard, transient=score.transient)
        return score

    def decide(self, features: FeatureVector, current: Action, now: float
               ) -> tuple[Decision, Verdict]:
        """The policy's decision (it knows what runs: a swap has a price) and the guard's
        verdict on it; nothing is applied here."""
        decision = self.policy.decide(features, self.eligible, current)
        verdict = self.guard.review(decision.action, current, self.scorer.fair, now,
                                    self.scorer.baseline_cost(), self.scorer.fair_costs())
        return decision, verdict

    def choice(self, decision: Decision, verdict: Verdict, executed: Action) -> Choice:
        """What runs next and its probability under policy∘guard."""
        image = verdict.image(decision.action)
        by_policy = verdict.policy_draw and executed.same_as(image)
        key = arm_key(executed)
        moves = {}
        # Only a refusal (quarantine) or a redirect (re-anchor) maps a draw elsewhere.
        if by_policy and (verdict.refused or verdict.redirect_to is not None):
            for k in decision.distribution:
                i = self.arms.index(k) if k in self.arms else None
                runs_as = arm_key(verdict.image(self.arms[i].action)) if i is not None else k
                if runs_as != k:
                    moves[k] = runs_as
        dist = composite(decision.distribution, key, by_policy, moves)
        return Choice(key, executed.label(), dist[key], dist, by_policy, decision.explore,
                      decision.policy, decision.policy_version, self.arms.hash)

    def record(self, *, at: float, window_id: int | None, features: FeatureVector,
               running: Running, score: Score, choice: Choice,
               tags: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None
               ) -> tuple[WindowRecord, Transition | None]:
        """The window's typed record; the transition it completes goes to the policy."""
        key = arm_key(running.action) if running.action is not None else running.label
        c = score.cost
        rec = WindowRecord(
            at=at, id=window_id,
            context=Context(features.schema, features.version,
                            tuple(float(v) for v in features.values), features.missing),
            running=key, running_label=running.label, warmup=c is None,
            terms=dict(score.terms), cost=c.value if c else None,
            objective=self.scorer.objective, choice=choice, tags=dict(tags or {}),
            extra=dict(extra or {}))
        transition = self.joiner.push(rec)
        if transition is not None:
            self.policy.update(transition)
        return rec, transition
