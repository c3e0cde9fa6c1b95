"""``network``: the torch policy — the only module of scxd that imports torch.

**Model.**  A shared trunk (two layers, ``hidden`` wide) reads the standardised window features.
Two heads read the trunk:

* the *actor*: a factorised distribution — a scheduler factor, then for every parameter that
  varies among that scheduler's arms a factor over its values given the scheduler
  (:class:`scxd.policy.arms.Factorisation`).  An arm's probability is the exact product of
  its factors, renormalised over the eligible arms (a no-op over the full grid product), so a
  space of 20 booleans costs 20 two-way factors, not 2²⁰ outputs, and every propensity is
  exact;
* the *critic*: an ensemble of ``ensemble`` additive value models over the same factors
  (Q(x, a) = q_s(x) + Σ_d q_{s,d,v}(x)); the members see different bootstrap weights of
  the data, and their disagreement σ(x, a) is the uncertainty estimate.

**Exploration** (``exploration``), always as a distribution with an exact propensity:

* the actor's own values are v(a) = α·log π(a|x) (with entropy weight α the actor tends to
  π ∝ exp(Q/α)), less ``switch_cost`` for every arm but the one running (hysteresis);
* ``epsilon`` — (1 − ε) on the best v, ε spread uniformly, ε decaying from
  ``epsilon_start`` to ``epsilon_floor`` with half-life ``epsilon_half_life`` updates;
* ``ucb`` — with probability ε (same schedule) the arm maximising v(a) + β·σ(x, a) (an
  optimism bonus of β ensemble standard deviations), else the conservative choice, with
  ``floor`` probability mass spread over the eligible arms;
* in both modes the conservative choice is a *baseline challenger*: the fair scheduler stays
  unless the critic expects another arm to beat it by ``challenger_margin`` with
  ``challenger_kappa`` ensemble standard deviations to spare (never worse than the default).

**Training** (``update``, one transition per closed window; ``pretrain`` on recorded data):
the critic regresses the switching-cost-adjusted reward (r − ``switch_cost`` if the arm was a
swap); the actor follows the policy gradient — the all-actions gradient
Σ_a ∇π(a|x)·(Q̄(x, a) − V(x)) through the critic, plus the sampled gradient
w·(r − V(x))·∇log π(a_t|x) with the learned baseline V(x) = Σ_a π(a|x)Q̄(x, a) and the
importance weight w = min(π(a_t|x)/μ_t, ``max_weight``) — μ_t is the logged propensity of the
composite policy∘guard that really chose a_t — plus an entropy bonus.  Minibatches come from
a sliding window of the last ``replay`` transitions (older ones are forgotten).

**Non-stationarity.**  Beyond the sliding window, two detectors re-open exploration (ε, or
the ucb floor mass, jumps to ``change_reopen`` and halves every ``reopen_half_life``
decisions): a jump of the standardised features away from their recent average (a new
workload), and a Page-Hinkley test on the critic's residual r − Q̄(x, a_t) (the same
workload now rewards differently).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from scxd.catalog import format_value
from scxd.policy import explore as ex
from scxd.policy.arms import ArmSet
from scxd.policy.base import Learner, OfflineData, PolicyEnv

if TYPE_CHECKING:
    from scxd.catalog import Action
    from scxd.config import PolicyConfig
    from scxd.features import FeatureVector
    from scxd.policy import Decision
    from scxd.record import Transition


def factor_keys(arms: ArmSet) -> tuple[list[str], list[int], np.ndarray]:
    """(factor keys, softmax group of each factor, arm × factor incidence matrix).

    Group 0 is the choice of scheduler; then one group per (scheduler, varying parameter),
    over that parameter's values."""
    f = arms.factorisation()
    keys: list[str] = [f"scheduler={s}" for s in f.schedulers]
    groups: list[int] = [0] * len(f.schedulers)
    offsets: dict[tuple[str, str], int] = {}
    g = 0
    for s in f.schedulers:
        for d in f.dims[s]:
            g += 1
            offsets[(s, d.param)] = len(keys)
            keys += [f"{s}|{d.param}={format_value(v)}" for v in d.values]
            groups += [g] * len(d.values)
    inc = np.zeros((len(arms), len(keys)), dtype=np.float32)
    for i, (si, vals) in enumerate(f.codes):
        s = f.schedulers[si]
        inc[i, si] = 1.0
        for d, vi in zip(f.dims[s], vals, strict=True):
            inc[i, offsets[(s, d.param)] + vi] = 1.0
    return keys, groups, inc


