"""Arms, the typed record, exploration, the registry, checkpoints and every learner on a
synthetic bandit with a known optimum."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scxd.catalog import build_catalog
from scxd.config import PolicyConfig, load_config
from scxd.features import SCHEMA_NAME, SCHEMA_VERSION, FeatureVector
from scxd.policy import explore as ex
from scxd.policy import registry
from scxd.policy.arms import ArmSet, ArmSetError, action_from_key, arm_key
from scxd.policy.base import OfflineData, PolicyEnv
from scxd.policy.checkpoint import CheckpointError, load, save
from scxd.probe import Availability, ProbedCatalog
from scxd.record import Choice, Context, TransitionJoiner, WindowRecord, composite_distribution
from tests import bandit_helper as bh

CAT = build_catalog()
ALL = ProbedCatalog(CAT, {s.name: Availability(s.name, True) for s in CAT})


# -- arms -------------------------------------------------------------------------------------
def test_keys_name_every_parameter():
    fair = CAT.fair()
    tuned = CAT.action("fair", {"base_slice_ns": 750_000})
    assert fair.label() == tuned.label() == "fair"          # the old ambiguity
    assert arm_key(fair) != arm_key(tuned)
    assert arm_key(fair) == ("fair base_slice_ns=3000000 migration_cost_ns=500000 "
                             "nr_migrate=32 preempt=full")
    for a in ArmSet.from_catalog(ALL, "grid"):
        assert action_from_key(CAT, a.key).same_as(a.action)


def test_grid_space_respects_explore_flags_and_constraints():
    arms = ArmSet.from_catalog(ALL, "grid")
    presets = ArmSet.from_catalog(ALL, "presets")
    assert set(presets.keys()) <= set(arms.keys()) and len(arms) > len(presets)
    for a in arms:
        spec = CAT.get(a.scheduler)
        assert spec.explore
        for p in spec.params:
            if not p.explore:   # fault injection, partial mode: never varied
                assert a.action.values[p.name] == p.default
        spec.resolve(a.action.values)   # constraints hold
    assert not any(a.scheduler == "scx_central" for a in arms)
    assert "scx_bpfland" in {a.scheduler for a in arms}
    assert any(a.action.values.get("slice_us") == 5000 and a.scheduler == "scx_bpfland"
               for a in arms)


def test_arm_set_hash_is_stable_and_order_free():
    a = ArmSet.from_labels(CAT, ["fair", "scx_simple -f", "scx_qmap -s 5000"])
    b = ArmSet.from_labels(CAT, ["scx_qmap -s 5000", "fair", "scx_simple -f"])
    c = ArmSet.from_labels(CAT, ["fair", "scx_simple"])
    assert a.hash == b.hash != c.hash and len(a.hash) == 16
    assert a.index(a[2].key) == 2 and a.by_label("scx_simple -f").index == 1
    with pytest.raises(ArmSetError, match="not in arm set"):
        c.index(a[2].key)
    with pytest.raises(ArmSetError, match="scx_nope"):
        ArmSet.from_labels(CAT, ["scx_nope -x"])


def test_factorisation_codes_are_products():
    arms = bh.ARMS
    f = arms.factorisation()
    assert f.schedulers == ("fair", "scx_simple", "scx_qmap")
    assert [d.param for d in f.dims["scx_qmap"]] == ["slice_us"]
    assert f.codes[4] == (2, (1,)) and f.codes[0] == (0, ())


# -- exploration ------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda v, m: ex.epsilon_greedy(v, m, 0.2),
    lambda v, m: ex.ucb(v, np.abs(v), m, 0.05),
    lambda v, m: ex.with_floor(ex.greedy(v, m), m, 0.1),
    lambda v, m: ex.softmax(v, m),
])
def test_distributions_are_exact_and_floored(fn):
    rng = np.random.default_rng(1)
    for _ in range(50):
        v = rng.standard_normal(7)
        m = rng.random(7) < 0.7
        m[rng.integers(7)] = True
        p = fn(v, m)
        assert math.isclose(p.sum(), 1.0, abs_tol=1e-12)
        assert (p[~m] == 0).all() and (p >= 0).all()
    p = ex.ucb(np.array([0.0, 1.0, 2.0]), np.zeros(3), np.ones(3, bool), 0.05)
    assert p.min() == pytest.approx(0.05) and p.argmax() == 2


def test_epsilon_decays_to_its_floor():
    assert ex.epsilon_at(0, 0.3, 0.02, 100) == pytest.approx(0.3)
    assert ex.epsilon_at(100, 0.3, 0.02, 100) == pytest.approx(0.16)
    assert ex.epsilon_at(10**6, 0.3, 0.02, 100) == pytest.approx(0.02)


# -- the record -------------------------------------------------------------------------------
def _rec(i, running, choice_arm, warmup=False, cost=0.1, by_policy=True, **tags):
    return WindowRecord(at=i, id=i, context=Context(SCHEMA_NAME, SCHEMA_VERSION, (float(i),)),
                        running=running, running_label=running, warmup=warmup, cost=cost,
                        choice=Choice(choice_arm, choice_arm, 0.5, {choice_arm: 0.5},
                                      by_policy), tags=tags)


def test_joiner_pairs_decision_with_next_window():
    j = TransitionJoiner()
    assert j.push(_rec(0, "a", "b")) is None
    t = j.push(_rec(1, "b", "b", cost=0.3))
    assert t.arm == "b" and t.context[0] == 0.0 and t.reward == pytest.approx(-0.3)
    assert t.swapped and t.previous == "a" and t.usable and t.propensity == 0.5
    t = j.push(_rec(2, "b", "a", warmup=True))       # warm-up window: never scored
    assert not t.usable and t.reward is None
    t = j.push(_rec(3, "external:lavd", "a"))         # something else ran: not a's reward
    assert t.reward is None and t.warmup


def test_joiner_never_spans_two_runs():
    j = TransitionJoiner(break_on="run_id")
    j.push(_rec(0, "a", "a", run_id="r1"))
    assert j.push(_rec(1, "a", "a", run_id="r2")) is None
    assert j.push(_rec(2, "a", "a", run_id="r2")).usable


def test_composite_propensity_of_policy_and_guard():
    dist = {"a": 0.7, "b": 0.3}
    assert composite_distribution(dist, "b", by_policy=True) == dist
    assert composite_distribution(dist, "a", by_policy=False) == {"a": 1.0}
    assert composite_distribution(dist, "pinned", by_policy=True) == {"pinned": 1.0}
    # A draw the guard maps to another arm (a quarantined "b" runs what ran, "a") moves its
    # mass there, exactly.
    three = {"a": 0.5, "b": 0.3, "c": 0.2}
    held = composite_distribution(three, "a", True, {"b": "a"})
    assert held == {"a": 0.8, "b": 0.0, "c": 0.2}
    swapped = composite_distribution(three, "c", True, {"b": "a"})
    assert swapped["c"] == 0.2 and swapped["a"] == 0.8 and sum(swapped.values()) == 1.0


def test_record_round_trips_through_the_journal_format():
    rec = _rec(5, "a", "b", run_id="r", workload="w")
    back = WindowRecord.from_journal(json.loads(json.dumps(rec.to_journal())))
    assert back == rec


# -- registry, config, checkpoints ------------------------------------------------------------
def test_every_registered_policy_has_a_config_table_and_builds():
    cfg = load_config(environ={})
    for e in registry.ENTRIES:
        if e.section:
            assert isinstance(getattr(cfg.policy, e.section), e.model)
        if e.available():
            continue
        p = registry.make_policy(PolicyConfig(name=e.name), PolicyEnv(bh.ARMS, probed=bh.PROBED))
        assert p.name == e.name


def test_unknown_policy_and_bad_section_are_config_errors():
    from scxd.config import ConfigError

    with pytest.raises(ConfigError, match="unknown policy 'oracle'"):
        load_config(overrides={"policy": {"name": "oracle"}}, environ={})
    with pytest.raises(ConfigError, match=r"policy\.network\.epsilon_floor"):
        load_config(overrides={"policy": {"network": {"epsilon_floor": 2}}}, environ={})


def test_checkpoint_is_atomic_and_validated(tmp_path):
    path = tmp_path / "p" / "x.npz"
    save(path, {"policy": "linucb", "n": 1}, {"a": np.arange(3)})
    ck = load(path)
    assert ck.meta["n"] == 1 and ck.arrays["a"].tolist() == [0, 1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["x.npz"]   # no temp file left
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        load(path)


LEARNERS = [e.name for e in registry.ENTRIES if e.learns and not e.available()]


@pytest.mark.parametrize("name", LEARNERS)
def test_save_load_round_trip_and_fallbacks(name, tmp_path, caplog):
    cfg = PolicyConfig(name=name, pretrained="none")
    p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=3, probed=bh.PROBED))
    bh.run(p, steps=60, seed=1)
    registry.save(p, tmp_path)
    q = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=3, probed=bh.PROBED))
    note = registry.restore(q, cfg, tmp_path)
    assert "state from checkpoint" in note and q.updates == p.updates
    fv = FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, bh.context(np.random.default_rng(0), 1), ())
    q.rng, p.rng = np.random.default_rng(9), np.random.default_rng(9)
    # The network also weighs the evidence of the windows since the last change (and the
    # recent context mean): runtime state a restart rightly begins afresh, so the saved
    # policy is compared from that same fresh start.
    p.forget_runtime()
    assert q.decide(fv, bh.ARMS.actions()).distribution == pytest.approx(
        p.decide(fv, bh.ARMS.actions()).distribution)
    # Another arm set: per-arm state carried over by key, and said so.
    fewer = ArmSet.from_labels(CAT, bh.LABELS[:3])
    r = registry.make_policy(cfg, PolicyEnv(fewer, seed=3, probed=bh.PROBED))
    assert "3 of 3 arms carried over" in registry.restore(r, cfg, tmp_path)
    # Other features: one clear line, fresh start.
    other = registry.make_policy(cfg, PolicyEnv(bh.ARMS, probed=bh.PROBED, schema_version=99))
    note = registry.restore(other, cfg, tmp_path)
    assert "starting fresh" in note and "features are" in note and other.updates == 0


@pytest.mark.parametrize("name", LEARNERS)
def test_seeded_determinism(name):
    cfg = PolicyConfig(name=name, pretrained="none")
    runs = [bh.run(registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=5, probed=bh.PROBED)),
                   steps=80, seed=2) for _ in range(2)]
    assert (runs[0].optimal == runs[1].optimal).all()
    assert runs[0].propensities == runs[1].propensities


@pytest.mark.parametrize("name", [n for n in LEARNERS if n != "swucb"])
def test_contextual_learners_converge_with_sublinear_regret(name):
    # Three seeds: early ties between untried arms are broken by floating-point noise, so
    # one run's trajectory is chaotic; the learning is judged on the average.
    cfg = PolicyConfig(name=name, pretrained="none")
    runs = [bh.run(registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=s, probed=bh.PROBED)),
                   steps=800, seed=s) for s in range(3)]
    first = sum(r.regret[:200].sum() for r in runs)
    last = sum(r.regret[-200:].sum() for r in runs)
    assert last < 0.5 * first, (first, last)
    optimal = [float(r.optimal[-200:].mean()) for r in runs]
    assert np.mean(optimal) >= 0.7, optimal
    assert min(min(r.propensities) for r in runs) > 0


def test_context_free_swucb_finds_the_best_arm_of_a_stationary_workload():
    cfg = PolicyConfig(name="swucb", pretrained="none")
    p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    res = bh.run(p, steps=600, seed=0, switch_every=10**6)
    assert res.optimal[-200:].mean() > 0.75


# -- one reader for journals and datasets -----------------------------------------------------
def test_committed_dataset_reads_as_transitions():
    from scxd.replay.logs import load_logs

    log = load_logs(datasets=["data/testbed-v1"])
    assert len(log.arms) == 9 and log.feature_version == SCHEMA_VERSION and log.window_s == 2.0
    assert len(log.records) == 1350
    # 270 runs × 4 joined pairs inside each run (never across runs).
    assert len(log.transitions) == 1080
    t = log.transitions[0]
    assert t.propensity == pytest.approx(1 / 9) and not t.warmup
    assert {tr.tags["run_id"] for tr in log.transitions[:4]} == {t.tags["run_id"]}


def _journal(path, version=1, arms=("fair", "scx_simple")):
    from scxd.journal import JournalWriter

    arm_set = ArmSet.from_labels(CAT, arms)
    w = JournalWriter(path, {"feature_schema": SCHEMA_NAME, "feature_version": version,
                             "arm_set": arm_set.header()}, fsync=False)
    keys = arm_set.keys()
    for i in range(6):
        rec = WindowRecord(at=i, id=i, context=Context(SCHEMA_NAME, version, (0.1 * i,)),
                           running=keys[i % 2], running_label=arm_set[i % 2].label,
                           warmup=i == 3, cost=0.1 * i,
                           choice=Choice(keys[(i + 1) % 2], "x", 0.5, None))
        w.append(rec.to_journal())
        if i == 2:
            w.append({"kind": "event", "event": "start"})   # a restart: no join across it
    w.close()


def test_journals_read_as_transitions_and_mixes_are_refused(tmp_path):
    from scxd.replay.logs import LogError, load_logs

    _journal(tmp_path / "a")
    log = load_logs(journals=[tmp_path / "a"])
    assert len(log.records) == 6 and len(log.transitions) == 4   # 0→1, 1→2, 3→4, 4→5
    assert [t.usable for t in log.transitions] == [True, True, True, True]
    _journal(tmp_path / "b", version=2)
    with pytest.raises(LogError, match="mix feature schemas"):
        load_logs(journals=[tmp_path / "a", tmp_path / "b"])
    _journal(tmp_path / "c", arms=("fair", "scx_qmap"))
    with pytest.raises(LogError, match="mix arm sets"):
        load_logs(journals=[tmp_path / "a", tmp_path / "c"])
    with pytest.raises(LogError, match=r"no windows\.jsonl\.xz"):
        load_logs(datasets=[tmp_path / "a"])


def test_shipped_pretrained_network_starts_a_fresh_install(tmp_path):
    """The builtin checkpoint (trained on data/testbed's training repeats) is loaded when the
    state directory has none; its factors carry over to this machine's arms by key."""
    assert (registry.PRETRAINED_DIR / "network.npz").exists()
    ck = load(registry.PRETRAINED_DIR / "network.npz")
    assert ck.meta["policy"] == "network" and ck.meta["feature_version"] == SCHEMA_VERSION
    pc = ProbedCatalog(CAT, {s.name: Availability(s.name, s.name in
                                                  {"fair", "scx_simple", "scx_qmap"})
                             for s in CAT})
    cfg = PolicyConfig(name="network")
    p = registry.make_policy(cfg, PolicyEnv(ArmSet.from_catalog(pc, "presets"), probed=pc))
    note = registry.restore(p, cfg, tmp_path)
    assert "state from pretrained" in note and "network factors carried over" in note
    assert p.updates == ck.meta["updates"] > 0


def two_workload_log(n: int, noise: float, rng: np.random.Generator) -> OfflineData:
    """Uniformly logged windows of the synthetic bandit's two workloads (w0, w1)."""
    clusters = rng.integers(0, 2, n)
    arms = rng.integers(0, len(bh.ARMS), n)
    rewards = bh.MEANS[clusters, arms] + noise * rng.standard_normal(n)
    return OfflineData(np.stack([bh.context(rng, c) for c in clusters]), arms, rewards,
                       np.full(n, 1 / len(bh.ARMS)), np.array([f"w{c}" for c in clusters]))


def test_asa_classifier_learns_each_workloads_best_arm_offline(tmp_path):
    rng = np.random.default_rng(0)
    data = two_workload_log(400, 0.1, rng)
    # The classifier alone: the novelty check has its own tests.
    cfg = PolicyConfig.model_validate({"name": "asa", "pretrained": "none",
                                       "asa": {"novelty_check": False}})
    p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    untrained = p.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, bh.context(rng, 0), ()),
                         bh.ARMS.actions())
    assert untrained.action.is_fair and "untrained" in untrained.reason
    p.pretrain(data)
    for cluster, best in ((0, 2), (1, 4)):
        d = p.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, bh.context(rng, cluster), ()),
                     bh.ARMS.actions())
        assert bh.ARMS.find(d.action).index == best and "votes" in d.reason
    registry.save(p, tmp_path)
    q = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    assert "state from checkpoint" in registry.restore(q, cfg, tmp_path) and q.trained


