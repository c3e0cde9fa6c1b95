"""The one typed record of a window, and the transition a learner learns from.

Every producer writes windows through :class:`WindowRecord` — the daemon (one per closed
window), the test-bed recorder (one per recorded window) — and every consumer reads them back
through it: ``Policy.update``, offline replay, the replay benchmark.  The journal only stores
what :meth:`WindowRecord.to_journal` gives it.

A window record says what was *measured* in the window (features, raw reward terms, cost under
the configured objective, whether it was a warm-up window the guard does not score) and what
was *decided* at its end: the policy's proposal and full distribution, and — after the guard —
the :class:`Choice`: the arm executed next and its probability under the composite policy∘guard
(what off-policy evaluation needs: when the guard held or forced an arm, that arm had
probability 1 whatever the policy drew).

A :class:`Transition` joins a decision to its consequence: the context at decision time
(window t's features), the executed arm and its composite propensity, and the reward of the
window that ran it (window t+1) — ``None`` when that window was a warm-up window or ran
something else (a crash, an ejection, another launcher).  :class:`TransitionJoiner` makes that
t/t+1 join once, for everyone; no learner re-derives it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scxd.reward import terms_from_metrics

#: Version of the window record's learning fields (``context``, ``choice``, ``running_key``).
RECORD_VERSION = 2


@dataclass(frozen=True)
class Context:
    """The feature vector a decision was made from."""

    schema: str
    version: int
    values: tuple[float, ...]
    missing: tuple[str, ...] = ()

    def array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "version": self.version, "values": list(self.values),
                "missing": list(self.missing)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Context:
        return cls(str(d["schema"]), int(d["version"]), tuple(float(v) for v in d["values"]),
                   tuple(d.get("missing", ())))


@dataclass(frozen=True)
class Choice:
    """What runs next after the guard, and its probability under policy∘guard."""

    arm: str                       # arm key (scxd.policy.arms.arm_key)
    label: str                     # its command line, for people
    propensity: float              # P(this arm | context) under the composite policy∘guard
    distribution: dict[str, float] | None = None   # composite, over arm keys; None = unknown
    by_policy: bool = True         # the policy's draw (False: the guard held or forced it)
    explore: bool = False
    policy: str = ""
    policy_version: str = ""
    arm_set: str = ""              # hash of the arm set the distribution ranges over

    def as_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "label": self.label, "propensity": self.propensity,
                "distribution": self.distribution, "by_policy": self.by_policy,
                "explore": self.explore, "policy": self.policy,
                "policy_version": self.policy_version, "arm_set": self.arm_set}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Choice:
        dist = d.get("distribution")
        return cls(str(d["arm"]), str(d.get("label", d["arm"])), float(d["propensity"]),
                   {str(k): float(v) for k, v in dist.items()} if dist else None,
                   bool(d.get("by_policy", True)), bool(d.get("explore", False)),
                   str(d.get("policy", "")), str(d.get("policy_version", "")),
                   str(d.get("arm_set", "")))


def composite_distribution(policy_distribution: Mapping[str, float], executed: str,
                           by_policy: bool, moves: Mapping[str, str] | None = None
                           ) -> dict[str, float]:
    """The distribution of the executed arm under policy∘guard.  When what runs is the
    policy's draw as the guard maps it (``by_policy``), each arm's probability is the mass of
    every draw that runs as that arm: ``moves`` maps a drawn arm to the arm it runs as, when
    the guard maps it (a quarantined arm runs what ran; a re-anchored one runs fair).  Else a
    point mass on what the guard held or forced."""
    if by_policy and executed in policy_distribution:
        dist = {k: 0.0 for k in policy_distribution}
        moves = moves or {}
        for k, v in policy_distribution.items():
            target = moves.get(k, k)
            dist[target] = dist.get(target, 0.0) + float(v)
        return dist
    return {executed: 1.0}


@dataclass(frozen=True)
class WindowRecord:
    """One window: what was measured in it, and what was decided at its end."""

    at: float                                  # wall time the record was made
    context: Context                           # features of this window
    running: str                               # arm key of what ran in it ("external:…")
    running_label: str
    warmup: bool                               # not scored (post-swap transient, foreign)
    terms: dict[str, float | None] = field(default_factory=dict)   # raw reward inputs
    cost: float | None = None                  # under ``objective``; None when not scored
    objective: str = ""
    choice: Choice | None = None               # decided at the window's end
    id: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)   # run_id, workload, repeat, index
    extra: dict[str, Any] = field(default_factory=dict)  # everything else the journal keeps

    @property
    def reward(self) -> float | None:
        return None if self.cost is None else -self.cost

    def to_journal(self) -> dict[str, Any]:
        """The journal's ``window`` record (its long-standing keys plus the typed ones)."""
        rec: dict[str, Any] = {"kind": "window", "record_version": RECORD_VERSION,
                               "at": self.at, **self.extra, **self.tags}
        if self.id is not None:
            rec["id"] = self.id
        rec.update({
            "features": self.context.as_dict(), "running": self.running_label,
            "running_key": self.running, "warmup": self.warmup, "terms": self.terms,
            "cost": self.cost, "reward": self.reward, "objective": self.objective,
            "executed": self.choice.as_dict() if self.choice else None,
        })
        return rec

    @classmethod
    def from_journal(cls, rec: Mapping[str, Any], key_of_label: Mapping[str, str] | None = None,
                     tag_keys: Iterable[str] = ("run_id", "workload", "repeat", "index")
                     ) -> WindowRecord:
        """Read a ``window`` record, including those written before the typed fields
        existed (then the running arm's key comes from ``key_of_label`` and the choice from
        the logged decision)."""
        labels = key_of_label or {}
        running_label = str(rec.get("running") or rec.get("arm") or "")
        running = str(rec.get("running_key") or labels.get(running_label, running_label))
        choice: Choice | None
        if rec.get("executed"):
            choice = Choice.from_dict(rec["executed"])
        else:
            choice = _legacy_choice(rec, labels)
        cost = rec.get("cost")
        tags = {k: rec[k] for k in tag_keys if k in rec}
        return cls(
            at=float(rec.get("at", 0.0)), context=Context.from_dict(rec["features"]),
            running=running, running_label=running_label, warmup=bool(rec.get("warmup")),
            terms=_current_terms(rec),
            cost=float(cost) if isinstance(cost, int | float) and math.isfinite(cost) else None,
            objective=str(rec.get("objective", "")), choice=choice,
            id=rec.get("id"), tags=tags,
            extra={k: rec[k] for k in ("metrics", "quality", "guard", "events", "swapped",
                                       "previous", "mode") if k in rec})


