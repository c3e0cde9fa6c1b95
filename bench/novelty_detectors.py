#!/usr/bin/env python3
"""Which novelty detector for asa: each workload left out in turn, on the committed dataset.

asa's novelty check (``scxd/policy/offline.py``) must say "this window resembles no
training workload".  The only honest yardstick without new recordings is the dataset
itself: fit the detector on the training repeats of every workload but one, then count
how many of the left-out workload's evaluation windows it flags (detection: they *are*
unseen) and how many of the other workloads' evaluation windows it flags (false alarms).

Detectors: ``full s`` is asa's own (``ASAPolicy.fit_novelty``: per-workload Gaussian with
the covariance shrunk ``s`` towards its diagonal, over the features that varied in
training, threshold the ``--quantile`` of cross-fitted distances); ``diag`` a per-workload
Gaussian with independent features and ``5-NN`` the distance to the 5th nearest training
window, both as first compared: every feature, threshold the ``--quantile`` of the
training windows' own distances.  Features
are scaled as the shipped asa model scales them (its scaler is frozen at training's).
Writes ``novelty_detectors.md`` and ``.json`` into ``--out``.

    .venv/bin/python bench/novelty_detectors.py [--dataset DIR] [--quantile 0.99]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scxd.config import PolicyConfig  # noqa: E402
from scxd.policy import registry  # noqa: E402
from scxd.policy.base import PolicyEnv  # noqa: E402
from scxd.replay.bench import default_eval_repeats  # noqa: E402
from scxd.replay.logs import load_logs  # noqa: E402

Detector = Callable[[np.ndarray], np.ndarray]        # windows (n, d) → distance (n,)
SHRINKAGES = (0.0, 0.05, 0.1, 0.2, 0.5, 0.9)


def windows(dataset: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[int],
                                   PolicyEnv]:
    """Scaled feature rows (bias column dropped) per workload: training and evaluation
    repeats, scored windows only; and the dataset's policy environment."""
    log = load_logs(datasets=[dataset])
    cfg = PolicyConfig(name="asa")
    env = PolicyEnv(log.arms, seed=0, schema=log.schema, schema_version=log.feature_version,
                    feature_names=tuple(log.feature_names))
    policy = registry.make_policy(cfg, env)
    registry.restore(policy, cfg, None)          # the shipped model's frozen scaler
    held = default_eval_repeats(log.repeats())
    train: dict[str, list[np.ndarray]] = {}
    evaluate: dict[str, list[np.ndarray]] = {}
    for r in log.records:
        if r.warmup:
            continue
        row = policy.features(np.asarray(r.context.values, dtype=np.float64))[:-1]
        side = evaluate if r.tags.get("repeat") in held else train
        side.setdefault(r.tags["workload"], []).append(row)
    return ({w: np.stack(v) for w, v in train.items()},
            {w: np.stack(v) for w, v in evaluate.items()}, held, env)


def asa_detector(train: dict[str, np.ndarray], shrinkage: float, quantile: float,
                 env: PolicyEnv) -> tuple[Detector, float]:
    cfg = PolicyConfig.model_validate({"name": "asa", "pretrained": "none", "asa": {
        "novelty_shrinkage": shrinkage, "novelty_quantile": quantile}})
    policy = registry.make_policy(cfg, env)
    x = np.concatenate(list(train.values()))
    groups = np.concatenate([[w] * len(v) for w, v in train.items()])
    policy.fit_novelty(x, groups)
    return (lambda rows: policy.novelty(rows)[0]), policy.novelty_threshold


def diag_detector(train: dict[str, np.ndarray], quantile: float) -> tuple[Detector, float]:
    stats = [(v.mean(axis=0), 1.0 / (v.var(axis=0) + 1e-2)) for v in train.values()]

    def dist(rows: np.ndarray) -> np.ndarray:
        return np.min([((rows - m) ** 2 * p).mean(axis=1) for m, p in stats], axis=0)
    return dist, float(np.quantile(dist(np.concatenate(list(train.values()))), quantile))


def knn_detector(train: dict[str, np.ndarray], quantile: float, k: int = 5
                 ) -> tuple[Detector, float]:
    x = np.concatenate(list(train.values()))

    def dist(rows: np.ndarray, skip_self: bool = False) -> np.ndarray:
        d2 = ((rows[:, None, :] - x[None]) ** 2).sum(axis=2)
        d2.sort(axis=1)
        return np.sqrt(d2[:, k if skip_self else k - 1])
    return dist, float(np.quantile(dist(x, skip_self=True), quantile))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(REPO / "data" / "testbed"))
    p.add_argument("--quantile", type=float, default=0.99)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args(argv)
    t0 = time.monotonic()
    train, evaluate, held, env = windows(a.dataset)
    makers: dict[str, Callable[[dict[str, np.ndarray]], tuple[Detector, float]]] = {
        **{f"full {s:g}": (lambda t, s=s: asa_detector(t, s, a.quantile, env)) for s in SHRINKAGES},
        "diag": lambda t: diag_detector(t, a.quantile),
        "5-NN": lambda t: knn_detector(t, a.quantile)}
    results: dict[str, dict[str, float]] = {}
    for name, make in makers.items():
        detected, false_alarm = {}, []
        for left_out in train:
            known = {w: v for w, v in train.items() if w != left_out}
            dist, threshold = make(known)
            detected[left_out] = float((dist(evaluate[left_out]) > threshold).mean())
            false_alarm.append(float(np.mean(np.concatenate(
                [dist(evaluate[w]) > threshold for w in known]))))
        results[name] = {"detected_mean": float(np.mean(list(detected.values()))),
                         "false_alarm_mean": float(np.mean(false_alarm)), **detected}
        print(f"{name}: detected {results[name]['detected_mean']:.0%}, false alarms "
              f"{results[name]['false_alarm_mean']:.1%}", file=sys.stderr, flush=True)
    workloads = list(train)
    lines = ["| detector | left-out windows flagged | known windows flagged | "
             + " | ".join(workloads) + " |", "|---" * (len(workloads) + 3) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['detected_mean']:.0%} | {r['false_alarm_mean']:.1%} | "
                     + " | ".join(f"{r[w]:.0%}" for w in workloads) + " |")
    elapsed = time.monotonic() - t0
    shown = Path(a.dataset).resolve()
    shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
    lines.append(f"\n{shown}: detectors fitted on the training repeats of all workloads "
                 f"but one, judged on evaluation repeats {held}; quantile {a.quantile:g} "
                 f"(full: of cross-fitted distances; diag, 5-NN: of the training windows' "
                 f"own); {elapsed:.0f} s.")
    table = "\n".join(lines)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "novelty_detectors.json").write_text(json.dumps(
        {"detectors": results, "config": {"dataset": str(shown), "quantile": a.quantile,
                                           "evaluation_repeats": held}}, indent=2) + "\n")
    (out / "novelty_detectors.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
