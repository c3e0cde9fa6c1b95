"""The guard between policy and actuator: what may be applied, and when.

Rules, in order (:meth:`Guard.review`):

1. **pin** — a user-forced scheduler is applied at once and held; the policy is ignored.
2. **panic** — after ``panic_failures`` consecutive actuator failures, or a failed roll
   back, the fair scheduler is forced and the guard freezes until someone thaws it.
3. **freeze** — hold whatever runs (optionally until an expiry).
4. **regression** — if the median cost of the chosen scheduler's last ``regression_windows``
   scored windows exceeds the fair scheduler's recent baseline by more than
   log(1 + ``regression_margin``) — costs estimate the fraction of progress lost against
   the fair reference (:mod:`scxd.reward`: log ratios of work rates, differences of wait
   shares), so a margin of 0.5 means "about 40 % of progress lost" — go back to the fair
   scheduler now (this bypasses dwell and budget: it is the safety path).  The fast path:
   when each of the last ``regression_fast_windows`` windows (the warm-up one counts here)
   exceeds the baseline by log(1 + ``regression_fast_margin``), go back at once — a broken
   pick (a scheduler that makes a latency workload's wakeups twenty times slower) is not
   left running for ``regression_windows`` windows.  The test: within
   ``regression_fresh`` seconds of leaving fair, and while fair's last windows agree with
   its reference, a median test against fair's own recent window costs
   (:meth:`Guard.significantly_worse`) catches small steady losses that no fixed margin
   sees.  The scheduler removed is then **quarantined**: refused for ``quarantine``
   seconds, so the policy cannot put straight back what just failed.
5. **quarantine** — a proposal of a quarantined scheduler is held.
6. **dwell** — no swap before ``min_dwell`` seconds on the current scheduler.
7. **budget** — at most ``swaps_per_hour`` swaps in any sliding hour.
8. **re-anchor** — a swap from one non-fair scheduler to another goes to fair instead
   (:meth:`Guard.reanchor_reason`); the policy may move on after the dwell.

After every swap the next ``warmup_windows`` windows are *not scored* (bypass mode and cold
caches make them the transition's, not the new scheduler's).  Every hold, override and state
change is a :class:`GuardEvent`; the daemon journals and counts them.  Pure: time comes in
as ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from scxd.catalog import Action
from scxd.config import GuardConfig

HOUR = 3600.0


class GuardEventKind(StrEnum):
    """Every kind of :class:`GuardEvent` the guard emits (journal, history, metrics)."""

    PIN = "pin"                            # a user pinned a scheduler
    UNPIN = "unpin"
    FREEZE = "freeze"                      # swaps held (by a user or by panic)
    THAW = "thaw"
    FREEZE_EXPIRED = "freeze_expired"
    PANIC = "panic"                        # too many actuator failures: fair, frozen
    REGRESSION = "regression"              # current measurably worse than fair: back to fair
    DWELL_HOLD = "dwell_hold"              # a swap waits for the minimum dwell time
    BUDGET_HOLD = "budget_hold"            # a swap refused by the hourly budget
    FROZEN_HOLD = "frozen_hold"            # a swap refused because frozen
    QUARANTINE_HOLD = "quarantine_hold"    # a swap to a scheduler that just regressed
    REANCHOR = "reanchor"                  # non-fair to non-fair swap sent to fair first
    ACTUATOR_FAILURE = "actuator_failure"  # a swap failed (counts towards panic)


@dataclass(frozen=True)
class GuardEvent:
    kind: GuardEventKind
    detail: str

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    apply: Action | None           # what to apply now (None = hold)
    events: tuple[GuardEvent, ...]
    why: str
    # True when what runs next is the policy's own draw: its proposal is applied or kept,
    # and any other proposal would have been applied too.  Then the probability of the
    # executed arm under policy∘guard is the policy's; otherwise the guard decided alone
    # and that probability is 1 (scxd.record.composite_distribution).
    policy_draw: bool = False
    # Where the guard maps a draw deterministically (:meth:`image`), the executed arm is
    # still the policy's draw: its probability is the mass of every draw that runs as it.
    # Quarantined schedulers: a draw of one runs what runs now (``kept``).  Re-anchoring:
    # a draw of any other non-fair scheduler runs ``redirect_to`` (fair).
    refused: tuple[Action, ...] = ()
    kept: Action | None = None       # what runs at the review
    redirect_to: Action | None = None

    def image(self, drawn: Action) -> Action:
        """What runs when the policy draws ``drawn`` (given ``policy_draw``)."""
        if self.kept is not None and (drawn.same_as(self.kept) or
                                      any(drawn.same_as(a) for a in self.refused)):
            return self.kept
        if self.redirect_to is not None and not drawn.is_fair:
            return self.redirect_to
        return drawn


@dataclass
class Guard:
    cfg: GuardConfig
    current_since: float = 0.0
    pinned: Action | None = None
    frozen: bool = False
    frozen_until: float = math.inf
    frozen_reason: str = ""
    panic: bool = False
    warmup_left: int = 0
    consecutive_failures: int = 0
    swaps: deque = field(default_factory=deque)            # monotonic times of swaps
    scored_costs: deque = field(default_factory=deque)     # current scheduler's costs
    fast_costs: deque = field(default_factory=deque)       # … and its warm-up windows'
    counts: dict = field(default_factory=dict)             # event kind → count
    quarantined: list = field(default_factory=list)        # [(Action, until, why)]
    fair_left_at: float | None = None    # when what runs replaced the fair scheduler

    def _event(self, kind: GuardEventKind, detail: str) -> GuardEvent:
        self.counts[kind.value] = self.counts.get(kind.value, 0) + 1
        return GuardEvent(kind, detail)

    # -- user controls --------------------------------------------------------------------
    def freeze(self, now: float, duration: float | None = None, reason: str = "user"
               ) -> GuardEvent:
        self.frozen = True
        self.frozen_until = now + duration if duration else math.inf
        self.frozen_reason = reason
        what = f"for {duration:.0f} s" if duration else "until thawed"
        return self._event(GuardEventKind.FREEZE, f"frozen {what} ({reason})")

    def thaw(self) -> GuardEvent:
        self.frozen, self.frozen_until, self.frozen_reason = False, math.inf, ""
        was_panic, self.panic = self.panic, False
        self.consecutive_failures = 0
        return self._event(GuardEventKind.THAW,
                           "thawed" + (" (panic cleared)" if was_panic else ""))

    def pin(self, action: Action) -> GuardEvent:
        self.pinned = action
        return self._event(GuardEventKind.PIN, f"pinned {action.label()}")

    def unpin(self) -> GuardEvent:
        old, self.pinned = self.pinned, None
        return self._event(GuardEventKind.UNPIN, f"unpinned {old.label() if old else 'nothing'}")

    # -- what the daemon reports --------------------------------------------------------------
    def on_swap(self, now: float, swapped: bool, left: Action | None = None,
                fair: Action | None = None) -> None:
        """A swap was attempted (``swapped``: the running scheduler changed; ``left``: what
        ran before it, when known; ``fair``: the reference fair scheduler, default tunables
        — a tuned fair arm's windows do not feed the reference)."""
        if swapped:
            self.swaps.append(now)
            self.current_since = now
            self.warmup_left = self.cfg.warmup_windows
            self.scored_costs.clear()
            self.fast_costs.clear()
            if left is None:
                self.fair_left_at = None
            elif left.same_as(fair) if fair is not None else left.is_fair:
                self.fair_left_at = now
            # else: a hop between two others; fair's windows are as old as they were

    def on_kernel_change(self, now: float) -> None:
        """The kernel's scheduler changed without a swap of ours (crash, ejection, takeover,
        restart): warm up again and restart the dwell clock, but spend no budget."""
        self.current_since = now
        self.warmup_left = self.cfg.warmup_windows
        self.scored_costs.clear()
        self.fast_costs.clear()
        # fair_left_at stays: fair's windows are no older for the restart

    def on_apply_result(self, ok: bool, detail: str, now: float,
                        fell_to_fair: bool = False) -> list[GuardEvent]:
        events: list[GuardEvent] = []
        if ok:
            self.consecutive_failures = 0
            return events
        self.consecutive_failures += 1
        events.append(self._event(GuardEventKind.ACTUATOR_FAILURE,
                                  f"{detail} ({self.consecutive_failures}"
                                  f"/{self.cfg.panic_failures} in a row)"))
        if self.consecutive_failures >= self.cfg.panic_failures and not self.panic:
            self.panic = True
            events.append(self._event(GuardEventKind.PANIC,
                                      f"{self.consecutive_failures} actuator failures in a "
                                      "row: fair scheduler forced, frozen until thawed"))
            events.append(self.freeze(now, None, "panic"))
        return events

    def window_scored(self) -> bool:
        """Call once per closed window: False while the post-swap warm-up lasts."""
        if self.warmup_left > 0:
            self.warmup_left -= 1
            return False
        return True

    def record_cost(self, cost: float, transient: bool = False) -> None:
        """A window's cost of what runs; ``transient``: a warm-up window, which only the
        fast path sees."""
        self.fast_costs.append(cost)
        while len(self.fast_costs) > self.cfg.regression_fast_windows:
            self.fast_costs.popleft()
        if transient:
            return
        self.scored_costs.append(cost)
        while len(self.scored_costs) > self.cfg.regression_windows:
            self.scored_costs.popleft()

    def gross(self, cost: float, baseline: float) -> bool:
        """A window that costs more than the fair baseline by the fast margin."""
        return cost - baseline > math.log1p(self.cfg.regression_fast_margin)

    def regressed(self, baseline: float | None, fair_costs: Sequence[float] = (),
                  now: float | None = None) -> str:
        """Non-empty (the evidence) when the current scheduler is measurably worse.
        ``fair_costs`` are compared only while fresh (see :meth:`fair_costs_fresh`)."""
        if baseline is None:
            return ""
        fast = list(self.fast_costs)[-self.cfg.regression_fast_windows:]
        if len(fast) == self.cfg.regression_fast_windows and self.gross(min(fast), baseline):
            return (f"each of the last {len(fast)} windows costs ≥ {min(fast):.3f} vs fair "
                    f"baseline {baseline:.3f}: ×{math.exp(min(fast) - baseline):.2f} worse "
                    f"(fast margin {self.cfg.regression_fast_margin:.0%})")
        recent = list(self.scored_costs)[-self.cfg.regression_windows:]
        significant = self.significantly_worse(recent, fair_costs) \
            if now is not None and self.fair_costs_fresh(now) else ""
        if significant:
            return significant
        if len(self.scored_costs) < self.cfg.regression_windows:
            return ""
        median = statistics.median(recent)
        if median - baseline > math.log1p(self.cfg.regression_margin):
            return (f"median cost {median:.3f} over {len(self.scored_costs)} windows vs fair "
                    f"baseline {baseline:.3f}: ×{math.exp(median - baseline):.2f} worse "
                    f"(margin {self.cfg.regression_margin:.0%})")
        return ""

    def fair_costs_fresh(self, now: float) -> bool:
        """The fair scheduler's recent windows describe the present workload: what runs
        replaced fair less than ``regression_fresh`` seconds ago.  Costs are measured
        against fair's terms; across a workload change they compare different workloads."""
        return self.fair_left_at is not None and \
            now - self.fair_left_at <= self.cfg.regression_fresh

    def significantly_worse(self, costs: Sequence[float], fair_costs: Sequence[float]) -> str:
        """Non-empty when ``costs`` (the current scheduler's last windows) are worse than
        the fair scheduler's own recent window costs beyond their noise: a two-sample test
        on medians (robust spread pooled from both samples' median absolute deviations,
        z > ``regression_z``) that also needs a practical difference of
        ``regression_min_margin``.  A fixed margin alone misses a quiet workload, where a
        scheduler that doubles a latency test's wakeup latency moves the cost by 0.01."""
        if self.cfg.regression_z <= 0 or len(fair_costs) < 3 or len(costs) < 3:
            return ""
        cur, ref = statistics.median(costs), statistics.median(fair_costs)
        diff = cur - ref
        if diff <= math.log1p(self.cfg.regression_min_margin) or self.unsettled(fair_costs):
            return ""
        spread = 1.4826 * statistics.median([abs(c - cur) for c in costs] +
                                            [abs(c - ref) for c in fair_costs])
        se = 1.2533 * spread * math.sqrt(1 / len(costs) + 1 / len(fair_costs))
        z = diff / se if se > 0 else math.inf
        if z <= self.cfg.regression_z:
            return ""
        return (f"median cost {cur:.4f} over {len(costs)} windows vs fair's {ref:.4f} over "
                f"{len(fair_costs)}: z = {z:.1f} > {self.cfg.regression_z:g} "
                f"(×{math.exp(diff):.3f})")

    def unsettled(self, fair_costs: Sequence[float]) -> str:
        """Non-empty when the fair scheduler's last windows disagree with its reference: a
        jump there is a new workload that the reference does not describe yet (the
        reference is a median of recent fair windows: it follows within a few windows)."""
        if len(fair_costs) < 3:
            return f"{len(fair_costs)} fair windows measured (3 needed)"
        ref = statistics.median(fair_costs)
        spread = 1.4826 * statistics.median([abs(c - ref) for c in fair_costs])
        limit = max(3 * spread, math.log1p(self.cfg.regression_min_margin))
        off = [c for c in list(fair_costs)[-3:] if abs(c - ref) > limit]
        if off:
            return (f"a recent fair window cost {off[-1]:+.3f} against its reference's "
                    f"{ref:+.3f} (limit ±{limit:.3f})")
        return ""

    def active_quarantine(self, now: float) -> tuple[Action, ...]:
        """The schedulers refused now (expired entries are dropped)."""
        self.quarantined = [q for q in self.quarantined if q[1] > now]
        return tuple(a for a, _, _ in self.quarantined)

    def quarantine_of(self, action: Action, now: float) -> str:
        """Why ``action`` is refused now ('' when it is not quarantined)."""
        for held, until, why in self.quarantined:
            if until > now and held.same_as(action):
                return f"regressed {why}; quarantined for {until - now:.0f} s more"
        return ""

    def swaps_last_hour(self, now: float) -> int:
        while self.swaps and now - self.swaps[0] > HOUR:
            self.swaps.popleft()
        return len(self.swaps)

    # -- the decision ---------------------------------------------------------------------------
    def review(self, proposed: Action, current: Action, fair: Action, now: float,
               baseline: float | None = None, fair_costs: Sequence[float] = ()) -> Verdict:
        events: list[GuardEvent] = []
        if self.frozen and now >= self.frozen_until:
            self.frozen, self.frozen_until, self.frozen_reason = False, math.inf, ""
            events.append(self._event(GuardEventKind.FREEZE_EXPIRED, "freeze expired"))
        if self.pinned is not None:
            target = self.pinned
            return Verdict(None if target.same_as(current) else target, tuple(events),
                           f"pinned {target.label()}")
        if self.panic:
            return Verdict(None if current.is_fair else fair, tuple(events),
                           "panic: fair scheduler held until thawed")
        if self.frozen:
            if not proposed.same_as(current):
                events.append(self._event(GuardEventKind.FROZEN_HOLD,
                                          f"frozen: {proposed.label()} not applied, "
                                          f"holding {current.label()}"))
            return Verdict(None, tuple(events), "frozen")
        evidence = "" if current.is_fair else self.regressed(baseline, fair_costs, now)
        if evidence:
            events.append(self._event(GuardEventKind.REGRESSION,
                                      f"{current.label()} → fair: {evidence}"))
            # Even when the yardstick may be stale (a workload change since fair ran): held-out
            # workloads in the replay benchmark lost 1.6-2.4x more when only fresh verdicts
            # quarantined, and a wrong quarantine costs only time on fair.
            if self.cfg.quarantine > 0:
                self.quarantined = [q for q in self.quarantined if not q[0].same_as(current)]
                self.quarantined.append((current, now + self.cfg.quarantine,
                                         f"at {now:.0f} s ({evidence.split(':')[0]})"))
            return Verdict(fair, tuple(events), "regression guard")
        refused = tuple(a for a in self.active_quarantine(now) if not a.same_as(current))
        reanchor = "" if current.is_fair else self.reanchor_reason(baseline, now)
        maps = {"refused": refused, "kept": current,
                "redirect_to": fair if reanchor else None}
        if proposed.same_as(current):
            return Verdict(None, tuple(events), "policy keeps the current scheduler",
                           policy_draw=not self.swap_blocked(now), **maps)
        held = self.quarantine_of(proposed, now)
        if held:
            events.append(self._event(GuardEventKind.QUARANTINE_HOLD,
                                      f"{proposed.label()} refused: {held}"))
            return Verdict(None, tuple(events), "quarantine",
                           policy_draw=not self.swap_blocked(now), **maps)
        dwell = now - self.current_since
        if dwell < self.cfg.min_dwell:
            events.append(self._event(GuardEventKind.DWELL_HOLD, f"{proposed.label()} waits: "
                                      f"{dwell:.0f} s of {self.cfg.min_dwell:.0f} s dwell"))
            return Verdict(None, tuple(events), "minimum dwell time")
        used = self.swaps_last_hour(now)
        if used >= self.cfg.swaps_per_hour:
            events.append(self._event(GuardEventKind.BUDGET_HOLD,
                                      f"{proposed.label()} refused: {used} swaps in the "
                                      f"last hour (budget {self.cfg.swaps_per_hour})"))
            return Verdict(None, tuple(events), "swap budget")
        if reanchor and not proposed.is_fair:
            events.append(self._event(GuardEventKind.REANCHOR,
                                      f"{current.label()} → fair, not {proposed.label()}: "
                                      f"{reanchor}"))
            return Verdict(fair, tuple(events), "re-anchor on fair", policy_draw=True, **maps)
        return Verdict(proposed, tuple(events), "policy", policy_draw=True, **maps)

    def reanchor_reason(self, baseline: float | None, now: float) -> str:
        """Why a swap from one non-fair scheduler to another goes to fair instead ('' = off).
        It always does: fair is safe, and its windows of the present workload are what the
        next pick is judged against.  The reason names the most pressing cause: the last
        window of what runs cost more than the fair baseline by the fast margin (it is
        failing in the present context, often a new workload: leaving it for another
        untried pick is a blind jump), or fair's windows are older than
        ``regression_fresh``.  Measured on the replay benchmark: hopping between two
        non-fair schedulers whenever fair's windows were fresh cost SquareCB 34 % of the
        workloads' outcome where going through fair cost 16 %; asa 6.9 % and 6.8 %."""
        if not self.cfg.reanchor:
            return ""
        last = self.fast_costs[-1] if self.fast_costs else None
        if baseline is not None and last is not None and self.gross(last, baseline):
            return (f"its last window cost {last:.3f} vs fair baseline {baseline:.3f} "
                    f"(×{math.exp(last - baseline):.2f})")
        if not self.fair_costs_fresh(now):
            return (f"fair last ran more than {self.cfg.regression_fresh:.0f} s ago: "
                    "measure it before the next pick")
        return "every pick starts from fair, so that it is judged against the present"

    def swap_blocked(self, now: float) -> str:
        """Why a swap to another arm would be held now by dwell or budget ('' = it would
        not).  Pure: no event is counted."""
        if now - self.current_since < self.cfg.min_dwell:
            return "minimum dwell time"
        if self.swaps_last_hour(now) >= self.cfg.swaps_per_hour:
            return "swap budget"
        return ""

    def status(self, now: float) -> dict:
        return {
            "frozen": self.frozen, "frozen_reason": self.frozen_reason,
            "frozen_for_s": None if not self.frozen or math.isinf(self.frozen_until)
            else max(0.0, self.frozen_until - now),
            "pinned": self.pinned.as_dict() if self.pinned else None, "panic": self.panic,
            "warmup_windows_left": self.warmup_left,
            "on_current_for_s": now - self.current_since,
            "swaps_last_hour": self.swaps_last_hour(now),
            "swap_budget_per_hour": self.cfg.swaps_per_hour,
            "consecutive_failures": self.consecutive_failures,
            "quarantined": [{"scheduler": a.label(), "for_s": until - now, "why": why}
                            for a, until, why in self.quarantined if until > now],
            "events": dict(self.counts),
        }