def test_asa_checkpoint_carries_to_another_arm_set_by_key(tmp_path):
    """A model made on the dataset's arms, loaded by a daemon whose catalog has other arms:
    the arms both know keep their votes; an arm the model never saw is never voted for
    (with only fair left of its arms, fair it is)."""
    rng = np.random.default_rng(0)
    p = registry.make_policy(PolicyConfig(name="asa", pretrained="none"),
                             PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    p.pretrain(two_workload_log(400, 0.1, rng))
    registry.save(p, tmp_path)
    cfg = PolicyConfig(name="asa", pretrained=str(tmp_path / "policy" / "asa.npz"))
    other = ArmSet.from_labels(bh.CAT, ["scx_qmap -s 5000", "fair", "scx_qmap -b 8",
                                        "scx_simple -f"])
    q = registry.make_policy(cfg, PolicyEnv(other, seed=0, probed=bh.PROBED))
    assert "other arm set: 3 of 4 arms carried over" in registry.restore(q, cfg, None)
    assert q.known.tolist() == [True, True, False, True]
    for cluster, best in ((0, "scx_simple -f"), (1, "scx_qmap -s 5000")):
        for _ in range(5):
            d = q.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION,
                                       bh.context(rng, cluster), ()), other.actions())
            assert d.action.label() == best, (cluster, d.reason)
    none = ArmSet.from_labels(bh.CAT, ["fair", "scx_qmap -b 8"])
    r = registry.make_policy(cfg, PolicyEnv(none, seed=0, probed=bh.PROBED))
    registry.restore(r, cfg, None)
    assert r.known.tolist() == [True, False]
    d = r.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, bh.context(rng, 1), ()),
                 none.actions())
    assert d.action.is_fair


