"""The policy registry: ``policy.name`` → (factory, ``[policy.<name>]`` config model).

Factories are named as ``module:attribute`` and imported only when that policy is built, so
validating a configuration, ``scxd --help`` and every policy but ``network`` never import
torch.  Tests, the replay benchmark and ``scxd policies`` iterate :data:`REGISTRY`.

State: :func:`restore` gives a learner the newest state it may use — its own checkpoint in
the state directory, else the pretrained one (``policy.pretrained``) — and :func:`save` writes
it atomically.  A checkpoint made for other features is refused with one log line and the
learner starts from its defined fallback (the pretrained state, else fresh); one made for
another arm set carries per-arm state over by arm key and says how much.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scxd.features import SCHEMA_NAME, SCHEMA_VERSION
from scxd.policy import settings as ps
from scxd.policy.checkpoint import CheckpointError, check, load
from scxd.policy.checkpoint import save as save_checkpoint

if TYPE_CHECKING:
    from scxd.config import PolicyConfig
    from scxd.policy import Policy
    from scxd.policy.base import PolicyEnv

log = logging.getLogger("scxd.policy")
#: Shipped pretrained checkpoints live here, one ``<policy>.npz`` each.
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


@dataclass(frozen=True)
class Entry:
    name: str
    target: str               # "module:attribute" of the factory (a class taking env, cfg)
    section: str              # attribute of PolicyConfig holding its table ("" = none)
    model: type | None        # that table's pydantic model
    doc: str
    learns: bool = True       # updates online from transitions
    hindsight: bool = False   # a reference that knows the evaluation data (not deployable)
    needs: str = ""           # optional Python package it needs

    def factory(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def available(self) -> str:
        """'' when it can be built here, else why not."""
        if self.needs:
            try:
                importlib.import_module(self.needs)
            except ImportError as exc:
                return f"needs the optional package {self.needs!r} ({exc})"
        return ""


ENTRIES: tuple[Entry, ...] = (
    Entry("network", "scxd.policy.network:NetworkPolicy", "network", ps.NetworkConfig,
          "torch network: features → scheduler, then each parameter; ε-greedy or UCB; "
          "policy gradient with a learned critic"),
    Entry("fixed", "scxd.policy.baseline:FixedPolicy", "", None,
          "always policy.scheduler with policy.preset", learns=False),
    Entry("rule", "scxd.policy.baseline:RulePolicy", "", None,
          "threshold rule like scx_loader --auto (busy CPUs → busy_schedulers)",
          learns=False),
    Entry("uniform", "scxd.policy.simple:UniformPolicy", "uniform", ps.UniformConfig,
          "every eligible arm with equal probability", learns=False),
    Entry("best_fixed", "scxd.policy.simple:BestFixedPolicy", "best_fixed",
          ps.BestFixedConfig, "one arm always: the hindsight-best in replay", learns=False,
          hindsight=True),
    Entry("linucb", "scxd.policy.linear:LinUCBPolicy", "linucb", ps.LinUCBConfig,
          "disjoint LinUCB with forgetting and a probability floor"),
    Entry("lints", "scxd.policy.linear:LinTSPolicy", "lints", ps.LinTSConfig,
          "linear Thompson sampling with forgetting"),
    Entry("squarecb", "scxd.policy.linear:SquareCBPolicy", "squarecb", ps.SquareCBConfig,
          "SquareCB inverse-gap weighting over ridge regressions"),
    Entry("swucb", "scxd.policy.simple:SlidingWindowUCBPolicy", "swucb", ps.SWUCBConfig,
          "sliding-window UCB (context-free)"),
    Entry("asa", "scxd.policy.offline:ASAPolicy", "asa", ps.ASAConfig,
          "ASA-style offline classifier with voting, trained on recorded windows",
          learns=False),
    Entry("vw_squarecb", "scxd.policy.vw:VWSquareCBPolicy", "vw", ps.VWConfig,
          "Vowpal Wabbit --cb_explore_adf --squarecb", needs="vowpalwabbit"),
    Entry("vw_epsilon", "scxd.policy.vw:VWEpsilonPolicy", "vw", ps.VWConfig,
          "Vowpal Wabbit --cb_explore_adf --epsilon", needs="vowpalwabbit"),
)
REGISTRY: dict[str, Entry] = {e.name: e for e in ENTRIES}
POLICY_NAMES: tuple[str, ...] = tuple(REGISTRY)


def entry(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)})"
                         ) from None


def make_policy(cfg: PolicyConfig, env: PolicyEnv) -> Policy:
    """Build ``cfg.name`` for ``env`` (raises ValueError naming the problem)."""
    e = entry(cfg.name)
    missing = e.available()
    if missing:
        raise ValueError(f"policy {cfg.name}: {missing}")
    return e.factory()(env, cfg)


def checkpoint_path(state_dir: str | os.PathLike[str], name: str) -> Path:
    return Path(state_dir) / "policy" / f"{name}.npz"


def pretrained_path(cfg: PolicyConfig) -> Path | None:
    if cfg.pretrained == "none":
        return None
    if cfg.pretrained == "builtin":
        p = PRETRAINED_DIR / f"{cfg.name}.npz"
        return p if p.exists() else None
    return Path(cfg.pretrained)


def model_arm_keys(cfg: PolicyConfig) -> list[str]:
    """The arm keys of the pretrained checkpoint this policy would start from
    (``policy.model_arms``): arms the daemon offers beside its catalog's.  [] when there is
    none or it is unreadable (:func:`restore` then says why)."""
    path = pretrained_path(cfg) if cfg.model_arms else None
    if path is None or not path.exists():
        return []
    try:
        ckpt = load(path)
    except CheckpointError:
        return []
    # The same test restore applies (the policy's version too), so that the daemon never
    # offers the arms of a model it will not load.
    version = getattr(entry(cfg.name).factory(), "version", None)
    if check(ckpt, cfg.name, SCHEMA_NAME, SCHEMA_VERSION, version):
        return []
    return [str(k) for k in ckpt.meta.get("arm_keys") or []]


def restore(policy: Policy, cfg: PolicyConfig, state_dir: str | os.PathLike[str] | None
            ) -> str:
    """Load the newest usable state into ``policy``; returns one line saying what happened
    (also logged).  Never raises for a bad or unfitting checkpoint: that is logged and the
    next candidate (pretrained, then fresh) is used."""
    if not hasattr(policy, "load_state"):
        return f"policy {policy.name} keeps no state"
    env = policy.env  # type: ignore[attr-defined]
    candidates = []
    if state_dir is not None:
        candidates.append(("checkpoint", checkpoint_path(state_dir, policy.name)))
    pre = pretrained_path(cfg)
    if pre is not None:
        # A policy that does not learn online keeps in its own checkpoint only a copy of
        # the model it started from: a newer shipped model must win over it.
        where = len(candidates) if entry(policy.name).learns else 0
        candidates.insert(where, ("pretrained", pre))
    notes = []
    for kind, path in candidates:
        if not path.exists():
            continue
        try:
            ckpt = load(path)
        except CheckpointError as exc:
            notes.append(f"{kind} {exc}: ignored")
            continue
        problem = check(ckpt, policy.name, env.schema, env.schema_version, policy.version)
        if problem:
            notes.append(f"{kind} {path} not used: {problem}")
            continue
        kept = policy.load_state(ckpt.meta, ckpt.arrays)  # type: ignore[attr-defined]
        if kept.startswith("kept nothing"):   # e.g. made by an older version of the policy
            notes.append(f"{kind} {path} not used: {kept}")
            continue
        same = ckpt.meta.get("arm_set") == env.arms.hash
        msg = (f"policy {policy.name}: state from {kind} {path} ({ckpt.meta.get('updates', 0)}"
               f" updates, {ckpt.age_s:.0f} s old)" + ("" if same else
                                                       f"; other arm set: {kept}"))
        if notes:
            msg += "; " + "; ".join(notes)
        log.info(msg)
        return msg
    msg = f"policy {policy.name}: starting fresh" + (f" ({'; '.join(notes)})" if notes else "")
    (log.warning if notes else log.info)(msg)
    return msg


def save(policy: Policy, state_dir: str | os.PathLike[str], path: Path | None = None
         ) -> Path | None:
    """Checkpoint a learner atomically (None for policies without state)."""
    if not hasattr(policy, "state"):
        return None
    meta, arrays = policy.state()  # type: ignore[attr-defined]
    target = path or checkpoint_path(state_dir, policy.name)
    save_checkpoint(target, meta, arrays)
    return target
