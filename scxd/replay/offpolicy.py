"""Off-policy evaluation of target policies on a :class:`~scxd.replay.table.Table` (pure
numpy on top of :mod:`scxd.replay.estimators` and :mod:`scxd.replay.model`).

A *target* is anything that gives, for a block of feature rows, either the arm index each row
would get (deterministic, e.g. ``fixed:ARM``) or an (m, K) matrix of action probabilities over
the table's arms.  Targets are scored chunk by chunk (``CHUNK`` rows at a time), so a million
windows never need an n × K matrix.

The rows evaluated are the table's *scored* windows: not warm-up, with a finite cost under the
objective.  Their propensity is the probability with which the arm running in them was chosen
(the logging policy's, composite with the guard); rows without one are dropped, and counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scxd.replay import estimators as est
from scxd.replay import model as reward_model
from scxd.replay.table import Table, TableError

CHUNK = 65536


class Target(Protocol):
    """A policy being evaluated, seen through blocks of feature rows."""

    name: str

    def choose(self, x: np.ndarray) -> np.ndarray | None:
        """Arm index per row for a deterministic target, else None."""

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(m, K) action probabilities over the table's arms (rows sum to 1)."""


@dataclass
class FixedTarget:
    """Always the same arm (``fixed:ARM``)."""

    name: str
    index: int
    n_arms: int

    def choose(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.index, dtype=np.int64)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_arms))
        out[:, self.index] = 1.0
        return out


def arm_index(table: Table, arm: str) -> int:
    """An arm named by its key or its label (``scx_qmap -s 5000``) → its index."""
    for names in (table.arms, table.arm_labels):
        if arm in names:
            return names.index(arm)
    known = ", ".join(f"'{a}'" for a in table.arm_labels)
    raise TableError(f"arm {arm!r} is not in these logs' arm set (arms: {known})")


def evaluation_columns(objective: str) -> Callable[[dict], list[str]]:
    """What :meth:`Rows.of` reads of a table (given its metadata)."""
    def pick(meta: dict) -> list[str]:
        ctx = meta.get("context_columns") or [f"ctx_{f}" for f in meta.get("feature_names", [])]
        cols = [*ctx, "arm", "propensity", f"cost_{objective}", "warmup"]
        if not meta.get("context_pre_decision", True):   # see design_contexts
            cols += [*meta.get("feature_names", []), *DESIGN_KEYS]
        return list(dict.fromkeys(cols))
    return pick


@dataclass
class Rows:
    """The scored rows of a table under one objective, ready for the estimators."""

    table: Table
    objective: str
    index: np.ndarray        # row numbers in the table
    x: np.ndarray            # (n, F)
    logged: est.Logged

    @classmethod
    def of(cls, table: Table, objective: str) -> Rows:
        cost = table.column(f"cost_{objective}").astype(np.float64)
        keep = np.isfinite(cost)
        if "warmup" in table.columns:
            keep &= ~table.columns["warmup"].astype(bool)
        idx = np.flatnonzero(keep)
        pre = table.meta.get("context_pre_decision", True)
        x = table.contexts(idx) if pre else design_contexts(table, idx)
        has_context = np.isfinite(x).all(axis=1)
        idx, x = idx[has_context], x[has_context]
        if not len(idx):
            raise TableError(f"no scored window with a decision context and a cost under "
                             f"objective {objective!r}")
        prop = table.column("propensity").astype(np.float64)[idx]
        logged = est.Logged(table.actions()[idx], prop, cost[idx], tuple(table.arms))
        return cls(table, objective, idx, x, logged)

    def subset(self, keep: np.ndarray) -> Rows:
        lg = self.logged
        return Rows(self.table, self.objective, self.index[keep], self.x[keep],
                    est.Logged(lg.actions[keep], lg.propensities[keep], lg.outcomes[keep],
                               lg.arms))

    def holdout(self) -> tuple[np.ndarray, str]:
        """Which rows are held out from training, and how they were chosen: a dataset's
        evaluation repeats (its last 40 %, as ``scxd replay bench`` evaluates and
        ``pretrain`` never trains on), else the last 40 % of the windows in log order."""
        if "repeat" in self.table.columns:
            from scxd.replay.bench import default_eval_repeats

            rep = self.table.column("repeat")[self.index]
            repeats = sorted({int(r) for r in rep})
            if len(repeats) > 1:
                held = default_eval_repeats(repeats)
                return np.isin(rep, held), f"repeats {held} held out of {repeats}"
        n = self.logged.n
        cut = n - max(1, round(0.4 * n))
        keep = np.arange(n) >= cut
        return keep, f"the last {n - cut} of {n} windows held out (log order)"


#: Columns that place a dataset window in the recording design.
DESIGN_KEYS = ("workload", "repeat", "index", "arm")
#: Seed of the design contexts' draws (fixed: the same table always gives the same rows).
DESIGN_SEED = 20261122