def test_shipped_asa_model_is_the_benchmarks_and_starts_a_fresh_install(tmp_path):
    """scxd/policy/pretrained/asa.npz is what `python -m scxd.replay.pretrain --policy asa
    --dataset data/testbed` makes (the benchmark's asa: training repeats 0-1 only), and a
    daemon with no state of its own starts from it, with its risk model."""
    from scxd.replay.logs import load_logs
    from scxd.replay.pretrain import pretrain
    shipped = load(registry.PRETRAINED_DIR / "asa.npz")
    assert shipped.meta["policy"] == "asa" and shipped.meta["feature_version"] == SCHEMA_VERSION
    pretrain(["data/testbed"], "asa", "balanced", tmp_path / "asa.npz")
    again = load(tmp_path / "asa.npz")
    assert again.meta["arm_keys"] == shipped.meta["arm_keys"]
    for name in ("weights", "risk", "workload_weights", "novelty_mean", "novelty_precision"):
        np.testing.assert_allclose(again.arrays[name], shipped.arrays[name], atol=1e-9)
    assert again.meta["extra"]["novelty_threshold"] == pytest.approx(
        shipped.meta["extra"]["novelty_threshold"])
    assert shipped.meta["extra"]["risk_workloads"] == sorted(
        {r.tags["workload"] for r in load_logs(datasets=["data/testbed"]).records})
    cfg = PolicyConfig(name="asa")
    p = registry.make_policy(cfg, PolicyEnv(ArmSet.from_keys(shipped.meta["arm_keys"]),
                                            probed=ProbedCatalog(CAT, {
                                                s.name: Availability(s.name, True)
                                                for s in CAT})))
    assert "state from pretrained" in registry.restore(p, cfg, tmp_path / "empty")
    assert p.trained and p.known.all() and p.risk.shape[1] == len(p.risk_workloads) > 0
    assert p.novelty_precision.shape[0] == len(p.risk_workloads)
    assert np.isfinite(p.novelty_threshold)