def _current_terms(rec: Mapping[str, Any]) -> dict[str, float | None]:
    """The raw reward terms under today's definitions: recomputed from the window's metrics
    when it kept them (a term added since the recording, or a redefined one, is then what
    every reader sees: the learner in replay as much as validate-reward), else as recorded."""
    metrics = rec.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        return terms_from_metrics(metrics)
    return dict(rec.get("terms") or {})


def _legacy_choice(rec: Mapping[str, Any], labels: Mapping[str, str]) -> Choice | None:
    """A choice from a record written before ``executed`` existed: the policy's logged
    decision when its arm is what ran next is unknowable here, so the logged propensity of
    the decided arm is used as is (the recorder's design held each arm for its run)."""
    dec = rec.get("decision")
    if not isinstance(dec, Mapping) or "propensity" not in dec:
        return None
    label = str(dec.get("arm") or rec.get("intended") or rec.get("running") or "")
    dist = dec.get("distribution")
    return Choice(
        labels.get(label, label), label, float(dec["propensity"]),
        {labels.get(k, k): float(v) for k, v in dist.items()} if isinstance(dist, Mapping)
        else None, True, bool(dec.get("explore", False)), str(dec.get("policy", "")),
        str(dec.get("policy_version", "")))


@dataclass(frozen=True)
class Transition:
    """(context at decision time, executed arm, composite propensity, reward of the window
    that ran it).  ``reward`` is None when that window was not scored (warm-up) or did not
    run the executed arm."""

    context: np.ndarray
    schema: str
    schema_version: int
    arm: str
    propensity: float
    reward: float | None
    cost: float | None
    terms: dict[str, float | None]
    warmup: bool
    objective: str = ""
    explore: bool = False
    by_policy: bool = True
    policy: str = ""
    distribution: dict[str, float] | None = None
    previous: str = ""                 # arm that ran when the decision was made
    swapped: bool = False              # executed != previous
    decided_in: int | None = None      # window ids
    scored_in: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    @property
    def usable(self) -> bool:
        """Carries a reward a learner may use."""
        return self.reward is not None and not self.warmup


class TransitionJoiner:
    """Joins each window's decision to the next window's measurement.

    ``push`` returns the transition completed by the pushed window (None for the first window,
    after a gap, or when the previous window decided nothing).  ``break_on`` names a tag whose
    change starts a new episode (a dataset's ``run_id``): no transition spans two runs."""

    def __init__(self, break_on: str | None = None):
        self.break_on = break_on
        self._pending: WindowRecord | None = None

    def reset(self) -> None:
        self._pending = None

    def push(self, rec: WindowRecord) -> Transition | None:
        prev, self._pending = self._pending, (rec if rec.choice is not None else None)
        if prev is None or prev.choice is None:
            return None
        if self.break_on and prev.tags.get(self.break_on) != rec.tags.get(self.break_on):
            return None
        c = prev.choice
        ran_it = rec.running == c.arm
        scored = ran_it and not rec.warmup and rec.cost is not None
        return Transition(
            context=prev.context.array(), schema=prev.context.schema,
            schema_version=prev.context.version, arm=c.arm, propensity=c.propensity,
            reward=-rec.cost if scored and rec.cost is not None else None,
            cost=rec.cost if scored else None, terms=rec.terms if ran_it else {},
            warmup=rec.warmup or not ran_it, objective=rec.objective, explore=c.explore,
            by_policy=c.by_policy, policy=c.policy, distribution=c.distribution,
            previous=prev.running, swapped=c.arm != prev.running, decided_in=prev.id,
            scored_in=rec.id, tags=dict(rec.tags), at=rec.at)


def join(records: Iterable[WindowRecord], break_on: str | None = None) -> list[Transition]:
    """All transitions of an ordered stream of window records."""
    joiner = TransitionJoiner(break_on)
    return [t for r in records if (t := joiner.push(r)) is not None]