def design_contexts(table: Table, rows: np.ndarray, seed: int = DESIGN_SEED) -> np.ndarray:
    """Pre-decision contexts for the windows of a recording design (a dataset).

    A dataset's design drew each run's arm before the run and held it, so the window before a
    scored window ran the *same* arm: its features are an outcome of the arm being evaluated
    (post-treatment).  A target policy scored on them sees a context no deployment could show
    it when it chooses a different arm, and the estimators then answer different questions:
    importance weighting evaluates π only at contexts made by the logged arm, the direct
    method at contexts made by every arm (on the committed dataset a trained LinUCB's SNIPS
    and DR disagreed this way; ``tests/test_replay_offline.py``).

    So each scored window gets the context it would have had if the design had drawn every
    window's arm afresh: the arm of the window before is drawn uniformly (seeded) among the
    arms recorded for the same workload and repeat, and the context is the features of that
    arm's window at the previous position — the window's own previous window when the draw
    is its own arm.  The context is then independent of the logged arm (given workload and
    repeat), as a real decision context is; rows without such a window keep their recorded
    context."""
    arms = table.actions()
    ctx = table.contexts(rows).astype(np.float64)
    if not all(k in table.columns for k in DESIGN_KEYS[:3]):
        return ctx
    wl, rep, pos = (table.column(k) for k in DESIGN_KEYS[:3])
    at: dict[tuple[str, int, int, int], int] = {}
    cell_arms: dict[tuple[str, int], set[int]] = defaultdict(set)
    for i in range(table.n):
        cell = (str(wl[i]), int(rep[i]))
        at[(*cell, int(arms[i]), int(pos[i]))] = i
        cell_arms[cell].add(int(arms[i]))
    choices = {cell: np.array(sorted(a)) for cell, a in cell_arms.items()}
    rng = np.random.default_rng(seed)
    feats = table.features()
    for j, i in enumerate(rows):
        cell = (str(wl[i]), int(rep[i]))
        b = int(rng.choice(choices[cell]))
        if b == arms[i]:
            continue
        src = at.get((*cell, b, int(pos[i]) - 1))
        if src is not None:
            ctx[j] = feats[src]
    return ctx


def target_terms(rows: Rows, targets: Mapping[str, Target],
                 model: reward_model.RewardModel | None,
                 on_chunk: Callable[[int], None] | None = None) -> dict[str, est.TargetTerms]:
    """Per target: π(a_i|x_i), the reward model's value of the target, q̂(x_i, a_i), and the
    target's mass per arm — one pass over the rows, chunk by chunk, q̂ computed once."""
    n, k = rows.logged.n, len(rows.logged.arms)
    prob = {t: np.empty(n) for t in targets}
    dm = {t: np.empty(n) for t in targets}
    mass = {t: np.zeros(k) for t in targets}
    ql = np.empty(n)
    a = rows.logged.actions
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        x, r, al = rows.x[s:e], np.arange(e - s), a[s:e]
        q = model.predict(x, np.arange(s, e)) \
            if model is not None else None
        if q is not None:
            ql[s:e] = q[r, al]
        for name, target in targets.items():
            picks = target.choose(x)
            if picks is not None:
                prob[name][s:e] = picks == al
                mass[name] += np.bincount(picks, minlength=k)
                if q is not None:
                    dm[name][s:e] = q[r, picks]
            else:
                dist = target.probabilities(x)
                prob[name][s:e] = dist[r, al]
                mass[name] += dist.sum(axis=0)
                if q is not None:
                    dm[name][s:e] = np.einsum("ik,ik->i", dist, q)
            if on_chunk:
                on_chunk(e - s)
    return {t: est.TargetTerms(prob[t], mass[t] / max(n, 1),
                               dm[t] if model is not None else None,
                               ql if model is not None else None) for t in targets}


def fit_model(rows: Rows, seed: int = 0) -> reward_model.RewardModel:
    """The cross-fitted reward model on every scored row (it needs no propensity), over the
    rows' decision contexts (for datasets, :func:`design_contexts`)."""
    return reward_model.fit(rows.x, rows.logged.actions, rows.logged.outcomes,
                            len(rows.logged.arms), seed=seed)


def evaluate_targets(rows: Rows, targets: Mapping[str, Target], *,
                     pairs: list[tuple[str, str]] | None = None, clip: float = est.DEFAULT_CLIP,
                     n_bootstrap: int = est.DEFAULT_BOOTSTRAP, seed: int = 0,
                     alpha: float = 0.05, with_model: bool = True,
                     on_chunk: Callable[[int], None] | None = None) -> est.Evaluation:
    model = fit_model(rows, seed) if with_model else None
    terms = target_terms(rows, targets, model, on_chunk)
    ev = est.evaluate(rows.logged, terms, clip=clip, n_bootstrap=n_bootstrap, seed=seed,
                      alpha=alpha, pairs=pairs)
    if model is not None and model.unseen:
        ev.warnings.append("the reward model saw no window of arms " + ", ".join(
            rows.table.arm_labels[k] for k in model.unseen) + ": dm/dr extrapolate there")
    return ev
