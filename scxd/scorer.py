"""The scorer: which windows count, against what, and what reaches the guard.

:mod:`scxd.reward` says how a window's terms become a cost under an objective (pure
functions).  This module owns the state around them — the fair scheduler's reference — and
the rules for using it, so the daemon does not have to know them:

* a window is scored only when the guard's post-swap warm-up is over *and* the actuator
  trusts what ran (the kernel confirmed it; advisory mode always runs fair);
* a scored window of the fair scheduler feeds the reference (its cost first, against the
  reference as it stood, then its terms) and nothing else;
* a scored window of any other scheduler feeds the guard's regression check, never the
  reference; a foreign or unverified scheduler's windows feed nothing.

Not thread-safe: the daemon's loop thread owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scxd.actuator import Running
from scxd.catalog import Action
from scxd.reward import Cost, FairReference, cost, window_terms
from scxd.types import Window


@dataclass(frozen=True)
class Score:
    """One window, judged."""

    terms: dict[str, float | None]   # raw reward terms (journaled whatever happens)
    cost: Cost | None                # None: not scored (warm-up, or not trusted)
    why_unscored: str = ""           # "warm-up", "external:OPS", ... ("" when scored)
    for_guard: float | None = None   # the cost the regression guard must see, if any
    # A warm-up window of a scheduler other than fair is not scored, but its cost still goes
    # to the guard's fast path (a broken pick shows in its first window; a good one's
    # warm-up never costs that much: scxd.guard).
    transient: bool = False

    @property
    def scored(self) -> bool:
        return self.cost is not None


class Scorer:
    def __init__(self, objective: str, fair: Action, reference: FairReference | None = None):
        self.objective = objective
        self.fair = fair  # the reference is the fair scheduler with its default tunables
        self.reference = reference or FairReference()

    def score(self, window: Window, running: Running, warm: bool) -> Score:
        """``warm``: the guard's warm-up after the last swap is over for this window."""
        return self.score_terms(window_terms(window), running, warm)

    def score_terms(self, terms: dict[str, float | None], running: Running, warm: bool
                    ) -> Score:
        """The same judgement from a window's raw terms (replay has terms, not windows)."""
        if not running.trusted:
            return Score(terms, None, f"{running.label}: not confirmed by the kernel")
        if not warm:
            if self.fair.same_as(running.action) or not self.reference.windows():
                return Score(terms, None, "warm-up after a swap")
            value = cost(terms, self.objective, self.reference.means()).value
            return Score(terms, None, "warm-up after a swap", for_guard=value, transient=True)
        window_cost = cost(terms, self.objective, self.reference.means())
        if self.fair.same_as(running.action):
            self.reference.add_cost(self.objective, window_cost.value)
            self.reference.add(terms)
            return Score(terms, window_cost)
        return Score(terms, window_cost, for_guard=window_cost.value)

    def baseline_cost(self) -> float | None:
        """The fair scheduler's own recent cost under the objective (the guard's yardstick)."""
        return self.reference.baseline_cost(self.objective)

    def fair_costs(self) -> list[float]:
        """The fair scheduler's recent window costs (the regression test's sample)."""
        return self.reference.costs(self.objective)

    def as_dict(self) -> dict[str, Any]:
        return self.reference.as_dict()