def test_a_checkpoint_that_fits_nothing_falls_through_to_the_shipped_model(tmp_path):
    """A network checkpoint of another shape (hidden width) left in the state directory by
    an older configuration: nothing of it fits, so the daemon starts from the shipped
    model, not from zeros."""
    pytest.importorskip("torch")
    from scxd.policy.checkpoint import save as save_checkpoint
    shipped = load(registry.PRETRAINED_DIR / "network.npz")
    env = PolicyEnv(ArmSet.from_keys(shipped.meta["arm_keys"]), probed=ALL)
    narrow = PolicyConfig.model_validate({"name": "network", "pretrained": "none",
                                          "network": {"hidden": 16}})
    meta, arrays = registry.make_policy(narrow, env).state()
    save_checkpoint(registry.checkpoint_path(tmp_path, "network"), meta, arrays)
    cfg = PolicyConfig(name="network")
    p = registry.make_policy(cfg, env)
    note = registry.restore(p, cfg, tmp_path)
    assert "state from pretrained" in note and "checkpoint" in note and "not used" in note
    assert "kept nothing" in note and p.updates == shipped.meta["updates"]


def test_offline_data_labels_each_group_with_its_best_mean_reward():
    data = OfflineData(np.zeros((6, 1)), np.array([0, 1, 1, 0, 2, 2]),
                       np.array([0.1, 0.5, 0.3, -1.0, -0.2, -0.4]), np.full(6, 0.5),
                       np.array(["a", "a", "a", "b", "b", ""]))
    # a: arm 1 (mean 0.4) over arm 0 (0.1); b: arm 2 (−0.2) over arm 0 (−1); "" is unknown.
    assert data.best_arm_by_reward(3) == {"a": 1, "b": 2}


