"""Validated ``[policy.<name>]`` config sections, one model per registered policy.

Torch-free on purpose: :mod:`scxd.config` imports these models, and the daemon must be able to
validate a configuration without loading torch.  Each learner module takes its model in its
constructor; :mod:`scxd.policy.registry` maps a policy name to (factory, model).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _unit(u: str) -> dict[str, str]:
    return {"unit": u}


class LearnerSection(BaseModel):
    """A learner's table: unknown keys are errors, values immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UniformConfig(LearnerSection):
    """uniform: every eligible arm with equal probability (the recording design's policy)."""


class BestFixedConfig(LearnerSection):
    """best_fixed: always one arm — the hindsight-best arm in the replay benchmark."""

    arm: str = Field("", description="arm key or command line (e.g. \"scx_qmap -s 5000\") to "
                     "hold; empty = the fair scheduler (the replay benchmark fills in the "
                     "hindsight-best arm of its evaluation data)")


class LinUCBConfig(LearnerSection):
    """linucb: disjoint linear UCB (Li et al. 2010) over the window features."""

    alpha: float = Field(0.2, ge=0.0, le=100.0, description="width of the confidence bonus "
                         "(standard deviations)")
    ridge: float = Field(1.0, gt=0.0, le=1e6, description="ridge regularisation λ")
    discount: float = Field(0.995, gt=0.0, le=1.0, description="per-update forgetting "
                            "factor of the statistics (1 = never forget)")
    p_min: float = Field(0.01, ge=0.0, le=0.5, description="probability floor of every "
                         "eligible arm (keeps propensities usable for offline evaluation)")


class LinTSConfig(LearnerSection):
    """lints: linear Thompson sampling (Agrawal & Goyal 2013), exact propensities by Monte
    Carlo over the posterior."""

    scale: float = Field(0.1, gt=0.0, le=100.0, description="posterior scale v")
    ridge: float = Field(1.0, gt=0.0, le=1e6, description="ridge regularisation λ")
    discount: float = Field(0.995, gt=0.0, le=1.0, description="forgetting factor")
    draws: int = Field(64, ge=8, le=4096, description="posterior draws that estimate the "
                       "action distribution the arm is then sampled from")
    p_min: float = Field(0.01, ge=0.0, le=0.5, description="probability floor")


class SquareCBConfig(LearnerSection):
    """squarecb: inverse-gap weighting over ridge-regression reward estimates (Foster &
    Rakhlin 2020): p(a) = 1/(K + γ(ŷ_best − ŷ_a)), γ = gamma_scale·√t."""

    gamma_scale: float = Field(10.0, gt=0.0, le=1e4, description="γ = gamma_scale·√t")
    ridge: float = Field(1.0, gt=0.0, le=1e6, description="ridge regularisation λ")
    discount: float = Field(0.995, gt=0.0, le=1.0, description="forgetting factor")


class SWUCBConfig(LearnerSection):
    """swucb: sliding-window UCB (Garivier & Moulines 2011), context-free, with a floor."""

    window: int = Field(200, ge=10, le=100000, json_schema_extra=_unit("windows"),
                        description="rewards older than this many updates are forgotten")
    c: float = Field(0.5, ge=0.0, le=100.0, description="exploration constant")
    p_min: float = Field(0.01, ge=0.0, le=0.5, description="probability floor")


class ASAConfig(LearnerSection):
    """asa: offline classifier (features → best arm) with voting, trained on recorded
    windows (ASA, arXiv 2511.11628); does not learn online."""

    members: int = Field(7, ge=1, le=101, description="bagged softmax-regression voters")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="vote share below which "
                                  "the arm held last is kept (AutoSA's minimum confidence)")
    p_min: float = Field(0.0, ge=0.0, le=0.5, description="probability floor")
    label: Literal["cost", "outcome"] = Field(
        "cost", description="what makes an arm the best for a training window: its mean "
        "cost under the objective, or the workload's own outcome where recorded")
    risk_check: bool = Field(True, description="the voted arm runs only if its expected "
                             "outcome loss, over the training workloads weighted by how much "
                             "the window resembles each (a second bagged classifier), is no "
                             "larger than the fair scheduler's; else fair runs")
    novelty_check: bool = Field(True, description="a window farther from every training "
                                "workload (Mahalanobis) than the training windows' "
                                "novelty_quantile, novelty_windows times in a row, runs "
                                "the fair scheduler")
    novelty_windows: int = Field(2, ge=1, le=100, description="windows in a row that must "
                                 "resemble no training workload before the novelty check "
                                 "runs fair (and some training workload before it stops)")
    novelty_quantile: float = Field(0.99, ge=0.5, le=1.0, description="share of the training "
                                    "windows the novelty check must let through (used when "
                                    "a model is pretrained; a loaded model keeps its own)")
    novelty_shrinkage: float = Field(0.1, ge=0.0, le=1.0, description="how far each training "
                                     "workload's covariance is shrunk towards its diagonal "
                                     "(used when a model is pretrained; a loaded model keeps "
                                     "its own)")


