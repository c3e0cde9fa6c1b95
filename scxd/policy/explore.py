"""Exploration: value estimates (+ uncertainty) → an action distribution with a known floor.

Every function returns a probability vector over the whole arm set that is zero outside the
eligible ``mask`` and sums to 1, so the probability of whatever is drawn is exact and can be
logged.  UCB's own choice is deterministic; :func:`ucb` therefore mixes it with a floor
(every eligible arm ≥ ``p_min``) — without one, offline evaluation of other policies from
these logs is void (../shared/learning.md).
"""

from __future__ import annotations

import math

import numpy as np


def _check(mask: np.ndarray) -> int:
    n = int(mask.sum())
    if n == 0:
        raise ValueError("no eligible arm")
    return n


def argmax_set(values: np.ndarray, mask: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Indicator of the eligible arms within ``tol`` of the best value (ties share)."""
    _check(mask)
    v = np.where(mask, values, -np.inf)
    return mask & (v >= v.max() - tol)


def greedy(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    best = argmax_set(values, mask).astype(np.float64)
    return best / best.sum()


def uniform(mask: np.ndarray) -> np.ndarray:
    n = _check(mask)
    return mask.astype(np.float64) / n


def with_floor(probs: np.ndarray, mask: np.ndarray, p_min: float) -> np.ndarray:
    """(1 − n·p_min)·probs + p_min on every eligible arm (uniform when n·p_min ≥ 1)."""
    n = _check(mask)
    if p_min <= 0:
        out = np.where(mask, probs, 0.0)
        return out / out.sum()
    if n * p_min >= 1.0:
        return uniform(mask)
    base = np.where(mask, probs, 0.0)
    base = base / base.sum()
    return (1.0 - n * p_min) * base + p_min * mask


def epsilon_greedy(values: np.ndarray, mask: np.ndarray, epsilon: float) -> np.ndarray:
    """(1 − ε) on the best arm(s), ε spread uniformly over the eligible arms."""
    return (1.0 - epsilon) * greedy(values, mask) + epsilon * uniform(mask)


def ucb(values: np.ndarray, bonus: np.ndarray, mask: np.ndarray, p_min: float) -> np.ndarray:
    """The optimistic arm (value + bonus), with every eligible arm floored at ``p_min``."""
    return with_floor(greedy(values + bonus, mask), mask, p_min)


def softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    _check(mask)
    z = np.where(mask, logits, -np.inf)
    z = np.exp(z - z.max())
    return z / z.sum()


def epsilon_at(t: int, start: float, floor: float, half_life: int) -> float:
    """ε after ``t`` updates: floor + (start − floor)·2^(−t/half_life)."""
    return floor + (start - floor) * math.pow(2.0, -t / half_life)


def entropy(probs: np.ndarray) -> float:
    p = probs[probs > 0]
    return float(-(p * np.log(p)).sum())


def draw(rng: np.random.Generator, probs: np.ndarray) -> int:
    """One index drawn from ``probs`` (renormalised against rounding)."""
    p = np.clip(probs, 0.0, None)
    return int(rng.choice(len(p), p=p / p.sum()))