def test_network_warm_start_imitates_each_workloads_best_arm():
    """Pretraining pulls the actor towards each training workload's best arm by mean reward
    (``imitation``), which one noisy reward per window teaches only slowly."""
    torch = pytest.importorskip("torch")
    data = two_workload_log(600, 0.3, np.random.default_rng(0))
    best = data.best_arm_by_reward(len(bh.ARMS))
    assert best == {"w0": 2, "w1": 4}

    def best_arm_probability(imitation: float) -> list[float]:
        cfg = PolicyConfig.model_validate({"name": "network", "pretrained": "none",
                                           "network": {"imitation": imitation}})
        p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
        p.pretrain(data, epochs=2)
        out = []
        for cluster, arm in ((0, 2), (1, 4)):
            x = p._input(p.features(bh.context(np.random.default_rng(1), cluster)), None)
            with torch.inference_mode():
                logpi, _ = p._forward(torch.from_numpy(x)[None])
            assert int(logpi[0].argmax()) == arm or imitation == 0
            out.append(float(logpi[0, arm].exp()))
        return out

    imitated, plain = best_arm_probability(3.0), best_arm_probability(0.0)
    assert all(i > 0.5 and i > p for i, p in zip(imitated, plain, strict=True))


def test_network_adam_is_the_textbook_update():
    """The network's Adam (torch's fused kernel, called without torch.optim) is Kingma & Ba's
    update with bias correction, step counts per parameter; a parameter without a gradient
    in a step is left alone and its count does not advance."""
    torch = pytest.importorskip("torch")
    from scxd.policy.network import Adam

    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,)]
    params = [torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in shapes]
    ref = [p.numpy().astype(np.float64).copy() for p in params]
    m = [np.zeros(s) for s in shapes]
    v = [np.zeros(s) for s in shapes]
    t = [0, 0]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam(params, lr=lr, betas=(b1, b2), eps=eps)
    for step in range(6):
        opt.zero_grad()
        for i, p in enumerate(params):
            if step == 3 and i == 1:
                continue           # no gradient for this one in step 3
            g = rng.normal(size=shapes[i])
            p.grad = torch.tensor(g, dtype=torch.float32)
            t[i] += 1
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat, vhat = m[i] / (1 - b1 ** t[i]), v[i] / (1 - b2 ** t[i])
            ref[i] = ref[i] - lr * mhat / (np.sqrt(vhat) + eps)
        opt.step()
    for p, r in zip(params, ref, strict=True):
        np.testing.assert_allclose(p.numpy(), r, rtol=1e-5, atol=1e-6)
    assert [float(s) for s in opt.steps] == [6.0, 5.0]


def test_network_change_test_uses_the_critic_values_of_the_decision():
    """The residual test reads the critic's values cached when the window's arm was chosen
    (keyed by the raw context and the running arm — the scaler moves in between), so an
    update evaluates no second forward pass."""
    pytest.importorskip("torch")
    from scxd.record import Transition

    cfg = PolicyConfig.model_validate({"name": "network", "pretrained": "none"})
    p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    rng = np.random.default_rng(0)
    eligible = bh.ARMS.actions()
    calls = []
    forward = p._forward
    p._forward = lambda x: (calls.append(1), forward(x))[1]
    running = eligible[0]
    prev = None
    for _ in range(5):
        values = bh.context(rng, 0)
        d = p.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, values, ()), eligible, running)
        if prev is not None:
            ctx, choice, ran = prev
            p.update(Transition(ctx, SCHEMA_NAME, SCHEMA_VERSION, choice.key,
                                choice.propensity, 0.1, -0.1, {}, False, previous=arm_key(ran)))
        prev = (values.copy(), d, running)
        running = d.action
    assert len(calls) == 5         # one per decision, none per update
    # A transition decided elsewhere (not among the recent decisions) is evaluated afresh.
    p.update(Transition(bh.context(rng, 1), SCHEMA_NAME, SCHEMA_VERSION, prev[1].key,
                        0.5, 0.1, -0.1, {}, False, previous=arm_key(prev[2])))
    assert len(calls) == 6


def risky_log(rng: np.random.Generator) -> OfflineData:
    """The synthetic bandit's two workloads, with outcome losses: arm 2 (w0's best by
    reward) is 5× worse than the best on w1, where fair is best; fair loses 30 % on w0."""
    data = two_workload_log(600, 0.1, rng)
    data.outcome_loss = {"w0": np.array([0.3, 0.2, 0.0, 0.4, 0.3]),
                         "w1": np.array([0.0, 0.5, 5.0, 0.2, np.nan])}
    return data


def between(rng: np.random.Generator, share_of_w1: float) -> np.ndarray:
    """A window of neither training workload: its features part way from w0 to w1."""
    return (1 - share_of_w1) * bh.context(rng, 0) + share_of_w1 * bh.context(rng, 1)