#: Page-Hinkley's tolerated drift per window (reward units): residuals below it never add up.
PH_DELTA = 0.05


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, over a list of parameters.

    Not ``torch.optim.Adam`` on purpose: constructing any ``torch.optim`` optimizer imports
    ``torch._dynamo`` and its dependencies (822 modules, +68 MB resident measured on this VM)
    — a sixth of the daemon's 400 MB budget.  The arithmetic is torch's own fused CPU kernel
    (``torch._fused_adam_``, one pass per tensor), which needs no such import: on the 106-arm
    grid it took 147 µs per step where the same update in ten ``_foreach`` passes took 258 µs
    (``tests/test_policy_learning.py`` checks it against the textbook formula)."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        # Per-parameter step counts (the kernel's bias correction reads them as tensors).
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1.0)
        torch._fused_adam_([self.params[i] for i in live],
                           [self.params[i].grad for i in live],
                           [self.m[i] for i in live], [self.v[i] for i in live], [], steps,
                           lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)


class Replay:
    """The sliding window of recent transitions, as preallocated ring buffers."""

    def __init__(self, size: int, n_in: int, ensemble: int):
        self.x = np.zeros((size, n_in), np.float32)
        self.arm = np.zeros(size, np.int64)
        self.r = np.zeros(size, np.float32)
        self.mu = np.ones(size, np.float32)
        self.boot = np.zeros((size, ensemble), np.float32)
        self.size, self.n, self.next = size, 0, 0

    def __len__(self) -> int:
        return self.n

    def clear(self) -> None:
        self.n = self.next = 0

    def add(self, x: np.ndarray, arm: int, r: float, mu: float, boot: np.ndarray) -> None:
        i = self.next
        self.x[i], self.arm[i], self.r[i], self.mu[i], self.boot[i] = x, arm, r, mu, boot
        self.next = (i + 1) % self.size
        self.n = min(self.n + 1, self.size)

    def newest(self) -> int:
        return (self.next - 1) % self.size

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.x[idx], self.arm[idx], self.r[idx], self.mu[idx], self.boot[idx]


