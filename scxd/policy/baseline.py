"""The two honest baseline policies: ``fixed`` and ``rule``.

``fixed`` always chooses the configured scheduler and preset (falling back to the fair
scheduler, said in the reason, when that one is not available here).

``rule`` — a threshold rule like scx_loader's ``--auto`` (which starts scx_lavd when a CPU
is > 90 % busy for 5 s and stops it after 30 s below):

* a window is *busy* when its busiest CPU's mean utilisation ≥ ``busy_cpu_pct``;
* after ``busy_windows`` consecutive busy windows, choose the first available scheduler of
  ``busy_schedulers`` (default preset);
* after ``idle_windows`` consecutive quiet windows, choose the fair scheduler;
* otherwise keep the current choice (hysteresis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from scxd.catalog import Action, CatalogError
from scxd.config import PolicyConfig
from scxd.features import FeatureVector
from scxd.policy import Decision, point_mass
from scxd.probe import ProbedCatalog

if TYPE_CHECKING:
    from scxd.policy.base import PolicyEnv
    from scxd.record import Transition


def _probed(env: PolicyEnv) -> ProbedCatalog:
    if env.probed is None:
        raise ValueError("this policy needs the probed catalog")
    return env.probed


class FixedPolicy:
    name = "fixed"
    version = "fixed-1"

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        probed = _probed(env)
        self.reason = f"configured: {cfg.scheduler} preset {cfg.preset}"
        try:
            self.target = probed.catalog.action(cfg.scheduler, preset=cfg.preset)
        except CatalogError as exc:
            raise ValueError(f"policy.scheduler/preset: {exc}") from None
        avail = probed.availability.get(cfg.scheduler)
        if avail is not None and not avail.available:
            self.reason = f"{cfg.scheduler} unavailable ({avail.reason}); holding fair"
            self.target = probed.catalog.fair()

    def decide(self, features: FeatureVector, eligible: Sequence[Action],
               current: Action | None = None) -> Decision:
        arms = list(eligible) if any(a.same_as(self.target) for a in eligible) else \
            [*eligible, self.target]
        return Decision(self.target, point_mass(self.target, arms), False, self.name,
                        self.version, self.reason, {self.target.label(): 1.0})

    def update(self, transition: Transition) -> None:
        """A fixed policy learns nothing."""


class RulePolicy:
    name = "rule"
    version = "rule-1"

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        probed = _probed(env)
        self.cfg = cfg
        self.fair = probed.catalog.fair()
        self.busy_target: Action | None = None
        for name in cfg.busy_schedulers:
            avail = probed.availability.get(name)
            if avail is not None and avail.available:
                self.busy_target = probed.catalog.action(name)
                break
        self.busy_run = 0
        self.quiet_run = 0
        self.choice = self.fair

    def decide(self, features: FeatureVector, eligible: Sequence[Action],
               current: Action | None = None) -> Decision:
        # The "busiest_cpu" feature is the busiest CPU's utilisation as a fraction.
        busiest = 100.0 * features.as_dict()["busiest_cpu"]
        busy = busiest >= self.cfg.busy_cpu_pct
        self.busy_run = self.busy_run + 1 if busy else 0
        self.quiet_run = 0 if busy else self.quiet_run + 1
        if self.busy_target is None:
            reason = (f"no scheduler of {self.cfg.busy_schedulers} is available; "
                      "holding fair")
            self.choice = self.fair
        elif self.busy_run >= self.cfg.busy_windows:
            self.choice = self.busy_target
            reason = (f"busiest CPU {busiest:.0f}% ≥ {self.cfg.busy_cpu_pct:.0f}% for "
                      f"{self.busy_run} window(s)")
        elif self.quiet_run >= self.cfg.idle_windows:
            self.choice = self.fair
            reason = (f"busiest CPU below {self.cfg.busy_cpu_pct:.0f}% for "
                      f"{self.quiet_run} window(s)")
        else:
            reason = (f"busiest CPU {busiest:.0f}%: keeping {self.choice.label()} "
                      f"(busy {self.busy_run}/{self.cfg.busy_windows}, quiet "
                      f"{self.quiet_run}/{self.cfg.idle_windows})")
        arms = list(eligible) if any(a.same_as(self.choice) for a in eligible) else \
            [*eligible, self.choice]
        scores = {"busiest_cpu_pct": busiest, "busy_windows": float(self.busy_run),
                  "quiet_windows": float(self.quiet_run)}
        return Decision(self.choice, point_mass(self.choice, arms), False, self.name,
                        self.version, reason, scores)

    def update(self, transition: Transition) -> None:
        """The rule does not learn."""