def test_asa_risk_check_runs_fair_when_the_pick_may_be_catastrophic():
    """Where the window is clearly w0, the voted arm 2 runs; where the window might be w1
    (on which arm 2 is catastrophic) the Bayes decision between the voted arm and fair
    falls to fair, and the reason says why; without the risk check the vote stands.  (The
    window between the workloads is also unlike both: the novelty check is off here.)"""
    rng = np.random.default_rng(0)
    data = risky_log(rng)

    def policy(risk_check: bool):
        cfg = PolicyConfig.model_validate({"name": "asa", "pretrained": "none",
                                           "asa": {"risk_check": risk_check,
                                                   "novelty_check": False}})
        p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
        p.pretrain(data)
        return p

    checked, plain = policy(True), policy(False)
    assert checked.risk_workloads == ["w0", "w1"]
    # The never-run arm 4 on w1 is assumed as bad as w1's worst arm.
    assert checked.risk[4, 1] == 5.0 and checked.risk[2, 0] == 0.0
    fv = FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, bh.context(rng, 0), ())
    assert bh.ARMS.find(checked.decide(fv, bh.ARMS.actions()).action).index == 2
    x = between(rng, 0.45)
    posterior, expected = checked.expected_loss(checked.features(x))
    assert posterior[1] > 0.1 and expected[2] > expected[0]    # the case the check is for
    fv = FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, x, ())
    vetoed = checked.decide(fv, bh.ARMS.actions())
    assert vetoed.action.is_fair and "risk check" in vetoed.reason
    assert "w1" in vetoed.reason and vetoed.distribution[arm_key(vetoed.action)] == 1.0
    assert not vetoed.explore          # what asa means to run, not an exploration
    voted = plain.decide(fv, bh.ARMS.actions())
    assert bh.ARMS.find(voted.action).index == 2 and "risk check" not in voted.reason


def unlike_any(rng: np.random.Generator) -> np.ndarray:
    """A w0 window whose features that tell w0 from w1 are as w0's, but whose others (the
    same in both workloads) sit far from where either workload put them."""
    x = bh.context(rng, 0)
    x[bh.INFORMATIVE // 2:bh.INFORMATIVE] += 0.5
    return x


def test_asa_novelty_check_runs_fair_on_a_window_like_no_training_workload():
    """Both classifiers call the odd window w0 with confidence (they are softmaxes over
    the training workloads: "none of these" is no answer), so the vote and the risk check
    let arm 2 run; the novelty check sees the window is far from both workloads' windows
    and, from the second such window in a row, runs fair, naming the nearest, until two w0
    windows in a row come back.  It lets the training windows through but for the
    configured share."""
    rng = np.random.default_rng(0)
    data = risky_log(rng)

    def policy(novelty_check: bool):
        cfg = PolicyConfig.model_validate({"name": "asa", "pretrained": "none",
                                           "asa": {"novelty_check": novelty_check}})
        p = registry.make_policy(cfg, PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
        p.pretrain(data)
        return p

    checked, plain = policy(True), policy(False)
    assert checked.novelty_mean.shape == (2, len(bh.FEATURE_NAMES))
    inside = checked.novelty(np.stack([checked.features(c)[:-1] for c in data.contexts]))[0]
    # The threshold is cross-fitted: fresh windows of the training workloads, which the
    # Gaussians never saw, pass but for about the configured 1 %.
    fresh = np.stack([checked.features(bh.context(rng, c))[:-1] for c in (0, 1) * 500])
    assert (checked.novelty(fresh)[0] > checked.novelty_threshold).mean() <= 0.03
    x = unlike_any(rng)
    posterior, expected = checked.expected_loss(checked.features(x))
    assert posterior[0] > 0.9 and expected[2] <= expected[0]    # the risk check lets it by
    fv = FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, x, ())
    voted = plain.decide(fv, bh.ARMS.actions())
    assert bh.ARMS.find(voted.action).index == 2 and "check" not in voted.reason
    assert "novel" not in voted.stats

    # Training windows of w0 well inside its Gaussian.
    typical = np.flatnonzero((data.groups == "w0") & (inside < checked.novelty_threshold / 2))
    w0 = [FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, data.contexts[i], ()) for i in typical]
    familiar = checked.decide(w0[0], bh.ARMS.actions())
    assert bh.ARMS.find(familiar.action).index == 2 and familiar.stats["novel"] == 0.0
    first = checked.decide(fv, bh.ARMS.actions())     # one stray window is not enough
    assert bh.ARMS.find(first.action).index == 2 and "check" not in first.reason
    held = checked.decide(fv, bh.ARMS.actions())
    assert held.action.is_fair and "novelty check" in held.reason and "nearest w0" in held.reason
    assert held.distribution[arm_key(held.action)] == 1.0 and not held.explore
    assert held.stats["novel"] == 1.0 and held.stats["novelty_ratio"] > 1.0
    assert "novelty check" in checked.decide(w0[1], bh.ARMS.actions()).reason
    assert bh.ARMS.find(checked.decide(w0[2], bh.ARMS.actions()).action).index == 2
    assert bh.ARMS.find(checked.decide(fv, bh.ARMS.actions()).action).index == 2
    # With nothing seen before (a fresh start, or each row of an off-policy evaluation),
    # the first window's verdict is taken as it is.
    checked.reset_runtime()
    assert checked.decide(fv, bh.ARMS.actions()).action.is_fair


def test_asa_novelty_ignores_what_never_varied_in_training():
    """Features that stayed put under every training workload (here the synthetic
    bandit's constant tail; on the test bed the VM's free memory, its absent disk and swap
    traffic) measure the machine, not the workload: another host's values there must not
    make a familiar window novel, while a window off in features that did vary still is."""
    rng = np.random.default_rng(0)
    p = registry.make_policy(PolicyConfig(name="asa", pretrained="none"),
                             PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    p.pretrain(risky_log(rng))
    constant = np.arange(bh.INFORMATIVE, len(bh.FEATURE_NAMES))
    assert len(constant) > 0
    assert not p.novelty_precision[:, constant].any()
    assert not p.novelty_precision[:, :, constant].any()
    other_host = bh.context(rng, 0)
    other_host[constant] = 3.0
    assert p.novelty(p.features(other_host)[:-1])[0][0] <= p.novelty_threshold
    d = p.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, other_host, ()), bh.ARMS.actions())
    assert bh.ARMS.find(d.action).index == 2 and "check" not in d.reason
    assert p.novelty(p.features(unlike_any(rng))[:-1])[0][0] > p.novelty_threshold