class VWConfig(LearnerSection):
    """vw_squarecb / vw_epsilon: Vowpal Wabbit ``--cb_explore_adf`` (optional extra
    ``pip install vowpalwabbit``)."""

    epsilon: float = Field(0.05, ge=0.0, le=1.0, description="vw_epsilon: ε")
    gamma_scale: float = Field(10.0, gt=0.0, le=1e4, description="vw_squarecb: γ scale")
    extra_args: str = Field("", description="more VW arguments, appended verbatim")


class NetworkConfig(LearnerSection):
    """network: the torch policy — features → scheduler, then each parameter given the
    scheduler; ε-greedy or UCB exploration; policy gradient with a learned critic."""

    exploration: Literal["epsilon", "ucb"] = Field(
        "ucb", description="epsilon = ε-greedy with decay and a floor; ucb = optimism from "
        "the critic ensemble's disagreement, with a probability floor")
    epsilon_start: float = Field(0.3, ge=0.0, le=1.0, description="ε at the start")
    epsilon_floor: float = Field(0.002, ge=0.0, le=1.0, description="ε never decays below "
                                 "this")
    epsilon_half_life: int = Field(200, ge=1, le=10**7, json_schema_extra=_unit("windows"),
                                   description="updates after which ε − floor halves")
    ucb_beta: float = Field(1.0, ge=0.0, le=100.0, description="UCB bonus in ensemble "
                            "standard deviations")
    floor: float = Field(0.002, ge=0.0, le=1.0, description="ucb mode: probability mass "
                         "spread evenly over the eligible arms (each gets floor/n), so every "
                         "propensity stays usable for offline evaluation")
    hidden: int = Field(64, ge=4, le=1024, description="width of the shared hidden layers")
    ensemble: int = Field(5, ge=2, le=32, description="critic heads whose disagreement is "
                          "the uncertainty estimate")
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="Adam learning rate offline "
                      "(pretraining) and before the first ``warm_updates`` online updates")
    online_lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam learning rate online "
                             "once trained (noisy windows: small steps keep the choice "
                             "stable)")
    warm_updates: int = Field(200, ge=0, le=10**7, json_schema_extra=_unit("updates"),
                              description="updates after which online_lr applies")
    entropy: float = Field(0.01, ge=0.0, le=10.0, description="entropy bonus weight")
    temperature: float = Field(0.1, gt=0.0, le=100.0, description="softmax temperature of "
                               "the critic-distilled policy target")
    replay: int = Field(512, ge=16, le=100000, json_schema_extra=_unit("transitions"),
                        description="sliding window of recent transitions trained on "
                        "(non-stationarity: older ones are forgotten)")
    batch: int = Field(32, ge=1, le=4096, description="transitions per gradient step")
    steps: int = Field(1, ge=1, le=100, description="gradient steps per update")
    max_weight: float = Field(10.0, ge=1.0, le=1e4, description="clip of the importance "
                              "weights π/μ in the policy-gradient loss")
    switch_cost: float = Field(0.05, ge=0.0, le=10.0, description="cost charged to a "
                               "transition whose arm differs from the one running (swaps "
                               "have a price beyond warm-up)")
    imitation: float = Field(3.0, ge=0.0, le=100.0, description="offline warm start: "
                             "weight of a cross-entropy pulling the actor towards each "
                             "training workload's best arm by mean logged reward (0: policy "
                             "gradient alone)")
    change_threshold: float = Field(3.0, gt=0.0, le=1e4, description="Page-Hinkley "
                                    "threshold on the critic's reward residual (reward units "
                                    "summed over windows); crossing it re-opens exploration")
    context_shift: float = Field(2.0, gt=0.0, le=100.0, description="a window whose "
                                 "standardised features differ from their recent average by "
                                 "more than this (mean absolute standard deviations) is a "
                                 "change of workload and re-opens exploration")
    challenger_margin: float = Field(0.05, ge=-10.0, le=10.0, description="baseline "
                                     "challenger: another arm replaces the fair scheduler "
                                     "only when the critic expects it to be this much better "
                                     "(reward units; 0.05 ≈ 5 %)")
    challenger_kappa: float = Field(2.0, ge=0.0, le=100.0, description="... with this many "
                                    "ensemble standard deviations to spare")
    evidence_windows: int = Field(12, ge=1, le=10**4, json_schema_extra=_unit("windows"),
                                  description="decisions average the values of up to this "
                                  "many windows since the running arm or the workload last "
                                  "changed (noisy windows must not flip the choice)")
    change_reopen: float = Field(0.2, ge=0.0, le=1.0, description="ε (or the ucb floor "
                                 "mass) right after a detected change")
    reopen_half_life: int = Field(6, ge=1, le=10**6, json_schema_extra=_unit("windows"),
                                  description="decisions after which that extra "
                                  "exploration halves")
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads")

    @model_validator(mode="after")
    def _floor_below_start(self) -> NetworkConfig:
        if self.epsilon_floor > self.epsilon_start:
            raise ValueError(f"epsilon_floor ({self.epsilon_floor}) must be ≤ epsilon_start "
                             f"({self.epsilon_start})")
        return self