class Net(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_factors: int, ensemble: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh())
        self.actor = nn.Linear(hidden, n_factors)
        self.critic = nn.Linear(hidden, ensemble * n_factors)
        self.ensemble = ensemble
        self.n_factors = n_factors
        nn.init.zeros_(self.actor.weight)
        nn.init.zeros_(self.actor.bias)
        nn.init.normal_(self.critic.weight, std=0.05)
        nn.init.zeros_(self.critic.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The layers' functions called directly: each module call costs a few µs of hook
        # dispatch, twice per window on a path with a 2 ms budget.  (The trunk's
        # activations are the Tanh modules __init__ puts there.)
        first, second = self.trunk[0], self.trunk[2]
        h = torch.tanh(F.linear(torch.tanh(F.linear(x, first.weight, first.bias)),
                                second.weight, second.bias))
        return (F.linear(h, self.actor.weight, self.actor.bias),
                F.linear(h, self.critic.weight, self.critic.bias).view(
                    -1, self.ensemble, self.n_factors))


class NetworkPolicy(Learner):
    name = "network"
    version = "network-1"

    def __init__(self, env: PolicyEnv, cfg: PolicyConfig):
        super().__init__(env, cfg)
        c = self.c = cfg.network
        torch.set_num_threads(c.threads)
        self.mode = c.exploration
        self.gen = torch.Generator().manual_seed(env.seed)
        torch.manual_seed(env.seed)
        self.fair = self.arms.fair_index()
        self.factor_keys, groups, inc = factor_keys(self.arms)
        self.inc = torch.from_numpy(inc)                               # (K, F)
        self.inc_np = inc
        n_groups = max(groups) + 1
        width = max(groups.count(g) for g in range(n_groups))
        # Scatter factors into a (width × groups) grid padded with −inf, so one log_softmax
        # over the first axis normalises every factor group at once (torch's CPU softmax is
        # fast along a long contiguous axis, slow along many short rows).
        slot = [0] * n_groups
        self.grid_index = torch.zeros(len(groups), dtype=torch.long)
        for i, g in enumerate(groups):
            self.grid_index[i] = slot[g] * n_groups + g
            slot[g] += 1
        self.grid_shape = (width, n_groups)
        # Per-arm sums over factors are one (…, F) × (F, K) product: on this VM's CPU it beat
        # gathering each arm's factor list (decide + update p99 −0.2 ms on the 106-arm grid).
        self.inc_t = self.inc.T.contiguous()                           # (F, K)
        # Input: the standardised features and the running arm's factors (what runs shapes
        # what is measured: the same workload looks different under another scheduler).
        self.n_in = env.n_features + 1 + len(self.factor_keys)
        self.net = Net(self.n_in, c.hidden, len(self.factor_keys), c.ensemble)
        self.opt = Adam(self.net.parameters(), lr=c.lr)
        self.memory = Replay(c.replay, self.n_in, c.ensemble)
        # The critic's values at the last few decisions, by (raw context, running arm): the
        # residual test compares a window's reward with what was expected when it was
        # chosen (the scaler moves between decision and update, so not by scaled input).
        self._recent_q: deque[tuple[bytes, int | None, np.ndarray]] = deque(maxlen=4)
        self._raw_context = b""
        self.reopen = 0.0            # extra exploration after a detected change, decays
        self.reopen_t = 0
        self.decisions = 0
        self.forget_runtime()
        self.ph_mean = 0.0
        self.ph_sum = 0.0
        self.ph_min = 0.0
        self.ph_n = 0
        self.changes = 0
        self.losses = {"critic": 0.0, "actor": 0.0}

    # -- the model -----------------------------------------------------------------------------
    def _arm_logq(self, actor_logits: torch.Tensor) -> torch.Tensor:
        """log q(a|x) for every arm: product of factor probabilities (in log space)."""
        n = actor_logits.shape[0]
        width, groups = self.grid_shape
        grid = torch.full((width * groups, n), -math.inf).index_copy(
            0, self.grid_index, actor_logits.T)
        logp = torch.log_softmax(grid.view(width, groups * n), dim=0).view(width * groups, n)
        return self._per_arm(logp.index_select(0, self.grid_index).T)

    def _per_arm(self, factors: torch.Tensor) -> torch.Tensor:
        """(..., F) per-factor numbers → (..., K) per-arm sums over each arm's factors."""
        return factors @ self.inc_t

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π over all arms (n, K), critic values per member (n, E, K))."""
        logits, crit = self.net(x)
        logq = self._arm_logq(logits)
        logpi = torch.log_softmax(logq, dim=1)
        return logpi, self._per_arm(crit)

    def epsilon(self) -> float:
        base = ex.epsilon_at(self.updates, self.c.epsilon_start, self.c.epsilon_floor,
                             self.c.epsilon_half_life)
        return max(base, self.reopen_now())

    def reopen_now(self) -> float:
        """Extra exploration after a detected change, halving every reopen_half_life
        decisions."""
        if self.reopen <= 0:
            return 0.0
        return self.reopen * math.pow(2.0, -(self.decisions - self.reopen_t) /
                                      self.c.reopen_half_life)

    def forget_runtime(self) -> None:
        """The recent context average and the evidence since the last change are this
        process's own: a restored checkpoint starts them afresh."""
        self.ctx_mean: np.ndarray | None = None
        self._evidence_sum: np.ndarray | None = None
        self._evidence_n = 0.0
        self._evidence_arm: int | None = None

    def _context_shift(self, x: np.ndarray) -> float:
        """Mean absolute difference (in standard deviations) between this window's features
        and their recent average; updates that average."""
        if self.ctx_mean is None:
            self.ctx_mean = x.copy()
            return 0.0
        shift = float(np.abs(x[:-1] - self.ctx_mean[:-1]).mean())
        self.ctx_mean += 0.2 * (x - self.ctx_mean)
        return shift

    def _evidence(self, value: np.ndarray, shifted: bool) -> np.ndarray:
        """The values averaged over the windows since the running arm or the workload last
        changed (at most ``evidence_windows``): one noisy window must not flip a choice
        that the previous ones supported."""
        if shifted or self.current != self._evidence_arm or self._evidence_sum is None:
            self._evidence_sum, self._evidence_n = np.zeros_like(value), 0.0
            self._evidence_arm = self.current
        cap = float(self.c.evidence_windows)
        if self._evidence_n >= cap:   # an exponential window beyond the cap
            self._evidence_sum *= (cap - 1.0) / cap
            self._evidence_n = cap - 1.0
        self._evidence_sum += value
        self._evidence_n += 1.0
        return self._evidence_sum / self._evidence_n

    def _reopen(self) -> None:
        self.changes += 1
        self.reopen, self.reopen_t = self.c.change_reopen, self.decisions

    def _input(self, x: np.ndarray, running: int | None) -> np.ndarray:
        enc = self.inc_np[running] if running is not None else np.zeros(self.inc_np.shape[1],
                                                                         np.float32)
        return np.concatenate([x.astype(np.float32), enc])

    def decide(self, features: FeatureVector, eligible: Sequence[Action],
               current: Action | None = None) -> Decision:
        self._raw_context = np.asarray(features.values, dtype=np.float64).tobytes()
        return super().decide(features, eligible, current)

    def probabilities(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict]:
        self.decisions += 1
        shifted = self._context_shift(x) > self.c.context_shift
        if shifted:
            self._reopen()
        xin = self._input(x, self.current)
        with torch.inference_mode():
            logpi, q = self._forward(torch.from_numpy(xin)[None])
        logpi = logpi[0].double().numpy()
        q = q[0].double().numpy()
        mean, sd = q.mean(axis=0), q.std(axis=0)
        self._recent_q.append((self._raw_context, self.current, mean))
        pi = ex.softmax(logpi, mask)
        # The actor's own values: with entropy weight α it tends to π ∝ exp(Q/α), so
        # α·log π(a) is the value of a up to a constant.  Staying costs nothing; a swap
        # costs switch_cost (hysteresis: no swap for a gain smaller than its price).
        alpha = max(self.c.entropy, 1e-3)
        value = self._evidence(alpha * logpi, shifted)
        value = np.where(mask, value, -np.inf)
        if self.current is not None:
            value = value - self.c.switch_cost * (np.arange(self.k) != self.current)
        stats = {"epsilon": 0.0, "changes": float(self.changes),
                 "reopen": self.reopen_now(), **self.losses}
        n = max(int(mask.sum()), 1)
        best, reason = self._challenge(int(np.argmax(np.where(mask, value, -np.inf))),
                                       mean, sd, mask)
        eps = self.epsilon()
        stats["epsilon"] = eps
        if self.mode == "epsilon":
            probs = eps * ex.uniform(mask)
            probs[best] += 1.0 - eps
        else:
            # Directed exploration: with probability ε the optimistic arm (value + β·σ),
            # otherwise the conservative choice; every arm floored.
            hopeful = int(np.argmax(np.where(mask, value + self.c.ucb_beta * sd, -np.inf)))
            probs = np.zeros(self.k)
            probs[best] += 1.0 - eps
            probs[hopeful] += eps
            probs = ex.with_floor(probs, mask, self.c.floor / n)
            stats["floor"] = self.c.floor
        return probs, {"values": mean, "uncertainty": sd, "mode": self.mode, "stats": stats,
                       "policy": pi, "greedy": best, "reason": reason}

    def _challenge(self, best: int, mean: np.ndarray, sd: np.ndarray, mask: np.ndarray
                   ) -> tuple[int, str]:
        """Baseline challenger: the fair scheduler stays the choice unless the critic says
        another arm beats it by ``challenger_margin`` with ``challenger_kappa`` ensemble
        standard deviations to spare (never worse than the default scheduler)."""
        fair = self.fair
        if fair is None or not mask[fair] or best == fair:
            return best, ""
        gain = float(mean[best] - mean[fair])
        spread = float(np.hypot(sd[best], sd[fair]))
        if gain - self.c.challenger_kappa * spread < self.c.challenger_margin:
            return fair, (f"baseline challenger: {self.arms[best].label} is not proven better "
                          f"than fair (gain {gain:+.3f} ± {spread:.3f})")
        return best, (f"{self.arms[best].label} beats fair by {gain:+.3f} ± {spread:.3f}")

    # -- learning ------------------------------------------------------------------------------
    def learn(self, x: np.ndarray, arm: int, reward: float, propensity: float,
              transition: Transition | None) -> None:
        swapped = bool(transition is not None and transition.swapped)
        r = reward - (self.c.switch_cost if swapped else 0.0)
        boot = self.rng.poisson(1.0, self.c.ensemble).astype(np.float32)
        prev = transition.previous if transition is not None else ""
        running = self.arms.index(prev) if prev in self.arms else None
        xin = self._input(x, running)
        self.memory.add(xin, arm, r, propensity, boot)
        raw = (np.asarray(transition.context, dtype=np.float64).tobytes()
               if transition is not None else None)
        self._detect_change(xin, arm, r, raw, running)
        self.opt.lr = self.c.lr if self.updates < self.c.warm_updates else self.c.online_lr
        self._train(self.c.steps, newest=True)

    def _detect_change(self, x: np.ndarray, arm: int, r: float, raw: bytes | None,
                       running: int | None) -> None:
        """Page-Hinkley on the critic's residual: a sustained drop in reward vs expectation
        (the threshold is in reward units summed over windows)."""
        qbar = next((q for k, run, q in reversed(self._recent_q)
                     if k == raw and run == running), None)
        if qbar is None:   # not decided here (e.g. a journal replayed): evaluate it now
            with torch.inference_mode():
                _, q = self._forward(torch.from_numpy(x)[None])
            qbar = q[0].mean(dim=0).double().numpy()
        resid = float(qbar[arm]) - r                    # > 0: worse than expected
        self.ph_n += 1
        self.ph_mean += (resid - self.ph_mean) / self.ph_n
        self.ph_sum += resid - self.ph_mean - PH_DELTA
        self.ph_min = min(self.ph_min, self.ph_sum)
        if self.ph_n > 20 and self.ph_sum - self.ph_min > self.c.change_threshold:
            self._reopen()
            self.ph_mean = self.ph_sum = self.ph_min = 0.0
            self.ph_n = 0

    def _train(self, steps: int, newest: bool = False) -> None:
        n = len(self.memory)
        if n == 0:
            return
        for _ in range(steps):
            idx = self.rng.choice(n, size=min(self.c.batch, n), replace=False)
            if newest:
                idx[0] = self.memory.newest()
            self._step(*self.memory.batch(idx))

    def _step(self, x: np.ndarray, arms: np.ndarray, r: np.ndarray, mu: np.ndarray,
              boot: np.ndarray, labels: np.ndarray | None = None) -> None:
        xt = torch.from_numpy(x)
        at = torch.from_numpy(arms).long()
        rt = torch.from_numpy(r)
        logits, crit = self.net(xt)                           # (n, F), (n, E, F)
        logq = self._arm_logq(logits)
        logpi = torch.log_softmax(logq, dim=1)       # (n, K)
        # The critic is regressed on the taken arm only: its factors, per member.
        q_taken = (crit * self.inc.index_select(0, at)[:, None, :]).sum(2)   # (n, E)
        bt = torch.from_numpy(boot)
        critic_loss = ((q_taken - rt[:, None]) ** 2 * bt).sum() / bt.sum().clamp(min=1.0)
        pi = logpi.exp()
        with torch.no_grad():   # the actor's target: the ensemble mean, every arm
            qbar = self._per_arm(crit.mean(dim=1))
        v = (pi.detach() * qbar).sum(dim=1)                   # learned baseline V(x)
        all_actions = (pi * (qbar - v[:, None])).sum(dim=1)
        logpi_taken = logpi.gather(1, at.view(-1, 1)).squeeze(1)
        w = (logpi_taken.detach().exp() / torch.from_numpy(mu).clamp(min=1e-6)).clamp(
            max=self.c.max_weight)
        sampled = w * (rt - v) * logpi_taken
        entropy = -(pi * logpi).sum(dim=1)
        actor_loss = -(all_actions + sampled + self.c.entropy * entropy).mean()
        if labels is not None and self.c.imitation > 0 and (labels >= 0).any():
            # Offline warm start: the policy gradient sees one noisy reward per window;
            # the label is the arm whose mean reward over the whole training workload is
            # best, so the actor starts where an offline classifier would.
            known = torch.from_numpy(labels >= 0)
            lt = torch.from_numpy(np.maximum(labels, 0)).long()
            imitation = -logpi.gather(1, lt.view(-1, 1)).squeeze(1)[known].mean()
            actor_loss = actor_loss + self.c.imitation * imitation
        loss = critic_loss + actor_loss
        self.opt.zero_grad()
        loss.backward()   # no gradient clipping: rewards are clipped log-ratios and the
        self.opt.step()   # importance weights are clipped at max_weight
        self.losses = {"critic_loss": float(critic_loss.detach()),
                       "actor_loss": float(actor_loss.detach()),
                       "entropy_mean": float(entropy.mean().detach())}
        self.last_stats = dict(self.losses)

    def pretrain(self, data: OfflineData, passes: int = 1, epochs: int = 30) -> None:
        """Offline training on logged transitions (e.g. a dataset's training repeats): the
        scaler on every context, then ``epochs`` passes of minibatch steps over all of
        them with the same losses as online (importance weights from the logged
        propensities), then the newest ``replay`` transitions become the online window."""
        for x in data.contexts:
            self.scaler.update(np.asarray(x, dtype=np.float64))
        ctx_arms = data.context_arms if data.context_arms is not None else [None] * len(data)
        xs = np.stack([self._input(self.features(c), None if a is None else int(a))
                       for c, a in zip(data.contexts, ctx_arms, strict=True)])
        swapped = data.swapped if data.swapped is not None else np.zeros(len(data), bool)
        r = (data.rewards - self.c.switch_cost * swapped).astype(np.float32)
        mu = data.propensities.astype(np.float32)
        boot = self.rng.poisson(1.0, (len(data), self.c.ensemble)).astype(np.float32)
        best = data.best_arm_by_reward(self.k)
        labels = np.array([best.get(str(g), -1) for g in data.groups], dtype=np.int64)
        n = len(data)
        for _ in range(epochs * passes):
            order = self.rng.permutation(n)
            for s in range(0, n, self.c.batch * 4):
                i = order[s:s + self.c.batch * 4]
                self._step(xs[i], data.arms[i], r[i], mu[i], boot[i], labels[i])
        self.updates += n
        tail = self.rng.permutation(n)[-self.c.replay:]
        self.memory.clear()
        for i in tail:
            self.memory.add(xs[i], int(data.arms[i]), float(r[i]), float(mu[i]), boot[i])

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = super().state()
        for k, v in self.net.state_dict().items():
            arrays[f"net.{k}"] = v.detach().numpy().copy()
        meta["factor_keys"] = self.factor_keys
        meta["extra"].update({"changes": self.changes, "reopen": self.reopen,
                              "reopen_t": self.reopen_t, "decisions": self.decisions,
                              "hidden": self.c.hidden,
                              "ensemble": self.c.ensemble})
        return meta, arrays

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        extra = meta.get("extra") or {}
        if (extra.get("hidden"), extra.get("ensemble")) != (self.c.hidden, self.c.ensemble):
            return (f"kept nothing: network shape hidden={extra.get('hidden')} ensemble="
                    f"{extra.get('ensemble')}, configured {self.c.hidden}/{self.c.ensemble}")
        kept = super().load_state(meta, arrays)
        old = {k: i for i, k in enumerate(meta.get("factor_keys") or [])}
        pairs = [(i, old[k]) for i, k in enumerate(self.factor_keys) if k in old]
        sd = self.net.state_dict()
        e, f_new, f_old = self.c.ensemble, len(self.factor_keys), len(old)
        n_feat = self.env.n_features + 1
        with torch.no_grad():
            for name, t in sd.items():
                src = arrays.get(f"net.{name}")
                if src is None:
                    continue
                src_t = torch.from_numpy(np.array(src))
                if src_t.shape == t.shape and f_new == f_old and pairs == [
                        (i, i) for i in range(f_new)]:
                    t.copy_(src_t)                       # same arms: everything as is
                elif name == "trunk.0.weight":
                    # Feature columns as they are; running-arm columns by factor key.
                    t[:, :n_feat] = src_t[:, :n_feat]
                    for new_i, old_i in pairs:
                        t[:, n_feat + new_i] = src_t[:, n_feat + old_i]
                elif name.startswith("trunk."):
                    t.copy_(src_t)
                else:
                    # Output rows are factors (critic: per ensemble member): by factor key.
                    members = e if name.startswith("critic.") else 1
                    for m in range(members):
                        for new_i, old_i in pairs:
                            t[m * f_new + new_i] = src_t[m * f_old + old_i]
        self.net.load_state_dict(sd)
        self.changes = int(extra.get("changes", 0))
        return f"{kept}; {len(pairs)} of {f_new} network factors carried over"

    def load_extra_state(self, meta: dict[str, Any]) -> None:
        self.reopen = float(meta.get("reopen", 0.0))
        self.reopen_t = int(meta.get("reopen_t", 0))
        self.decisions = int(meta.get("decisions", 0))