def test_shipped_asa_model_judges_workloads_not_the_recording_machine():
    """On the shipped model, a training window from a host with twice the free memory and
    some disk and swap traffic (all constant on the recording VM) is as familiar as it was."""
    from scxd.features import FEATURE_NAMES
    from scxd.replay.logs import load_logs

    log = load_logs(datasets=["data/testbed"])
    cfg = PolicyConfig(name="asa")
    p = registry.make_policy(cfg, PolicyEnv(log.arms, schema=log.schema,
                                            schema_version=log.feature_version,
                                            feature_names=tuple(log.feature_names)))
    assert "state from pretrained" in registry.restore(p, cfg, None)
    rows = [r.context.values for r in log.records if not r.warmup][:200]
    before = np.array([p.novelty(p.features(np.asarray(v, float))[:-1])[0][0] for v in rows])
    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    moved = []
    for v in rows:
        w = np.asarray(v, float).copy()
        w[index["mem_available"]] += np.log(2.0)   # log bytes
        w[index["disk_rate"]] += 12.0              # ~160 kB/s
        w[index["swap_out_rate"]] += 2.0
        moved.append(p.novelty(p.features(w)[:-1])[0][0])
    np.testing.assert_allclose(moved, before)


def test_asa_risk_model_carries_by_arm_key_and_old_checkpoints_still_load(tmp_path):
    """The loss table is per arm: a daemon with other arms keeps each known arm's row by
    key, and the novelty model (per workload) whole.  A checkpoint without the risk model
    (asa-2) or the novelty model (asa-3) loads with that check off."""
    rng = np.random.default_rng(0)
    p = registry.make_policy(PolicyConfig(name="asa", pretrained="none"),
                             PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    p.pretrain(risky_log(rng))
    meta, arrays = p.state()
    other = ArmSet.from_labels(bh.CAT, ["scx_simple -f", "scx_qmap -b 8", "fair"])
    q = registry.make_policy(PolicyConfig(name="asa"),
                             PolicyEnv(other, seed=0, probed=bh.PROBED))
    q.load_state(meta, arrays)
    np.testing.assert_array_equal(q.risk[0], p.risk[2])
    np.testing.assert_array_equal(q.risk[2], p.risk[0])
    assert q.risk_workloads == ["w0", "w1"] and q.workload_weights.shape[0] == 2
    np.testing.assert_array_equal(q.novelty_precision, p.novelty_precision)
    assert q.novelty_threshold == p.novelty_threshold
    x = unlike_any(rng)
    assert q.novelty(q.features(x)[:-1])[0] == pytest.approx(p.novelty(p.features(x)[:-1])[0])
    d = q.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, between(rng, 0.45), ()),
                 other.actions())
    assert d.action.is_fair and "check" in d.reason
    no_novelty = {k: v for k, v in arrays.items() if not k.startswith("novelty")}
    s = registry.make_policy(PolicyConfig(name="asa"), PolicyEnv(bh.ARMS, seed=0,
                                                                 probed=bh.PROBED))
    s.load_state({**meta, "extra": {**meta["extra"], "novelty_threshold": None}}, no_novelty)
    assert s.novelty_mean.shape[0] == 0 and s.risk.shape == (5, 2)
    d = s.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, x, ()), bh.ARMS.actions())
    assert bh.ARMS.find(d.action).index == 2 and "check" not in d.reason
    old = {k: v for k, v in arrays.items() if k not in ("risk", "workload_weights")}
    old_meta = {**meta, "extra": {"trained": True}}
    r = registry.make_policy(PolicyConfig(name="asa"),
                             PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    assert "5 of 5 arms carried over" in r.load_state(old_meta, old)
    assert r.risk.shape == (5, 0) and r.novelty_mean.shape[0] == 0 and r.trained
    d = r.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, between(rng, 0.45), ()),
                 bh.ARMS.actions())
    assert "risk check" not in d.reason


def test_the_fair_arm_carries_over_whatever_its_machines_tunables():
    """A machine's plain fair arm spells its own tunable values (base_slice_ns scales with
    the CPU count), so a model recorded elsewhere names fair differently: the checkpoint's
    first fair arm stands for this machine's, and asa's risk check keeps working (the
    window between the workloads is novel too: that check is off here)."""
    rng = np.random.default_rng(0)
    p = registry.make_policy(PolicyConfig(name="asa", pretrained="none"),
                             PolicyEnv(bh.ARMS, seed=0, probed=bh.PROBED))
    p.pretrain(risky_log(rng))
    meta, arrays = p.state()
    here = [bh.ARMS.keys()[0].replace("base_slice_ns=3000000", "base_slice_ns=1400000"),
            *bh.ARMS.keys()[1:]]
    arms = ArmSet.from_keys(here, ["fair", *bh.LABELS[1:]])
    q = registry.make_policy(PolicyConfig.model_validate({"name": "asa", "asa": {
        "novelty_check": False}}), PolicyEnv(arms, seed=0, probed=bh.PROBED))
    assert "5 of 5 arms carried over" in q.load_state(meta, arrays)
    assert q.known.all()
    np.testing.assert_array_equal(q.risk[0], p.risk[0])
    d = q.decide(FeatureVector(SCHEMA_NAME, SCHEMA_VERSION, between(rng, 0.45), ()),
                 arms.actions())
    assert d.action.is_fair and "risk check" in d.reason


def test_model_arms_join_the_daemon_arm_set_and_carry_over():
    """The dataset's tuned combinations are no catalog presets, and its keys were recorded
    by loaders whose probe dropped parameters (scx_flash's tickless): the daemon offers the
    shipped model's arms this machine can run, and every one of them carries its state."""
    cfg = PolicyConfig(name="asa")
    keys = registry.model_arm_keys(cfg)
    assert len(keys) == 23
    plain = ArmSet.from_catalog(ALL, "grid")
    arms = ArmSet.from_catalog(ALL, "grid", keys)
    assert plain.keys() == arms.keys()[:len(plain)] and len(arms) > len(plain)
    assert sum(a.action.is_fair for a in arms) == sum(a.action.is_fair for a in plain)
    p = registry.make_policy(cfg, PolicyEnv(arms, probed=ALL))
    assert "23 of" in registry.restore(p, cfg, None) and p.known.sum() == 23
    # Only what this machine can run: without scx_flash, no flash arm is added.
    no_flash = ProbedCatalog(CAT, {s.name: Availability(s.name, s.name != "scx_flash")
                                   for s in CAT})
    assert not any(a.action.scheduler == "scx_flash"
                   for a in ArmSet.from_catalog(no_flash, "grid", keys))
    # A key naming a parameter this catalog does not know is skipped, not an error.
    odd = ArmSet.from_catalog(ALL, "presets", ["scx_simple fifo=true warp=9"])
    assert odd.keys() == ArmSet.from_catalog(ALL, "presets").keys()
    assert registry.model_arm_keys(PolicyConfig(name="asa", model_arms=False)) == []
    assert registry.model_arm_keys(PolicyConfig(name="fixed")) == []


def test_model_arms_of_a_model_made_by_another_policy_version_are_not_offered(tmp_path):
    """restore refuses a checkpoint another version of the policy made; the daemon must not
    offer that model's arms either."""
    ckpt = load(registry.PRETRAINED_DIR / "asa.npz")
    assert len(registry.model_arm_keys(PolicyConfig(name="asa"))) == 23
    older = tmp_path / "asa.npz"
    save(older, {**ckpt.meta, "policy_version": "asa-0"}, ckpt.arrays)
    assert registry.model_arm_keys(PolicyConfig(name="asa", pretrained=str(older))) == []


def test_this_machines_fair_arm_is_carried_even_when_a_tuned_fair_arm_matched_exactly():
    """A checkpoint recorded where fair's default base slice is one of this machine's grid
    values: that tuned arm matches its key exactly, and this machine's plain fair still
    gets the checkpoint's fair row."""
    here_fair, *rest = bh.ARMS.keys()
    tuned = here_fair.replace("base_slice_ns=3000000", "base_slice_ns=750000")
    arms = ArmSet.from_keys([here_fair, tuned, *rest], ["fair", "fair", *bh.LABELS[1:]])
    p = registry.make_policy(PolicyConfig(name="asa"), PolicyEnv(arms, probed=bh.PROBED))
    assert sorted(p.carry_map([tuned, rest[0]])) == [(0, 0), (1, 0), (2, 1)]


def test_a_non_learning_policy_starts_from_the_shipped_model_over_its_own_copy(tmp_path):
    """asa does not learn online: its checkpoint in the state directory is a copy of the
    model it started from, and an older one (here asa-2, without the risk model) must not
    shadow the model shipped now."""
    cfg = PolicyConfig(name="asa")
    arms = ArmSet.from_catalog(ALL, "grid", registry.model_arm_keys(cfg))
    old = registry.make_policy(cfg, PolicyEnv(arms, probed=ALL))
    registry.restore(old, cfg, None)
    meta, arrays = old.state()
    meta["policy_version"] = "asa-2"
    from scxd.policy.checkpoint import save as save_checkpoint
    save_checkpoint(registry.checkpoint_path(tmp_path, "asa"), meta,
                    {k: v for k, v in arrays.items() if k not in ("risk", "workload_weights")})
    p = registry.make_policy(cfg, PolicyEnv(arms, probed=ALL))
    assert "state from pretrained" in registry.restore(p, cfg, tmp_path)
    assert p.risk.shape[1] == 11 and p.novelty_precision.shape[0] == 11
    # A learner's own checkpoint still comes first, but not one from another version.
    n = registry.make_policy(PolicyConfig(name="linucb"), PolicyEnv(bh.ARMS, probed=bh.PROBED))
    meta, arrays = n.state()
    save_checkpoint(registry.checkpoint_path(tmp_path, "linucb"), meta, arrays)
    assert "state from checkpoint" in registry.restore(n, PolicyConfig(name="linucb"), tmp_path)
    meta["policy_version"] = "linucb-0"
    save_checkpoint(registry.checkpoint_path(tmp_path, "linucb"), meta, arrays)
    note = registry.restore(n, PolicyConfig(name="linucb"), tmp_path)
    assert "made by linucb-0" in note


def test_replay_refuses_a_checkpoint_of_another_policy_version(tmp_path):
    """Replay's evaluation of a saved learner checks the policy version as the daemon's
    restore does: an older version's arrays are refused by name, not misread."""
    from scxd.policy.checkpoint import save as save_checkpoint
    from scxd.replay.policies import load_checkpoint
    from scxd.replay.table import TableError

    n = registry.make_policy(PolicyConfig(name="linucb"), PolicyEnv(bh.ARMS, probed=bh.PROBED))
    meta, arrays = n.state()
    path = tmp_path / "linucb.npz"
    save_checkpoint(path, meta, arrays)
    assert load_checkpoint(n, path)                       # its own version loads
    meta["policy_version"] = "linucb-0"
    save_checkpoint(path, meta, arrays)
    with pytest.raises(TableError, match="made by linucb-0"):
        load_checkpoint(n, path)
